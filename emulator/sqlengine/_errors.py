"""Databricks SQL errors: error classes, SQLSTATEs and message shapes, and the mapping of DuckDB's
exceptions onto them. Standard library only."""
from __future__ import annotations

import re
from typing import Callable, Dict, Optional


class SqlError(Exception):
    """A Databricks SQL error. ``message`` reads like Databricks': ``[ERROR_CLASS] text SQLSTATE: 42P01``;
    ``error_class`` (``TABLE_OR_VIEW_NOT_FOUND``), ``sql_state`` (``42P01``) and ``error_code`` (the
    Statement Execution ``status.error.error_code``: ``BAD_REQUEST``, ``CANCELLED``, ...)."""

    def __init__(self, error_class: str, message: str, sql_state: str = "42000",
                 error_code: str = "BAD_REQUEST"):
        self.error_class = error_class
        self.sql_state = sql_state
        self.error_code = error_code
        self.message = f"[{error_class}] {message}"
        if sql_state and "SQLSTATE" not in message:
            self.message += f" SQLSTATE: {sql_state}"
        super().__init__(self.message)


def q(*parts: str) -> str:
    """A name as Databricks quotes it in messages: `main`.`default`.`t`."""
    return ".".join("`" + p.replace("`", "``") + "`" for p in parts)


# --------------------------------------------------------------------------- constructors

def syntax_error(near: str) -> SqlError:
    return SqlError("PARSE_SYNTAX_ERROR", f"Syntax error at or near {near}.", "42601")


def table_not_found(display: str) -> SqlError:
    return SqlError("TABLE_OR_VIEW_NOT_FOUND", f"The table or view {display} cannot be found. Verify the "
                    "spelling and correctness of the schema and catalog.\nIf you did not qualify the name with a "
                    "schema, verify the current_schema() output, or qualify the name with the correct schema and "
                    "catalog.\nTo tolerate the error on drop use DROP VIEW IF EXISTS or DROP TABLE IF EXISTS.",
                    "42P01")


def table_exists(display: str) -> SqlError:
    return SqlError("TABLE_OR_VIEW_ALREADY_EXISTS", f"Cannot create table or view {display} because it already "
                    "exists.\nChoose a different name, drop the existing object, add the IF NOT EXISTS clause to "
                    "tolerate pre-existing objects, or add the OR REPLACE clause to replace the existing object.",
                    "42P07")


def schema_not_found(display: str) -> SqlError:
    return SqlError("SCHEMA_NOT_FOUND", f"The schema {display} cannot be found. Verify the spelling and "
                    "correctness of the schema and catalog.\nIf you did not qualify the name with a catalog, "
                    "verify the current_schema() output, or qualify the name with the correct catalog.\nTo "
                    "tolerate the error on drop use DROP SCHEMA IF EXISTS.", "42704")


def schema_exists(display: str) -> SqlError:
    return SqlError("SCHEMA_ALREADY_EXISTS", f"Cannot create schema {display} because it already exists.\n"
                    "Choose a different name, drop the existing schema, or add the IF NOT EXISTS clause to "
                    "tolerate pre-existing schema.", "42P06")


def schema_not_empty(display: str) -> SqlError:
    return SqlError("SCHEMA_NOT_EMPTY", f"Cannot drop a schema {display} because it contains objects.\n"
                    "Use DROP SCHEMA ... CASCADE to drop the schema and all its objects.", "2BP01")


def catalog_not_found(name: str) -> SqlError:
    return SqlError("NO_SUCH_CATALOG_EXCEPTION", f"Catalog '{name}' was not found. Please verify the catalog "
                    "name and then retry the query or command again.", "42704")


def catalog_exists(name: str) -> SqlError:
    return SqlError("CATALOG_ALREADY_EXISTS", f"Cannot create catalog {q(name)} because it already exists.\n"
                    "Choose a different name, drop the existing catalog, or add the IF NOT EXISTS clause to "
                    "tolerate pre-existing catalog.", "42P04")


def divide_by_zero() -> SqlError:
    return SqlError("DIVIDE_BY_ZERO", "Division by zero. Use `try_divide` to tolerate divisor being 0 and return "
                    "NULL instead. If necessary set \"ansi_mode\" to \"false\" to bypass this error.", "22012")


_OVERFLOW_TYPE = {"INT8": "tinyint", "INT16": "smallint", "INT32": "integer", "INT64": "long",
                  "INT128": "long", "TINYINT": "tinyint", "SMALLINT": "smallint", "INT": "integer",
                  "BIGINT": "long"}


def arithmetic_overflow(kind: str = "long", op: str = "add") -> SqlError:
    return SqlError("ARITHMETIC_OVERFLOW", f"{kind} overflow. Use 'try_{op}' to tolerate overflow and return "
                    "NULL instead. If necessary set \"ansi_mode\" to \"false\" to bypass this error.", "22003")


def insufficient_permissions(privilege: str, securable_type: str, full_name: str) -> SqlError:
    return SqlError("INSUFFICIENT_PERMISSIONS", f"Insufficient privileges:\nUser does not have "
                    f"{privilege.replace('_', ' ')} on {securable_type.capitalize()} '{full_name}'.", "42501")


def cancelled() -> SqlError:
    return SqlError("OPERATION_CANCELED", "The statement was cancelled.", "HY008", "CANCELLED")


def timed_out(seconds: float) -> SqlError:
    return SqlError("QUERY_EXECUTION_TIMEOUT_EXCEEDED", f"The query was cancelled because it exceeded the "
                    f"timeout of {seconds:g} seconds.", "57KD0", "DEADLINE_EXCEEDED")


# --------------------------------------------------------------------------- DuckDB -> Databricks

_DUCK_TYPE = {"INT8": "TINYINT", "INT16": "SMALLINT", "INT32": "INT", "INT64": "BIGINT", "INT128": "BIGINT",
              "FLOAT": "FLOAT", "DOUBLE": "DOUBLE", "VARCHAR": "STRING", "BOOL": "BOOLEAN", "BOOLEAN": "BOOLEAN",
              "DATE": "DATE", "TIMESTAMP": "TIMESTAMP_NTZ", "TIMESTAMP WITH TIME ZONE": "TIMESTAMP",
              "BLOB": "BINARY", "INTEGER": "INT", "UUID": "STRING"}


def _db_type(text: str) -> str:
    t = text.strip().upper()
    return _DUCK_TYPE.get(t, t.replace(" ", ""))


def _first_line(msg: str) -> str:
    text = msg.split("\n\nLINE ", 1)[0].strip()
    return re.sub(r"^[A-Za-z ]+ Error: ", "", text)


def from_duckdb(exc: Exception, names: Callable[[str], Optional[str]], search_path: str) -> SqlError:
    """Map a DuckDB exception to a Databricks SqlError. ``names(duck_name)`` turns an internal table
    name from a DuckDB message into the name the user wrote (backquoted), or None."""
    kind = type(exc).__name__
    msg = str(exc)
    body = _first_line(msg)
    embedded = re.search(r"\[([A-Z_]+(?:\.[A-Z_]+)?)\] (.*?)(?: SQLSTATE: ([0-9A-Z]{5}))?$", body, re.S)
    if embedded and kind == "InvalidInputException":          # error('[CLASS] ...') raised by a rewrite
        cls, text, state = embedded.groups()
        return SqlError(cls, text, state or _CLASS_STATE.get(cls, "42000"))
    if kind == "ParserException":
        m = re.search(r'syntax error at or near "(.*?)"', body, re.S)
        if m:
            return syntax_error(f"'{m.group(1)}'")
        if "syntax error at end of input" in body:
            return syntax_error("end of input")
        return syntax_error("end of input" if "unterminated" in body else f"'{body[:40]}'")
    if kind == "InterruptException":
        return cancelled()
    if "Division by zero" in body:
        return divide_by_zero()
    if kind == "CatalogException":
        m = re.search(r'Table with name "?([^"!]+?)"? does not exist', body)
        if m:
            return table_not_found(names(m.group(1)) or q(*m.group(1).split(".")))
        m = re.search(r'Table with name "?([^"!]+?)"? already exists', body) or \
            re.search(r'(?:View|Table) with name "?([^"!]+?)"? already exists', body)
        if m:
            return table_exists(names(m.group(1)) or q(*m.group(1).split(".")))
        m = re.search(r"(?:Scalar|Table|Aggregate|Macro) Function with name \"?([^\"!]+?)\"? does not exist", body)
        if m:
            return SqlError("UNRESOLVED_ROUTINE", f"Cannot resolve routine `{m.group(1)}` on search path "
                            f"[`system`.`builtin`, `system`.`session`, {search_path}].", "42883")
        m = re.search(r"Schema with name \"?([^\"!]+?)\"? does not exist", body)
        if m:
            return schema_not_found(q(*m.group(1).split(".")))
        m = re.search(r'Catalog "?([^"!]+?)"? does not exist', body)
        if m:
            return catalog_not_found(m.group(1))
    if kind == "BinderException":
        m = re.search(r'Referenced column "?([^"]+?)"? not found in FROM clause!?(?:\s*Candidate bindings: (.*))?',
                      body, re.S)
        if m is None:
            m = re.search(r'Referenced column "?([^"]+?)"? (?:was )?not found', body)
        if m:
            cands = re.findall(r'"([^"]+)"', m.group(2) or "") if m.lastindex and m.lastindex >= 2 else []
            if cands:
                names_ = ", ".join("`" + c.split(".")[-1] + "`" for c in cands[:5])
                return SqlError("UNRESOLVED_COLUMN.WITH_SUGGESTION", f"A column, variable, or function parameter "
                                f"with name `{m.group(1)}` cannot be resolved. Did you mean one of the following? "
                                f"[{names_}].", "42703")
            return SqlError("UNRESOLVED_COLUMN.WITHOUT_SUGGESTION", f"A column, variable, or function parameter "
                            f"with name `{m.group(1)}` cannot be resolved.", "42703")
        m = re.search(r'column "?([^"]+?)"? must appear in the GROUP BY clause', body)
        if m:
            return SqlError("MISSING_AGGREGATION", f"The non-aggregating expression `{m.group(1)}` is based on "
                            "columns which are not participating in the GROUP BY clause.\nAdd the columns or the "
                            "expression to the GROUP BY, aggregate the expression, or use `any_value("
                            f"{m.group(1)})` if you do not care which of the values within a group is returned.",
                            "42803")
        m = re.search(r'Ambiguous reference to column name "?([^"]+?)"?(?: \(|$)', body)
        if m:
            return SqlError("AMBIGUOUS_REFERENCE", f"Reference `{m.group(1)}` is ambiguous.", "42702")
        m = re.search(r'table "?([^"]+?)"? has (\d+) columns but (\d+) values were supplied', body)
        if m:
            which = "NOT_ENOUGH_DATA_COLUMNS" if int(m.group(3)) < int(m.group(2)) else "TOO_MANY_DATA_COLUMNS"
            return SqlError(f"INSERT_COLUMN_ARITY_MISMATCH.{which}", f"Cannot write to "
                            f"{names(m.group(1)) or q(m.group(1))}, the reason is "
                            f"{'not enough' if which.startswith('NOT') else 'too many'} data columns.", "21S01")
        m = re.search(r"No function matches the given name and argument types '(\w+)\((.*?)\)'", body)
        if m:
            return SqlError("DATATYPE_MISMATCH.UNEXPECTED_INPUT_TYPE", f"Cannot resolve \"{m.group(1)}("
                            f"{m.group(2)})\" due to data type mismatch: the arguments do not have the types the "
                            "function takes.", "42K09")
        return SqlError("UNRESOLVED_ROUTINE" if "Function" in body else "DATATYPE_MISMATCH",
                        body, "42883" if "Function" in body else "42K09")
    if kind == "ConversionException":
        m = re.search(r"Could not convert string [\"'](.*?)[\"'] to (\w+(?:\(\d+,\s*\d+\))?)", body, re.S)
        if m and m.group(2).upper().startswith("DECIMAL"):
            return SqlError("NUMERIC_VALUE_OUT_OF_RANGE.WITH_SUGGESTION", f"{m.group(1)} cannot be represented as "
                            f"{m.group(2).replace(',', ', ').replace('DECIMAL', 'Decimal')}. If necessary set "
                            "\"ansi_mode\" to \"false\" to bypass this error, and return NULL instead.", "22003")
        if m:
            return SqlError("CAST_INVALID_INPUT", f"The value '{m.group(1)}' of the type \"STRING\" cannot be cast to "
                            f"\"{_db_type(m.group(2))}\" because it is malformed. Correct the value as per the "
                            "syntax, or change its target type. Use `try_cast` to tolerate malformed input and "
                            "return NULL instead.", "22018")
        m = re.search(r"Type (\w+) with value (.*?) can't be cast because the value is out of range for the "
                      r"destination type (\w+)", body)
        if m:
            return SqlError("CAST_OVERFLOW", f"The value {m.group(2)} of the type \"{_db_type(m.group(1))}\" cannot "
                            f"be cast to \"{_db_type(m.group(3))}\" due to an overflow. Use `try_cast` to tolerate "
                            "overflow and return NULL instead. If necessary set \"ansi_mode\" to \"false\" to "
                            "bypass this error.", "22003")
        m = re.search(r"Could not cast value (.*?) to (DECIMAL\(\d+,\s*\d+\))", body)
        if m:
            return SqlError("NUMERIC_VALUE_OUT_OF_RANGE.WITH_SUGGESTION", f"{m.group(1)} cannot be represented as "
                            f"{m.group(2).replace('DECIMAL', 'Decimal')}. If necessary set \"ansi_mode\" to "
                            "\"false\" to bypass this error, and return NULL instead.", "22003")
        m = re.search(r'invalid (date|timestamp) field format: "(.*?)"', body, re.S)
        if m:
            return SqlError("CAST_INVALID_INPUT", f"The value '{m.group(2)}' of the type \"STRING\" cannot be cast to "
                            f"\"{m.group(1).upper()}\" because it is malformed. Correct the value as per the "
                            "syntax, or change its target type. Use `try_cast` to tolerate malformed input and "
                            "return NULL instead.", "22018")
        return SqlError("CAST_INVALID_INPUT", body, "22018")
    if kind == "OutOfRangeException":
        m = re.search(r"Overflow in (addition|subtraction|multiplication|negation) of (\w+)", body)
        if m:
            op = {"addition": "add", "subtraction": "subtract", "multiplication": "multiply",
                  "negation": "subtract"}[m.group(1)]
            if m.group(2).startswith("DECIMAL"):
                return SqlError("NUMERIC_VALUE_OUT_OF_RANGE.WITHOUT_SUGGESTION", "The result of the arithmetic "
                                "cannot be represented as a DECIMAL with the precision of its operands.", "22003")
            return arithmetic_overflow(_OVERFLOW_TYPE.get(m.group(2), "long"), op)
        return SqlError("ARITHMETIC_OVERFLOW", body, "22003")
    if kind == "ConstraintException":
        m = re.search(r"NOT NULL constraint failed: (?:\w+\.)?(\w+)", body)
        if m:
            return SqlError("DELTA_NOT_NULL_CONSTRAINT_VIOLATED", f"NOT NULL constraint violated for column: "
                            f"{m.group(1)}.", "23502")
        return SqlError("DELTA_VIOLATE_CONSTRAINT_WITH_VALUES", body, "23001")
    if kind == "TransactionException":
        return SqlError("DELTA_CONCURRENT_APPEND", f"ConcurrentAppendException: {body}", "2D521", "ABORTED")
    if kind == "NotImplementedException":
        return SqlError("UNSUPPORTED_FEATURE", f"The emulator's SQL engine does not support this: {body}", "0A000")
    return SqlError("INTERNAL_ERROR", f"The emulator's SQL engine could not run the statement: {body}", "XX000",
                    "INTERNAL_ERROR")


_CLASS_STATE: Dict[str, str] = {"DIVIDE_BY_ZERO": "22012", "ARITHMETIC_OVERFLOW": "22003"}
