"""The emulator's SQL engine: Databricks SQL on DuckDB, transpiled by sqlglot.

One engine per workspace (``engine_for(state)``) serves every SQL path: the Statement Execution API
(``statements.py``), 1.2 ``language: sql`` commands, the jobs' ``sql_task`` and ``spark.sql`` in
Python contexts. It needs the ``[emulator]`` extra (duckdb, sqlglot); importing this package
does not import them (they load with the first engine).

How a statement runs: sqlglot parses it in the Databricks dialect; the tree is rewritten where
Databricks and DuckDB differ (three-level names qualified with the current catalog/schema and
mapped to DuckDB databases, ``:name`` markers bound as typed casts, ``current_user()`` as the
caller, ``range()`` with its ``id`` column, ``/`` raising DIVIDE_BY_ZERO, Spark's names for
unaliased columns, ``sleep()``); DuckDB runs it on its own cursor; the result's DuckDB types map
to Databricks type texts and DuckDB's errors to Databricks error classes and SQLSTATEs.
``docs/emulator-sql.md`` lists what is supported and what differs.

Interface for other emulator areas (Unity Catalog, Genie, pipelines, ...)
-------------------------------------------------------------------------

    from .sqlengine import engine_for, SqlError
    eng = engine_for(state)                     # created on first use; closed with the state

Running SQL as a principal (``principal``: a ``state.Principal``, a user name, or None for the
engine's default user; ``current_user()`` answers its ``user_name`` (a service principal's
application id)):

    res = eng.execute("SELECT * FROM main.default.t WHERE id = :id",
                      parameters=[{"name": "id", "value": "7", "type": "INT"}],
                      catalog="main", schema="default", principal=req.principal,
                      row_limit=None, cancel_event=None, timeout=None)
    res.columns   # [{"name", "position", "type_name", "type_text"(, "type_precision", "type_scale")}]
    res.rows      # [(7, Decimal("1.50"), datetime.date(2024, 1, 1), [1, 2], {"k": 1}), ...]
    eng.session(principal, cancel_event=ev).execute(...)   # the same, bound to one caller
    session_for(state, principal, cancel_event=ev)          # likewise, creating the engine lazily

Errors are :class:`SqlError` (``error_class``, ``sql_state``, ``error_code``, ``message``).
A statement with a response shaped like the Statement Execution API (Genie) is submitted with
``statements.submit_statement(state, ...)`` and read with ``statements.statement_response``.

Catalog objects (the same objects SQL sees; names are case-insensitive and stored lower-case):

    eng.catalogs()                              # [{"name", "comment", "owner", "created_at", ...}]
    eng.create_catalog("sales", comment=None, owner=None, if_not_exists=False)
    eng.drop_catalog("sales", cascade=False, if_exists=False)
    eng.schemas("main")                         # [{"catalog_name", "name", "full_name", ...}]
    eng.create_schema("main", "bronze", comment=None, owner=None, if_not_exists=False)
    eng.drop_schema("main", "bronze", cascade=False, if_exists=False)
    eng.tables("main", "default")               # [table info], see below
    eng.table("main.default.t")                 # table info or None
    eng.create_table("main.default.t", [{"name": "id", "type_text": "BIGINT", "nullable": False,
                                         "comment": "key"}], comment=None, owner=None,
                     if_not_exists=False, replace=False)
    eng.drop_table("main.default.t", if_exists=False)

A table info is ``{"catalog_name", "schema_name", "name", "full_name", "table_type" ("MANAGED" |
"VIEW"), "data_source_format" ("DELTA", tables only), "view_definition" (views only), "comment",
"owner", "created_at", "updated_at" (epoch ms), "columns": [{"name", "position", "type_name" (Unity
Catalog ColumnTypeName: INT, LONG, DECIMAL, TIMESTAMP_NTZ, ARRAY, ...), "type_text" (``BIGINT``,
``DECIMAL(10,2)``, ``ARRAY<STRING>``), "type_precision"/"type_scale" (DECIMAL), "nullable",
"comment"}]}``. Tables created by SQL (``CREATE TABLE``, CTAS, views) appear here with their
columns; tables created here are visible to SQL at once. Errors are SqlErrors:
NO_SUCH_CATALOG_EXCEPTION, SCHEMA_NOT_FOUND, TABLE_OR_VIEW_NOT_FOUND, *_ALREADY_EXISTS,
SCHEMA_NOT_EMPTY.

Permission hook (default: allow everything):

    def authorize(principal, privilege, securable_type, full_name) -> bool: ...
    eng.authorize = authorize

It is called before SQL touches an object: ``SELECT`` on every table or view a statement reads
(and DESCRIBE), ``MODIFY`` on the target of INSERT/UPDATE/DELETE/MERGE/TRUNCATE, ``CREATE_TABLE``
on the schema of CREATE TABLE/VIEW, ``CREATE_SCHEMA`` on the catalog of CREATE SCHEMA,
``CREATE_CATALOG`` on ``("METASTORE", "metastore")``, ``MANAGE`` on what DROP/ALTER/CREATE OR
REPLACE changes. ``securable_type`` is TABLE, SCHEMA, CATALOG or METASTORE; ``full_name`` is
lower-case and dotted. Returning False fails the statement with
``[INSUFFICIENT_PERMISSIONS] Insufficient privileges: User does not have SELECT on Table
'main.default.t'. SQLSTATE: 42501`` (``status.error.error_code`` BAD_REQUEST, as the statement
API's enum has no PERMISSION_DENIED); the hook decides about parent USE CATALOG / USE SCHEMA
itself. The catalog methods above do not call it (API handlers check their own permissions).

Statements the engine does not execute itself (GRANT, REVOKE) go to
``eng.statement_handlers["GRANT"](principal, sql_text)`` when registered (a Result or None);
without a handler they succeed and change nothing.

Making a query take time (tests, demos): ``sleep(seconds)`` in any statement
(``SELECT sleep(5) AS slept``) waits that long while the statement is RUNNING and returns its
argument; the ``sql_delays`` config field (``{"regex": seconds}``, e.g. ``--set
'sql_delays={"FROM big_table": 30}'``) makes every matching statement take at least that long.
Both are interrupted at once by a cancel, as a running DuckDB query is (``interrupt()``).
"""
from __future__ import annotations

from ._errors import SqlError
from ._types import column_info, format_value, hive_type, json_text, json_value, uc_type_name

__all__ = ["SqlError", "SqlEngine", "Session", "Result", "engine_for", "session_for", "format_value", "json_value",
           "json_text", "hive_type", "column_info", "uc_type_name", "EXTRA_HINT"]

EXTRA_HINT = ("The emulator's SQL engine needs the [emulator] extra: "
              "pip install 'databricks-connector[emulator]' (duckdb, sqlglot).")


def __getattr__(name):
    if name in ("SqlEngine", "Session", "Result", "DEFAULT_USER"):
        from . import _engine
        return getattr(_engine, name)
    raise AttributeError(name)


class _LazySession:
    """``execute`` of the workspace's engine for one caller, creating the engine on first use."""

    def __init__(self, state, principal, cancel_event):
        self._state = state
        self.principal = principal
        self.cancel_event = cancel_event

    def execute(self, statement, parameters=None, catalog=None, schema=None, **kw):
        kw.setdefault("principal", self.principal)
        if self.cancel_event is not None:
            kw.setdefault("cancel_event", self.cancel_event)
        return engine_for(self._state).execute(statement, parameters, catalog, schema, **kw)


def session_for(state, principal=None, *, cancel_event=None):
    """An object whose ``execute(statement, parameters, catalog, schema, row_limit=...)`` runs on the
    workspace's engine as ``principal`` (interrupted by ``cancel_event``); the engine is created
    only when a statement runs."""
    return _LazySession(state, principal, cancel_event)


def engine_for(state):
    """The workspace's one SqlEngine, shared by statements, 1.2 commands, jobs and Python contexts."""
    def make():
        try:
            from ._engine import SqlEngine
        except ImportError as exc:          # the [emulator] extra is not installed
            raise SqlError("INTERNAL_ERROR", f"{EXTRA_HINT} ({exc})", "XX000", "INTERNAL_ERROR") from None
        config = getattr(state, "config", None)
        return SqlEngine(config=config, threads=getattr(config, "sql_threads", None))
    return state.area("sql_engine", make)
