"""Embedded SQL engine for the workspace emulator: sqlite3 underneath, enough Databricks SQL on top.

    eng = SqlEngine()
    res = eng.execute("SELECT :x AS v, CAST('2024-01-02' AS DATE) AS d",
                      parameters=[{"name": "x", "value": "42", "type": "INT"}])
    res.columns  # [{"name": "v", "position": 0, "type_name": "INT", "type_text": "INT"}, ...]
    res.rows     # [(42, datetime.date(2024, 1, 2))]

How it works: the statement is tokenized (Spark literal/identifier rules), rewritten into sqlite SQL
(three-part names -> one table name, CAST -> a typed Python function, ``range()`` -> a recursive CTE,
``/`` -> an ANSI divide that raises DIVIDE_BY_ZERO, ...), run on a private sqlite database file, and
the output columns are typed by a small static type inferencer over the *original* statement
(see ``_Typer``), falling back to the Python type of the values. Values are converted to the
inferred Databricks type (bool, date, datetime, Decimal, ...).

Storage representation inside sqlite: BOOLEAN = 0/1, DATE = 'YYYY-MM-DD', TIMESTAMP =
'YYYY-MM-DD HH:MM:SS[.ffffff]' (UTC, naive), DECIMAL = REAL/INTEGER (NUMERIC affinity), BINARY = BLOB.
Table columns keep their Databricks type in the sqlite declared type (``DBX_DECIMAL_10_2 NUMERIC``).
Only the standard library is used.
"""
from __future__ import annotations

import datetime as _dt
import decimal
import math
import os
import queue
import random
import re
import shutil
import sqlite3
import tempfile
import threading
import time
import uuid
import weakref
from decimal import Decimal

__all__ = ["SqlError", "SqlEngine", "Result", "parse_type", "hive_type", "format_value",
           "json_value"]


# --------------------------------------------------------------------------- errors


class SqlError(Exception):
    """A Databricks-style SQL error: ``message`` starts with ``[ERROR_CLASS]``."""

    def __init__(self, error_class: str, message: str, sql_state: str = "42000",
                 error_code: str = "BAD_REQUEST"):
        self.error_class = error_class
        self.sql_state = sql_state
        self.error_code = error_code
        self.message = f"[{error_class}] {message}"
        if sql_state and "SQLSTATE" not in message:
            self.message += f" SQLSTATE: {sql_state}"
        super().__init__(self.message)


def _syntax_error(near: str) -> SqlError:
    return SqlError("PARSE_SYNTAX_ERROR", f"Syntax error at or near {near}.", "42601")


def _divide_by_zero() -> SqlError:
    return SqlError("DIVIDE_BY_ZERO", "Division by zero. Use `try_divide` to tolerate divisor being 0 "
                    "and return NULL instead. If necessary set \"spark.sql.ansi.enabled\" to \"false\" "
                    "to bypass this error.", "22012")


def _cast_invalid(value, type_text: str) -> SqlError:
    return SqlError("CAST_INVALID_INPUT", f"The value '{value}' of the type \"STRING\" cannot be cast to "
                    f"\"{type_text}\" because it is malformed. Correct the value as per the syntax, or "
                    "change its target type. Use `try_cast` to tolerate malformed input and return NULL "
                    "instead.", "22018")


# --------------------------------------------------------------------------- types

_TYPE_ALIASES = {
    "INT": "INT", "INTEGER": "INT", "BIGINT": "BIGINT", "LONG": "BIGINT", "SMALLINT": "SMALLINT",
    "SHORT": "SMALLINT", "TINYINT": "TINYINT", "BYTE": "TINYINT", "DOUBLE": "DOUBLE",
    "FLOAT": "FLOAT", "REAL": "FLOAT", "STRING": "STRING", "VARCHAR": "STRING", "CHAR": "STRING",
    "TEXT": "STRING", "BOOLEAN": "BOOLEAN", "BOOL": "BOOLEAN", "DATE": "DATE",
    "TIMESTAMP": "TIMESTAMP", "TIMESTAMP_NTZ": "TIMESTAMP", "TIMESTAMP_LTZ": "TIMESTAMP",
    "BINARY": "BINARY", "VOID": "VOID", "NULL": "VOID", "DECIMAL": "DECIMAL", "DEC": "DECIMAL",
    "NUMERIC": "DECIMAL",
}
_TYPE_NAME = {"INT": "INT", "BIGINT": "LONG", "SMALLINT": "SHORT", "TINYINT": "BYTE",
              "DOUBLE": "DOUBLE", "FLOAT": "FLOAT", "STRING": "STRING", "BOOLEAN": "BOOLEAN",
              "DATE": "DATE", "TIMESTAMP": "TIMESTAMP", "BINARY": "BINARY", "VOID": "NULL",
              "DECIMAL": "DECIMAL"}
_INTEGRAL = {"TINYINT": 3, "SMALLINT": 5, "INT": 10, "BIGINT": 20}
_INT_RANK = ["TINYINT", "SMALLINT", "INT", "BIGINT"]


def parse_type(text: str) -> str | None:
    """Normalise a Databricks type spelling to its canonical type text (``DECIMAL(10,2)``,
    ``BIGINT``, ...). Complex types (ARRAY/MAP/STRUCT) map to STRING. None when unknown."""
    t = re.sub(r"\s+", "", str(text or "")).upper()
    if not t:
        return None
    if re.match(r"^(ARRAY|MAP|STRUCT)[<(]", t):
        return "STRING"
    m = re.match(r"^([A-Z_]+)(?:\((\d+)(?:,(\d+))?\))?$", t)
    if not m or m.group(1) not in _TYPE_ALIASES:
        return None
    base = _TYPE_ALIASES[m.group(1)]
    if base == "DECIMAL":
        p = int(m.group(2)) if m.group(2) else 10
        s = int(m.group(3)) if m.group(3) else 0
        if not (1 <= p <= 38) or s > p:
            return None
        return f"DECIMAL({p},{s})"
    return base


def _base(type_text: str) -> str:
    return type_text.split("(", 1)[0]


def _dec_ps(type_text: str) -> tuple[int, int]:
    m = re.match(r"DECIMAL\((\d+),(\d+)\)", type_text)
    if m:
        return int(m.group(1)), int(m.group(2))
    return _INTEGRAL.get(type_text, 38), 0


def column_info(name: str, position: int, type_text: str) -> dict:
    col = {"name": name, "position": position, "type_name": _TYPE_NAME.get(_base(type_text), "STRING"),
           "type_text": type_text}
    if col["type_name"] == "DECIMAL":
        col["type_precision"], col["type_scale"] = _dec_ps(type_text)
    return col


def hive_type(type_text: str) -> str:
    """Type string as used in the Command Execution 1.2 table schema (``int``, ``decimal(10,2)``)."""
    return type_text.lower()


def _sqlite_decl(type_text: str) -> str:
    base = _base(type_text)
    aff = {"INT": "INTEGER", "BIGINT": "INTEGER", "SMALLINT": "INTEGER", "TINYINT": "INTEGER",
           "BOOLEAN": "INTEGER", "DOUBLE": "REAL", "FLOAT": "REAL", "DECIMAL": "NUMERIC",
           "BINARY": "BLOB"}.get(base, "TEXT")
    tag = type_text.replace("(", "_").replace(",", "_").replace(")", "")
    return f"DBX_{tag} {aff}"


def _decode_decl(decl: str | None) -> str | None:
    if not decl:
        return None
    m = re.match(r"^DBX_([A-Z_]+?)(?:_(\d+)_(\d+))?(?:\s|$)", decl.upper())
    if m:
        if m.group(1) == "DECIMAL":
            return f"DECIMAL({m.group(2) or 10},{m.group(3) or 0})"
        return parse_type(m.group(1))
    t = parse_type(decl)
    if t:
        return t
    d = decl.upper()
    if "INT" in d:
        return "BIGINT"
    if any(x in d for x in ("CHAR", "CLOB", "TEXT")):
        return "STRING"
    if any(x in d for x in ("REAL", "FLOA", "DOUB")):
        return "DOUBLE"
    return None


# --------------------------------------------------------------------------- value conversion

_TS_RE = re.compile(r"^\s*(\d{4})-(\d{1,2})-(\d{1,2})(?:[T ](\d{1,2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?"
                    r"\s*(Z|[+-]\d{2}:?\d{2})?)?\s*$")


def _parse_ts(s: str) -> _dt.datetime:
    m = _TS_RE.match(s)
    if not m:
        raise ValueError(s)
    y, mo, d, h, mi, se, frac, tz = m.groups()
    us = int((frac or "0")[:6].ljust(6, "0"))
    v = _dt.datetime(int(y), int(mo), int(d), int(h or 0), int(mi or 0), int(se or 0), us)
    if tz and tz != "Z":
        sign = 1 if tz[0] == "+" else -1
        tzd = tz[1:].replace(":", "")
        v -= sign * _dt.timedelta(hours=int(tzd[:2]), minutes=int(tzd[2:]))
    return v


def _parse_date(s: str) -> _dt.date:
    s = s.strip()
    m = re.match(r"^(\d{4})-(\d{1,2})-(\d{1,2})", s)
    if not m:
        raise ValueError(s)
    if len(s) > m.end():
        _parse_ts(s)  # validate the rest
    return _dt.date(int(m.group(1)), int(m.group(2)), int(m.group(3)))


_INT_BOUNDS = {"TINYINT": 2 ** 7, "SMALLINT": 2 ** 15, "INT": 2 ** 31, "BIGINT": 2 ** 63}
_TRUE = {"true", "t", "yes", "y", "1"}
_FALSE = {"false", "f", "no", "n", "0"}


def _coerce(v, type_text: str, strict: bool = True):
    """Convert a sqlite/JSON-ish value (int, float, str, bytes) to the Python value of a type.
    Raises ValueError when it cannot be converted."""
    if v is None:
        return None
    base = _base(type_text)
    if base in _INTEGRAL:
        if isinstance(v, bool):
            r = int(v)
        elif isinstance(v, int):
            r = v
        elif isinstance(v, (float, Decimal)):
            if isinstance(v, float) and not math.isfinite(v):
                raise ValueError(v)
            r = int(v)
        elif isinstance(v, str):
            s = v.strip()
            if re.fullmatch(r"[+-]?\d+", s):
                r = int(s)
            elif re.fullmatch(r"[+-]?(\d+\.\d*|\.\d+)", s):
                r = int(Decimal(s))
            else:
                raise ValueError(v)
        else:
            raise ValueError(v)
        b = _INT_BOUNDS[base]
        if strict and not -b <= r < b:
            raise ValueError(v)
        return r
    if base in ("DOUBLE", "FLOAT"):
        if isinstance(v, str):
            s = v.strip().lower()
            s = {"nan": "nan", "infinity": "inf", "-infinity": "-inf", "+infinity": "inf"}.get(s, s)
            if not re.fullmatch(r"[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?[df]?|[+-]?inf|nan", s):
                raise ValueError(v)
            return float(s.rstrip("df"))
        if isinstance(v, bytes):
            raise ValueError(v)
        return float(v)
    if base == "DECIMAL":
        p, s = _dec_ps(type_text)
        try:
            d = Decimal(repr(v)) if isinstance(v, float) else Decimal(str(v).strip())
        except decimal.InvalidOperation:
            raise ValueError(v) from None
        if not d.is_finite():
            raise ValueError(v)
        d = d.quantize(Decimal(1).scaleb(-s), rounding=decimal.ROUND_HALF_UP)
        if strict and len(d.as_tuple().digits) - max(0, -d.as_tuple().exponent) > p - s and d != 0:
            raise ValueError(v)
        return d
    if base == "BOOLEAN":
        if isinstance(v, (int, float)):
            return bool(v)
        s = str(v).strip().lower()
        if s in _TRUE:
            return True
        if s in _FALSE:
            return False
        raise ValueError(v)
    if base == "DATE":
        if isinstance(v, (int, float)):
            return _dt.datetime.fromtimestamp(v, _dt.timezone.utc).date()
        return _parse_date(v.decode() if isinstance(v, bytes) else str(v))
    if base == "TIMESTAMP":
        if isinstance(v, (int, float)):
            return _dt.datetime.fromtimestamp(v, _dt.timezone.utc).replace(tzinfo=None)
        return _parse_ts(v.decode() if isinstance(v, bytes) else str(v))
    if base == "BINARY":
        return v if isinstance(v, bytes) else str(v).encode()
    if base == "VOID":
        return None
    # STRING
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    if isinstance(v, float):
        return _fmt_double(v)
    return str(v)


def _fmt_double(v: float) -> str:
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "Infinity" if v > 0 else "-Infinity"
    r = repr(v)
    if "e" in r:
        mant, exp = r.split("e")
        if "." not in mant:
            mant += ".0"
        return f"{mant}E{int(exp)}"
    return r


def _to_sqlite(v):
    """Python value -> sqlite storage value."""
    if v is None or isinstance(v, (int, float, bytes, str)):
        return int(v) if isinstance(v, bool) else v
    if isinstance(v, Decimal):
        f = float(v)
        if Decimal(repr(f)) == v:
            return int(v) if v == v.to_integral_value() and abs(v) < 2 ** 63 else f
        return str(v)
    if isinstance(v, _dt.datetime):
        return v.isoformat(sep=" ", timespec="microseconds" if v.microsecond else "seconds")
    if isinstance(v, _dt.date):
        return v.isoformat()
    return str(v)


def _from_sqlite(v, type_text: str):
    if v is None:
        return None
    try:
        return _coerce(v, type_text, strict=False)
    except (ValueError, TypeError, OverflowError, decimal.InvalidOperation):
        return v


def format_value(v) -> str | None:
    """Statement Execution JSON_ARRAY string of a Python value (None stays None)."""
    if v is None:
        return None
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return _fmt_double(v)
    if isinstance(v, _dt.datetime):
        return v.isoformat(timespec="milliseconds") + "Z"
    if isinstance(v, _dt.date):
        return v.isoformat()
    if isinstance(v, bytes):
        import base64
        return base64.b64encode(v).decode()
    return str(v)


def json_value(v):
    """Typed JSON value for the Command Execution 1.2 table shape: numbers/bools stay native,
    decimals/dates/timestamps/binary become strings."""
    if v is None or isinstance(v, (bool, int, str)):
        return v
    if isinstance(v, float):
        return v if math.isfinite(v) else _fmt_double(v)
    if isinstance(v, _dt.datetime):
        return v.isoformat(sep=" ", timespec="microseconds" if v.microsecond else "seconds")
    return format_value(v)


# --------------------------------------------------------------------------- result


class Result:
    """Columns: ``[{"name", "position", "type_name", "type_text"(, "type_precision", "type_scale")}]``;
    rows: list of tuples of Python values. ``truncated`` is True when ``row_limit`` cut rows off;
    ``statement_type`` is the leading keyword (SELECT, INSERT, CREATE, ...)."""

    def __init__(self, columns: list[dict], rows: list[tuple], statement_type: str = "SELECT",
                 truncated: bool = False):
        self.columns = columns
        self.rows = rows
        self.statement_type = statement_type
        self.truncated = truncated

    def iter_rows(self):
        yield from self.rows

    @property
    def column_names(self) -> list[str]:
        return [c["name"] for c in self.columns]

    def data_array(self) -> list[list]:
        """Rows as the Statement Execution INLINE/JSON_ARRAY ``data_array`` (strings or null)."""
        return [[format_value(v) for v in row] for row in self.rows]

    def __repr__(self):
        return f"Result(columns={self.column_names}, rows={len(self.rows)})"


# --------------------------------------------------------------------------- tokenizer

_TOKEN_RE = re.compile(r"""
 (?P<ws>\s+)
|(?P<comment>--[^\n]*|/\*.*?\*/)
|(?P<str>'(?:[^'\\]|\\.|'')*'|"(?:[^"\\]|\\.|"")*")
|(?P<qident>`(?:[^`]|``)*`)
|(?P<num>(?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d+)?(?:BD|bd|[LlSsYyDdFf])?(?![A-Za-z_0-9]))
|(?P<param>:[A-Za-z_][A-Za-z0-9_]*)
|(?P<ident>[A-Za-z_][A-Za-z0-9_]*)
|(?P<op><=>|::|\|\||<=|>=|<>|!=|==|[-+*/%(),.;=<>!&|^~\[\]{}?])
|(?P<bad>.)
""", re.S | re.X)

_ESC = {"n": "\n", "t": "\t", "r": "\r", "0": "\0", "b": "\b", "\\": "\\", "'": "'", '"': '"'}


class Tok:
    __slots__ = ("kind", "text", "pre", "val", "up")

    def __init__(self, kind, text, pre, val=None):
        self.kind, self.text, self.pre, self.val = kind, text, pre, val
        self.up = text.upper() if kind == "ident" else None

    def is_kw(self, *words):
        return self.kind == "ident" and self.up in words

    def is_op(self, *ops):
        return self.kind == "op" and self.text in ops

    def __repr__(self):
        return f"Tok({self.kind},{self.text!r})"


def _unescape(body: str, q: str) -> str:
    out, i = [], 0
    while i < len(body):
        c = body[i]
        if c == "\\" and i + 1 < len(body):
            n = body[i + 1]
            out.append(_ESC.get(n, "\\" + n))
            i += 2
        elif c == q and i + 1 < len(body) and body[i + 1] == q:
            out.append(q)
            i += 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


def tokenize(sql: str) -> list[Tok]:
    toks: list[Tok] = []
    pre = ""
    for m in _TOKEN_RE.finditer(sql):
        kind, text = m.lastgroup, m.group()
        if kind in ("ws", "comment"):
            pre += text if kind == "ws" else " "
            continue
        if kind == "bad":
            if text in "'\"`":
                raise _syntax_error(f"'{sql[m.start():m.start() + 20]}'")
            raise _syntax_error(f"'{text}'")
        val = None
        if kind == "str":
            val = _unescape(text[1:-1], text[0])
        elif kind == "qident":
            val = text[1:-1].replace("``", "`")
        elif kind == "ident":
            val = text
        toks.append(Tok(kind, text, pre, val))
        pre = ""
    return toks


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _lit(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def _match(toks, i, end=None):
    """Index of the token closing the bracket at toks[i] ('(' or CASE)."""
    end = len(toks) if end is None else end
    if toks[i].is_kw("CASE"):
        opens, closes = (lambda t: t.is_kw("CASE")), (lambda t: t.is_kw("END"))
    else:
        opens = lambda t: t.kind == "op" and t.text == "("  # noqa: E731
        closes = lambda t: t.kind == "op" and t.text == ")"  # noqa: E731
    depth = 0
    for j in range(i, end):
        t = toks[j]
        if opens(t):
            depth += 1
        elif closes(t):
            depth -= 1
            if depth == 0:
                return j
    raise _syntax_error("end of input")


def _split_top(toks, start, end, sep=","):
    """Split toks[start:end] at top-level separators; returns list of (s, e) spans."""
    spans, depth, s = [], 0, start
    for j in range(start, end):
        t = toks[j]
        if t.kind == "op":
            if t.text == "(":
                depth += 1
            elif t.text == ")":
                depth -= 1
            elif t.text == sep and depth == 0:
                spans.append((s, j))
                s = j + 1
    spans.append((s, end))
    return spans


def _source(toks, s, e) -> str:
    return "".join((t.pre if j > s else "") + t.text for j, t in enumerate(toks[s:e], s)).strip()


_CLAUSE_KW = {"WHERE", "GROUP", "HAVING", "ORDER", "LIMIT", "UNION", "EXCEPT", "INTERSECT", "WINDOW",
              "QUALIFY", "SET", "VALUES", "SELECT", "OFFSET", "FETCH", "SORT", "CLUSTER", "DISTRIBUTE",
              "RETURNING", "ON", "USING", "PIVOT", "UNPIVOT", "LATERAL"}
_JOIN_KW = {"JOIN", "INNER", "LEFT", "RIGHT", "FULL", "OUTER", "CROSS", "NATURAL", "SEMI", "ANTI"}
_NOT_ALIAS = _CLAUSE_KW | _JOIN_KW | {"AS"}
_FUNC_RENAME = {"current_date": "__dbx_current_date", "current_timestamp": "__dbx_now",
                "now": "__dbx_now", "if": "iif", "nvl": "ifnull", "substring": "substr",
                "random": "rand", "char_length": "length", "character_length": "length",
                "ucase": "upper", "lcase": "lower", "mean": "avg", "try_divide": "__dbx_try_divide",
                "any_value": "__dbx_first", "first": "__dbx_first", "getdate": "__dbx_now",
                "current_catalog": "__dbx_current_catalog", "current_schema": "__dbx_current_schema",
                "current_database": "__dbx_current_schema", "current_user": "__dbx_current_user",
                "bool_and": "__dbx_bool_and", "bool_or": "__dbx_bool_or", "every": "__dbx_bool_and",
                "some": "__dbx_bool_or", "any": "__dbx_bool_or", "std": "stddev"}


# --------------------------------------------------------------------------- statement context


class _Ctx:
    def __init__(self, engine: "SqlEngine", conn, catalog, schema, params):
        self.engine = engine
        self.conn = conn
        self.catalog = (catalog or "main").lower()
        self.schema = (schema or "default").lower()
        self.params = params  # name -> (type_text, sqlite value)
        self.ctes: set[str] = set()
        self.display: dict[str, str] = {}

    def table_name(self, parts: list[str]) -> str:
        parts = [p.lower() for p in parts]
        if len(parts) == 1:
            parts = [self.catalog, self.schema] + parts
        elif len(parts) == 2:
            parts = [self.catalog] + parts
        name = "__".join(parts[-3:])
        return name

    def remember(self, sqlite_name, parts):
        self.display[sqlite_name.lower()] = ".".join(f"`{p}`" for p in parts)

    def table_columns(self, sqlite_name: str) -> list[tuple[str, str | None]] | None:
        rows = self.conn.execute(f"PRAGMA table_info({_q(sqlite_name)})").fetchall()
        if not rows:
            return None
        return [(r[1], _decode_decl(r[2])) for r in rows]


def _read_name(toks, i, end=None):
    """Dotted identifier starting at i -> (parts, next index) or (None, i)."""
    end = len(toks) if end is None else end
    if i >= end or toks[i].kind not in ("ident", "qident"):
        return None, i
    parts = [toks[i].val]
    j = i + 1
    while j + 1 < end and toks[j].is_op(".") and toks[j + 1].kind in ("ident", "qident"):
        parts.append(toks[j + 1].val)
        j += 2
    return parts, j


def _collect_ctes(toks, ctx: _Ctx):
    for i, t in enumerate(toks):
        if not t.is_kw("WITH"):
            continue
        j = i + 1
        if j < len(toks) and toks[j].is_kw("RECURSIVE"):
            j += 1
        while j < len(toks) and toks[j].kind in ("ident", "qident"):
            ctx.ctes.add(toks[j].val.lower())
            j += 1
            if j < len(toks) and toks[j].is_op("("):
                j = _match(toks, j) + 1
            if j < len(toks) and toks[j].is_kw("AS"):
                j += 1
            if j < len(toks) and toks[j].is_op("("):
                j = _match(toks, j) + 1
            if j < len(toks) and toks[j].is_op(","):
                j += 1
            else:
                break


# --------------------------------------------------------------------------- rewriter


def _primary_end(toks, j, end):
    """End (exclusive) of the unary/primary operand starting at j (used for '/' and '%')."""
    while j < end and toks[j].is_op("-", "+"):
        j += 1
    if j >= end:
        raise _syntax_error("end of input")
    t = toks[j]
    if t.is_op("("):
        return _match(toks, j, end) + 1
    if t.is_kw("CASE"):
        return _match(toks, j, end) + 1
    if t.kind in ("ident", "qident"):
        if t.kind == "ident" and t.up in ("DATE", "TIMESTAMP", "TIMESTAMP_NTZ") and j + 1 < end \
                and toks[j + 1].kind == "str":
            return j + 2
        if j + 1 < end and toks[j + 1].is_op("("):
            return _match(toks, j + 1, end) + 1
        _, k = _read_name(toks, j, end)
        return k
    return j + 1


def _rewrite(toks, start, end, ctx: _Ctx, first_kw=None) -> str:
    out: list[str] = []
    paren_kinds: list[str] = []  # 'func' or 'group' per open paren
    paren_starts: list[int] = []
    in_from: dict[int, bool] = {}
    expect = None  # 'from' / 'target'
    last_primary = None
    chain_start = None
    prev = None
    i = start
    while i < end:
        t = toks[i]
        depth = len(paren_kinds)
        nxt = toks[i + 1] if i + 1 < end else None
        pre = t.pre if out else (" " if t.pre else "")
        # ---- table positions
        if expect and t.kind not in ("ident", "qident"):
            expect = None
        if expect:
            mode, expect = expect, None
            if mode == "from" and t.kind == "ident" and nxt is not None and nxt.is_op("("):
                if t.up == "RANGE":
                    k = _match(toks, i + 1, end)
                    out.append(pre + _range_sql(toks, i + 2, k, ctx))
                    last_primary, i, prev = None, k + 1, toks[k]
                    continue
            elif not (t.kind == "ident" and t.up in ("LATERAL", "TABLE")):
                parts, k = _read_name(toks, i, end)
                if len(parts) == 1 and parts[0].lower() in ctx.ctes:
                    out.append(pre + _q(parts[0]))
                else:
                    name = ctx.table_name(parts)
                    ctx.remember(name, parts)
                    out.append(pre + _q(name))
                    after = toks[k] if k < end else None
                    if mode == "from" and not (after is not None and (
                            (after.kind == "ident" and after.up not in _NOT_ALIAS) or after.kind == "qident"
                            or after.is_kw("AS"))):
                        out.append(" AS " + _q(parts[-1]))
                i, prev = k, toks[k - 1]
                continue
        if t.kind == "op":
            if t.text == "(":
                kind = "func" if prev is not None and prev.kind in ("ident", "qident") and \
                    not prev.is_kw(*_CLAUSE_KW, "FROM", "JOIN", "AS", "IN", "EXISTS", "AND", "OR", "NOT",
                                   "WHEN", "THEN", "ELSE", "ALL", "ANY", "SOME") else "group"
                paren_kinds.append(kind)
                paren_starts.append(chain_start if kind == "func" and chain_start is not None else len(out))
                out.append(pre + "(")
            elif t.text == ")":
                if not paren_kinds:
                    raise _syntax_error("')'")
                in_from.pop(depth, None)
                paren_kinds.pop()
                last_primary = paren_starts.pop()
                out.append(pre + ")")
            elif t.text == "," and in_from.get(depth):
                expect = "from"
                out.append(pre + ",")
            elif t.text in ("/", "%"):
                k = _primary_end(toks, i + 1, end)
                inner = _rewrite(toks, i + 1, k, ctx)
                fn = "__dbx_div" if t.text == "/" else "__dbx_nz"
                out.append(f"{pre}{t.text} {fn}({inner})")
                i, prev, last_primary = k, toks[k - 1], None
                continue
            elif t.text == "::":
                tk = i + 1
                if tk >= end:
                    raise _syntax_error("end of input")
                tk2 = tk + 1
                if tk2 < end and toks[tk2].is_op("("):
                    tk2 = _match(toks, tk2, end) + 1
                ttext = parse_type(_source(toks, tk, tk2))
                if ttext is None or last_primary is None:
                    raise _syntax_error(f"'{toks[tk].text}'")
                inner = "".join(out[last_primary:])
                del out[last_primary:]
                out.append(f" __dbx_cast({inner}, {_lit(ttext)})")
                i, prev = tk2, toks[tk2 - 1]
                continue
            elif t.text == "<=>":
                out.append(" IS ")
            else:
                out.append(pre + t.text)
            prev = t
            if t.text != ")":
                chain_start = None
            i += 1
            continue
        if t.kind == "str":
            last_primary = len(out)
            out.append(pre + _lit(t.val))
        elif t.kind == "qident":
            if not (prev is not None and prev.is_op(".")):
                chain_start = len(out)
            last_primary = chain_start
            out.append(pre + _q(t.val))
        elif t.kind == "param":
            last_primary = len(out)
            out.append(pre + t.text)
        elif t.kind == "num":
            last_primary = len(out)
            out.append(pre + _num_sql(t.text))
        else:  # ident / keyword
            u = t.up
            low = t.text.lower()
            if u in ("CAST", "TRY_CAST") and nxt is not None and nxt.is_op("("):
                k = _match(toks, i + 1, end)
                as_idx = None
                d = 0
                for j in range(i + 2, k):
                    tj = toks[j]
                    if tj.is_op("("):
                        d += 1
                    elif tj.is_op(")"):
                        d -= 1
                    elif d == 0 and tj.is_kw("AS"):
                        as_idx = j
                if as_idx is None:
                    raise _syntax_error("')'")
                ttext = parse_type(_source(toks, as_idx + 1, k))
                if ttext is None:
                    raise SqlError("UNSUPPORTED_DATATYPE",
                                   f"Unsupported data type \"{_source(toks, as_idx + 1, k)}\".", "0A000")
                inner = _rewrite(toks, i + 2, as_idx, ctx)
                fn = "__dbx_cast" if u == "CAST" else "__dbx_try_cast"
                last_primary = len(out)
                out.append(f"{pre}{fn}({inner}, {_lit(ttext)})")
                i, prev = k + 1, toks[k]
                continue
            if u in ("DATE", "TIMESTAMP", "TIMESTAMP_NTZ") and nxt is not None and nxt.kind == "str":
                ttext = "DATE" if u == "DATE" else "TIMESTAMP"
                last_primary = len(out)
                out.append(f"{pre}__dbx_cast({_lit(nxt.val)}, {_lit(ttext)})")
                i, prev = i + 2, nxt
                continue
            if u in ("FROM", "JOIN"):
                if u == "FROM" and paren_kinds and paren_kinds[-1] == "func":
                    out.append(pre + t.text)
                else:
                    expect = "target" if (u == "FROM" and prev is not None and prev.is_kw("DELETE")) else "from"
                    if u == "FROM":
                        in_from[depth] = True
                    out.append(pre + t.text)
                prev = t
                i += 1
                continue
            if u in _CLAUSE_KW and u not in ("ON", "USING", "LATERAL"):
                in_from[depth] = False
            if u in ("INTO", "UPDATE") or (u == "TABLE" and first_kw in ("ALTER", "INSERT")) or \
                    (u == "TO" and prev is not None and prev.is_kw("RENAME")):
                expect = "target"
                if u == "TABLE" and prev is not None and prev.is_kw("INTO", "OVERWRITE"):
                    prev = t
                    i += 1
                    continue  # INSERT INTO TABLE t -> INSERT INTO t
                out.append(pre + t.text)
                prev = t
                i += 1
                continue
            if nxt is not None and nxt.is_op("(") and low in _FUNC_RENAME and not (prev is not None and prev.is_op(".")):
                chain_start = last_primary = len(out)
                out.append(pre + _FUNC_RENAME[low])
            elif u in ("CURRENT_DATE", "CURRENT_TIMESTAMP") and not (nxt is not None and nxt.is_op("(")):
                last_primary = len(out)
                out.append(pre + ("__dbx_current_date()" if u == "CURRENT_DATE" else "__dbx_now()"))
            elif u in ("RLIKE", "REGEXP"):
                out.append(pre + "REGEXP")
            elif u == "ILIKE":
                out.append(pre + "LIKE")
            elif u == "TRUE" or u == "FALSE":
                last_primary = len(out)
                out.append(pre + ("1" if u == "TRUE" else "0"))
            else:
                if not (prev is not None and prev.is_op(".")):
                    chain_start = len(out)
                last_primary = chain_start
                out.append(pre + t.text)
        prev = t
        i += 1
    if paren_kinds:
        raise _syntax_error("end of input")
    return "".join(out)


def _num_sql(text: str) -> str:
    m = re.match(r"^(.*?)(BD|bd|[LlSsYyDdFf])?$", text)
    body, suf = m.group(1), (m.group(2) or "").upper()
    if suf in ("D", "F") and not re.search(r"[.eE]", body):
        body += ".0"
    return body


def _range_sql(toks, s, e, ctx) -> str:
    args = [_rewrite(toks, a, b, ctx) for a, b in _split_top(toks, s, e) if b > a]
    if not 1 <= len(args) <= 4:
        raise SqlError("WRONG_NUM_ARGS", "The `range` requires 1, 2, 3 or 4 parameters.", "42605")
    if len(args) == 1:
        start, stop, step = "0", args[0], "1"
    else:
        start, stop = args[0], args[1]
        step = args[2] if len(args) >= 3 else "1"
    st = step.strip()
    if re.fullmatch(r"\d+", st):
        if int(st) == 0:
            raise SqlError("FAILED_FUNCTION_CALL", "The `range` step must not be 0.", "38000")
        cond = f"id + ({step}) < ({stop})"
        first = f"({start}) < ({stop})"
    elif re.fullmatch(r"-\s*\d+", st):
        cond = f"id + ({step}) > ({stop})"
        first = f"({start}) > ({stop})"
    else:
        cond = f"CASE WHEN ({step}) > 0 THEN id + ({step}) < ({stop}) ELSE id + ({step}) > ({stop}) END"
        first = f"CASE WHEN ({step}) > 0 THEN ({start}) < ({stop}) ELSE ({start}) > ({stop}) END"
    return (f"(WITH RECURSIVE __dbx_r(id) AS (SELECT __dbx_cast({start}, 'BIGINT') WHERE {first} "
            f"UNION ALL SELECT id + ({step}) FROM __dbx_r WHERE {cond}) SELECT id FROM __dbx_r)")


# --------------------------------------------------------------------------- type inference


_CMP_OPS = {"=", "==", "<", ">", "<=", ">=", "<>", "!=", "<=>"}
_BOOL_KW = {"AND", "OR", "IS", "IN", "LIKE", "ILIKE", "RLIKE", "REGEXP", "BETWEEN", "EXISTS"}
_FN_STRING = {"upper", "lower", "ucase", "lcase", "concat", "concat_ws", "substr", "substring", "trim",
              "ltrim", "rtrim", "replace", "repeat", "uuid", "lpad", "rpad", "format_number",
              "date_format", "string", "initcap", "reverse", "left", "right", "hex", "md5", "sha1",
              "sha2", "base64", "group_concat", "string_agg", "current_catalog", "current_schema",
              "current_database", "current_user", "typeof", "printf", "format_string", "translate",
              "regexp_replace", "regexp_extract", "split_part", "char", "chr", "space"}
_FN_INT = {"length", "char_length", "character_length", "instr", "locate", "year", "month", "day",
           "dayofmonth", "hour", "minute", "second", "datediff", "dayofweek", "dayofyear", "quarter",
           "weekofyear", "row_number", "rank", "dense_rank", "ntile", "sign", "octet_length",
           "bit_length", "ascii"}
_FN_LONG = {"count", "count_if", "unix_timestamp", "ceil", "ceiling", "floor", "bigint",
            "approx_count_distinct"}
_FN_DOUBLE = {"rand", "random", "sqrt", "exp", "ln", "log", "log10", "log2", "pow", "power", "stddev",
              "stddev_samp", "stddev_pop", "variance", "var_samp", "var_pop", "percent_rank",
              "cume_dist", "sin", "cos", "tan", "atan", "asin", "acos", "degrees", "radians", "pi",
              "e", "double", "percentile", "median", "corr", "covar_pop", "covar_samp", "try_divide"}
_FN_DATE = {"current_date", "to_date", "date_add", "date_sub", "last_day", "next_day", "date",
            "add_months", "trunc", "curdate"}
_FN_TS = {"current_timestamp", "now", "to_timestamp", "timestamp", "date_trunc", "getdate",
          "from_utc_timestamp", "to_utc_timestamp", "timestamp_seconds", "timestampadd"}
_FN_BOOL = {"isnull", "isnotnull", "bool_and", "bool_or", "every", "some", "any", "boolean",
            "array_contains", "startswith", "endswith", "contains", "regexp_like", "isnan"}
_FN_FIRST = {"min", "max", "first", "last", "any_value", "coalesce", "nvl", "ifnull", "abs",
             "first_value", "last_value", "lag", "lead", "nullif", "greatest", "least", "round",
             "bround", "negative", "positive", "nth_value", "max_by", "min_by"}


class _Typer:
    """Static result typing over the original token list. Types are canonical type texts;
    None means unknown (the caller then uses the Python type of the values)."""

    def __init__(self, ctx: _Ctx):
        self.ctx = ctx
        self.cte_cols: dict[str, list] = {}

    # ---- queries
    def query(self, toks, s, e) -> list[tuple[str | None, str | None]] | None:
        while s < e and toks[s].is_op("(") and _match(toks, s, e) == e - 1:
            s, e = s + 1, e - 1
        if s >= e:
            return None
        t = toks[s]
        if t.is_kw("WITH"):
            j = s + 1
            if j < e and toks[j].is_kw("RECURSIVE"):
                j += 1
            while j < e and toks[j].kind in ("ident", "qident"):
                name = toks[j].val.lower()
                j += 1
                names = None
                if toks[j].is_op("("):
                    k = _match(toks, j, e)
                    names = [toks[a].val for a, b in _split_top(toks, j + 1, k) if b > a]
                    j = k + 1
                if toks[j].is_kw("AS"):
                    j += 1
                if j < e and toks[j].is_op("("):
                    k = _match(toks, j, e)
                    cols = self.query(toks, j + 1, k) or []
                    if names:
                        cols = [(n, cols[x][1] if x < len(cols) else None) for x, n in enumerate(names)]
                    self.cte_cols[name] = cols
                    j = k + 1
                if j < e and toks[j].is_op(","):
                    j += 1
                else:
                    break
            return self.query(toks, j, e)
        if t.is_kw("VALUES"):
            spans = _split_top(toks, s + 1, e)
            a, b = spans[0]
            if toks[a].is_op("("):
                k = _match(toks, a, e)
                items = _split_top(toks, a + 1, k)
            else:
                items = [(a, b)]
            return [(f"col{x + 1}", self.expr(toks, p, q, [])) for x, (p, q) in enumerate(items)]
        if not t.is_kw("SELECT"):
            return None
        # clause boundaries at depth 0
        depth, sel_end, from_s, from_e = 0, e, None, e
        j = s + 1
        while j < e:
            tj = toks[j]
            if tj.is_op("("):
                depth += 1
            elif tj.is_op(")"):
                depth -= 1
            elif depth == 0 and tj.kind == "ident":
                if tj.up == "FROM" and from_s is None:
                    sel_end = min(sel_end, j)
                    from_s = j + 1
                elif tj.up in ("WHERE", "GROUP", "HAVING", "ORDER", "LIMIT", "UNION", "EXCEPT",
                               "INTERSECT", "WINDOW", "QUALIFY", "MINUS"):
                    sel_end = min(sel_end, j)
                    if from_s is not None:
                        from_e = min(from_e, j)
                    if tj.up in ("UNION", "EXCEPT", "INTERSECT", "MINUS"):
                        break
            j += 1
        tables = self.from_clause(toks, from_s, from_e) if from_s is not None else []
        a = s + 1
        if a < sel_end and toks[a].is_kw("DISTINCT", "ALL"):
            a += 1
        cols = []
        for p, q in _split_top(toks, a, sel_end):
            if q <= p:
                continue
            if toks[q - 1].is_op("*"):
                if q - p == 1:
                    for _, tcols in tables:
                        if tcols is None:
                            return None
                        cols.extend(tcols)
                    continue
                alias = toks[p].val.lower()
                found = [tc for al, tc in tables if al == alias]
                if not found or found[0] is None:
                    return None
                cols.extend(found[0])
                continue
            q2, name = _strip_alias(toks, p, q)
            cols.append((name, self.expr(toks, p, q2, tables)))
        return cols

    def from_clause(self, toks, s, e):
        tables = []
        items, cur = [], s
        depth = 0
        j = s
        while j < e:
            tj = toks[j]
            if tj.is_op("("):
                depth += 1
            elif tj.is_op(")"):
                depth -= 1
            elif depth == 0 and (tj.is_op(",") or tj.is_kw(*_JOIN_KW)):
                if j > cur:
                    items.append((cur, j))
                cur = j + 1
            j += 1
        if e > cur:
            items.append((cur, e))
        for p, q in items:
            # cut ON / USING tails
            d = 0
            for k in range(p, q):
                if toks[k].is_op("("):
                    d += 1
                elif toks[k].is_op(")"):
                    d -= 1
                elif d == 0 and toks[k].is_kw("ON", "USING"):
                    q = k
                    break
            if p >= q:
                continue
            t = toks[p]
            if t.is_kw("LATERAL"):
                continue
            if t.is_op("("):
                k = _match(toks, p, q)
                cols = self.query(toks, p + 1, k)
                alias = _alias_after(toks, k + 1, q)
                tables.append((alias, cols))
            elif t.kind == "ident" and p + 1 < q and toks[p + 1].is_op("("):
                k = _match(toks, p + 1, q)
                cols = [("id", "BIGINT")] if t.up == "RANGE" else None
                tables.append((_alias_after(toks, k + 1, q) or t.val.lower(), cols))
            else:
                parts, k = _read_name(toks, p, q)
                if not parts:
                    continue
                if len(parts) == 1 and parts[0].lower() in self.cte_cols:
                    cols = self.cte_cols[parts[0].lower()]
                else:
                    cols = self.ctx.table_columns(self.ctx.table_name(parts))
                tables.append((_alias_after(toks, k, q) or parts[-1].lower(), cols))
        return tables

    # ---- expressions
    def expr(self, toks, s, e, tables):
        while s < e and toks[s].is_op("(") and _match(toks, s, e) == e - 1:
            if s + 1 < e and toks[s + 1].is_kw("SELECT", "WITH"):
                cols = self.query(toks, s + 1, e - 1)
                return cols[0][1] if cols else None
            s, e = s + 1, e - 1
        if s >= e:
            return None
        # scan top level
        depth = 0
        add_ops, mul_ops, cast_ops, concat, boolean = [], [], [], False, False
        for j in range(s, e):
            t = toks[j]
            if t.is_op("(") or t.is_kw("CASE"):
                depth += 1
            elif t.is_op(")") or t.is_kw("END"):
                depth -= 1
            elif depth == 0:
                if t.kind == "op":
                    if t.text in _CMP_OPS:
                        boolean = True
                    elif t.text == "||":
                        concat = True
                    elif t.text == "::":
                        cast_ops.append(j)
                    elif t.text in ("+", "-") and j > s and _operand_end(toks[j - 1]):
                        add_ops.append(j)
                    elif t.text in ("*", "/", "%"):
                        mul_ops.append(j)
                elif t.kind == "ident" and (t.up in _BOOL_KW or (t.up == "NOT" and j == s)):
                    boolean = True
        if boolean:
            return "BOOLEAN"
        if concat:
            return "STRING"
        if add_ops:
            j = add_ops[-1]
            return _arith(self.expr(toks, s, j, tables), self.expr(toks, j + 1, e, tables), toks[j].text)
        if mul_ops:
            j = mul_ops[-1]
            return _arith(self.expr(toks, s, j, tables), self.expr(toks, j + 1, e, tables), toks[j].text)
        if cast_ops:
            return parse_type(_source(toks, cast_ops[-1] + 1, e))
        t = toks[s]
        if t.is_op("-", "+"):
            return self.expr(toks, s + 1, e, tables)
        if e - s == 1:
            return self.atom(t, tables)
        if t.kind == "ident":
            u = t.up
            if u in ("DATE", "TIMESTAMP", "TIMESTAMP_NTZ") and toks[s + 1].kind == "str" and e - s == 2:
                return "DATE" if u == "DATE" else "TIMESTAMP"
            if u == "CASE":
                return self.case(toks, s, e, tables)
            if toks[s + 1].is_op("("):
                k = _match(toks, s + 1, e)
                if k == e - 1 or toks[k + 1].is_kw("OVER", "FILTER"):
                    return self.func(t.val.lower(), toks, s + 2, k, tables)
            parts, k = _read_name(toks, s, e)
            if parts and k == e and len(parts) == 2:
                return self.column(parts[1], parts[0], tables)
        return None

    def atom(self, t, tables):
        if t.kind == "num":
            return _num_type(t.text)
        if t.kind == "str":
            return "STRING"
        if t.kind == "param":
            p = self.ctx.params.get(t.text[1:])
            return p[0] if p else None
        if t.kind == "ident":
            if t.up in ("TRUE", "FALSE"):
                return "BOOLEAN"
            if t.up == "NULL":
                return "VOID"
            if t.up == "CURRENT_DATE":
                return "DATE"
            if t.up == "CURRENT_TIMESTAMP":
                return "TIMESTAMP"
        if t.kind in ("ident", "qident"):
            return self.column(t.val, None, tables)
        return None

    def column(self, name, alias, tables):
        name = name.lower()
        for al, cols in tables:
            if alias is not None and al != alias.lower():
                continue
            for cn, ct in cols or ():
                if cn is not None and cn.lower() == name:
                    return ct
        return None

    def case(self, toks, s, e, tables):
        depth, start, found = 0, None, []
        for j in range(s, e):
            t = toks[j]
            if t.is_op("(") or t.is_kw("CASE"):
                depth += 1
                continue
            if t.is_op(")") or t.is_kw("END"):
                depth -= 1
                if depth == 0 and start is not None:
                    found.append((start, j))
                continue
            if depth == 1 and t.kind == "ident" and t.up in ("THEN", "ELSE", "WHEN"):
                if start is not None:
                    found.append((start, j))
                    start = None
                if t.up in ("THEN", "ELSE"):
                    start = j + 1
        result = None
        for a, b in found:
            ty = self.expr(toks, a, b, tables)
            if ty and ty != "VOID":
                if result is None or result == ty:
                    result = ty
                else:
                    result = _arith(result, ty, "+") if _numeric(result) and _numeric(ty) else result
        return result or ("VOID" if found else None)

    def func(self, name, toks, s, e, tables):
        args = [(a, b) for a, b in _split_top(toks, s, e) if b > a]
        if args and toks[args[0][0]].is_kw("DISTINCT", "ALL"):
            args[0] = (args[0][0] + 1, args[0][1])

        def arg(n):
            return self.expr(toks, *args[n], tables) if n < len(args) else None

        if name in ("cast", "try_cast"):
            d, as_idx = 0, None
            for j in range(s, e):
                if toks[j].is_op("("):
                    d += 1
                elif toks[j].is_op(")"):
                    d -= 1
                elif d == 0 and toks[j].is_kw("AS"):
                    as_idx = j
            return parse_type(_source(toks, as_idx + 1, e)) if as_idx is not None else None
        if name in _FN_STRING:
            return "STRING"
        if name in _FN_INT:
            return "INT"
        if name in _FN_LONG:
            return "BIGINT"
        if name in _FN_DOUBLE:
            return "DOUBLE"
        if name in _FN_DATE:
            return "DATE"
        if name in _FN_TS:
            return "TIMESTAMP"
        if name in _FN_BOOL:
            return "BOOLEAN"
        if name == "sum":
            a = arg(0)
            if a in _INTEGRAL:
                return "BIGINT"
            if a and a.startswith("DECIMAL"):
                p, sc = _dec_ps(a)
                return f"DECIMAL({min(38, p + 10)},{sc})"
            return "DOUBLE" if a != "VOID" else "DOUBLE"
        if name in ("avg", "mean"):
            a = arg(0)
            if a and a.startswith("DECIMAL"):
                p, sc = _dec_ps(a)
                return f"DECIMAL({min(38, p + 4)},{min(38, sc + 4)})"
            return "DOUBLE"
        if name in ("if", "iif"):
            return arg(1) if arg(1) not in (None, "VOID") else arg(2)
        if name in _FN_FIRST:
            for n in range(len(args)):
                a = arg(n)
                if a and a != "VOID":
                    return a
            return "VOID" if args else None
        if name in ("int", "integer"):
            return "INT"
        return None


def _alias_after(toks, k, q):
    if k < q and toks[k].is_kw("AS"):
        k += 1
    if k < q and (toks[k].kind == "qident" or (toks[k].kind == "ident" and toks[k].up not in _NOT_ALIAS)):
        return toks[k].val.lower()
    return None


def _operand_end(t):
    return t.kind in ("num", "str", "param", "qident") or t.is_op(")") or \
        (t.kind == "ident" and t.up not in _BOOL_KW | {"NOT", "THEN", "ELSE", "WHEN", "CASE", "SELECT"})


def _strip_alias(toks, p, q):
    """Select item span -> (end of expression, alias or None)."""
    if q - p >= 2:
        last = toks[q - 1]
        if toks[q - 2].is_kw("AS") and last.kind in ("ident", "qident", "str"):
            return q - 2, last.val
        if last.kind == "qident" or (last.kind == "ident" and last.up not in (
                "END", "NULL", "TRUE", "FALSE", "CURRENT_DATE", "CURRENT_TIMESTAMP")):
            before = toks[q - 2]
            if not before.is_op(".", "::") and (before.kind != "op" or before.text == ")") and \
                    not before.is_kw("DISTINCT", "ALL", "NOT", "IS", "AND", "OR", "CASE", "ELSE", "THEN",
                                     "INTERVAL"):
                return q - 1, last.val
    if q - p == 1:
        t = toks[p]
        if t.kind in ("ident", "qident") and t.up not in ("NULL", "TRUE", "FALSE", "CURRENT_DATE",
                                                           "CURRENT_TIMESTAMP"):
            return q, t.val
    if q - p >= 3 and toks[q - 2].is_op(".") and toks[q - 1].kind in ("ident", "qident"):
        parts, k = _read_name(toks, p, q)
        if k == q:
            return q, parts[-1]
    return q, None


def _num_type(text: str) -> str:
    m = re.match(r"^(.*?)(BD|bd|[LlSsYyDdFf])?$", text)
    body, suf = m.group(1), (m.group(2) or "").upper()
    if suf == "L":
        return "BIGINT"
    if suf == "S":
        return "SMALLINT"
    if suf == "Y":
        return "TINYINT"
    if suf in ("D",):
        return "DOUBLE"
    if suf == "F":
        return "FLOAT"
    if re.search(r"[eE]", body):
        return "DOUBLE"
    if "." in body or suf == "BD":
        d = Decimal(body)
        tup = d.as_tuple()
        scale = max(0, -tup.exponent)
        prec = max(len(tup.digits), scale, 1)
        return f"DECIMAL({min(prec, 38)},{min(scale, 38)})"
    n = int(body)
    if n < 2 ** 31:
        return "INT"
    if n < 2 ** 63:
        return "BIGINT"
    return f"DECIMAL({min(38, len(body))},0)"


def _numeric(t):
    return t is not None and (t in _INTEGRAL or t in ("DOUBLE", "FLOAT") or t.startswith("DECIMAL"))


def _arith(a, b, op):
    if a == "VOID":
        a = b
    if b == "VOID":
        b = a
    if a is None or b is None:
        return None
    if a in ("DATE", "TIMESTAMP") and b in _INTEGRAL and op in "+-":
        return a
    if a == "STRING" or b == "STRING":
        return "DOUBLE"
    if not (_numeric(a) and _numeric(b)):
        return None
    if a in ("DOUBLE", "FLOAT") or b in ("DOUBLE", "FLOAT"):
        return "DOUBLE"
    if a in _INTEGRAL and b in _INTEGRAL:
        if op == "/":
            return "DOUBLE"
        return _INT_RANK[max(_INT_RANK.index(a), _INT_RANK.index(b), 2 if op != "%" else 0)]
    p1, s1 = _dec_ps(a)
    p2, s2 = _dec_ps(b)
    if op in "+-":
        s = max(s1, s2)
        p = max(p1 - s1, p2 - s2) + s + 1
    elif op == "*":
        s, p = s1 + s2, p1 + p2 + 1
    elif op == "/":
        s = max(6, s1 + p2 + 1)
        p = p1 - s1 + s2 + s
    else:
        s = max(s1, s2)
        p = min(p1 - s1, p2 - s2) + s
    if p > 38:
        s = max(min(s, 6), s - (p - 38))
        p = 38
    return f"DECIMAL({p},{min(s, p)})"


def _value_type(values) -> str:
    kinds = {type(v) for v in values if v is not None}
    if not kinds:
        return "STRING"
    if kinds <= {int}:
        return "BIGINT"
    if kinds <= {int, float}:
        return "DOUBLE"
    if kinds <= {bytes}:
        return "BINARY"
    return "STRING"


# --------------------------------------------------------------------------- sqlite functions

_local = threading.local()


def _raise(err: SqlError):
    _local.error = err
    raise ValueError(err.message)


def _fn_cast(v, t):
    if v is None:
        return None
    try:
        return _to_sqlite(_coerce(v, t))
    except (ValueError, TypeError, OverflowError, decimal.InvalidOperation):
        _raise(_cast_invalid(v, t))


def _fn_try_cast(v, t):
    try:
        return _to_sqlite(_coerce(v, t)) if v is not None else None
    except (ValueError, TypeError, OverflowError, decimal.InvalidOperation):
        return None


def _fn_div(v):
    if v is None:
        return None
    if isinstance(v, str):
        try:
            v = float(v)
        except ValueError:
            return None
    if v == 0:
        _raise(_divide_by_zero())
    return float(v)


def _fn_nz(v):
    if v is not None and not isinstance(v, (str, bytes)) and v == 0:
        _raise(_divide_by_zero())
    return v


def _fn_try_divide(a, b):
    if a is None or b is None or b == 0:
        return None
    try:
        return float(a) / float(b)
    except (TypeError, ValueError):
        return None


def _fn_concat(*args):
    if any(a is None for a in args):
        return None
    return "".join(_fmt_double(a) if isinstance(a, float) else
                   a.decode("utf-8", "replace") if isinstance(a, bytes) else str(a) for a in args)


def _fn_concat_ws(sep, *args):
    if sep is None:
        return None
    return str(sep).join(str(a) for a in args if a is not None)


def _fn_repeat(s, n):
    if s is None or n is None:
        return None
    return str(s) * max(0, int(n))


def _date_part(fn):
    def f(v):
        if v is None:
            return None
        try:
            return fn(_parse_ts(str(v)) if not isinstance(v, (int, float)) else _coerce(v, "TIMESTAMP"))
        except ValueError:
            return None
    return f


def _fn_to_date(v, fmt=None):
    if v is None:
        return None
    try:
        if fmt:
            return _dt.datetime.strptime(str(v), _java_fmt(fmt)).date().isoformat()
        return _parse_date(str(v)).isoformat()
    except ValueError:
        _raise(_cast_invalid(v, "DATE"))


def _fn_to_ts(v, fmt=None):
    if v is None:
        return None
    try:
        if fmt:
            return _to_sqlite(_dt.datetime.strptime(str(v), _java_fmt(fmt)))
        return _to_sqlite(_coerce(v, "TIMESTAMP"))
    except ValueError:
        _raise(_cast_invalid(v, "TIMESTAMP"))


def _java_fmt(fmt: str) -> str:
    for a, b in (("yyyy", "%Y"), ("MM", "%m"), ("dd", "%d"), ("HH", "%H"), ("mm", "%M"), ("ss", "%S"),
                 ("SSS", "%f")):
        fmt = fmt.replace(a, b)
    return fmt


def _fn_date_format(v, fmt):
    if v is None or fmt is None:
        return None
    try:
        return _coerce(v, "TIMESTAMP").strftime(_java_fmt(str(fmt)))
    except ValueError:
        return None


def _fn_date_add(v, n):
    if v is None or n is None:
        return None
    return (_coerce(v, "DATE") + _dt.timedelta(days=int(n))).isoformat()


def _fn_datediff(a, b):
    if a is None or b is None:
        return None
    return (_coerce(a, "DATE") - _coerce(b, "DATE")).days


def _fn_regexp(pattern, s):
    if pattern is None or s is None:
        return None
    return 1 if re.search(str(pattern), str(s)) else 0


class _First:
    def __init__(self):
        self.v, self.seen = None, False

    def step(self, v):
        if not self.seen:
            self.v, self.seen = v, True

    def finalize(self):
        return self.v


class _BoolAnd:
    def __init__(self):
        self.v = None

    def step(self, v):
        if v is not None:
            self.v = (1 if self.v is None else self.v) and (1 if v else 0)

    def finalize(self):
        return self.v


class _BoolOr(_BoolAnd):
    def step(self, v):
        if v is not None:
            self.v = (0 if self.v is None else self.v) or (1 if v else 0)


class _Stddev:
    def __init__(self):
        self.xs = []

    def step(self, v):
        if v is not None:
            self.xs.append(float(v))

    def finalize(self):
        n = len(self.xs)
        if n < 2:
            return None
        m = sum(self.xs) / n
        return math.sqrt(sum((x - m) ** 2 for x in self.xs) / (n - 1))


class _Variance(_Stddev):
    def finalize(self):
        r = super().finalize()
        return None if r is None else r * r


def _now():
    return _dt.datetime.now(_dt.timezone.utc).replace(tzinfo=None)


# --------------------------------------------------------------------------- engine


class SqlEngine:
    """Thread-safe SQL engine. Each statement runs on a pooled sqlite connection to one private
    database file (WAL mode), so concurrent statements do not block each other for reads;
    writers serialise on sqlite's lock (busy timeout 30 s)."""

    def __init__(self, seed_samples: bool = True, user: str = "user@example.com"):
        self._dir = tempfile.mkdtemp(prefix="dbx-emu-sql-")
        self._path = os.path.join(self._dir, "warehouse.db")
        self._pool: "queue.LifoQueue[sqlite3.Connection]" = queue.LifoQueue()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._closed = False
        self.user = user
        self._finalizer = weakref.finalize(self, shutil.rmtree, self._dir, True)
        conn = self._connect()
        conn.execute("PRAGMA journal_mode=WAL")
        self._release(conn)
        if seed_samples:
            self._seed()

    # ---- connections
    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self._path, timeout=30, check_same_thread=False, isolation_level=None)
        conn.execute("PRAGMA synchronous=OFF")
        cf = conn.create_function
        det = {"deterministic": True}
        cf("__dbx_cast", 2, _fn_cast, **det)
        cf("__dbx_try_cast", 2, _fn_try_cast, **det)
        cf("__dbx_div", 1, _fn_div, **det)
        cf("__dbx_nz", 1, _fn_nz, **det)
        cf("__dbx_try_divide", 2, _fn_try_divide, **det)
        cf("__dbx_current_date", 0, lambda: _now().date().isoformat())
        cf("__dbx_now", 0, lambda: _to_sqlite(_now()))
        cf("__dbx_current_catalog", 0, lambda: getattr(_local, "catalog", "main"))
        cf("__dbx_current_schema", 0, lambda: getattr(_local, "schema", "default"))
        cf("__dbx_current_user", 0, lambda: self.user)
        cf("concat", -1, _fn_concat, **det)
        cf("concat_ws", -1, _fn_concat_ws, **det)
        cf("repeat", 2, _fn_repeat, **det)
        cf("rand", 0, random.random)
        cf("rand", 1, lambda seed: random.Random(seed).random())
        cf("uuid", 0, lambda: str(uuid.uuid4()))
        cf("regexp", 2, _fn_regexp, **det)
        cf("year", 1, _date_part(lambda d: d.year), **det)
        cf("month", 1, _date_part(lambda d: d.month), **det)
        cf("day", 1, _date_part(lambda d: d.day), **det)
        cf("dayofmonth", 1, _date_part(lambda d: d.day), **det)
        cf("hour", 1, _date_part(lambda d: d.hour), **det)
        cf("minute", 1, _date_part(lambda d: d.minute), **det)
        cf("second", 1, _date_part(lambda d: d.second), **det)
        cf("to_date", 1, _fn_to_date, **det)
        cf("to_date", 2, _fn_to_date, **det)
        cf("to_timestamp", 1, _fn_to_ts, **det)
        cf("to_timestamp", 2, _fn_to_ts, **det)
        cf("date_format", 2, _fn_date_format, **det)
        cf("date_add", 2, _fn_date_add, **det)
        cf("date_sub", 2, lambda v, n: _fn_date_add(v, -n if n is not None else None), **det)
        cf("datediff", 2, _fn_datediff, **det)
        cf("isnull", 1, lambda v: int(v is None), **det)
        cf("isnotnull", 1, lambda v: int(v is not None), **det)
        cf("startswith", 2, lambda a, b: None if a is None or b is None else int(str(a).startswith(str(b))), **det)
        cf("endswith", 2, lambda a, b: None if a is None or b is None else int(str(a).endswith(str(b))), **det)
        cf("contains", 2, lambda a, b: None if a is None or b is None else int(str(b) in str(a)), **det)
        cf("lpad", 3, lambda s, n, p: None if s is None else str(s).rjust(int(n), str(p or " "))[-int(n):] if int(n) else "", **det)
        cf("rpad", 3, lambda s, n, p: None if s is None else str(s).ljust(int(n), str(p or " "))[:int(n)], **det)
        cf("initcap", 1, lambda s: None if s is None else str(s).title(), **det)
        cf("reverse", 1, lambda s: None if s is None else str(s)[::-1], **det)
        cf("left", 2, lambda s, n: None if s is None else str(s)[:max(0, int(n))], **det)
        cf("right", 2, lambda s, n: None if s is None else (str(s)[-int(n):] if int(n) > 0 else ""), **det)
        cf("space", 1, lambda n: " " * max(0, int(n or 0)), **det)
        cf("md5", 1, lambda s: None if s is None else __import__("hashlib").md5(str(s).encode()).hexdigest(), **det)
        for name in ("pow", "power"):
            cf(name, 2, lambda a, b: None if a is None or b is None else float(a) ** float(b), **det)
        cf("sqrt", 1, lambda a: None if a is None or a < 0 else math.sqrt(a), **det)
        cf("ln", 1, lambda a: None if a is None or a <= 0 else math.log(a), **det)
        cf("exp", 1, lambda a: None if a is None else math.exp(a), **det)
        cf("ceil", 1, lambda a: None if a is None else math.ceil(a), **det)
        cf("ceiling", 1, lambda a: None if a is None else math.ceil(a), **det)
        cf("floor", 1, lambda a: None if a is None else math.floor(a), **det)
        cf("greatest", -1, lambda *a: max((x for x in a if x is not None), default=None), **det)
        cf("least", -1, lambda *a: min((x for x in a if x is not None), default=None), **det)
        conn.create_aggregate("__dbx_first", 1, _First)
        conn.create_aggregate("__dbx_bool_and", 1, _BoolAnd)
        conn.create_aggregate("__dbx_bool_or", 1, _BoolOr)
        for name in ("stddev", "stddev_samp"):
            conn.create_aggregate(name, 1, _Stddev)
        for name in ("variance", "var_samp"):
            conn.create_aggregate(name, 1, _Variance)
        with self._lock:
            self._all.append(conn)
        return conn

    def _acquire(self) -> sqlite3.Connection:
        if self._closed:
            raise SqlError("INTERNAL_ERROR", "The SQL engine is closed.", "XX000", "INTERNAL_ERROR")
        try:
            return self._pool.get_nowait()
        except queue.Empty:
            return self._connect()

    def _release(self, conn):
        if self._closed:
            conn.close()
        else:
            conn.set_progress_handler(None, 0)
            self._pool.put(conn)

    def close(self):
        self._closed = True
        with self._lock:
            conns, self._all = self._all, []
        for c in conns:
            try:
                c.close()
            except Exception:
                pass
        self._finalizer()

    # ---- seeding
    def _seed(self):
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
            rows.append((_to_sqlite(t), _to_sqlite(t + dur), dist, fare, rng.choice(zips), rng.choice(zips)))
        self.execute("CREATE TABLE samples.nyctaxi.trips (tpep_pickup_datetime TIMESTAMP, "
                     "tpep_dropoff_datetime TIMESTAMP, trip_distance DOUBLE, fare_amount DOUBLE, "
                     "pickup_zip INT, dropoff_zip INT)")
        conn = self._acquire()
        try:
            conn.execute("BEGIN")
            conn.executemany('INSERT INTO "samples__nyctaxi__trips" VALUES (?,?,?,?,?,?)', rows)
            conn.execute("COMMIT")
        finally:
            self._release(conn)

    # ---- public
    def table_names(self, catalog: str | None = None, schema: str | None = None) -> list[str]:
        """Dotted names (catalog.schema.table) of the tables and views."""
        conn = self._acquire()
        try:
            names = [r[0] for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type IN ('table','view') AND name NOT LIKE 'sqlite_%' "
                "ORDER BY name")]
        finally:
            self._release(conn)
        out = []
        for n in names:
            parts = n.split("__")
            if len(parts) != 3:
                continue
            if (catalog and parts[0] != catalog.lower()) or (schema and parts[1] != schema.lower()):
                continue
            out.append(".".join(parts))
        return out

    def execute(self, statement: str, parameters: list[dict] | None = None, catalog: str | None = None,
                schema: str | None = None, *, row_limit: int | None = None,
                cancel_event: threading.Event | None = None, timeout: float | None = None) -> Result:
        """Run one statement (or several separated by ';', returning the last result).

        ``parameters``: ``[{"name", "value" (str or None), "type" (optional, default STRING)}]``.
        ``cancel_event``: set it from another thread to interrupt (raises SqlError error_code
        CANCELLED); ``timeout`` in seconds likewise (error_code DEADLINE_EXCEEDED)."""
        if not isinstance(statement, str) or not statement.strip():
            raise _syntax_error("end of input")
        toks = tokenize(statement)
        params = _convert_params(parameters)
        used = {t.text[1:] for t in toks if t.kind == "param"}
        missing = sorted(used - set(params))
        if missing:
            raise SqlError("UNBOUND_SQL_PARAMETER", f"Found the unbound parameter: {missing[0]}. Please, fix "
                           "`args` and provide a mapping of the parameter to either a SQL literal or "
                           "collection constructor functions such as `map()`, `array()`, `struct()`.", "42P02")
        stmts = [(a, b) for a, b in _split_top(toks, 0, len(toks), ";") if b > a]
        if not stmts:
            raise _syntax_error("end of input")
        conn = self._acquire()
        deadline = time.monotonic() + timeout if timeout else None
        reason = []

        def progress():
            if cancel_event is not None and cancel_event.is_set():
                reason.append("cancel")
                return 1
            if deadline is not None and time.monotonic() > deadline:
                reason.append("timeout")
                return 1
            return 0

        if cancel_event is not None or deadline is not None:
            conn.set_progress_handler(progress, 20000)
        _local.error = None
        _local.catalog, _local.schema = (catalog or "main").lower(), (schema or "default").lower()
        try:
            result = None
            for a, b in stmts:
                ctx = _Ctx(self, conn, catalog, schema, params)
                sub = toks[a:b]
                try:
                    result = self._run(sub, ctx, row_limit)
                except sqlite3.Error as e:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise _map_error(e, ctx, reason) from None
            return result
        finally:
            _local.error = None
            self._release(conn)

    # ---- dispatch
    def _run(self, toks, ctx: _Ctx, row_limit) -> Result:
        first = toks[0]
        u = first.up if first.kind == "ident" else None
        if first.is_op("(") or u in ("SELECT", "WITH", "VALUES", "FROM", "TABLE"):
            if u == "FROM":  # FROM t SELECT ... is not supported; FROM t alone = SELECT *
                raise _syntax_error("'FROM'")
            if u == "TABLE":
                toks = tokenize("SELECT * FROM") + toks[1:]
            return self._query(toks, ctx, row_limit)
        if u == "CREATE":
            return self._create(toks, ctx)
        if u == "DROP":
            return self._drop(toks, ctx)
        if u == "INSERT":
            overwrite = len(toks) > 1 and toks[1].is_kw("OVERWRITE")
            if overwrite:
                j = 2 + (1 if toks[2].is_kw("TABLE") else 0)
                parts, _ = _read_name(toks, j)
                if not parts:
                    raise _syntax_error(f"'{toks[j].text}'")
                ctx.remember(ctx.table_name(parts), parts)
                ctx.conn.execute(f"DELETE FROM {_q(ctx.table_name(parts))}")
            cur = self._exec(toks, ctx, "INSERT")
            n = max(cur.rowcount, 0)
            return Result([column_info("num_affected_rows", 0, "BIGINT"),
                           column_info("num_inserted_rows", 1, "BIGINT")], [(n, n)], "INSERT")
        if u in ("UPDATE", "DELETE"):
            cur = self._exec(toks, ctx, u)
            return Result([column_info("num_affected_rows", 0, "BIGINT")], [(max(cur.rowcount, 0),)], u)
        if u == "TRUNCATE":
            j = 2 if len(toks) > 1 and toks[1].is_kw("TABLE") else 1
            parts, _ = _read_name(toks, j)
            if not parts:
                raise _syntax_error("end of input")
            name = ctx.table_name(parts)
            ctx.remember(name, parts)
            ctx.conn.execute(f"DELETE FROM {_q(name)}")
            return Result([], [], "TRUNCATE")
        if u == "ALTER":
            self._exec(toks, ctx, "ALTER")
            return Result([], [], "ALTER")
        if u == "SHOW":
            return self._show(toks, ctx)
        if u in ("DESCRIBE", "DESC"):
            j = 1
            while j < len(toks) and toks[j].is_kw("TABLE", "EXTENDED", "FORMATTED"):
                j += 1
            parts, _ = _read_name(toks, j)
            if not parts:
                raise _syntax_error("end of input")
            name = ctx.table_name(parts)
            cols = ctx.table_columns(name)
            if cols is None:
                raise _not_found(".".join(f"`{p}`" for p in parts))
            return Result([column_info("col_name", 0, "STRING"), column_info("data_type", 1, "STRING"),
                           column_info("comment", 2, "STRING")],
                          [(c, (t or "string").lower(), None) for c, t in cols], "DESCRIBE")
        if u in ("USE", "SET", "RESET", "REFRESH", "CACHE", "UNCACHE", "ANALYZE", "OPTIMIZE", "VACUUM",
                 "COMMENT", "GRANT", "REVOKE", "MSCK"):
            return Result([], [], u)
        raise _syntax_error(f"'{first.text}'")

    def _exec(self, toks, ctx, first_kw):
        _collect_ctes(toks, ctx)
        sql = _rewrite(toks, 0, len(toks), ctx, first_kw)
        return ctx.conn.execute(sql, _bind(ctx))

    def _query(self, toks, ctx: _Ctx, row_limit, fetch=True) -> Result:
        _collect_ctes(toks, ctx)
        toks = _alias_items(toks)
        try:
            types = _Typer(ctx).query(toks, 0, len(toks))
        except SqlError:
            raise
        except Exception:
            types = None
        sql = _rewrite(toks, 0, len(toks), ctx, "SELECT")
        cur = ctx.conn.execute(sql, _bind(ctx))
        desc = cur.description or []
        truncated = False
        if row_limit is not None:
            raw = cur.fetchmany(row_limit + 1)
            if len(raw) > row_limit:
                raw, truncated = raw[:row_limit], True
        else:
            raw = cur.fetchall()
        names = [d[0] for d in desc]
        if types is None or len(types) != len(names):
            types = [(n, None) for n in names]
        col_types = []
        for x, (n, (_, ty)) in enumerate(zip(names, types)):
            if ty is None:
                ty = _value_type(r[x] for r in raw)
            col_types.append(ty)
        conv = []
        for x, ty in enumerate(col_types):
            base = _base(ty)
            if base in ("BIGINT", "INT", "SMALLINT", "TINYINT"):
                conv.append(lambda v: v if v is None or type(v) is int else _from_sqlite(v, "BIGINT"))
            elif base == "STRING":
                conv.append(lambda v: v if v is None or type(v) is str else _from_sqlite(v, "STRING"))
            elif base == "DOUBLE" or base == "FLOAT":
                conv.append(lambda v: v if v is None or type(v) is float else _from_sqlite(v, "DOUBLE"))
            else:
                conv.append(lambda v, ty=ty: _from_sqlite(v, ty))
        ncol = len(names)
        if ncol == 1:
            c0 = conv[0]
            rows = [(c0(r[0]),) for r in raw]
        else:
            rows = [tuple(conv[x](r[x]) for x in range(ncol)) for r in raw]
        columns = [column_info(n, x, ty) for x, (n, ty) in enumerate(zip(names, col_types))]
        return Result(columns, rows, "SELECT", truncated)

    def _create(self, toks, ctx: _Ctx) -> Result:
        j = 1
        replace = False
        if j + 1 < len(toks) and toks[j].is_kw("OR") and toks[j + 1].is_kw("REPLACE"):
            replace, j = True, j + 2
        while j < len(toks) and toks[j].is_kw("TEMP", "TEMPORARY", "GLOBAL", "EXTERNAL", "MATERIALIZED"):
            j += 1
        if j >= len(toks):
            raise _syntax_error("end of input")
        kind = toks[j].up
        if kind in ("SCHEMA", "DATABASE", "CATALOG", "FUNCTION", "VOLUME"):
            return Result([], [], "CREATE")
        if kind not in ("TABLE", "VIEW"):
            raise _syntax_error(f"'{toks[j].text}'")
        j += 1
        if_not_exists = False
        if j + 2 < len(toks) and toks[j].is_kw("IF") and toks[j + 1].is_kw("NOT") and toks[j + 2].is_kw("EXISTS"):
            if_not_exists, j = True, j + 3
        parts, j = _read_name(toks, j)
        if not parts:
            raise _syntax_error(f"'{toks[j].text}'" if j < len(toks) else "end of input")
        name = ctx.table_name(parts)
        ctx.remember(name, parts)
        exists = ctx.table_columns(name) is not None
        if exists and if_not_exists:
            return Result([], [], "CREATE")
        if exists and not replace:
            raise SqlError("TABLE_OR_VIEW_ALREADY_EXISTS", f"Cannot create table or view "
                           f"{ctx.display[name]} because it already exists.", "42P07")
        # find AS <query>
        as_idx, depth = None, 0
        for k in range(j, len(toks)):
            if toks[k].is_op("("):
                depth += 1
            elif toks[k].is_op(")"):
                depth -= 1
            elif depth == 0 and toks[k].is_kw("AS") and k + 1 < len(toks) and (
                    toks[k + 1].is_kw("SELECT", "WITH", "VALUES") or toks[k + 1].is_op("(")):
                as_idx = k
                break
        conn = ctx.conn

        def drop_existing():
            if exists:
                typ = conn.execute("SELECT type FROM sqlite_master WHERE name = ?", (name,)).fetchone()
                conn.execute(f"DROP {'VIEW' if typ and typ[0] == 'view' else 'TABLE'} IF EXISTS {_q(name)}")

        if kind == "VIEW":
            if as_idx is None:
                raise _syntax_error("end of input")
            q = toks[as_idx + 1:]
            _collect_ctes(q, ctx)
            sql = _rewrite(_alias_items(q), 0, len(q), ctx, "SELECT")
            conn.execute("BEGIN")
            drop_existing()
            conn.execute(f"CREATE VIEW {_q(name)} AS {sql}")
            conn.execute("COMMIT")
            return Result([], [], "CREATE")
        if as_idx is not None:
            res = self._query(toks[as_idx + 1:], ctx, None)
            defs = [(c["name"], c["type_text"] if c["type_text"] != "VOID" else "STRING") for c in res.columns]
            conn.execute("BEGIN")
            drop_existing()
            conn.execute(f"CREATE TABLE {_q(name)} (" + ", ".join(
                f"{_q(n)} {_sqlite_decl(t)}" for n, t in defs) + ")")
            if res.rows:
                conn.executemany(f"INSERT INTO {_q(name)} VALUES ({','.join('?' * len(defs))})",
                                 [tuple(_to_sqlite(v) for v in r) for r in res.rows])
            conn.execute("COMMIT")
            return Result([], [], "CREATE")
        if j >= len(toks) or not toks[j].is_op("("):
            raise _syntax_error(f"'{toks[j].text}'" if j < len(toks) else "end of input")
        k = _match(toks, j)
        coldefs = []
        for a, b in _split_top(toks, j + 1, k):
            if b <= a:
                continue
            if toks[a].is_kw("CONSTRAINT", "PRIMARY", "FOREIGN", "UNIQUE", "CHECK"):
                continue
            if toks[a].kind not in ("ident", "qident") or b - a < 2:
                raise _syntax_error(f"'{toks[a].text}'")
            cname = toks[a].val
            # type tokens: until NOT/COMMENT/DEFAULT/GENERATED/... at depth 0
            e2, d = a + 1, 0
            while e2 < b:
                t = toks[e2]
                if t.is_op("(", "<"):
                    d += 1
                elif t.is_op(")", ">"):
                    d -= 1
                elif d == 0 and e2 > a + 1 and t.kind == "ident":
                    break
                e2 += 1
            ttext = parse_type(_source(toks, a + 1, e2))
            if ttext is None:
                raise SqlError("UNSUPPORTED_DATATYPE",
                               f"Unsupported data type \"{_source(toks, a + 1, e2)}\".", "0A000")
            extra = ""
            rest = [t.up for t in toks[e2:b] if t.kind == "ident"]
            if "NOT" in rest and "NULL" in rest:
                extra = " NOT NULL"
            coldefs.append(f"{_q(cname)} {_sqlite_decl(ttext)}{extra}")
        if not coldefs:
            raise _syntax_error("')'")
        conn.execute("BEGIN")
        drop_existing()
        conn.execute(f"CREATE TABLE {_q(name)} ({', '.join(coldefs)})")
        conn.execute("COMMIT")
        return Result([], [], "CREATE")

    def _drop(self, toks, ctx: _Ctx) -> Result:
        if len(toks) < 2:
            raise _syntax_error("end of input")
        kind = toks[1].up if toks[1].kind == "ident" else None
        j = 2
        if kind in ("SCHEMA", "DATABASE", "CATALOG", "FUNCTION", "VOLUME"):
            return Result([], [], "DROP")
        if kind == "TEMPORARY" and len(toks) > 2 and toks[2].is_kw("VIEW"):
            kind, j = "VIEW", 3
        if kind not in ("TABLE", "VIEW"):
            raise _syntax_error(f"'{toks[1].text}'")
        if_exists = False
        if j + 1 < len(toks) and toks[j].is_kw("IF") and toks[j + 1].is_kw("EXISTS"):
            if_exists, j = True, j + 2
        parts, j = _read_name(toks, j)
        if not parts:
            raise _syntax_error("end of input")
        name = ctx.table_name(parts)
        row = ctx.conn.execute("SELECT type FROM sqlite_master WHERE name = ?", (name,)).fetchone()
        if row is None:
            if if_exists:
                return Result([], [], "DROP")
            raise _not_found(".".join(f"`{p}`" for p in parts))
        ctx.conn.execute(f"DROP {'VIEW' if row[0] == 'view' else 'TABLE'} {_q(name)}")
        return Result([], [], "DROP")

    def _show(self, toks, ctx: _Ctx) -> Result:
        what = toks[1].up if len(toks) > 1 and toks[1].kind == "ident" else None
        like = None
        if len(toks) >= 2 and toks[-1].kind == "str":
            like = re.compile("^" + ".*".join(re.escape(p).replace("\\|", "|") for p in toks[-1].val.split("*")) + "$",
                              re.I)
        names = [n.split(".") for n in self.table_names()]
        if what in ("TABLES", "VIEWS"):
            cat, sch = ctx.catalog, ctx.schema
            if len(toks) > 3 and toks[2].is_kw("IN", "FROM"):
                parts, _ = _read_name(toks, 3)
                if parts:
                    if len(parts) == 1:
                        sch = parts[0].lower()
                    else:
                        cat, sch = parts[-2].lower(), parts[-1].lower()
            rows = [(s, t, False) for c, s, t in names if c == cat and s == sch and (not like or like.match(t))]
            return Result([column_info("database", 0, "STRING"), column_info("tableName", 1, "STRING"),
                           column_info("isTemporary", 2, "BOOLEAN")], rows, "SHOW")
        if what in ("SCHEMAS", "DATABASES"):
            cat = ctx.catalog
            if len(toks) > 3 and toks[2].is_kw("IN", "FROM"):
                cat = toks[3].val.lower()
            found = sorted({s for c, s, _ in names if c == cat} | ({"default"} if cat == ctx.catalog else set()))
            return Result([column_info("databaseName", 0, "STRING")],
                          [(s,) for s in found if not like or like.match(s)], "SHOW")
        if what == "CATALOGS":
            found = sorted({c for c, _, _ in names} | {ctx.catalog})
            return Result([column_info("catalog", 0, "STRING")], [(c,) for c in found], "SHOW")
        if what == "COLUMNS":
            parts, _ = _read_name(toks, 3)
            cols = ctx.table_columns(ctx.table_name(parts or ["?"]))
            if cols is None:
                raise _not_found(".".join(f"`{p}`" for p in parts or ["?"]))
            return Result([column_info("col_name", 0, "STRING")], [(c,) for c, _ in cols], "SHOW")
        raise _syntax_error(f"'{toks[1].text}'" if len(toks) > 1 else "end of input")


def _alias_items(toks):
    """Give unaliased expression items of the outermost select list an alias equal to their
    source text, so rewriting does not leak into the result column names."""
    i = 0
    if toks and toks[0].is_kw("WITH"):
        depth = 0
        for i in range(len(toks)):
            t = toks[i]
            if t.is_op("("):
                depth += 1
            elif t.is_op(")"):
                depth -= 1
            elif depth == 0 and t.is_kw("SELECT"):
                break
        else:
            return toks
    if i >= len(toks) or not toks[i].is_kw("SELECT"):
        return toks
    s = i + 1
    if s < len(toks) and toks[s].is_kw("DISTINCT", "ALL"):
        s += 1
    depth, e = 0, len(toks)
    for j in range(s, len(toks)):
        t = toks[j]
        if t.is_op("("):
            depth += 1
        elif t.is_op(")"):
            depth -= 1
        elif depth == 0 and t.kind == "ident" and t.up in ("FROM", "WHERE", "GROUP", "HAVING", "ORDER",
                                                           "LIMIT", "UNION", "EXCEPT", "INTERSECT",
                                                           "WINDOW", "QUALIFY", "MINUS"):
            e = j
            break
    inserts = []
    for p, q in _split_top(toks, s, e):
        if q <= p or toks[q - 1].is_op("*"):
            continue
        _, name = _strip_alias(toks, p, q)
        if name is None:
            inserts.append((q, toks[p].val if q - p == 1 and toks[p].kind == "str" else _source(toks, p, q)))
    if not inserts:
        return toks
    out = list(toks)
    for q, text in reversed(inserts):
        out[q:q] = [Tok("ident", "AS", " "), Tok("qident", "`" + text.replace("`", "``") + "`", " ", text)]
    return out


def _bind(ctx):
    return {k: v[1] for k, v in ctx.params.items()}


def _not_found(display):
    return SqlError("TABLE_OR_VIEW_NOT_FOUND", f"The table or view {display} cannot be found. Verify the "
                    "spelling and correctness of the schema and catalog.", "42P01")


def _convert_params(parameters) -> dict:
    out = {}
    for p in parameters or []:
        if not isinstance(p, dict) or not isinstance(p.get("name"), str) or not p["name"]:
            raise SqlError("INVALID_PARAMETER_VALUE", "Each parameter needs a string `name`.", "22023")
        name = p["name"].lstrip(":")
        ttext = parse_type(p.get("type") or "STRING")
        if ttext is None:
            raise SqlError("INVALID_PARAMETER_VALUE", f"Unsupported type `{p.get('type')}` for the "
                           f"parameter `{name}`.", "22023")
        value = p.get("value")
        if value is None:
            out[name] = (ttext, None)
            continue
        if not isinstance(value, str):
            value = "true" if value is True else "false" if value is False else str(value)
        try:
            py = _coerce(value, ttext)
        except (ValueError, TypeError, OverflowError, decimal.InvalidOperation):
            raise SqlError("INVALID_PARAMETER_VALUE", f"The value '{value}' of the parameter `{name}` "
                           f"cannot be converted to {ttext}.", "22023") from None
        out[name] = (ttext, _to_sqlite(py))
    return out


def _map_error(e: sqlite3.Error, ctx: _Ctx, reason) -> SqlError:
    err = getattr(_local, "error", None)
    if err is not None:
        _local.error = None
        return err
    msg = str(e)
    if msg == "interrupted":
        if reason and reason[0] == "timeout":
            return SqlError("OPERATION_TIMEOUT", "The statement exceeded its timeout.", "HYT00",
                            "DEADLINE_EXCEEDED")
        return SqlError("OPERATION_CANCELED", "The statement was cancelled.", "HY008", "CANCELLED")
    m = re.match(r'near "(.*)": syntax error', msg, re.S)
    if m:
        return _syntax_error(f"'{m.group(1)}'")
    if "incomplete input" in msg:
        return _syntax_error("end of input")
    if msg.startswith("unrecognized token"):
        return _syntax_error(msg.split(":", 1)[1].strip())
    m = re.match(r"no such table: (?:main\.)?(.+)", msg)
    if m:
        n = m.group(1).strip('"')
        return _not_found(ctx.display.get(n.lower(), f"`{n}`"))
    m = re.match(r"no such column: (.+)", msg)
    if m:
        return SqlError("UNRESOLVED_COLUMN.WITHOUT_SUGGESTION", f"A column, variable, or function parameter "
                        f"with name `{m.group(1)}` cannot be resolved.", "42703")
    m = re.match(r"no such function: (.+)", msg)
    if m:
        return SqlError("UNRESOLVED_ROUTINE", f"Cannot resolve routine `{m.group(1)}` on search path "
                        f"[`system`.`builtin`, `system`.`session`, `{ctx.catalog}`.`{ctx.schema}`].", "42883")
    m = re.match(r"wrong number of arguments to function (\w+)", msg)
    if m:
        return SqlError("WRONG_NUM_ARGS", f"The `{m.group(1)}` requires a different number of parameters.",
                        "42605")
    m = re.match(r"table (.+) already exists", msg)
    if m:
        n = m.group(1).strip('"')
        return SqlError("TABLE_OR_VIEW_ALREADY_EXISTS", f"Cannot create table or view "
                        f"{ctx.display.get(n.lower(), n)} because it already exists.", "42P07")
    if msg.startswith("ambiguous column name"):
        return SqlError("AMBIGUOUS_REFERENCE", f"Reference `{msg.split(':', 1)[1].strip()}` is ambiguous.",
                        "42702")
    if "constraint failed" in msg:
        return SqlError("CONSTRAINT_VIOLATION", msg, "23000")
    if "misuse of aggregate" in msg or "aggregate functions are not allowed" in msg:
        return SqlError("MISSING_AGGREGATION", msg, "42803")
    if "values for" in msg and "columns" in msg:
        return SqlError("INSERT_COLUMN_ARITY_MISMATCH", msg, "21S01")
    if "has no column named" in msg:
        return SqlError("UNRESOLVED_COLUMN.WITHOUT_SUGGESTION", msg, "42703")
    if "database is locked" in msg:
        return SqlError("CONCURRENT_WRITE", msg, "40000", "ABORTED")
    return SqlError("INTERNAL_ERROR", msg, "XX000", "INTERNAL_ERROR")


def engine_for(state) -> "SqlEngine":
    """The workspace's one SqlEngine, shared by 1.2 commands, SQL statements and jobs' tasks."""
    return state.area("sql_engine", SqlEngine)
