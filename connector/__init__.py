"""Databricks connector: run an action by its key with a connection and inputs, get JSON.

    >>> import databricks_connector as dc
    >>> conn = {"type": "personal_access_token", "host": "dbc-123.cloud.databricks.com", "token": "dapi..."}
    >>> dc.run("get_cluster", conn, {"cluster_id": "0123-456789-abcdefgh"})

Failures raise ``ConnectorError`` (``.type``, ``.message``, ``.hint``, ``.status``,
``.error_code``; ``.to_dict()`` for the JSON form).
"""
__version__ = "0.1.0"

from .errors import ConnectorError, InputError  # noqa: E402


def run(action: str, connection, inputs=None, **options):
    from .runner import default

    return default().run(action, connection, inputs, **options)


def pick(picker: str, connection, inputs=None, **options):
    from .runner import default

    return default().pick(picker, connection, inputs, **options)


def spec():
    from .runner import default

    return default().spec()


def close() -> None:
    """Close every shared session of this process (sockets released); later calls open new ones.
    For long-lived hosts at shutdown, or before forking."""
    import sys

    runner = sys.modules.get(f"{__name__}.runner")
    if runner is not None:
        runner.close_all()


def __getattr__(name):
    if name == "Connector":
        from .runner import Connector

        return Connector
    raise AttributeError(name)


__all__ = ["run", "pick", "spec", "close", "Connector", "ConnectorError", "InputError", "__version__"]
