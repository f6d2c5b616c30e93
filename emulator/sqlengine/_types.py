"""Databricks types of the SQL engine: DuckDB type -> Databricks type text, manifest columns,
and the wire text of values (Statement Execution ``data_array``, 1.2 table results).

Standard library only (no DuckDB import): the statements area and the Python runner use the
value formatters without starting an engine.
"""
from __future__ import annotations

import base64
import datetime as _dt
import math
import re
from decimal import Decimal
from typing import Any, Callable, List, Optional

# Databricks type text (canonical spelling) -> manifest ``type_name``
_TYPE_NAME = {"TINYINT": "BYTE", "SMALLINT": "SHORT", "INT": "INT", "BIGINT": "LONG", "FLOAT": "FLOAT",
              "DOUBLE": "DOUBLE", "DECIMAL": "DECIMAL", "STRING": "STRING", "BOOLEAN": "BOOLEAN",
              "DATE": "DATE", "TIMESTAMP": "TIMESTAMP", "TIMESTAMP_NTZ": "TIMESTAMP", "BINARY": "BINARY",
              "VOID": "NULL", "INTERVAL": "INTERVAL", "ARRAY": "ARRAY", "MAP": "MAP", "STRUCT": "STRUCT",
              "CHAR": "CHAR", "VARCHAR": "STRING"}
# Unity Catalog's ColumnTypeName differs from the statement manifest for a few types
_UC_TYPE_NAME = dict(_TYPE_NAME, TIMESTAMP_NTZ="TIMESTAMP_NTZ")

_INT_BOUNDS = {"TINYINT": 2 ** 7, "SMALLINT": 2 ** 15, "INT": 2 ** 31, "BIGINT": 2 ** 63}

# DuckDB type id -> Databricks type text for the simple types
_SIMPLE = {
    "boolean": "BOOLEAN", "tinyint": "TINYINT", "smallint": "SMALLINT", "integer": "INT", "bigint": "BIGINT",
    "hugeint": "BIGINT",            # DuckDB's sum() of integers; Databricks answers BIGINT (range-checked)
    "utinyint": "SMALLINT", "usmallint": "INT", "uinteger": "BIGINT", "ubigint": "DECIMAL(20,0)",
    "uhugeint": "DECIMAL(38,0)", "float": "FLOAT", "double": "DOUBLE", "varchar": "STRING",
    "blob": "BINARY", "date": "DATE", "timestamp with time zone": "TIMESTAMP", "timestamp": "TIMESTAMP_NTZ",
    "timestamp_s": "TIMESTAMP_NTZ", "timestamp_ms": "TIMESTAMP_NTZ", "timestamp_ns": "TIMESTAMP_NTZ",
    "time": "STRING", "time with time zone": "STRING", "interval": "INTERVAL", "uuid": "STRING",
    "json": "STRING", "enum": "STRING", "bit": "STRING", "null": "VOID", '"null"': "VOID", "varint": "DECIMAL(38,0)",
    "bignum": "DECIMAL(38,0)",
}


def duck_type_text(t) -> str:
    """Databricks type text of a DuckDB type (``DuckDBPyType``): ``INT``, ``DECIMAL(10,2)``,
    ``ARRAY<INT>``, ``MAP<STRING, BIGINT>``, ``STRUCT<x: INT, y: STRING>``."""
    tid = t.id
    if tid == "decimal":
        kids = dict(t.children)
        return f"DECIMAL({kids['precision']},{kids['scale']})"
    if tid in ("list", "array"):
        return f"ARRAY<{duck_type_text(dict(t.children)['child'])}>"
    if tid == "map":
        kids = dict(t.children)
        return f"MAP<{duck_type_text(kids['key'])}, {duck_type_text(kids['value'])}>"
    if tid == "struct":
        return "STRUCT<" + ", ".join(f"{_field_name(n)}: {duck_type_text(c)}" for n, c in t.children) + ">"
    if tid == "union":
        return "STRING"
    return _SIMPLE.get(tid, _SIMPLE.get(str(t).lower(), "STRING"))


def _field_name(name: str) -> str:
    return name if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name) else "`" + name.replace("`", "``") + "`"


def base_type(type_text: str) -> str:
    return re.split(r"[(<]", type_text, 1)[0].strip().upper()


def column_info(name: str, position: int, type_text: str) -> dict:
    """One manifest column as Databricks sends it: ``name``, ``position``, ``type_name``,
    ``type_text`` and, for DECIMAL, ``type_precision``/``type_scale``."""
    col = {"name": name, "position": position, "type_name": _TYPE_NAME.get(base_type(type_text), "STRING"),
           "type_text": type_text}
    m = re.fullmatch(r"DECIMAL\((\d+),\s*(\d+)\)", type_text)
    if m:
        col["type_precision"], col["type_scale"] = int(m.group(1)), int(m.group(2))
    elif base_type(type_text) == "INTERVAL":
        col["type_interval_type"] = type_text[len("INTERVAL"):].strip() or "DAY TO SECOND"
    return col


def uc_type_name(type_text: str) -> str:
    """Unity Catalog ``ColumnTypeName`` of a type text (TIMESTAMP_NTZ stays itself)."""
    return _UC_TYPE_NAME.get(base_type(type_text), "STRING")


def hive_type(type_text: str) -> str:
    """Type string of the Command Execution 1.2 table schema: ``int``, ``decimal(10,2)``,
    ``array<int>``, ``struct<x:int,y:string>``."""
    return re.sub(r":\s+", ":", re.sub(r",\s+", ",", type_text.lower()))


# --------------------------------------------------------------------------- value converters

def _utc_naive(v):
    if v.tzinfo is not None:
        v = v.astimezone(_dt.timezone.utc).replace(tzinfo=None)
    return v


def converter(t, overflow: Callable[[str], Exception]) -> Optional[Callable[[Any], Any]]:
    """A function normalising DuckDB's Python value of type ``t`` to the engine's Python value of
    the Databricks type (None when no conversion is needed). ``overflow(type_text)`` builds the
    error raised when a value does not fit (DuckDB's HUGEINT sums that Databricks keeps in BIGINT)."""
    tid = t.id
    if tid == "hugeint":
        lo, hi = -2 ** 63, 2 ** 63

        def big(v):
            if v is not None and not lo <= v < hi:
                raise overflow("BIGINT")
            return v
        return big
    if tid in ("uuid", "time", "time with time zone", "bit", "union"):
        return lambda v: None if v is None else str(v)
    if tid == "timestamp with time zone":
        return lambda v: None if v is None else _utc_naive(v)
    if tid in ("list", "array", "map", "struct"):
        inner = _nested_needs(t)
        if inner:
            return _deep_normalise
    return None


def _nested_needs(t) -> bool:
    tid = t.id
    if tid in ("uuid", "time", "timestamp with time zone", "hugeint"):
        return True
    if tid in ("list", "array", "map", "struct"):
        return any(_nested_needs(c) for _, c in t.children)
    return False


def _deep_normalise(v):
    if isinstance(v, list):
        return [_deep_normalise(x) for x in v]
    if isinstance(v, dict):
        return {k: _deep_normalise(x) for k, x in v.items()}
    if isinstance(v, _dt.datetime):
        return _utc_naive(v)
    if isinstance(v, (_dt.time,)) or type(v).__name__ == "UUID":
        return str(v)
    return v


# --------------------------------------------------------------------------- wire text

def fmt_double(v: float) -> str:
    """A DOUBLE/FLOAT as Databricks writes it (Java's Double.toString: ``1.0E10``, ``NaN``)."""
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
    a = abs(v)
    if a >= 1e7 or 0 < a < 1e-3:
        for digits in range(1, 18):                 # the shortest mantissa that round-trips
            m, e = f"{v:.{digits - 1}e}".split("e")
            if float(f"{m}e{e}") == v:
                break
        if "." not in m:
            m += ".0"
        return f"{m}E{int(e)}"
    return r


def _interval_text(v: _dt.timedelta) -> str:
    total = v.total_seconds()
    sign = "-" if total < 0 else ""
    v = abs(v)
    hours, rem = divmod(v.seconds, 3600)
    minutes, seconds = divmod(rem, 60)
    return f"{sign}{v.days} {hours:02d}:{minutes:02d}:{seconds:02d}.{v.microseconds:06d}000"


def format_value(v) -> Optional[str]:
    """Statement Execution JSON_ARRAY text of a value: every non-null value is a string; ARRAY,
    MAP and STRUCT values are their JSON text (``[1,2]``, ``{"a":1}``)."""
    if v is None:
        return None
    if isinstance(v, str):
        return v
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return fmt_double(v)
    if isinstance(v, Decimal):
        return format(v, "f")
    if isinstance(v, _dt.datetime):
        return _utc_naive(v).isoformat(timespec="milliseconds") + "Z"
    if isinstance(v, _dt.date):
        return v.isoformat()
    if isinstance(v, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(v)).decode()
    if isinstance(v, _dt.timedelta):
        return _interval_text(v)
    if isinstance(v, (list, tuple, dict)):
        return json_text(v)
    return str(v)


def json_text(v) -> str:
    """Compact JSON of a nested value as Databricks writes complex types (numbers stay numbers,
    decimals keep their scale, dates and timestamps are strings, binary is base64)."""
    import json

    parts: List[str] = []

    def emit(x):
        if x is None:
            parts.append("null")
        elif isinstance(x, bool):
            parts.append("true" if x else "false")
        elif isinstance(x, int):
            parts.append(str(x))
        elif isinstance(x, float):
            parts.append(repr(x) if math.isfinite(x) else json.dumps(fmt_double(x)))
        elif isinstance(x, Decimal):
            parts.append(format(x, "f"))
        elif isinstance(x, str):
            parts.append(json.dumps(x, ensure_ascii=False))
        elif isinstance(x, dict):
            parts.append("{")
            for i, (k, val) in enumerate(x.items()):
                if i:
                    parts.append(",")
                parts.append(json.dumps(k if isinstance(k, str) else format_value(k), ensure_ascii=False))
                parts.append(":")
                emit(val)
            parts.append("}")
        elif isinstance(x, (list, tuple)):
            parts.append("[")
            for i, val in enumerate(x):
                if i:
                    parts.append(",")
                emit(val)
            parts.append("]")
        else:
            parts.append(json.dumps(format_value(x), ensure_ascii=False))

    emit(v)
    return "".join(parts)


def json_value(v):
    """Typed JSON value for the Command Execution 1.2 table shape: numbers and booleans stay
    native, decimals/dates/timestamps/binary become strings, complex values stay nested."""
    if v is None or isinstance(v, (bool, int, str)):
        return v
    if isinstance(v, float):
        return v if math.isfinite(v) else fmt_double(v)
    if isinstance(v, _dt.datetime):
        v = _utc_naive(v)
        return v.isoformat(sep=" ", timespec="microseconds" if v.microsecond else "seconds")
    if isinstance(v, (list, tuple)):
        return [json_value(x) for x in v]
    if isinstance(v, dict):
        return {str(k): json_value(x) for k, x in v.items()}
    return format_value(v)
