"""Local Databricks workspace emulator (loopback HTTP server).

    from databricks_connector.emulator import Emulator
    with Emulator(cluster_start_seconds=0.2) as emu:
        ...  # emu.url, emu.pat, emu.client_id / emu.client_secret, emu.faults, emu.state
"""

from .api import ApiError, LegacyError, Request, ScimError, route
from .server import FAULT_KINDS, Emulator
from .state import Config

__all__ = ["Emulator", "Config", "ApiError", "LegacyError", "ScimError", "Request", "route",
           "FAULT_KINDS"]
