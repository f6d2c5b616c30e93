"""Worker process of a Python execution context (started by pyrunner.PythonContext).

Runs as ``python -I -u _pyworker.py <fd_in> <fd_out>``; standard library only, no package imports.
Protocol: one JSON object per line on the two inherited pipe fds (never on stdout, which user
code owns):
    parent -> worker  {"op": "exec", "id": str, "code": str, "max_output": int,
                       optional: "repl": bool (default true: the last expression's value is printed;
                       false runs the code as a script, where SystemExit(0) is a normal end),
                       "file": name shown in tracebacks (default "<command-N>"),
                       "argv": [...] (sys.argv from now on),
                       "widgets": {name: value} (installs `dbutils` for a notebook: widgets.get,
                       notebook.exit(value) -> results {"resultType": "exit", "data": value}),
                       "path": [...] (entries put first on sys.path, e.g. a wheel)}
                      {"op": "sql_result", "columns": [...], "rows": [[...]]} | {"op": "sql_error", ...}
    worker -> parent  {"op": "ready", "pid": int}
                      {"op": "result", "id": str, "results": {...}, "cancelled": bool,
                       "stdout": what the code printed (also when it failed)}
                      {"op": "sql", "statement": str, "parameters": [...]}
SIGINT interrupts the running command (KeyboardInterrupt); it is ignored while idle.
"""
import ast
import builtins
import datetime
import decimal
import io
import json
import linecache
import os
import signal
import sys
import traceback

_FILE = os.path.abspath(__file__)


class _State:
    running = False
    pending = False
    table = None
    stdout = ""


_state = _State()


def _on_sigint(signum, frame):
    if _state.running:
        raise KeyboardInterrupt
    _state.pending = True


class _Capture(io.TextIOBase):
    def __init__(self, limit):
        self.parts, self.size, self.limit, self.truncated = [], 0, limit, False

    def writable(self):
        return True

    def isatty(self):
        return False

    @property
    def encoding(self):
        return "utf-8"

    def write(self, s):
        if not isinstance(s, str):
            raise TypeError(f"write() argument must be str, not {type(s).__name__}")
        if self.size < self.limit:
            room = self.limit - self.size
            if len(s) > room:
                self.parts.append(s[:room])
                self.size = self.limit
                self.truncated = True
            else:
                self.parts.append(s)
                self.size += len(s)
        elif s:
            self.truncated = True
        return len(s)

    def flush(self):
        pass

    def text(self):
        return "".join(self.parts)


class _Proto:
    def __init__(self, fd_in, fd_out):
        self.r = os.fdopen(fd_in, "r", encoding="utf-8", newline="\n")
        self.w = os.fdopen(fd_out, "w", encoding="utf-8", newline="\n")

    def send(self, obj):
        self.w.write(json.dumps(obj, default=str) + "\n")
        self.w.flush()

    def recv(self):
        line = self.r.readline()
        if not line:
            return None
        return json.loads(line)


_proto = None


# ------------------------------------------------------------------ tiny spark stand-in


class Row(tuple):
    """Tuple with attribute/key access by column name (like pyspark.sql.Row)."""

    def __new__(cls, values, fields):
        r = super().__new__(cls, values)
        r.__fields__ = list(fields)
        return r

    def __getattr__(self, name):
        try:
            return self[self.__fields__.index(name)]
        except ValueError:
            raise AttributeError(name) from None

    def __getitem__(self, k):
        if isinstance(k, str):
            return tuple.__getitem__(self, self.__fields__.index(k))
        return tuple.__getitem__(self, k)

    def asDict(self):
        return dict(zip(self.__fields__, self))

    def __repr__(self):
        return "Row(" + ", ".join(f"{f}={v!r}" for f, v in zip(self.__fields__, self)) + ")"


def _from_json(v, type_name):
    if v is None:
        return None
    try:
        if type_name == "DATE":
            return datetime.date.fromisoformat(v)
        if type_name == "TIMESTAMP":
            return datetime.datetime.fromisoformat(v)
        if type_name == "DECIMAL":
            return decimal.Decimal(v)
    except (ValueError, TypeError, decimal.InvalidOperation):
        return v
    return v


class DataFrame:
    def __init__(self, columns, rows):
        self._columns = columns
        names = [c["name"] for c in columns]
        self._rows = [Row([_from_json(v, c["type_name"]) for v, c in zip(r, columns)], names) for r in rows]

    @property
    def columns(self):
        return [c["name"] for c in self._columns]

    @property
    def dtypes(self):
        return [(c["name"], c["type_text"].lower()) for c in self._columns]

    def collect(self):
        return list(self._rows)

    def first(self):
        return self._rows[0] if self._rows else None

    def head(self, n=None):
        return self.first() if n is None else self._rows[:n]

    def take(self, n):
        return self._rows[:n]

    def count(self):
        return len(self._rows)

    def show(self, n=20, truncate=True):
        names = self.columns
        rows = [["null" if v is None else str(v) for v in r] for r in self._rows[:n]]
        if truncate:
            rows = [[s if len(s) <= 20 else s[:17] + "..." for s in r] for r in rows]
        widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(names)]
        sep = "+" + "+".join("-" * w for w in widths) + "+"
        print(sep)
        print("|" + "|".join(h.rjust(w) for h, w in zip(names, widths)) + "|")
        print(sep)
        for r in rows:
            print("|" + "|".join(s.rjust(w) for s, w in zip(r, widths)) + "|")
        print(sep)
        if len(self._rows) > n:
            print(f"only showing top {n} rows")

    def __repr__(self):
        return "DataFrame[" + ", ".join(f"{n}: {t}" for n, t in self.dtypes) + "]"


def _param(name, v):
    if v is None:
        return {"name": name, "value": None}
    if isinstance(v, bool):
        return {"name": name, "value": "true" if v else "false", "type": "BOOLEAN"}
    if isinstance(v, int):
        return {"name": name, "value": str(v), "type": "BIGINT"}
    if isinstance(v, float):
        return {"name": name, "value": repr(v), "type": "DOUBLE"}
    if isinstance(v, decimal.Decimal):
        t = v.as_tuple()
        s = max(0, -t.exponent)
        return {"name": name, "value": str(v), "type": f"DECIMAL({max(len(t.digits), s, 1)},{s})"}
    if isinstance(v, datetime.datetime):
        return {"name": name, "value": v.isoformat(sep=" "), "type": "TIMESTAMP"}
    if isinstance(v, datetime.date):
        return {"name": name, "value": v.isoformat(), "type": "DATE"}
    return {"name": name, "value": str(v)}


class SparkSession:
    """Minimal stand-in: spark.sql(...) runs on the emulator's SQL engine."""

    def sql(self, sqlQuery, args=None, **kwargs):
        params = [_param(k, v) for k, v in dict(args or {}, **kwargs).items()]
        was = _state.running
        _state.running = False  # no KeyboardInterrupt while the protocol round trip is in flight
        try:
            _proto.send({"op": "sql", "statement": sqlQuery, "parameters": params})
            msg = _proto.recv()
        finally:
            _state.running = was
        if _state.pending and was:
            _state.pending = False
            raise KeyboardInterrupt
        if msg is None:
            raise SystemExit(0)
        if msg.get("op") == "sql_error":
            raise RuntimeError(msg.get("message", "SQL error"))
        return DataFrame(msg["columns"], msg["rows"])

    def range(self, start, end=None, step=1):
        if end is None:
            start, end = 0, start
        return self.sql(f"SELECT id FROM range({int(start)}, {int(end)}, {int(step)})")


def display(obj, *args, **kwargs):
    if isinstance(obj, DataFrame):
        _state.table = {
            "resultType": "table",
            "data": [[_to_json(v) for v in r] for r in obj._rows],
            "schema": [{"name": c["name"], "type": c["type_text"].lower(), "metadata": "{}"} for c in obj._columns],
            "truncated": False,
            "isJsonSchema": False,
        }
    else:
        print(obj)


def _to_json(v):
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    if isinstance(v, datetime.datetime):
        return v.isoformat(sep=" ")
    return str(v)


# ------------------------------------------------------------------ dbutils (notebook tasks)


class NotebookExit(BaseException):
    """dbutils.notebook.exit(value): ends the notebook; the value becomes the task's result."""

    def __init__(self, value):
        super().__init__(value)
        self.value = value


class InputWidgetNotDefined(Exception):
    pass


class _Widgets:
    def __init__(self, values):
        self._values = dict(values)

    def get(self, name):
        if name not in self._values:
            raise InputWidgetNotDefined(f"No input widget named {name} is defined")
        return self._values[name]

    def getArgument(self, name, defaultValue=None):
        return self._values.get(name, defaultValue)

    def getAll(self):
        return dict(self._values)

    def _define(self, name, defaultValue):
        self._values.setdefault(name, "" if defaultValue is None else str(defaultValue))

    def text(self, name, defaultValue="", label=None):
        self._define(name, defaultValue)

    def dropdown(self, name, defaultValue, choices=None, label=None):
        self._define(name, defaultValue)

    combobox = dropdown

    def multiselect(self, name, defaultValue, choices=None, label=None):
        self._define(name, defaultValue)

    def remove(self, name):
        self._values.pop(name, None)

    def removeAll(self):
        self._values.clear()


class _Notebook:
    def exit(self, value):
        raise NotebookExit(value)


class _DBUtils:
    def __init__(self, widgets):
        self.widgets = _Widgets(widgets)
        self.notebook = _Notebook()

    def __repr__(self):
        return "<dbutils (emulator): widgets, notebook.exit>"


# ------------------------------------------------------------------ execution


def _user_tb(tb):
    while tb is not None and os.path.abspath(tb.tb_frame.f_code.co_filename) == _FILE:
        tb = tb.tb_next
    return tb


def _error(e):
    if isinstance(e, SyntaxError):
        cause = "".join(traceback.format_exception_only(type(e), e))
    else:
        cause = "".join(traceback.format_exception(type(e), e, _user_tb(e.__traceback__)))
    msg = str(e)
    return {"resultType": "error", "summary": f"{type(e).__name__}: {msg}" if msg else type(e).__name__,
            "cause": cause}


def _run(code, n, ns, max_output, repl=True, fname=None):
    fname = fname or f"<command-{n}>"
    linecache.cache[fname] = (len(code), None, code.splitlines(True), fname)
    cap = _Capture(max_output)
    _state.table = None
    _state.stdout = ""
    try:
        tree = ast.parse(code, fname, "exec")
    except SyntaxError as e:
        return _error(e), False
    last = None
    if repl and tree.body and isinstance(tree.body[-1], ast.Expr):
        last = ast.Expression(tree.body.pop().value)
    old_out, old_err = sys.stdout, sys.stderr
    sys.stdout = sys.stderr = cap
    _state.pending = False
    _state.running = True
    try:
        exec(compile(tree, fname, "exec"), ns)
        if last is not None:
            value = eval(compile(last, fname, "eval"), ns)
            if value is not None:
                ns["_"] = value
                if isinstance(value, DataFrame) and _state.table is None:
                    print(repr(value))
                else:
                    print(repr(value))
        _state.running = False
    except KeyboardInterrupt:
        _state.running = False
        return {"resultType": "error", "summary": "Command cancelled",
                "cause": "KeyboardInterrupt: the command was cancelled"}, True
    except NotebookExit as e:
        _state.running = False
        value = e.value if isinstance(e.value, str) else ("" if e.value is None else str(e.value))
        return {"resultType": "exit", "data": value}, False
    except SystemExit as e:
        _state.running = False
        if repl or e.code not in (None, 0):
            return _error(e), False
    except BaseException as e:  # noqa: BLE001 - user code may raise anything
        _state.running = False
        return _error(e), False
    finally:
        _state.running = False
        sys.stdout, sys.stderr = old_out, old_err
        _state.stdout = cap.text()
    if _state.table is not None:
        res = dict(_state.table)
        return res, False
    text = cap.text()
    if text.endswith("\n"):
        text = text[:-1]
    res = {"resultType": "text", "data": text}
    if cap.truncated:
        res["truncated"] = True
    return res, False


def main():
    global _proto
    signal.signal(signal.SIGINT, _on_sigint)
    _proto = _Proto(int(sys.argv[1]), int(sys.argv[2]))
    sys.argv = [""]
    sys.stdin = io.StringIO("")
    ns = {"__name__": "__main__", "__builtins__": builtins, "spark": SparkSession(), "display": display,
          "Row": Row}
    _proto.send({"op": "ready", "pid": os.getpid()})
    n = 0
    while True:
        try:
            msg = _proto.recv()
            if msg is None:
                return
            if msg.get("op") != "exec":
                continue
            n += 1
            if msg.get("argv") is not None:
                sys.argv = [str(a) for a in msg["argv"]]
            for entry in reversed(msg.get("path") or []):
                sys.path.insert(0, entry)
            if msg.get("widgets") is not None:
                ns["dbutils"] = _DBUtils(msg["widgets"])
            if msg.get("file"):
                ns["__file__"] = msg["file"]
            try:
                results, cancelled = _run(msg.get("code") or "", n, ns, int(msg.get("max_output") or 1 << 20),
                                          repl=msg.get("repl", True) is not False, fname=msg.get("file"))
            except KeyboardInterrupt:
                _state.running = False
                results, cancelled = {"resultType": "error", "summary": "Command cancelled",
                                      "cause": "KeyboardInterrupt: the command was cancelled"}, True
            try:
                _proto.send({"op": "result", "id": msg.get("id"), "results": results, "cancelled": cancelled,
                             "stdout": _state.stdout})
            except (TypeError, ValueError) as e:
                _proto.send({"op": "result", "id": msg.get("id"), "results": _error(e), "cancelled": False})
        except KeyboardInterrupt:
            _state.running = False
            continue
        except BrokenPipeError:
            return


if __name__ == "__main__":
    main()
