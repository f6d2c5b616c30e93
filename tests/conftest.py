"""Shared fixtures: one emulator per test session, both connection types, a connector."""
import pytest

from databricks_connector.emulator import Emulator
from databricks_connector.runner import Connector

FAST = dict(cluster_start_seconds=0.3, cluster_restart_seconds=0.3, cluster_resize_seconds=0.3,
            cluster_terminate_seconds=0.3)
CONNECTION_TYPES = ["personal_access_token", "service_principal"]


@pytest.fixture(scope="session")
def emulator():
    with Emulator(**FAST) as emu:
        emu.initial_config = emu.config.as_dict()
        yield emu


@pytest.fixture(autouse=True)
def _clean_faults(request):
    yield
    if "emulator" in request.fixturenames:
        emu = request.getfixturevalue("emulator")
        emu.faults.clear()
        emu.config.update(emu.initial_config)


@pytest.fixture(params=CONNECTION_TYPES)
def conn(request, emulator):
    """Each test using it runs once per connection type."""
    return emulator.connections()[request.param]


@pytest.fixture
def pat(emulator):
    return emulator.connections()["personal_access_token"]


@pytest.fixture
def sp(emulator):
    return emulator.connections()["service_principal"]


@pytest.fixture(scope="session")
def connector():
    return Connector()
