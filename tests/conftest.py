"""Shared fixtures: one emulator per test session, the connection types, a connector.

The emulator serves HTTPS, as a workspace does, with a certificate authority it makes at start-up;
every connection document it hands out carries that authority as ``ca_bundle``, so each test
exercises certificate verification and the CA-bundle input. Plain http stays available:
``pytest --emulator-http`` (or ``DATABRICKS_EMULATOR_TLS=0``) runs the whole suite without TLS.

Tests that call the emulator with plain ``requests`` (not through the connector) trust its
authority through ``REQUESTS_CA_BUNDLE``, set here for this process and its children. The
connector never needs it: a connection's ``ca_bundle`` wins over that variable, and
tests/test_tls.py removes the variable to prove the connection documents alone are enough.
"""
import contextlib
import os

import pytest

from databricks_connector.emulator import Emulator
from databricks_connector.runner import Connector

FAST = dict(cluster_start_seconds=0.3, cluster_restart_seconds=0.3, cluster_resize_seconds=0.3,
            cluster_terminate_seconds=0.3)
CONNECTION_TYPES = ["personal_access_token", "service_principal"]
ALL_CONNECTION_TYPES = ["personal_access_token", "service_principal", "oauth_user", "azure_service_principal",
                        "workload_identity_federation"]


def pytest_addoption(parser):
    parser.addoption("--emulator-http", action="store_true", default=False,
                     help="run the emulator over plain http instead of HTTPS")


def pytest_configure(config):
    # pytest-xdist's workers ignore SIGINT, and a child process started from one would inherit that
    # (Python installs no KeyboardInterrupt handler when SIGINT is ignored at start-up): the
    # interrupt tests need the default disposition, as a terminal gives it.
    import signal

    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if config.getoption("--emulator-http", default=False):
        os.environ["DATABRICKS_EMULATOR_TLS"] = "0"
    from databricks_connector.emulator.state import Config

    if Config().tls:
        from databricks_connector.emulator import tls

        os.environ["REQUESTS_CA_BUNDLE"] = tls.authority().path


@pytest.fixture(scope="session")
def emulator():
    with own_emulator() as emu:
        yield emu


@contextlib.contextmanager
def own_emulator():
    """A fresh, running emulator with the suite's short timings. A module whose assertions depend
    on the whole workspace (every cluster, every list) overrides the ``emulator`` fixture with one of
    these, so what earlier tests left behind cannot change its outcome."""
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
