import pytest
import requests

from databricks_connector.emulator import Emulator


@pytest.fixture
def emu():
    with Emulator(cluster_start_seconds=0.2, cluster_restart_seconds=0.2,
                  cluster_resize_seconds=0.2, cluster_terminate_seconds=0.2) as e:
        yield e


class Api:
    """Tiny authenticated client for the tests."""

    def __init__(self, emu, token=None):
        self.emu = emu
        self.s = requests.Session()
        self.s.headers["Authorization"] = f"Bearer {token or emu.pat}"

    def get(self, _path, **params):
        return self.s.get(self.emu.url + _path, params=params, timeout=10)

    def post(self, _path, body=None):
        return self.s.post(self.emu.url + _path, json=body if body is not None else {}, timeout=10)

    def send(self, method, _path, body=None):
        return self.s.request(method, self.emu.url + _path, json=body, timeout=10)


@pytest.fixture
def api(emu):
    return Api(emu)


@pytest.fixture
def api_for(emu):
    """api_for(token) -> a client authenticated with that token."""
    return lambda token=None: Api(emu, token)
