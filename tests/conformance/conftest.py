"""One emulator per conformance module, with short durations, and the official SDK pointed at it.

The SDK's ``Config`` takes a host and a token (or a client id and secret); it has no CA-bundle
setting, so over HTTPS the emulator's certificate authority reaches the SDK through
``REQUESTS_CA_BUNDLE`` (requests honours it; the SDK keeps ``requests``' environment handling).
Under ``pytest --emulator-http`` the same tests run over plain http. Every ``DATABRICKS_*``
variable is removed and no configuration file is read, so nothing on the machine changes which
credentials the SDK uses.
"""
import os

import pytest

from databricks_connector.emulator import Emulator

from .sdkcheck import workspace_client

# Short durations: each transition still happens (PENDING before RUNNING, TERMINATING before
# TERMINATED, ...), just quickly; the SDK's waiters poll at their own pace (1 s, 2 s, ...).
KNOBS = dict(cluster_start_seconds=0.3, cluster_restart_seconds=0.3, cluster_resize_seconds=0.3,
             cluster_terminate_seconds=0.3, context_start_seconds=0.1, command_queue_seconds=0.05,
             jobs_pending_seconds=0.1, jobs_task_seconds=0.2, jobs_cancel_seconds=0.2,
             warehouse_start_seconds=0.3, warehouse_stop_seconds=0.3)


@pytest.fixture(scope="module")
def sdk_env():
    with pytest.MonkeyPatch.context() as mp:
        for name in list(os.environ):
            if name.startswith("DATABRICKS_") and name != "DATABRICKS_EMULATOR_TLS":
                mp.delenv(name)
        mp.setenv("DATABRICKS_CONFIG_FILE", os.devnull)
        yield mp


@pytest.fixture(scope="module")
def emu(sdk_env):
    with Emulator(**KNOBS) as e:
        if e.ca_bundle:
            sdk_env.setenv("REQUESTS_CA_BUNDLE", e.ca_bundle)
        yield e


@pytest.fixture(scope="module")
def w(emu):
    """A WorkspaceClient with a personal access token; ``w.recorder.check()`` checks its answers."""
    return workspace_client(emu)


@pytest.fixture
def knobs(emu):
    """``emu.config.update`` for one test; the settings and faults come back afterwards."""
    before = emu.config.as_dict()
    yield emu.config.update
    emu.faults.clear()
    emu.config.update(before)

