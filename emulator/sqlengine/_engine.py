"""The SQL engine: Databricks SQL parsed by sqlglot, rewritten where Databricks and DuckDB differ,
run on one in-memory DuckDB database per workspace. See the package docstring for the interface."""
from __future__ import annotations

import collections
import datetime as _dt
import logging
import random
import re
import threading
import time
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple

import duckdb
import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, TokenError
from sqlglot.optimizer.qualify_tables import qualify_tables

from . import _errors as E
from ._errors import SqlError, q
from ._types import column_info, converter, duck_type_text, uc_type_name

logging.getLogger("sqlglot").setLevel(logging.ERROR)     # "unsupported property" notes are not for users

DEFAULT_USER = "emulator-user@example.com"
DEFAULT_CATALOG = "main"
DEFAULT_SCHEMA = "default"
_RESERVED = {"main", "system", "temp", "memory"}          # DuckDB's reserved database names
_HIDDEN_SCHEMAS = {"information_schema", "pg_catalog"}
_STATEMENT_WORDS = {"SELECT", "WITH", "VALUES", "FROM", "TABLE", "INSERT", "UPDATE", "DELETE", "MERGE", "CREATE",
                    "DROP", "ALTER", "TRUNCATE", "SHOW", "DESCRIBE", "DESC", "USE", "SET", "RESET", "GRANT",
                    "REVOKE", "COMMENT", "OPTIMIZE", "VACUUM", "ANALYZE", "REFRESH", "CACHE", "UNCACHE", "MSCK",
                    "REPLACE", "EXPLAIN", "("}
_NO_OPS = {"SET", "RESET", "OPTIMIZE", "VACUUM", "ANALYZE", "REFRESH", "CACHE", "UNCACHE", "MSCK", "CLEAR"}
_MAX_SLEEP = 3600.0
_PLAN_CACHE = 512                                         # translated SELECTs kept
_NO_OP_NODES = {"Refresh", "Analyze", "Cache", "Uncache"}


def duck_db(catalog: str) -> str:
    """The DuckDB database that holds a Databricks catalog (reserved names get a ``$`` suffix)."""
    c = catalog.lower()
    return c + "$" if c in _RESERVED else c


def dbx_catalog(db: str) -> str:
    return db[:-1] if db.endswith("$") else db


def _user_of(principal) -> Optional[str]:
    if principal is None:
        return None
    if isinstance(principal, str):
        return principal
    return getattr(principal, "user_name", None) or getattr(principal, "application_id", None)


class Result:
    """Columns: ``[{"name", "position", "type_name", "type_text"(, "type_precision", "type_scale")}]``;
    rows: list of tuples of Python values (int, float, Decimal, str, bool, date, datetime, bytes, list,
    dict). ``truncated`` is True when ``row_limit`` cut rows off; ``statement_type`` is the leading
    keyword (SELECT, INSERT, CREATE, ...)."""

    __slots__ = ("columns", "rows", "statement_type", "truncated")

    def __init__(self, columns: list, rows: list, statement_type: str = "SELECT", truncated: bool = False):
        self.columns = columns
        self.rows = rows
        self.statement_type = statement_type
        self.truncated = truncated

    def iter_rows(self):
        yield from self.rows

    @property
    def column_names(self) -> List[str]:
        return [c["name"] for c in self.columns]

    def data_array(self) -> List[list]:
        from ._types import format_value
        return [[format_value(v) for v in row] for row in self.rows]

    def __repr__(self):
        return f"Result(columns={self.column_names}, rows={len(self.rows)})"


def _count_result(kind: str, names: Tuple[str, ...], values: Tuple[int, ...]) -> Result:
    return Result([column_info(n, i, "BIGINT") for i, n in enumerate(names)], [values], kind)


class _Run:
    """One ``execute`` call: its cursor, caller, current catalog/schema, parameters, cancellation."""

    def __init__(self, engine: "SqlEngine", cursor, user: str, principal, catalog: str, schema: str,
                 params: Dict[str, Tuple[str, Optional[str]]], cancel_event, deadline, timeout):
        self.engine = engine
        self.cursor = cursor
        self.user = user
        self.principal = principal if principal is not None else user
        self.catalog = catalog
        self.schema = schema
        self.params = params
        self.cancel_event = cancel_event
        self.deadline = deadline
        self.timeout = timeout
        self.interrupted: Optional[str] = None
        self.temp_views: set = set()             # temporary views created earlier in this request
        self.plan: Optional[tuple] = None        # (duckdb sql, values, sleep, -) of the last SELECT

    def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` (interrupted by a cancel or the timeout, which raise)."""
        end = time.monotonic() + seconds
        while True:
            now = time.monotonic()
            if self.deadline is not None and now >= self.deadline:
                raise E.timed_out(self.timeout)
            if now >= end:
                return
            stop = min(end, self.deadline) if self.deadline is not None else end
            if self.cancel_event is not None:
                if self.cancel_event.wait(min(stop - now, 0.25)):
                    raise E.cancelled()
            else:
                time.sleep(min(stop - now, 0.25))

    def search_path(self) -> str:
        return q(self.catalog, self.schema)


class SqlEngine:
    """One workspace's SQL engine (thread-safe). See the package docstring."""

    def __init__(self, *, seed_samples: bool = True, user: str = DEFAULT_USER, config: Any = None,
                 threads: Optional[int] = None, memory_limit: Optional[str] = None):
        self.user = user
        self.config = config
        self.authorize: Optional[Callable[[Any, str, str, str], bool]] = None
        self.statement_handlers: Dict[str, Callable[..., Optional[Result]]] = {}
        self._lock = threading.RLock()
        self._closed = False
        opts = {"threads": str(threads or 2)}
        if memory_limit:
            opts["memory_limit"] = memory_limit
        self._db = duckdb.connect(":memory:", config=opts)
        self._db.execute("SET GLOBAL TimeZone = 'UTC'")
        self._meta: Dict[tuple, dict] = {}                 # ("catalog", c) / ("schema", c, s) / ("table", c, s, t)
        self._active: Dict[int, _Run] = {}
        self._plans: "collections.OrderedDict[tuple, tuple]" = collections.OrderedDict()
        self._plans_lock = threading.Lock()
        self._wlock = threading.Lock()
        self._watcher: Optional[threading.Thread] = None
        now = self._now_ms()
        for cat, comment in ((DEFAULT_CATALOG, "Main catalog (auto-created)"),
                             ("hive_metastore", "Legacy Hive metastore"), ):
            self.create_catalog(cat, comment=comment, owner=user)
        if seed_samples:
            self._seed_samples()
        self._meta_created = now

    # ------------------------------------------------------------------ lifecycle
    def close(self) -> None:
        """Interrupt what runs, let it unwind (a few seconds at most), then close the database."""
        self._closed = True
        with self._wlock:
            runs = list(self._active.values())
        for r in runs:
            r.interrupted = r.interrupted or "cancel"
            try:
                r.cursor.interrupt()
            except Exception:  # noqa: BLE001
                pass
        end = time.monotonic() + 5
        while time.monotonic() < end:
            with self._wlock:
                if not self._active:
                    break
            time.sleep(0.01)
        try:
            self._db.close()
        except Exception:  # noqa: BLE001
            pass

    @staticmethod
    def _now_ms() -> int:
        return int(time.time() * 1000)

    def _cursor(self):
        if self._closed:
            raise SqlError("INTERNAL_ERROR", "The SQL engine is closed.", "XX000", "INTERNAL_ERROR")
        return self._db.cursor()

    def _raw(self, sql: str, params=None) -> list:
        cur = self._cursor()
        try:
            return cur.execute(sql, params).fetchall() if params else cur.execute(sql).fetchall()
        finally:
            cur.close()

    # ------------------------------------------------------------------ samples
    def _seed_samples(self) -> None:
        self.create_catalog("samples", comment="Sample data sets (read-only in Databricks)", owner="System user")
        self.create_schema("samples", "nyctaxi", owner="System user")
        rng = random.Random(20160213)
        base = _dt.datetime(2016, 2, 13, 21, 47, 53)
        zips = [10001, 10003, 10011, 10012, 10018, 10019, 10021, 10023, 10028, 10036, 10065, 10103,
                10110, 10119, 10153, 10162, 10171, 10199, 10282, 11101, 11201, 11211, 11215, 11217,
                11222, 11238, 11371, 11430, 7114]
        rows = []
        t = base
        for _ in range(200):
            t += _dt.timedelta(seconds=rng.randint(30, 2400))
            dist = round(rng.uniform(0.3, 18.0), 2)
            dur = _dt.timedelta(seconds=int(dist * rng.uniform(150, 400)) + 60)
            fare = round(2.5 + dist * 2.5 + rng.uniform(0, 6), 1)
            rows.append(f"(TIMESTAMPTZ '{t}', TIMESTAMPTZ '{t + dur}', {dist!r}, {fare!r}, {rng.choice(zips)}, "
                        f"{rng.choice(zips)})")
        self.create_table("samples.nyctaxi.trips", [
            {"name": "tpep_pickup_datetime", "type_text": "TIMESTAMP"},
            {"name": "tpep_dropoff_datetime", "type_text": "TIMESTAMP"},
            {"name": "trip_distance", "type_text": "DOUBLE"}, {"name": "fare_amount", "type_text": "DOUBLE"},
            {"name": "pickup_zip", "type_text": "INT"}, {"name": "dropoff_zip", "type_text": "INT"}],
            owner="System user", comment="NYC taxi trips (a 200-row deterministic sample)")
        self._raw('INSERT INTO samples.nyctaxi.trips VALUES ' + ",".join(rows))

    # ================================================================== catalog interface
    def _check_name(self, kind: str, name: str) -> str:
        if not isinstance(name, str) or not name or len(name) > 255 or "." in name or "`" in name or \
                any(ord(c) < 32 for c in name):
            raise SqlError("INVALID_SCHEMA_OR_RELATION_NAME" if kind != "catalog" else "INVALID_IDENTIFIER",
                           f"{q(str(name))} is not a valid name for a {kind}.", "42602")
        return name.lower()

    def catalogs(self) -> List[dict]:
        """The catalogs: ``[{"name", "comment", "owner", "created_at", "created_by"}]`` sorted by name."""
        rows = self._raw("SELECT database_name FROM duckdb_databases() WHERE NOT internal AND database_name <> "
                         "'memory' ORDER BY database_name")
        out = []
        for (db,) in rows:
            name = dbx_catalog(db)
            meta = self._meta.get(("catalog", name), {})
            out.append({"name": name, "comment": meta.get("comment"), "owner": meta.get("owner", self.user),
                        "created_at": meta.get("created_at"), "created_by": meta.get("owner", self.user)})
        return out

    def catalog_exists(self, catalog: str) -> bool:
        return bool(self._raw("SELECT 1 FROM duckdb_databases() WHERE database_name = ?", [duck_db(catalog)]))

    def create_catalog(self, name: str, *, comment: Optional[str] = None, owner: Optional[str] = None,
                       if_not_exists: bool = False) -> dict:
        """Create an empty catalog (with its ``default`` schema, as Databricks does)."""
        name = self._check_name("catalog", name)
        with self._lock:
            if self.catalog_exists(name):
                if if_not_exists:
                    return self._catalog_info(name)
                raise E.catalog_exists(name)
            self._raw(f"ATTACH ':memory:' AS {_qi(duck_db(name))}")
            self._meta[("catalog", name)] = {"comment": comment, "owner": owner or self.user,
                                             "created_at": self._now_ms()}
            self.create_schema(name, DEFAULT_SCHEMA, owner=owner, comment="Default schema (auto-created)",
                               if_not_exists=True)
            return self._catalog_info(name)

    def _catalog_info(self, name: str) -> dict:
        return next(c for c in self.catalogs() if c["name"] == name)

    def drop_catalog(self, name: str, *, cascade: bool = False, if_exists: bool = False) -> None:
        name = name.lower()
        with self._lock:
            if not self.catalog_exists(name):
                if if_exists:
                    return
                raise E.catalog_not_found(name)
            if not cascade and any(s["name"] != DEFAULT_SCHEMA or self.tables(name, s["name"])
                                   for s in self.schemas(name)):
                raise SqlError("SCHEMA_NOT_EMPTY", f"Cannot drop catalog {q(name)} because it is not empty. Use "
                               "DROP CATALOG ... CASCADE to drop the catalog and all its objects.", "2BP01")
            self._raw(f"DETACH {_qi(duck_db(name))}")
            for k in [k for k in self._meta if len(k) > 1 and k[1] == name]:
                del self._meta[k]

    def schemas(self, catalog: str) -> List[dict]:
        """The schemas of a catalog: ``[{"catalog_name", "name", "full_name", "comment", "owner",
        "created_at"}]``. Raises NO_SUCH_CATALOG_EXCEPTION."""
        catalog = catalog.lower()
        if not self.catalog_exists(catalog):
            raise E.catalog_not_found(catalog)
        rows = self._raw("SELECT schema_name FROM duckdb_schemas() WHERE database_name = ? ORDER BY schema_name",
                         [duck_db(catalog)])
        out = []
        for (s,) in rows:
            meta = self._meta.get(("schema", catalog, s))
            if s in _HIDDEN_SCHEMAS or (s == "main" and meta is None):
                continue
            meta = meta or {}
            out.append({"catalog_name": catalog, "name": s, "full_name": f"{catalog}.{s}",
                        "comment": meta.get("comment"), "owner": meta.get("owner", self.user),
                        "created_at": meta.get("created_at")})
        return out

    def schema_exists(self, catalog: str, schema: str) -> bool:
        try:
            return any(s["name"] == schema.lower() for s in self.schemas(catalog))
        except SqlError:
            return False

    def create_schema(self, catalog: str, name: str, *, comment: Optional[str] = None,
                      owner: Optional[str] = None, if_not_exists: bool = False) -> dict:
        catalog, name = catalog.lower(), self._check_name("schema", name)
        with self._lock:
            if not self.catalog_exists(catalog):
                raise E.catalog_not_found(catalog)
            if self.schema_exists(catalog, name):
                if if_not_exists:
                    return next(s for s in self.schemas(catalog) if s["name"] == name)
                raise E.schema_exists(q(catalog, name))
            if name != "main":
                self._raw(f"CREATE SCHEMA {_qi(duck_db(catalog))}.{_qi(name)}")
            self._meta[("schema", catalog, name)] = {"comment": comment, "owner": owner or self.user,
                                                     "created_at": self._now_ms()}
            return next(s for s in self.schemas(catalog) if s["name"] == name)

    def drop_schema(self, catalog: str, name: str, *, cascade: bool = False, if_exists: bool = False) -> None:
        catalog, name = catalog.lower(), name.lower()
        with self._lock:
            if not self.schema_exists(catalog, name):
                if if_exists:
                    return
                raise E.schema_not_found(q(catalog, name))
            tables = self.tables(catalog, name)
            if tables and not cascade:
                raise E.schema_not_empty(q(catalog, name))
            if name == "main":
                for t in tables:
                    self.drop_table(t["full_name"])
            else:
                self._raw(f"DROP SCHEMA {_qi(duck_db(catalog))}.{_qi(name)} CASCADE")
            for k in [k for k in self._meta if k[0] in ("schema", "table") and k[1:3] == (catalog, name)]:
                del self._meta[k]

    def tables(self, catalog: str, schema: str) -> List[dict]:
        """The tables and views of a schema, each as :meth:`table` returns it (sorted by name).
        Raises SCHEMA_NOT_FOUND / NO_SUCH_CATALOG_EXCEPTION."""
        catalog, schema = catalog.lower(), schema.lower()
        if not self.schema_exists(catalog, schema):
            if not self.catalog_exists(catalog):
                raise E.catalog_not_found(catalog)
            raise E.schema_not_found(q(catalog, schema))
        names = self._raw("SELECT table_name, 'MANAGED' FROM duckdb_tables() WHERE database_name = ? AND "
                          "schema_name = ? UNION ALL SELECT view_name, 'VIEW' FROM duckdb_views() WHERE NOT internal "
                          "AND database_name = ? AND schema_name = ? ORDER BY 1",
                          [duck_db(catalog), schema, duck_db(catalog), schema])
        return [self._table_info(catalog, schema, n, kind) for n, kind in names]

    def table(self, full_name: str) -> Optional[dict]:
        """One table or view, or None: ``{"catalog_name", "schema_name", "name", "full_name",
        "table_type" (MANAGED | VIEW), "data_source_format" (DELTA; absent for views), "comment",
        "owner", "created_at", "updated_at", "view_definition" (views), "columns": [{"name",
        "position", "type_name" (Unity Catalog ColumnTypeName), "type_text" (Databricks SQL type),
        "type_precision", "type_scale", "nullable", "comment"}]}``."""
        parts = _split_name(full_name)
        if len(parts) != 3:
            raise SqlError("INVALID_PARAMETER_VALUE", f"{full_name!r} is not a three-level name "
                           "(catalog.schema.table).", "42602")
        c, s, t = (p.lower() for p in parts)
        rows = self._raw("SELECT 'MANAGED' FROM duckdb_tables() WHERE database_name = ? AND schema_name = ? AND "
                         "table_name = ? UNION ALL SELECT 'VIEW' FROM duckdb_views() WHERE NOT internal AND "
                         "database_name = ? AND schema_name = ? AND view_name = ?",
                         [duck_db(c), s, t, duck_db(c), s, t])
        if not rows:
            return None
        return self._table_info(c, s, t, rows[0][0])

    def _table_info(self, c: str, s: str, t: str, kind: str) -> dict:
        meta = self._meta.get(("table", c, s, t), {})
        cur = self._cursor()
        try:
            try:
                desc = cur.execute(f"SELECT * FROM {_qi(duck_db(c))}.{_qi(s)}.{_qi(t)} LIMIT 0").description or []
            except duckdb.Error:            # a view over a table that is gone: listed, without columns
                desc = []
            notnull = {n for (n,) in cur.execute(
                "SELECT column_name FROM duckdb_columns() WHERE database_name = ? AND schema_name = ? AND "
                "table_name = ? AND NOT is_nullable", [duck_db(c), s, t]).fetchall()}
            view_sql = None
            if kind == "VIEW":
                r = cur.execute("SELECT sql FROM duckdb_views() WHERE database_name = ? AND schema_name = ? AND "
                                "view_name = ?", [duck_db(c), s, t]).fetchall()
                view_sql = meta.get("view_definition") or (r[0][0] if r else None)
        finally:
            cur.close()
        comments = meta.get("column_comments", {})
        cols = []
        for i, d in enumerate(desc):
            text = duck_type_text(d[1])
            col = column_info(d[0], i, text)
            col["type_name"] = uc_type_name(text)
            col["nullable"] = d[0] not in notnull
            col["comment"] = comments.get(d[0])
            cols.append(col)
        info = {"catalog_name": c, "schema_name": s, "name": t, "full_name": f"{c}.{s}.{t}", "table_type": kind,
                "comment": meta.get("comment"), "owner": meta.get("owner", self.user),
                "created_at": meta.get("created_at"), "updated_at": meta.get("updated_at", meta.get("created_at")),
                "columns": cols}
        if kind == "VIEW":
            info["view_definition"] = view_sql
        else:
            info["data_source_format"] = "DELTA"
        return info

    def create_table(self, full_name: str, columns: List[dict], *, comment: Optional[str] = None,
                     owner: Optional[str] = None, if_not_exists: bool = False, replace: bool = False) -> dict:
        """Create an empty managed table. ``columns``: ``[{"name", "type_text" (Databricks SQL type,
        e.g. "DECIMAL(10,2)", "ARRAY<STRING>"), "nullable" (default True), "comment"}]``."""
        parts = _split_name(full_name)
        if len(parts) != 3:
            raise SqlError("INVALID_PARAMETER_VALUE", f"{full_name!r} is not a three-level name "
                           "(catalog.schema.table).", "42602")
        c, s, t = parts[0].lower(), parts[1].lower(), self._check_name("table", parts[2])
        if not columns:
            raise SqlError("INVALID_PARAMETER_VALUE", "A table needs at least one column.", "42000")
        defs = []
        for col in columns:
            ddl = _duck_type(col.get("type_text") or col.get("type_name") or "")
            if ddl is None:
                raise SqlError("UNSUPPORTED_DATATYPE", f"Unsupported data type {col.get('type_text')!r} for "
                               f"column {col.get('name')!r}.", "0A000")
            defs.append(f"{_qi(col['name'])} {ddl}{'' if col.get('nullable', True) else ' NOT NULL'}")
        with self._lock:
            if not self.schema_exists(c, s):
                if not self.catalog_exists(c):
                    raise E.catalog_not_found(c)
                raise E.schema_not_found(q(c, s))
            exists = self.table(f"{c}.{s}.{t}") is not None
            if exists and if_not_exists:
                return self.table(f"{c}.{s}.{t}")
            if exists and not replace:
                raise E.table_exists(q(c, s, t))
            verb = "CREATE OR REPLACE TABLE" if replace else "CREATE TABLE"
            self._raw(f"{verb} {_qi(duck_db(c))}.{_qi(s)}.{_qi(t)} ({', '.join(defs)})")
            now = self._now_ms()
            self._meta[("table", c, s, t)] = {"comment": comment, "owner": owner or self.user, "created_at": now,
                                              "updated_at": now,
                                              "column_comments": {col["name"]: col["comment"] for col in columns
                                                                  if col.get("comment")}}
            return self.table(f"{c}.{s}.{t}")

    def drop_table(self, full_name: str, *, if_exists: bool = False) -> None:
        parts = _split_name(full_name)
        info = self.table(full_name) if len(parts) == 3 else None
        if info is None:
            if if_exists:
                return
            raise E.table_not_found(q(*parts))
        kind = "VIEW" if info["table_type"] == "VIEW" else "TABLE"
        with self._lock:
            self._raw(f"DROP {kind} {_qi(duck_db(info['catalog_name']))}.{_qi(info['schema_name'])}."
                      f"{_qi(info['name'])}")
            self._meta.pop(("table", info["catalog_name"], info["schema_name"], info["name"]), None)

    # ================================================================== statements
    def session(self, principal=None, *, cancel_event: Optional[threading.Event] = None) -> "Session":
        """A view of the engine whose ``execute`` runs as ``principal`` (and is interrupted by
        ``cancel_event``): hand it to code that only knows ``execute(statement, parameters, catalog,
        schema, row_limit=...)``."""
        return Session(self, principal, cancel_event)

    def execute(self, statement: str, parameters: Optional[List[dict]] = None, catalog: Optional[str] = None,
                schema: Optional[str] = None, *, row_limit: Optional[int] = None,
                cancel_event: Optional[threading.Event] = None, timeout: Optional[float] = None,
                principal=None) -> Result:
        """Run one statement (or several separated by ``;``, returning the last result) as
        ``principal`` (a state.Principal, a user name, or None for the engine's default user).

        ``parameters``: ``[{"name", "value" (str or None), "type" (default STRING)}]`` for ``:name``
        markers. ``cancel_event``: set it from another thread to interrupt the statement (SqlError
        with error_code CANCELLED); ``timeout`` seconds likewise (DEADLINE_EXCEEDED)."""
        if not isinstance(statement, str) or not statement.strip():
            raise E.syntax_error("end of input")
        user = _user_of(principal) or self.user
        key = self._plan_key(statement, catalog, schema, user, parameters)
        with self._plans_lock:
            plan = self._plans.get(key) if key is not None else None
            if plan is not None:
                self._plans.move_to_end(key)
        exprs = [] if plan is not None else _parse(statement)
        deadline = time.monotonic() + float(timeout) if timeout else None
        cur = self._cursor()
        run = _Run(self, cur, user, principal, (catalog or DEFAULT_CATALOG).lower(),
                   (schema or DEFAULT_SCHEMA).lower(), {}, cancel_event, deadline, timeout)
        watched = True                      # every run is known, so close() can wait for it
        self._watch(run, cancel_event is not None or deadline is not None)
        lookup = plan[4] if plan is not None else None
        try:
            if plan is not None:                         # the same SELECT again: no parse, no rewrite
                delay = self._configured_delay(statement)
                if delay:
                    run.sleep(delay)
                if plan[2]:
                    run.sleep(plan[2])
                return self._fetch(cur.execute(plan[0], plan[1] or None), row_limit)
            run.params = self._params(run, parameters)
            if catalog and not self.catalog_exists(run.catalog):
                raise E.catalog_not_found(run.catalog)
            if schema and not self.schema_exists(run.catalog, run.schema):
                raise E.schema_not_found(q(run.catalog, run.schema))
            delay = self._configured_delay(statement)
            if delay:
                run.sleep(delay)
            result = Result([], [], "SELECT")
            for e in exprs:
                result = self._one(run, e, row_limit)
            if key is not None and len(exprs) == 1 and run.plan is not None and not run.temp_views:
                with self._plans_lock:
                    self._plans[key] = run.plan + (_names_lookup(exprs),)
                    while len(self._plans) > _PLAN_CACHE:
                        self._plans.popitem(last=False)
            return result
        except duckdb.Error as exc:
            if run.interrupted == "timeout":
                raise E.timed_out(timeout) from None
            if run.interrupted == "cancel" or type(exc).__name__ == "InterruptException":
                raise E.cancelled() from None
            raise E.from_duckdb(exc, lookup or _names_lookup(exprs), run.search_path()) from None
        except SqlError:
            raise
        except sqlglot.errors.SqlglotError as exc:      # sqlglot cannot translate it
            raise SqlError("UNSUPPORTED_FEATURE", f"The emulator's SQL engine cannot translate this statement: "
                           f"{str(exc).splitlines()[0][:200]}", "0A000") from None
        except RecursionError:
            raise SqlError("STATEMENT_TOO_COMPLEX", "The statement is nested too deeply.", "54001") from None
        finally:
            if watched:
                self._unwatch(run)
            try:
                cur.close()
            except Exception:  # noqa: BLE001
                pass

    def _plan_key(self, statement, catalog, schema, user, parameters):
        """Cache key of a SELECT's DuckDB translation (None: do not cache)."""
        if self.authorize is not None:
            return None
        try:
            params = tuple((p.get("name"), p.get("type"), p.get("value")) for p in parameters or [])
            key = (statement, (catalog or "").lower(), (schema or "").lower(), user, params)
            hash(key)
            return key
        except (AttributeError, TypeError):
            return None

    # ------------------------------------------------------------------ cancellation
    def _watch(self, run: _Run, interruptible: bool = True) -> None:
        with self._wlock:
            self._active[id(run)] = run
            if interruptible and self._watcher is None:
                self._watcher = threading.Thread(target=self._watch_loop, name="emu-sql-watch", daemon=True)
                self._watcher.start()

    def _unwatch(self, run: _Run) -> None:
        with self._wlock:
            self._active.pop(id(run), None)

    def _watch_loop(self) -> None:
        while True:
            with self._wlock:
                runs = [r for r in self._active.values() if r.cancel_event is not None or r.deadline is not None]
                if not runs:
                    self._watcher = None
                    return
            now = time.monotonic()
            for r in runs:
                why = r.interrupted or ("cancel" if r.cancel_event is not None and r.cancel_event.is_set() else
                                        "timeout" if r.deadline is not None and now > r.deadline else None)
                if why:                 # again every tick: a query that starts after a cancel is stopped too
                    r.interrupted = why
                    try:
                        r.cursor.interrupt()
                    except Exception:  # noqa: BLE001
                        pass
            time.sleep(0.01)

    def _configured_delay(self, statement: str) -> float:
        delays = getattr(self.config, "sql_delays", None) or {}
        total = 0.0
        for pattern, seconds in dict(delays).items():
            try:
                if re.search(pattern, statement, re.I | re.S):
                    total = max(total, float(seconds))
            except (re.error, TypeError, ValueError):
                continue
        return min(total, _MAX_SLEEP)

    # ------------------------------------------------------------------ parameters
    def _params(self, run: _Run, parameters) -> Dict[str, Tuple[str, Optional[str]]]:
        out: Dict[str, Tuple[str, Optional[str]]] = {}
        types: Dict[str, str] = {}
        for p in parameters or []:
            if not isinstance(p, dict) or not isinstance(p.get("name"), str) or not p["name"].lstrip(":"):
                raise SqlError("INVALID_PARAMETER_VALUE", "Each parameter needs a string `name`.", "22023")
            name = p["name"].lstrip(":")
            ptype = p.get("type") or "STRING"
            duck = _duck_type(ptype) if isinstance(ptype, str) else None
            if duck is None or re.match(r"\s*(ARRAY|MAP|STRUCT)\b", str(ptype), re.I):
                raise SqlError("INVALID_PARAMETER_VALUE", f"Unsupported type `{ptype}` for the parameter "
                               f"`{name}`.", "22023")
            value = p.get("value")
            if value is not None and not isinstance(value, str):
                value = "true" if value is True else "false" if value is False else str(value)
            out[name] = (duck, value)
            types[name] = ptype
        given = [(n, d, v) for n, (d, v) in out.items() if v is not None]
        if given:                                   # one query checks every value; on failure, find which
            try:
                run.cursor.execute("SELECT " + ", ".join(f"CAST($v{i} AS {d})" for i, (_, d, _) in enumerate(given)),
                                   {f"v{i}": v for i, (_, _, v) in enumerate(given)}).fetchall()
            except duckdb.Error:
                for n, d, v in given:
                    try:
                        run.cursor.execute(f"SELECT CAST($v AS {d})", {"v": v}).fetchall()
                    except duckdb.Error:
                        raise SqlError("INVALID_PARAMETER_VALUE", f"The value '{v}' of the parameter `{n}` cannot "
                                       f"be converted to {_dbx_type_text(types[n])}.", "22023") from None
                raise
        return out

    # ------------------------------------------------------------------ one statement
    def _one(self, run: _Run, e: exp.Expression, row_limit) -> Result:
        if run.interrupted == "timeout" or (run.deadline is not None and time.monotonic() > run.deadline):
            raise E.timed_out(run.timeout)
        if run.interrupted == "cancel" or (run.cancel_event is not None and run.cancel_event.is_set()):
            raise E.cancelled()
        if isinstance(e, exp.Command):
            return self._command(run, e)
        if isinstance(e, exp.Use):
            return self._use(run, e)
        if isinstance(e, exp.Describe):
            return self._describe(run, e)
        if isinstance(e, (exp.Set,)) or type(e).__name__ in _NO_OP_NODES:
            return Result([], [], type(e).__name__.upper())
        if isinstance(e, (exp.Grant, exp.Revoke)):
            return self._handled(run, "GRANT" if isinstance(e, exp.Grant) else "REVOKE", e)
        if isinstance(e, exp.Create) and (e.args.get("kind") or "").upper() in ("SCHEMA", "DATABASE"):
            return self._create_schema_stmt(run, e)
        if isinstance(e, exp.Drop) and (e.args.get("kind") or "").upper() in ("SCHEMA", "DATABASE"):
            return self._drop_schema_stmt(run, e)
        return self._duck(run, e, row_limit)

    def _handled(self, run: _Run, kind: str, e) -> Result:
        fn = self.statement_handlers.get(kind)
        if fn is not None:
            res = fn(run.principal, e.sql(dialect="databricks") if hasattr(e, "sql") else str(e))
            return res if isinstance(res, Result) else Result([], [], kind)
        return Result([], [], kind)

    def _command(self, run: _Run, e: exp.Command) -> Result:
        text = (str(e.this) + " " + str(e.expression.this if isinstance(e.expression, exp.Literal) else
                                         (e.expression or ""))).strip()
        word = text.split(None, 1)[0].upper()
        m = re.fullmatch(r"CREATE\s+CATALOG\s+(IF\s+NOT\s+EXISTS\s+)?(`[^`]+`|\w+)(?:\s+COMMENT\s+'((?:[^']|'')*)')?"
                         r"\s*;?", text, re.I | re.S)
        if m:
            name = _ident(m.group(2))
            self._authorize(run, "CREATE_CATALOG", "METASTORE", "metastore")
            self.create_catalog(name, comment=m.group(3), owner=run.user, if_not_exists=bool(m.group(1)))
            return Result([], [], "CREATE")
        m = re.fullmatch(r"DROP\s+CATALOG\s+(IF\s+EXISTS\s+)?(`[^`]+`|\w+)(\s+CASCADE|\s+RESTRICT)?\s*;?",
                         text, re.I | re.S)
        if m:
            name = _ident(m.group(2))
            if self.catalog_exists(name):
                self._authorize(run, "MANAGE", "CATALOG", name)
            self.drop_catalog(name, cascade=bool(m.group(3) and "CASCADE" in m.group(3).upper()),
                              if_exists=bool(m.group(1)))
            return Result([], [], "DROP")
        if word == "SHOW":
            return self._show(run, text)
        if word in _NO_OPS:
            return Result([], [], word)
        if word in ("GRANT", "REVOKE"):
            return self._handled(run, word, text)
        if word in ("DESCRIBE", "DESC"):
            m = re.fullmatch(r"DESC(?:RIBE)?\s+(CATALOG|SCHEMA|DATABASE)\s+(?:EXTENDED\s+)?(\S+)\s*;?", text, re.I)
            if m:
                return self._describe_container(run, m.group(1).upper(), m.group(2))
        if word not in _STATEMENT_WORDS:
            raise E.syntax_error(f"'{text.split(None, 1)[0]}'")
        raise SqlError("UNSUPPORTED_FEATURE", f"The emulator's SQL engine does not support this statement: "
                       f"{text[:80]}", "0A000")

    def _use(self, run: _Run, e: exp.Use) -> Result:
        kind = (e.args.get("kind").name if isinstance(e.args.get("kind"), exp.Expression) else
                str(e.args.get("kind") or "")).upper()
        t = e.this
        parts = [p.name for p in t.parts] if isinstance(t, exp.Table) else [t.name]
        if kind == "CATALOG":
            name = parts[-1].lower()
            if not self.catalog_exists(name):
                raise E.catalog_not_found(name)
            run.catalog, run.schema = name, DEFAULT_SCHEMA
        else:
            cat = parts[0].lower() if len(parts) == 2 else run.catalog
            sch = parts[-1].lower()
            if not self.catalog_exists(cat):
                raise E.catalog_not_found(cat)
            if not self.schema_exists(cat, sch):
                raise E.schema_not_found(q(cat, sch))
            run.catalog, run.schema = cat, sch
        return Result([], [], "USE")

    def _resolve(self, run: _Run, parts: List[str]) -> Tuple[str, str, str]:
        parts = [p.lower() for p in parts]
        if len(parts) == 1:
            return run.catalog, run.schema, parts[0]
        if len(parts) == 2:
            return run.catalog, parts[0], parts[1]
        return parts[-3], parts[-2], parts[-1]

    def _describe(self, run: _Run, e: exp.Describe) -> Result:
        t = e.this
        if not isinstance(t, exp.Table):
            raise E.syntax_error(f"'{e.sql(dialect='databricks')[:30]}'")
        kind = str(e.args.get("kind") or "").upper()
        if kind in ("SCHEMA", "DATABASE", "CATALOG"):
            return self._describe_container(run, kind, t.sql(dialect="databricks"))
        c, s, n = self._resolve(run, [p.name for p in t.parts])
        info = self.table(f"{c}.{s}.{n}")
        if info is None:
            raise E.table_not_found(q(*[p.name for p in t.parts]))
        self._authorize(run, "SELECT", "TABLE", info["full_name"])
        rows = [(col["name"], col["type_text"].lower(), col["comment"]) for col in info["columns"]]
        if str(e.args.get("style") or "").upper() in ("EXTENDED", "FORMATTED"):
            rows += [("", "", ""), ("# Detailed Table Information", "", ""), ("Catalog", c, ""),
                     ("Database", s, ""), ("Table", n, ""), ("Owner", info["owner"], ""),
                     ("Type", info["table_type"], ""), ("Provider", "delta" if info["table_type"] != "VIEW" else "", ""),
                     ("Comment", info["comment"] or "", "")]
        return Result([column_info("col_name", 0, "STRING"), column_info("data_type", 1, "STRING"),
                       column_info("comment", 2, "STRING")], rows, "DESCRIBE")

    def _describe_container(self, run: _Run, kind: str, name: str) -> Result:
        parts = _split_name(name)
        cols = [column_info("info_name", 0, "STRING"), column_info("info_value", 1, "STRING")]
        if kind == "CATALOG":
            cat = parts[-1].lower()
            info = next((c for c in self.catalogs() if c["name"] == cat), None)
            if info is None:
                raise E.catalog_not_found(cat)
            return Result(cols, [("Catalog Name", cat), ("Comment", info["comment"] or ""),
                                 ("Owner", info["owner"])], "DESCRIBE")
        cat = parts[0].lower() if len(parts) == 2 else run.catalog
        sch = parts[-1].lower()
        if not self.schema_exists(cat, sch):
            raise E.schema_not_found(q(cat, sch))
        info = next(x for x in self.schemas(cat) if x["name"] == sch)
        return Result(cols, [("Catalog Name", cat), ("Namespace Name", sch), ("Comment", info["comment"] or ""),
                             ("Owner", info["owner"])], "DESCRIBE")

    def _show(self, run: _Run, text: str) -> Result:
        m = re.fullmatch(r"SHOW\s+(CATALOGS|SCHEMAS|DATABASES|TABLES|VIEWS|COLUMNS)"
                         r"(?:\s+(?:IN|FROM)\s+(`[^`]+`|[\w.`]+))?(?:\s+(?:IN|FROM)\s+(`[^`]+`|[\w.`]+))?"
                         r"(?:\s+(?:LIKE\s+)?'((?:[^']|'')*)')?\s*;?", text.strip(), re.I | re.S)
        if not m:
            raise SqlError("UNSUPPORTED_FEATURE", f"The emulator's SQL engine does not support this statement: "
                           f"{text[:80]}", "0A000")
        what, where, where2, like = m.group(1).upper(), m.group(2), m.group(3), m.group(4)
        rx = None
        if like is not None:
            alts = [re.escape(a.strip()).replace(r"\*", ".*") for a in like.replace("''", "'").split("|")]
            rx = re.compile("^(?:" + "|".join(alts) + ")$", re.I)

        def keep(name):
            return rx is None or rx.match(name) is not None

        if what == "CATALOGS":
            rows = [(c["name"],) for c in self.catalogs() if keep(c["name"])]
            return Result([column_info("catalog", 0, "STRING")], rows, "SHOW")
        if what in ("SCHEMAS", "DATABASES"):
            cat = _ident(where).lower() if where else run.catalog
            rows = [(s["name"],) for s in self.schemas(cat) if keep(s["name"])]
            return Result([column_info("databaseName", 0, "STRING")], rows, "SHOW")
        if what == "COLUMNS":
            if not where:
                raise E.syntax_error("end of input")
            parts = _split_name(where)
            if where2:
                parts = _split_name(where2) + parts
            c, s, n = self._resolve(run, parts)
            info = self.table(f"{c}.{s}.{n}")
            if info is None:
                raise E.table_not_found(q(*parts))
            return Result([column_info("col_name", 0, "STRING")],
                          [(col["name"],) for col in info["columns"] if keep(col["name"])], "SHOW")
        parts = _split_name(where) if where else [run.schema]
        cat, sch = (parts[0].lower(), parts[1].lower()) if len(parts) == 2 else (run.catalog, parts[-1].lower())
        tables = self.tables(cat, sch)
        if what == "VIEWS":
            tables = [t for t in tables if t["table_type"] == "VIEW"]
            return Result([column_info("namespace", 0, "STRING"), column_info("viewName", 1, "STRING"),
                           column_info("isTemporary", 2, "BOOLEAN")],
                          [(sch, t["name"], False) for t in tables if keep(t["name"])], "SHOW")
        return Result([column_info("database", 0, "STRING"), column_info("tableName", 1, "STRING"),
                       column_info("isTemporary", 2, "BOOLEAN")],
                      [(sch, t["name"], False) for t in tables if keep(t["name"])], "SHOW")

    def _create_schema_stmt(self, run: _Run, e: exp.Create) -> Result:
        t = e.this
        parts = [p.name for p in t.parts] if isinstance(t, exp.Table) else [t.name]
        cat = parts[0].lower() if len(parts) == 2 else run.catalog
        comment = None
        for prop in (e.args.get("properties") or exp.Properties(expressions=[])).expressions:
            if isinstance(prop, exp.SchemaCommentProperty):
                comment = prop.this.name
        if self.catalog_exists(cat):
            self._authorize(run, "CREATE_SCHEMA", "CATALOG", cat)
        self.create_schema(cat, parts[-1], comment=comment, owner=run.user, if_not_exists=bool(e.args.get("exists")))
        return Result([], [], "CREATE")

    def _drop_schema_stmt(self, run: _Run, e: exp.Drop) -> Result:
        for t in e.args.get("tables") or [e.this]:
            parts = [p.name for p in t.parts]
            cat = parts[0].lower() if len(parts) == 2 else run.catalog
            if self.schema_exists(cat, parts[-1]):
                self._authorize(run, "MANAGE", "SCHEMA", f"{cat}.{parts[-1].lower()}")
            self.drop_schema(cat, parts[-1], cascade=bool(e.args.get("cascade")), if_exists=bool(e.args.get("exists")))
        return Result([], [], "DROP")

    # ------------------------------------------------------------------ the DuckDB path
    def _authorize(self, run: _Run, privilege: str, securable_type: str, full_name: str) -> None:
        fn = self.authorize
        if fn is None:
            return
        if not fn(run.principal, privilege, securable_type, full_name):
            raise E.insufficient_permissions(privilege, securable_type, full_name)

    def _duck(self, run: _Run, e: exp.Expression, row_limit) -> Result:
        kind = _kind(e)
        if kind is None:
            raise E.syntax_error(f"'{e.sql(dialect='databricks').split(None, 1)[0] if e.sql() else ''}'")
        rw = _Rewriter(self, run, e)
        sleep = rw.rewrite()
        targets, reads = _targets_and_reads(e)
        if self.authorize is not None:
            self._check_access(run, kind, e, targets, reads)
        if sleep:
            run.sleep(sleep)
        cur = run.cursor
        values = {alias: run.params[name][1] for name, alias in rw.pnames.items()}
        if kind == "INSERT" and e.args.get("overwrite"):
            target = _target_table(e)
            e.set("overwrite", False)
            sql = e.sql(dialect="duckdb")
            cur.execute("BEGIN TRANSACTION")
            try:
                cur.execute(f"DELETE FROM {target.sql(dialect='duckdb')}")
                n = cur.execute(sql, values or None).fetchall()[0][0]
                cur.execute("COMMIT")
            except BaseException:
                try:
                    cur.execute("ROLLBACK")
                except duckdb.Error:
                    pass
                raise
            self._touch(target)
            return _count_result("INSERT", ("num_affected_rows", "num_inserted_rows"), (n, n))
        if kind == "TRUNCATE":
            for t in e.expressions:
                cur.execute(f"DELETE FROM {t.sql(dialect='duckdb')}")
                self._touch(t)
            return Result([], [], "TRUNCATE")
        if kind == "ALTER":
            return self._alter(run, e)
        sql = e.sql(dialect="duckdb")
        if kind == "MERGE":
            sql += " RETURNING merge_action"
        rel = cur.execute(sql, values or None)
        if kind == "SELECT":
            run.plan = (sql, values, sleep, None)
            return self._fetch(rel, row_limit)
        if kind == "MERGE":
            acts = [a for (a,) in rel.fetchall()]
            up, de, ins = acts.count("UPDATE"), acts.count("DELETE"), acts.count("INSERT")
            self._touch(_target_table(e))
            return _count_result("MERGE", ("num_affected_rows", "num_updated_rows", "num_deleted_rows",
                                           "num_inserted_rows"), (len(acts), up, de, ins))
        n = rel.fetchall()[0][0] if rel.description and kind in ("INSERT", "UPDATE", "DELETE") else None
        if kind == "INSERT":
            self._touch(_target_table(e))
            return _count_result("INSERT", ("num_affected_rows", "num_inserted_rows"), (n, n))
        if kind in ("UPDATE", "DELETE"):
            self._touch(_target_table(e))
            return _count_result(kind, ("num_affected_rows",), (n,))
        if kind == "CREATE":
            self._created(run, e)
        elif kind == "DROP":
            for t in e.args.get("tables") or []:
                self._meta.pop(("table",) + _table_key(t), None)
        elif kind == "COMMENT":
            self._commented(e)
        return Result([], [], kind)

    def _fetch(self, rel, row_limit) -> Result:
        desc = rel.description or []
        cols = [column_info(d[0], i, duck_type_text(d[1])) for i, d in enumerate(desc)]
        if row_limit is not None:
            rows = rel.fetchmany(int(row_limit) + 1)
            truncated = len(rows) > row_limit
            rows = rows[:row_limit]
        else:
            rows, truncated = rel.fetchall(), False
        convs = [converter(d[1], lambda t: E.arithmetic_overflow("long", "add")) for d in desc]
        if any(convs):
            fns = [(i, f) for i, f in enumerate(convs) if f]
            out = []
            for r in rows:
                r = list(r)
                for i, f in fns:
                    r[i] = f(r[i])
                out.append(tuple(r))
            rows = out
        return Result(cols, rows, "SELECT", truncated)

    def _alter(self, run: _Run, e: exp.Alter) -> Result:
        target = e.this
        actions = e.args.get("actions") or []
        cur = run.cursor
        for a in actions:
            if isinstance(a, exp.ColumnDef):
                cur.execute(f"ALTER TABLE {target.sql(dialect='duckdb')} ADD COLUMN {a.sql(dialect='duckdb')}")
            elif isinstance(a, exp.Schema):
                for col in a.expressions:
                    cur.execute(f"ALTER TABLE {target.sql(dialect='duckdb')} ADD COLUMN {col.sql(dialect='duckdb')}")
            else:
                one = e.copy()
                one.set("actions", [a.copy()])
                cur.execute(one.sql(dialect="duckdb"))
        self._touch(target)
        return Result([], [], "ALTER")

    def _touch(self, t) -> None:
        key = ("table",) + _table_key(t)
        meta = self._meta.get(key)
        if meta is not None:
            meta["updated_at"] = self._now_ms()

    def _created(self, run: _Run, e: exp.Create) -> None:
        t = _target_table(e)
        if t is None:
            return
        comments, comment = {}, None
        schema = e.this if isinstance(e.this, exp.Schema) else None
        for col in (schema.expressions if schema else []):
            if isinstance(col, exp.ColumnDef):
                for c in col.args.get("constraints") or []:
                    if isinstance(c.kind, exp.CommentColumnConstraint):
                        comments[col.name] = c.kind.this.name
        for prop in (e.args.get("properties") or exp.Properties(expressions=[])).expressions:
            if isinstance(prop, exp.SchemaCommentProperty):
                comment = prop.this.name
        now = self._now_ms()
        with self._lock:
            self._meta[("table",) + _table_key(t)] = {"comment": comment, "owner": run.user, "created_at": now,
                                                      "updated_at": now, "column_comments": comments}
        if comments or comment:
            name = t.sql(dialect="duckdb")
            cur = run.cursor
            if comment:
                cur.execute(f"COMMENT ON TABLE {name} IS {_lit(comment)}")

    def _commented(self, e) -> None:
        t = e.this
        if isinstance(t, exp.Table):
            meta = self._meta.setdefault(("table",) + _table_key(t), {})
            meta["comment"] = e.expression.name if isinstance(e.expression, exp.Literal) else None

    def _check_access(self, run: _Run, kind: str, e, targets, reads) -> None:
        for t in reads:
            info = self.table(".".join(_dbx_parts(t)))
            if info is not None:
                self._authorize(run, "SELECT", "TABLE", info["full_name"])
        for t in targets:
            name = ".".join(_dbx_parts(t))
            if kind == "CREATE":
                c, s, _ = _dbx_parts(t)
                if self.table(name) is not None and e.args.get("replace"):
                    self._authorize(run, "MANAGE", "TABLE", name)
                self._authorize(run, "CREATE_TABLE", "SCHEMA", f"{c}.{s}")
            elif kind in ("DROP", "ALTER"):
                if self.table(name) is not None:
                    self._authorize(run, "MANAGE", "TABLE", name)
            elif self.table(name) is not None:
                self._authorize(run, "MODIFY", "TABLE", name)


class Session:
    """The engine seen by one caller (see :meth:`SqlEngine.session`)."""

    def __init__(self, engine: SqlEngine, principal, cancel_event):
        self.engine = engine
        self.principal = principal
        self.cancel_event = cancel_event

    def execute(self, statement, parameters=None, catalog=None, schema=None, **kw) -> Result:
        kw.setdefault("principal", self.principal)
        if self.cancel_event is not None:
            kw.setdefault("cancel_event", self.cancel_event)
        return self.engine.execute(statement, parameters, catalog, schema, **kw)

    def __getattr__(self, name):
        return getattr(self.engine, name)


# ====================================================================== parsing and rewriting

_DESCRIBE_CONTAINER = re.compile(r"DESC(?:RIBE)?\s+(CATALOG|SCHEMA|DATABASE)\s+(?:EXTENDED\s+)?([\w.`]+)\s*;?\s*",
                                 re.I)
_LEADING_COMMENTS = re.compile(r"^(?:\s+|--[^\n]*(?:\n|$)|/\*.*?\*/)*", re.S)


def _parse(statement: str) -> List[exp.Expression]:
    body = _LEADING_COMMENTS.sub("", statement)
    first = re.match(r"(\(|[A-Za-z_]+)", body)
    word = first.group(1).upper() if first else ""
    if word not in _STATEMENT_WORDS:
        m = re.match(r"(\S+)", body)
        raise E.syntax_error(f"'{m.group(1)[:40]}'" if m else "end of input")
    m = _DESCRIBE_CONTAINER.fullmatch(body)
    if m:
        return [exp.Command(this="DESCRIBE", expression=exp.Literal.string(f"{m.group(1)} {m.group(2)}"))]
    try:
        exprs = sqlglot.parse(statement, read="databricks")
    except RecursionError:
        raise SqlError("STATEMENT_TOO_COMPLEX", "The statement is nested too deeply.", "54001") from None
    except TokenError:
        raise E.syntax_error("end of input") from None
    except ParseError as err:
        info = err.errors[0] if err.errors else {}
        near = (info.get("highlight") or "").strip()
        if not near or near.upper() == "SENTINEL":
            raise E.syntax_error("end of input") from None
        desc = info.get("description") or ""
        m = re.search(r"number of provided arguments \((\d+)\) is (?:greater|less) than the (?:maximum|minimum)"
                      r" number of supported arguments \((\d+)\)", desc)
        if m:
            fn = re.search(r"(\w+)\s*\([^()]*$", info.get("start_context") or "")
            raise SqlError("WRONG_NUM_ARGS.WITHOUT_SUGGESTION", f"The `{fn.group(1).lower() if fn else 'function'}` "
                           f"requires {m.group(2)} parameters but the actual number is {m.group(1)}.", "42605") from None
        if "Required keyword" in desc or "Expected table name" in desc or "Expecting )" in desc:
            rest = (info.get("end_context") or "").strip()
            if not rest:
                raise E.syntax_error("end of input") from None
        raise E.syntax_error(f"'{near}'") from None
    exprs = [x for x in exprs if x is not None]
    if not exprs:
        raise E.syntax_error("end of input")
    for x in exprs:
        if not isinstance(x, (exp.Query, exp.DDL, exp.DML, exp.Command, exp.Create, exp.Drop, exp.Use, exp.Describe, exp.Set,
                              exp.Grant, exp.Revoke, exp.Merge, exp.TruncateTable, exp.Alter, exp.Comment,
                              exp.Values)) and type(x).__name__ not in _NO_OP_NODES:
            raise E.syntax_error(f"'{x.sql(dialect='databricks').split(None, 1)[0]}'")
    return exprs


def _kind(e) -> Optional[str]:
    if isinstance(e, (exp.Query, exp.Values)):
        return "SELECT"
    for cls, name in ((exp.Insert, "INSERT"), (exp.Update, "UPDATE"), (exp.Delete, "DELETE"),
                      (exp.Merge, "MERGE"), (exp.Create, "CREATE"), (exp.Drop, "DROP"),
                      (exp.TruncateTable, "TRUNCATE"), (exp.Alter, "ALTER"), (exp.Comment, "COMMENT")):
        if isinstance(e, cls):
            return name
    return None


def _qi(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _lit(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def _ident(text: str) -> str:
    text = text.strip()
    return text[1:-1].replace("``", "`") if text.startswith("`") else text


def _split_name(name: str) -> List[str]:
    parts = re.findall(r"`((?:[^`]|``)*)`|([^.`]+)", str(name))
    return [a.replace("``", "`") if a else b.strip() for a, b in parts]


def _duck_type(type_text: str) -> Optional[str]:
    try:
        dt = exp.DataType.build(str(type_text), dialect="databricks")
    except Exception:  # noqa: BLE001 - sqlglot raises several kinds
        return None
    if dt.this == exp.DataType.Type.USERDEFINED:
        return None
    return dt.sql(dialect="duckdb")


def _dbx_type_text(type_text: str) -> str:
    try:
        return exp.DataType.build(str(type_text), dialect="databricks").sql(dialect="databricks")
    except Exception:  # noqa: BLE001
        return str(type_text).upper()


def _table_key(t) -> Tuple[str, str, str]:
    c, s, n = _dbx_parts(t)
    return c, s, n


def _dbx_parts(t) -> Tuple[str, str, str]:
    """(catalog, schema, table) of a qualified sqlglot Table whose catalog is a DuckDB name."""
    return dbx_catalog(t.catalog.lower()), t.db.lower(), t.name.lower()


def _target_table(e) -> Optional[exp.Table]:
    t = e.this
    if isinstance(t, exp.Schema):
        t = t.this
    return t if isinstance(t, exp.Table) else None


def _targets_and_reads(e) -> Tuple[list, list]:
    targets = []
    if isinstance(e, (exp.Insert, exp.Update, exp.Delete, exp.Merge, exp.Create, exp.Alter)):
        t = _target_table(e)
        if t is not None:
            targets.append(t)
    elif isinstance(e, exp.Drop):
        targets.extend(x for x in (e.args.get("tables") or []) if isinstance(x, exp.Table))
    elif isinstance(e, exp.TruncateTable):
        targets.extend(x for x in e.expressions if isinstance(x, exp.Table))
    ids = {id(t) for t in targets}
    ctes = {c.alias_or_name.lower() for c in e.find_all(exp.CTE)}
    reads = [t for t in e.find_all(exp.Table) if id(t) not in ids and isinstance(t.this, exp.Identifier)
             and t.name.lower() not in ctes and t.catalog]
    return targets, reads


def _used_params(e) -> set:
    return {p.name for p in e.find_all(exp.Placeholder)} | {p.this for p in e.find_all(exp.Parameter)
                                                             if isinstance(p.this, str)}


def _names_lookup(exprs) -> Callable[[str], Optional[str]]:
    """Map a DuckDB table name in an error message back to the name as the user wrote it."""
    written: Dict[str, str] = {}
    for e in exprs:
        for t in e.find_all(exp.Table):
            orig = t.meta.get("written")
            if orig:
                written.setdefault(t.name.lower(), orig)
                written.setdefault(".".join(p.name.lower() for p in t.parts), orig)

    def look(duck_name: str) -> Optional[str]:
        key = duck_name.strip('"').lower()
        if key in written:
            return written[key]
        last = _split_name(key.replace('"', "`"))[-1] if key else key
        return written.get(last)
    return look


_SPARK_BINARY = (exp.Binary,)


def _spark_name(e: exp.Expression, run: _Run) -> Optional[str]:
    """The column name Spark gives an unaliased projection (approximately: ``upper(ab)``, ``(1 + 2)``,
    ``count(1)``, ``CAST(1 AS STRING)``)."""
    if isinstance(e, (exp.Column, exp.Star, exp.Alias)) or type(e).__name__ in ("Posexplode", "PosexplodeOuter",
                                                                               "Inline", "ExplodeOuter"):
        return None
    if isinstance(e, exp.Explode):
        return "col"
    if isinstance(e, exp.Literal):
        return str(e.this)
    if isinstance(e, exp.Boolean):
        return "true" if e.this else "false"
    if isinstance(e, exp.Null):
        return "NULL"
    if isinstance(e, exp.Placeholder):
        v = run.params.get(e.name)
        return v[1] if v and v[1] is not None else "NULL"
    c = e.copy()
    for lit in list(c.find_all(exp.Literal)):
        if lit.is_string:
            lit.replace(exp.Var(this=lit.this))
    for cnt in list(c.find_all(exp.Count)):
        if isinstance(cnt.this, exp.Star):
            cnt.set("this", exp.Literal.number(1))
    text = c.sql(dialect="databricks", normalize_functions="lower")
    text = re.sub(r"\b(?!CAST\(|TRY_CAST\()([A-Z][A-Z_]*)\(", lambda m: m.group(1).lower() + "(", text)
    if isinstance(e, _SPARK_BINARY) and not isinstance(e, (exp.Dot,)):
        text = f"({text})"
    return text


_INT_FUNCS = tuple(getattr(exp, n) for n in (
    "Length", "Year", "Month", "Day", "Hour", "Minute", "Second", "Quarter", "DayOfWeek", "DayOfMonth",
    "DayOfYear", "WeekOfYear", "ArraySize", "DateDiff", "StrPosition", "Ascii", "BitLength", "ByteLength",
    "Levenshtein") if hasattr(exp, n))


class _Rewriter:
    """Rewrites one parsed statement in place so DuckDB runs it with Databricks' semantics."""

    def __init__(self, engine: SqlEngine, run: _Run, e: exp.Expression):
        self.engine = engine
        self.run = run
        self.e = e
        self.pnames: Dict[str, str] = {}          # parameter name -> DuckDB parameter name

    def rewrite(self) -> float:
        e, run = self.e, self.run
        sleep = 0.0
        for t in e.find_all(exp.Table):
            if isinstance(t.this, exp.Identifier):
                t.meta["written"] = q(*[p.name for p in t.parts])
        temp_target = None
        if isinstance(e, exp.Create) and e.args.get("temporary") or (
                isinstance(e, exp.Create) and any(isinstance(p, exp.TemporaryProperty) for p in
                                                  (e.args.get("properties") or exp.Properties(expressions=[])).expressions)):
            temp_target = _target_table(e)
            if temp_target is not None:
                run.temp_views.add(temp_target.name.lower())
        if not isinstance(e, exp.Drop) or (e.args.get("kind") or "").upper() in ("TABLE", "VIEW"):
            qualify_tables(e, catalog=run.catalog, db=run.schema)
        for t in list(e.find_all(exp.Table)):
            if t is temp_target or (isinstance(t.this, exp.Identifier) and t.name.lower() in run.temp_views
                                    and len((t.meta.get("written") or "").split("`.`")) == 1):
                t.set("catalog", None)
                t.set("db", None)
        for t in list(e.find_all(exp.Table)):
            if isinstance(t.this, exp.Identifier) and t.catalog and t.db:
                written = t.meta.get("written")
                t.set("catalog", exp.to_identifier(duck_db(t.catalog), quoted=True))
                t.set("db", exp.to_identifier(t.db.lower(), quoted=True))
                t.set("this", exp.to_identifier(t.name, quoted=True))
                if written:
                    t.meta["written"] = written
            elif isinstance(t.this, exp.Anonymous) and t.this.name.lower() == "range":
                self._range(t)
        for node in list(e.find_all(exp.Placeholder)):
            name = node.name
            if not name or name == "?":
                raise SqlError("UNSUPPORTED_FEATURE", "Positional parameters (`?`) are not supported: use named "
                               "parameter markers (`:name`).", "0A000")
            if name not in run.params:
                raise SqlError("UNBOUND_SQL_PARAMETER", f"Found the unbound parameter: {name}. Please, fix `args` "
                               "and provide a mapping of the parameter to either a SQL literal or collection "
                               "constructor functions such as `map()`, `array()`, `struct()`.", "42P02")
        pnames = self.pnames = {k: f"p{i}" for i, k in enumerate(sorted(_used_params(e) & set(run.params)))}
        self._alias_projections()
        for node in list(e.find_all(exp.Placeholder)):
            duck, _ = run.params[node.name]
            node.replace(exp.Cast(this=exp.Parameter(this=exp.var(pnames[node.name])),
                                  to=exp.DataType.build(duck, dialect="duckdb")))
        for node in list(e.walk()):
            if isinstance(node, (exp.CurrentUser, exp.SessionUser)) or (
                    isinstance(node, exp.Anonymous) and node.name.lower() in ("user", "session_user")):
                node.replace(exp.Literal.string(run.user))
            elif isinstance(node, exp.CurrentCatalog):
                node.replace(exp.Literal.string(run.catalog))
            elif isinstance(node, (exp.CurrentSchema, exp.CurrentDatabase)):
                node.replace(exp.Literal.string(run.schema))
            elif isinstance(node, exp.Anonymous) and node.name.lower() == "sleep":
                sleep += self._sleep(node, pnames)
        for node in list(e.find_all(*_INT_FUNCS)):                   # Databricks answers INT, DuckDB BIGINT
            if not isinstance(node.parent, exp.Cast):
                node.replace(exp.Cast(this=node.copy(), to=exp.DataType.build("INT")))
        for node in list(e.find_all(exp.TsOrDsAdd, exp.AddMonths)):  # date_add/date_sub/add_months: DATE
            if not isinstance(node.parent, exp.Cast):
                node.replace(exp.Cast(this=node.copy(), to=exp.DataType.build("DATE")))
        for node in reversed(list(e.find_all(exp.Div, bfs=False))):    # innermost first
            self._div(node)
        return min(sleep, _MAX_SLEEP)

    def _alias_projections(self) -> None:
        e = self.e
        top = e
        while isinstance(top, exp.SetOperation):
            top = top.this
        if isinstance(e, (exp.Insert, exp.Create)):
            return
        if isinstance(top, exp.Subquery):
            top = top.unnest()
        if not isinstance(top, exp.Select):
            return
        for i, p in enumerate(list(top.expressions)):
            name = _spark_name(p, self.run)
            if name is not None:
                p.replace(exp.alias_(p.copy(), exp.to_identifier(name, quoted=True)))

    def _range(self, t: exp.Table) -> None:
        args = t.this.expressions
        alias = t.args.get("alias")
        inner = exp.select(exp.alias_(exp.column("range"), "id")).from_(
            exp.Table(this=exp.Anonymous(this="range", expressions=[a.copy() for a in args])))
        sub = exp.Subquery(this=inner, alias=alias.copy() if alias else exp.TableAlias(
            this=exp.to_identifier("range")))
        t.replace(sub)

    def _div(self, node: exp.Div) -> None:
        b = node.expression
        err = exp.Anonymous(this="error", expressions=[exp.Literal.string(E.divide_by_zero().message)])
        plain = exp.Div(this=node.this.copy(), expression=b.copy())
        node.replace(exp.Paren(this=exp.Case(ifs=[exp.If(this=exp.EQ(this=b.copy(), expression=exp.Literal.number(0)),
                                                         true=err)], default=plain)))

    def _sleep(self, node: exp.Anonymous, pnames) -> float:
        args = node.expressions
        value = None
        if len(args) == 1:
            a = args[0]
            if isinstance(a, exp.Literal) and not a.is_string:
                value = float(a.this)
            elif isinstance(a, exp.Neg) and isinstance(a.this, exp.Literal):
                value = -1.0
            elif isinstance(a, exp.Cast) and isinstance(a.this, exp.Parameter):
                name = next((k for k, v in pnames.items() if v == a.this.name), None)
                raw = self.run.params.get(name, (None, None))[1] if name else None
                try:
                    value = float(raw)
                except (TypeError, ValueError):
                    value = None
        if value is None or value < 0 or value != value:
            raise SqlError("INVALID_PARAMETER_VALUE", "sleep(seconds) takes one constant, non-negative number of "
                           "seconds.", "22023")
        node.replace(exp.Literal.number(repr(value) if not value.is_integer() else int(value)))
        return value
