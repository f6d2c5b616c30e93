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


def current_connection(connection) -> dict:
    """``connection`` with the tokens the connector holds now. A user login (``oauth_user``) is
    refreshed as it runs and Databricks may rotate its refresh token: store what this returns in
    place of the document you passed when it differs (the CLI rewrites its connection file)."""
    from .connections import current_connection as _current

    return _current(connection)


def on_connection_update(callback):
    """Call ``callback(previous, updated)`` after each refresh of a user login, with the connection
    documents before and after (``updated`` carries the new access and refresh tokens); returns a
    function that removes the callback."""
    from .connections import on_connection_update as _subscribe

    return _subscribe(callback)


def __getattr__(name):
    if name == "Connector":
        from .runner import Connector

        return Connector
    raise AttributeError(name)


__all__ = ["run", "pick", "spec", "close", "current_connection", "on_connection_update", "Connector",
           "ConnectorError", "InputError", "__version__"]
