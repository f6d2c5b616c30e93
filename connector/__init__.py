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


def validate(action: str, inputs=None):
    """The resolved inputs of an action (form strings coerced, defaults applied), or InputError."""
    from .runner import default

    return default().validate(action, inputs)


def poll(trigger: str, connection, inputs=None, state=None, **options):
    """One poll of a trigger: {"events", "state", "more", "activated"}; keep ``state`` for the next."""
    from .runner import default

    return default().poll(trigger, connection, inputs, state, **options)


def __getattr__(name):
    if name == "Connector":
        from .runner import Connector

        return Connector
    raise AttributeError(name)


__all__ = ["run", "pick", "spec", "validate", "poll", "Connector", "ConnectorError", "InputError", "__version__"]
