"""Result streaming, one mechanism of the runtime (DESIGN rule 8): bounded concurrency, strict
order, every part checked against what the server promised, flat memory to a file written beside
its target and renamed when complete.

Three layers, each usable alone:

* ``ordered(fetch, items, workers=...)``: call ``fetch(item)`` for every item on a few worker
  threads, at most ``workers`` in flight, and yield ``(item, result)`` strictly in the items'
  order. The first failure stops the rest and is raised in the caller's thread. Used for result
  chunks and for per-task run outputs; the building block of any part-wise download.
* Result files: ``check_file(path)`` names what is wrong with a target before any request (a
  missing folder, an unwritable place, an existing folder, a path that cannot be replaced);
  ``AtomicFile`` writes beside the target (``.<name>.<random>.part``, created with mode 0666
  minus the umask; a file it replaces keeps its permission bits) and renames over it only when
  complete; a failure or an interrupt leaves neither a partial target nor the part file.
  ``file_format(path, given)``: the format follows the extension when none is given.
* Statement results (SQL Statement Execution API 2.0, and anything that returns a
  StatementResponse, such as Genie query results): ``statement_result(session, doc, ...)``
  fetches every chunk in parallel and in order, checks each against the manifest (chunk index,
  row offset, row count, next chunk, row width), fetches a chunk that does not match once more
  and then fails with a classified ``server_error`` (never drops rows), and either converts the
  rows to typed JSON values in memory or encodes them in batches to a file while the next chunks
  download. ``truncated`` means one thing only: a prefix was kept, because of the caller's cap
  (``truncated_by: "max_rows"``) or because the server stopped (``manifest.truncated``,
  ``truncated_by: "server"``).

Value converters and line encoders are generated once per result shape and cached for the
process, so a warm call does not compile anything.
"""
from __future__ import annotations

import collections
import contextlib
import gc
import io
import json
import math
import operator
import os
import re
import stat
import threading
from urllib.parse import quote

from .errors import ConnectorError

STATEMENTS_API = "/api/2.0/sql/statements"
CHUNK_WORKERS = 6          # result chunks in flight (memory: at most this many raw chunks + one parsed)
FILE_WORKERS = 3           # chunks in flight when rows go to a file (fewer: the peak stays flat; three keep it busy)
REFETCHES = 1              # a chunk that does not match its manifest is fetched this many more times
FORMATS_BY_EXTENSION = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json",
                        ".arrow": "arrow", ".arrows": "arrow", ".parquet": "parquet"}
FILE_FORMATS = ("jsonl", "json", "csv", "arrow", "parquet")
ARROW_FILE_FORMATS = ("arrow", "parquet")      # need pyarrow; written from ARROW_STREAM chunks as they are


# =========================================================================== ordered, bounded

class _Slot:
    __slots__ = ("done", "value", "error")

    def __init__(self):
        self.done = threading.Event()
        self.value = None
        self.error = None


class _Workers:
    """A few daemon threads running ``fetch`` on queued items. Daemon threads, not a
    ThreadPoolExecutor: an interpreter that exits (an interrupted CLI step) must not wait for a
    request still in flight."""

    def __init__(self, fetch, count: int, name: str):
        import queue

        self.fetch = fetch
        self.queue = queue.SimpleQueue()
        self.stopped = False
        self.threads = [threading.Thread(target=self._work, name=f"{name}-{n}", daemon=True) for n in range(count)]
        for t in self.threads:
            t.start()

    def _work(self):
        while True:
            job = self.queue.get()
            if job is None:
                return
            item, slot = job
            if not self.stopped:
                try:
                    slot.value = self.fetch(item)
                except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
                    slot.error = exc
            slot.done.set()
            del job, item, slot

    def submit(self, item) -> _Slot:
        slot = _Slot()
        self.queue.put((item, slot))
        return slot

    def close(self):
        self.stopped = True
        for _ in self.threads:
            self.queue.put(None)


def ordered(fetch, items, *, workers: int = CHUNK_WORKERS, name: str = "results"):
    """Yield ``(item, fetch(item))`` for every item, in order, with at most ``workers`` calls in
    flight. An error of any call is raised here (the calls not yet started are skipped). Nothing
    here keeps a result alive once it is handed over, so a consumer that drops each result before
    asking for the next holds at most ``workers`` unconsumed results at a time."""
    items = list(items)
    if not items:
        return
    if workers <= 1 or len(items) == 1:
        for item in items:
            yield item, fetch(item)
        return
    pool = _Workers(fetch, min(workers, len(items)), name)
    pending = collections.deque()
    it = iter(items)
    try:
        for item in it:
            pending.append((item, pool.submit(item)))
            if len(pending) >= workers:
                break
        while pending:
            item, slot = pending.popleft()
            slot.done.wait()
            if slot.error is not None:
                raise slot.error
            box = [slot.value]
            slot.value = None
            del slot
            nxt = next(it, _END)
            if nxt is not _END:
                pending.append((nxt, pool.submit(nxt)))
            yield item, box.pop()
    finally:
        pool.close()


_END = object()


# =========================================================================== result files

def file_format(path: str | None, given: str | None = None) -> str:
    """The file format: the one given, else the one the extension names (``.csv``; ``.jsonl``
    and ``.ndjson``: JSON Lines; ``.json``: one JSON array; ``.arrow``/``.arrows``: an Arrow IPC
    stream; ``.parquet``), else JSON Lines."""
    if given:
        return given
    ext = os.path.splitext(str(path or ""))[1].lower()
    return FORMATS_BY_EXTENSION.get(ext, "jsonl")


def target_path(path: str) -> str:
    return os.path.abspath(os.path.expanduser(path))


def path_text_problem(path):
    """Why ``path`` is not the text of a local path (None when it is)."""
    if not isinstance(path, str) or not path.strip():
        return "must be a file path"
    if "\x00" in path:
        return "must not contain a NUL character"
    return None


def check_file(path, *, key: str = "output_path", label: str = "Output File") -> list:
    """Every reason the file at ``path`` cannot be written and put in place, as input problems
    (an empty list when it can). Creates and removes a probe file in the folder, so an unwritable
    place is found for real, before the step changes anything."""
    def bad(reason):
        return [{"key": key, "label": label, "reason": reason}]

    if path_text_problem(path):
        return bad(path_text_problem(path))
    if path.endswith(("/", os.sep)):
        return bad("ends with a folder separator; give a file name")
    full = target_path(path)
    folder, name = os.path.split(full)
    if not os.path.exists(folder):
        return bad(f"the folder {folder} does not exist")
    if not os.path.isdir(folder):
        return bad(f"{folder} is not a folder")
    try:
        st = os.stat(full)
    except FileNotFoundError:
        st = None
    except OSError as exc:
        return bad(f"cannot be used: {exc.strerror}")
    if st is not None:
        if stat.S_ISDIR(st.st_mode):
            return bad(f"{full} is an existing folder; give a file name")
        if not stat.S_ISREG(st.st_mode):
            return bad(f"{full} exists and is not a regular file (a device, pipe or socket is never replaced)")
        if not os.access(full, os.W_OK):
            return bad(f"{full} exists and is read-only; it is not replaced")
        try:
            dst = os.stat(folder)
            if dst.st_mode & stat.S_ISVTX and os.geteuid() not in (0, st.st_uid, dst.st_uid):
                return bad(f"{full} belongs to another user in a shared folder (sticky bit); it cannot be replaced")
        except (OSError, AttributeError):
            pass
    try:
        fd, probe = _create_beside(full)
    except OSError as exc:
        return bad(f"cannot write in {folder}: {exc.strerror or exc}")
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(probe)
    return []


def _create_beside(full: str):
    """(fd, path) of a new, empty part file beside ``full``; mode 0666 less the umask."""
    folder, name = os.path.split(full)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
    for _ in range(50):
        part = os.path.join(folder, f".{name[:200]}.{os.urandom(4).hex()}.part")
        try:
            return os.open(part, flags, 0o666), part
        except FileExistsError:
            continue
    raise FileExistsError(f"no free part-file name beside {full}")


class AtomicFile:
    """A binary file written beside its target and renamed over it by ``commit()``. As a context
    manager, any exception (or interrupt) before the commit removes the part file."""

    def __init__(self, path: str):
        self.path = target_path(path)
        fd, self.part = _create_beside(self.path)
        try:
            with contextlib.suppress(FileNotFoundError):
                st = os.stat(self.path)
                if stat.S_ISREG(st.st_mode) and hasattr(os, "fchmod"):
                    os.fchmod(fd, stat.S_IMODE(st.st_mode))      # a replaced file keeps its permissions
            self._fh = os.fdopen(fd, "wb", buffering=1 << 20)
        except BaseException:
            os.close(fd)
            self._remove()
            raise
        self.size = 0
        self.done = False

    def write(self, data: bytes) -> None:
        self._fh.write(data)
        self.size += len(data)

    @property
    def stream(self):
        """The underlying binary file, for writers that write to a file object themselves."""
        return self._fh

    def commit(self) -> int:
        """Flush to disk and move into place; returns the size in bytes."""
        fh = self._fh
        fh.flush()
        os.fsync(fh.fileno())
        self.size = os.fstat(fh.fileno()).st_size
        fh.close()
        os.replace(self.part, self.path)
        self.done = True
        return self.size

    def discard(self) -> None:
        if self.done:
            return
        with contextlib.suppress(Exception):
            self._fh.close()
        self._remove()
        self.done = True

    def _remove(self):
        with contextlib.suppress(OSError):
            os.unlink(self.part)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if not self.done:
            self.discard()
        return False


# =========================================================================== value conversion

def _int(v):
    if v is None:
        return None
    try:
        return int(v)
    except (TypeError, ValueError):
        return v                                    # not a number after all: the text as sent


def _ints(col):
    if None not in col:
        try:
            return list(map(int, col))
        except (TypeError, ValueError):
            pass
    return list(map(_int, col))


def _float(v):
    if v is None:
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return v                                    # not a number after all: the text as sent
    return f if math.isfinite(f) else v            # NaN/Infinity stay text: JSON has no such numbers


def _floats(col):
    if None not in col:
        try:
            out = list(map(float, col))
            if all(map(math.isfinite, out)):
                return out
        except (TypeError, ValueError):
            pass
    return list(map(_float, col))


_BOOL = {"true": True, "false": False, "TRUE": True, "FALSE": False, "True": True, "False": False}


def _bools(col):
    return list(map(_BOOL.get, col, col))          # unknown text (and None) stays as it is


def _timestamps(col):
    return [v.replace(" ", "T", 1) if v is not None and " " in v else v for v in col]


def _complex(col):
    out = []
    for v in col:
        try:
            out.append(json.loads(v) if v is not None else None)
        except (TypeError, ValueError):
            out.append(v)
    return out


def column_kind(column: dict, decimals_as: str = "string") -> str | None:
    """How a column's text becomes a value: int, float, bool, ts, json, or None (text as sent)."""
    t = (column.get("type_name") or "").upper()
    if t in ("INT", "LONG", "SHORT", "BYTE", "BIGINT", "SMALLINT", "TINYINT", "INTEGER"):
        return "int"
    if t in ("FLOAT", "DOUBLE", "REAL"):
        return "float"
    if t == "BOOLEAN":
        return "bool"
    if t == "DECIMAL":
        if decimals_as != "number":
            return None
        scale = column.get("type_scale")
        if scale is None:
            m = re.search(r",\s*(\d+)\s*\)", column.get("type_text") or "")
            scale = int(m.group(1)) if m else (0 if "(" not in (column.get("type_text") or "(") else None)
        return "int" if scale == 0 else "float"
    if t == "TIMESTAMP":
        return "ts"
    if t in ("ARRAY", "MAP", "STRUCT"):
        return "json"
    return None                                      # STRING, DATE, BINARY, INTERVAL, ...: text as sent


_COLUMN = {"int": _ints, "float": _floats, "bool": _bools, "ts": _timestamps, "json": _complex}
# One value of a row, null-safe: a NULL never sends a chunk down the slow path.
_SCALAR = {"int": "(None if {v} is None else int({v}))", "float": "(None if {v} is None else float({v}))",
           "bool": "_bool({v}, {v})", "ts": "(None if {v} is None else {v}.replace(' ', 'T', 1))",
           "json": "(None if {v} is None else _loads({v}))"}


def unique_names(names):
    seen, out = {}, []
    for n in names:
        if n in seen:
            seen[n] += 1
            n2 = f"{n}_{seen[n]}"
            while n2 in seen:
                seen[n] += 1
                n2 = f"{n}_{seen[n]}"
            seen[n2] = 1
            out.append(n2)
        else:
            seen[n] = 1
            out.append(n)
    return out


class _Cache:
    """A small process-wide cache of generated functions, by result shape (least recently used)."""

    def __init__(self, size: int = 256):
        self.size = size
        self.items: collections.OrderedDict = collections.OrderedDict()
        self.lock = threading.Lock()

    def get(self, key, build):
        with self.lock:
            fn = self.items.get(key)
            if fn is not None:
                self.items.move_to_end(key)
                return fn
        fn = build()
        with self.lock:
            self.items[key] = fn
            while len(self.items) > self.size:
                self.items.popitem(last=False)
        return fn


_GENERATED = _Cache()


def _generate(code: str, env: dict, name: str):
    exec(compile(code, f"<{name}>", "exec"), env)       # noqa: S102 - built from our own templates only
    return env[name]


class Converter:
    """Turns a chunk of text rows (as Databricks sends them) into typed rows.

    Fast path: one generated comprehension per result shape (cached for the process), converting
    a whole row at once, NULLs included. A chunk it cannot handle (NaN or Infinity in a float
    column, unknown boolean text, JSON that does not parse, a row of the wrong width) goes the
    careful way, column by column."""

    def __init__(self, columns: list, *, shape: str = "objects", decimals_as: str = "string", csv_nulls: bool = False):
        self.columns = columns
        self.names = unique_names([c.get("name") or f"col_{i}" for i, c in enumerate(columns)])
        self.kinds = [column_kind(c, decimals_as) for c in columns]
        self.active = [(j, _COLUMN[k]) for j, k in enumerate(self.kinds) if k is not None]
        self.shape = shape
        self.csv_nulls = csv_nulls
        self.float_keys = [(j if shape == "arrays" else self.names[j]) for j, k in enumerate(self.kinds) if k == "float"]
        key = ("convert", shape, tuple(self.names), tuple(self.kinds))
        self._fast = _GENERATED.get(key, self._compile) if columns else None

    def _compile(self):
        n = len(self.columns)
        vs = [f"v{j}" for j in range(n)]
        exprs = [(_SCALAR[k].format(v=v) if k else v) for v, k in zip(vs, self.kinds)]
        if self.shape == "arrays":
            if not self.active:
                return _identity_rows
            item = "[" + ", ".join(exprs) + "]"
        else:
            item = "{" + ", ".join(f"_k{j}: {e}" for j, e in enumerate(exprs)) + "}"
        target = ", ".join(vs) + ("," if n == 1 else "")
        env = {"_bool": _BOOL.get, "_loads": json.loads}
        env.update({f"_k{j}": name for j, name in enumerate(self.names)})
        return _generate(f"def convert(rows):\n    return [{item} for {target} in rows]\n", env, "convert")

    def __call__(self, rows: list) -> list:
        if not rows:
            return []
        if self._fast is not None and not self.csv_nulls:
            try:
                out = self._fast(rows)
                for key in self.float_keys:                 # NaN/Infinity must stay text (JSON has none)
                    if not _finite(list(map(operator.itemgetter(key), out))):
                        raise ValueError
                return out
            except (TypeError, ValueError, AttributeError):
                pass
        return self.slow(rows)

    def slow(self, rows: list) -> list:
        """Null-safe conversion of a chunk, column by column; objects or arrays."""
        n = len(self.columns)
        rows = [list(r) for r in rows]
        if self.csv_nulls:
            rows = [[None if v == "null" else v for v in r] for r in rows]
        for j, conv in self.active:
            for r, v in zip(rows, conv([r[j] for r in rows])):
                r[j] = v
        if self.shape == "arrays":
            return rows
        names = self.names
        return [dict(zip(names, r)) for r in rows] if n else [{} for _ in rows]


def _finite(values) -> bool:
    """True when no float of the column is NaN or infinite (a sum that overflows says False too;
    the careful path then decides)."""
    try:
        total = sum(values)
    except TypeError:
        total = sum(v for v in values if v is not None)
    return math.isfinite(total)


def _identity_rows(rows):
    return rows if type(rows) is list and all(type(r) is list for r in rows[:1]) else [list(r) for r in rows]


# =========================================================================== JSON line encoding

_ENCODE_STRING = json.encoder.encode_basestring           # the C encoder, non-ASCII kept (ensure_ascii=False)
_ROW_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
_ROW_ENCODER_ASCII = json.JSONEncoder(ensure_ascii=True, separators=(",", ":"))
_LINE_BOOL = {"true": "true", "false": "false", "TRUE": "true", "FALSE": "false", "True": "true", "False": "false",
              None: "null"}


def _line_float(v):
    r = repr(float(v))
    if r[-1].isdigit():                     # every finite float's repr ends with a digit; nan/inf do not
        return r
    return _ENCODE_STRING(v)                # NaN/Infinity stay text, as in memory


def _line_json(v):
    return _ROW_ENCODER.encode(json.loads(v))


# Column-wise JSON text of one chunk's values, by column kind. Each runs at C speed in the common
# case (map over a C function, one regular expression over the joined column) and raises
# TypeError/ValueError/KeyError for a value the careful path must decide.
_DIGITS = b"0123456789"


def _canonical_ints(joined: str, count: int) -> bool:
    """True when ``joined`` is ``count`` integers in canonical JSON form (``0`` or ``-?[1-9][0-9]*``),
    one per line: then Databricks' text is already what ``json.dumps(int(text))`` writes. A few
    passes over the bytes at C speed; anything unusual (a leading zero, a sign, a space, a non-ASCII
    digit) says False and the values are converted one by one."""
    try:
        raw = joined.encode("ascii")
    except UnicodeEncodeError:
        return False
    if raw.translate(None, _DIGITS + b"-") != b"\n" * (count - 1):
        return False                                        # only digits and signs, one value per line
    lines = b"\n" + raw + b"\n"
    if b"\n\n" in lines or b"-\n" in lines or b"-0" in raw or raw.count(b"-") != lines.count(b"\n-"):
        return False                                        # an empty value, a lone or inner sign, -0
    if b"\n0" in lines:                                     # a zero, or a leading zero (not canonical)?
        apart = lines.replace(b"\n", b"\n\n")              # every value between its own two newlines
        return apart.count(b"\n0\n") == apart.count(b"\n0")
    return True


def _repr_floats(values) -> bool:
    """True when every text is exactly ``repr(float(text))``: plain decimal notation with one dot,
    no leading zero, no trailing zero but the one of ``X.0``, at most 15 significant digits (then
    the shortest repr has exactly these digits) and not below 1e-4 (where repr writes an exponent).
    Checked with a few passes over the bytes at C speed; then the text is written as it came."""
    if max(map(len, values)) > 16:                          # at most 15 digits and the dot
        return False
    try:
        raw = "\n".join(values).encode("ascii")
    except UnicodeEncodeError:
        return False
    n = len(values)
    if raw.translate(None, _DIGITS + b"-") != b".\n" * (n - 1) + b".":
        return False                                        # exactly one dot per value, nothing else
    lines = b"\n" + raw + b"\n"
    if b"\n." in lines or b".\n" in lines or b"-." in raw or raw.count(b"-") != lines.count(b"\n-"):
        return False                                        # digits on both sides of the dot; a sign only first
    apart = lines.replace(b"\n", b"\n\n")
    if apart.count(b"\n0") != apart.count(b"\n0.") or raw.count(b"-0") != raw.count(b"-0."):
        return False                                        # a leading zero only before the dot
    if b"\n0.0000" in apart or b"-0.0000" in raw:
        return False                                        # below 1e-4: repr writes 1e-05
    return apart.count(b"0\n") == apart.count(b".0\n")      # trailing zeros: only X.0


def _json_texts(values):
    if None in values:
        return ["null" if v is None else _ENCODE_STRING(v) for v in values]
    return list(map(_ENCODE_STRING, values))


def _json_ints(values):
    if None in values:
        return ["null" if v is None else int(v) for v in values]
    if _canonical_ints("\n".join(values), len(values)):
        return values                                     # Databricks' text is already the JSON
    return list(map(int, values))                         # e.g. 007, +1: written as int() reads them


def _json_floats(values):
    if None in values:
        return ["null" if v is None else _line_float(v) for v in values]
    if _repr_floats(values):
        return values                                     # Databricks' text is already repr(float(text))
    out = list(map(repr, map(float, values)))
    if "n" in "".join(out):                             # nan or inf: finite reprs hold no "n"
        return list(map(_line_float, values))           # NaN/Infinity stay text
    return out


def _json_bools(values):
    return list(map(_LINE_BOOL.__getitem__, values))


def _json_timestamps(values):
    return ["null" if v is None else _ENCODE_STRING(v.replace(" ", "T", 1)) for v in values]


def _json_complex(values):
    return ["null" if v is None else _line_json(v) for v in values]


_LINE_COLUMN = {None: _json_texts, "int": _json_ints, "float": _json_floats, "bool": _json_bools,
                "ts": _json_timestamps, "json": _json_complex}


class LineEncoder:
    """Text rows -> JSON text, one row per line, exactly as ``json.dumps(converted_row,
    ensure_ascii=False, separators=(",", ":"))`` would write each (a test proves it), but column
    by column and joined at C speed (``map`` over C functions, ``str.join``), instead of one
    encoder call per row: a file is written at about the speed rows reach memory. A chunk the
    fast path cannot take goes through the ``Converter`` and the standard encoder."""

    def __init__(self, converter: Converter):
        self.converter = converter
        self.width = len(converter.columns)
        self.encoders = [_LINE_COLUMN[k] for k in converter.kinds]
        if converter.shape == "arrays":
            self.keys = None
            self.open, self.close = "[", "]"
        else:
            self.keys = [_ENCODE_STRING(n) + ":" for n in converter.names]
            self.open, self.close = "{", "}"

    def text(self, rows: list, sep: str = "\n", checked: bool = False) -> str:
        """The JSON text of the rows joined by ``sep``. ``checked``: every row is known to be a
        list with one value per column (the chunk check did it)."""
        if not rows:
            return ""
        if self.width and not self.converter.csv_nulls:
            try:
                if checked or set(map(len, rows)) == {self.width}:
                    cols = [enc(col) for enc, col in zip(self.encoders, zip(*rows))]
                    if self.keys is not None:
                        cols = [map(key.__add__, col) for key, col in zip(self.keys, cols)]
                    between = self.close + sep + self.open
                    return self.open + between.join(map(",".join, zip(*cols))) + self.close
            except (TypeError, ValueError, KeyError, AttributeError):
                pass
        return sep.join(map(_ROW_ENCODER.encode, self.converter(rows)))

    def __call__(self, rows: list, checked: bool = False) -> list:
        """The JSON text of each row (a list of str; JSON text never holds a raw line break)."""
        return self.text(rows, "\n", checked).split("\n") if rows else []

    def ascii_text(self, rows: list, sep: str = "\n") -> str:
        """The same rows with every non-ASCII character escaped (for text UTF-8 cannot carry, such
        as a lone surrogate): still the same JSON values."""
        return sep.join(map(_ROW_ENCODER_ASCII.encode, self.converter(rows)))



# =========================================================================== sinks

class _MemorySink:
    kind = "memory"

    def __init__(self, converter: Converter):
        self.convert = converter
        self.rows: list = []

    def add(self, rows: list) -> None:
        self.rows.extend(self.convert(rows))


class _FileSink:
    """Encodes each chunk in batches and writes it while the next chunks download."""
    kind = "file"
    BATCH = 16384

    def __init__(self, path: str, fmt: str, converter: Converter, columns: list):
        if fmt not in FILE_FORMATS:
            raise ValueError(f"unknown file format {fmt!r}")
        self.fmt = fmt
        self.file = AtomicFile(path)
        self.converter = converter
        self.lines = LineEncoder(converter) if fmt != "csv" else None
        self.count = 0
        if fmt == "csv":
            import csv

            self._text = io.StringIO()
            self._csv = csv.writer(self._text, lineterminator="\n")
            self._csv.writerow([c.get("name") for c in columns])
            self._flush_text()

    def _flush_text(self):
        data = self._text.getvalue()
        self._text.seek(0)
        self._text.truncate()
        try:
            self.file.write(data.encode("utf-8"))
        except UnicodeEncodeError:
            raise ConnectorError("server_error", "A value of the result holds text that UTF-8 cannot carry (a lone "
                                 "surrogate), so it cannot be written to a CSV file unchanged",
                                 hint="Write JSON Lines instead (Output Format jsonl): JSON escapes such text.") from None

    def add(self, rows: list) -> None:
        if self.fmt == "csv":
            if self.converter.csv_nulls:
                rows = [[None if v == "null" else v for v in r] for r in rows]
            for k in range(0, len(rows), self.BATCH):
                self._csv.writerows(rows[k:k + self.BATCH])      # Databricks' own text; NULL is an empty field
                self._flush_text()
            self.count += len(rows)
            return
        sep = "\n" if self.fmt == "jsonl" else ",\n"
        for k in range(0, len(rows), self.BATCH):
            batch = rows[k:k + self.BATCH]
            lead = ("[\n" if self.count == 0 else sep) if self.fmt == "json" else ""
            text = self.lines.text(batch, sep, checked=True)
            try:
                data = (lead + text).encode("utf-8")
            except UnicodeEncodeError:                           # a lone surrogate: escape, stay valid JSON
                data = (lead + self.lines.ascii_text(batch, sep)).encode("ascii")
            self.file.write(data + (b"\n" if self.fmt == "jsonl" else b""))
            self.count += len(batch)

    def commit(self) -> int:
        if self.fmt == "json":
            self.file.write(b"\n]\n" if self.count else b"[]\n")
        return self.file.commit()

    def discard(self) -> None:
        self.file.discard()


class _ArrowSink:
    """Arrow IPC stream or Parquet file from ARROW_STREAM chunks: each chunk's record batches are
    written as they are (no value conversion), so the file is written at the speed it downloads."""
    kind = "file"

    def __init__(self, path: str, fmt: str, columns: list):
        self.fmt = fmt
        self.columns = columns
        self.file = AtomicFile(path)
        self.writer = None
        self.schema = None
        self.count = 0

    def _open(self, schema):
        import pyarrow as pa

        self.schema = schema
        out = pa.PythonFile(self.file.stream, mode="w")
        if self.fmt == "arrow":
            self.writer = pa.ipc.new_stream(out, schema)
        else:
            import pyarrow.parquet as pq

            self.writer = pq.ParquetWriter(out, schema)

    def add(self, table) -> None:
        import pyarrow as pa

        if self.writer is None:
            self._open(table.schema)
        elif not table.schema.equals(self.schema):
            try:
                table = table.cast(self.schema)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError, ValueError) as exc:
                raise ConnectorError("server_error", "The Arrow schema of a result chunk differs from the first "
                                     f"chunk's and cannot be converted: {str(exc)[:200]}",
                                     hint="Write the result as JSON Lines or CSV instead (Output Format).") from None
        if table.num_rows:
            self.writer.write_table(table)
        self.count += table.num_rows

    def commit(self) -> int:
        import pyarrow as pa

        if self.writer is None:                   # no rows at all: the columns, typed as the manifest says nothing
            self._open(pa.schema([(c.get("name") or f"col_{i}", pa.string()) for i, c in enumerate(self.columns)]))
        self.writer.close()
        return self.file.commit()

    def discard(self) -> None:
        if self.writer is not None:
            with contextlib.suppress(Exception):
                self.writer.close()
        self.file.discard()


# =========================================================================== statement chunks

def _chunk_path(statement_id: str, index: int) -> str:
    return f"{STATEMENTS_API}/{quote(statement_id, safe='')}/result/chunks/{index}"


class StatementChunks:
    """The chunks of one statement result: fetched (worker threads: network only), parsed and
    checked against the manifest (the caller's thread)."""

    def __init__(self, session, statement_id: str, manifest: dict | None, first: dict | None = None,
                 tables: bool = False):
        self.session = session
        self.tables = tables and (manifest or {}).get("format") == "ARROW_STREAM"   # Arrow tables, not rows
        self.sid = statement_id
        self.manifest = manifest or {}
        self.format = self.manifest.get("format") or "JSON_ARRAY"
        self.columns = ((self.manifest.get("schema") or {}).get("columns")) or []
        self.first = first if isinstance(first, dict) else {}     # its data_array is handed over (popped) once read
        chunks = self.manifest.get("chunks")
        self.promises = {}
        if isinstance(chunks, list):
            for n, c in enumerate(chunks):
                if isinstance(c, dict):
                    self.promises[c.get("chunk_index", n)] = c
        total = self.manifest.get("total_chunk_count")
        if not isinstance(total, int) or isinstance(total, bool) or total < 0:
            total = len(self.promises) if self.promises else (1 if _has_data(self.first) else 0)
        self.total = total
        # True/False once known from the first chunk; None (unknown) makes fetch look at each answer.
        self.links = ("external_links" in self.first) if _has_data(self.first) else (
            True if self.format != "JSON_ARRAY" else None)

    # -- which chunks
    def indexes(self, max_rows: int | None = None) -> list:
        out = []
        for i in range(self.total):
            off = (self.promises.get(i) or {}).get("row_offset")
            if max_rows is not None and isinstance(off, int) and off >= max_rows and out:
                break
            out.append(i)
        return out

    def promised_rows(self) -> int | None:
        total = self.manifest.get("total_row_count")
        if isinstance(total, int) and not isinstance(total, bool):
            return total
        counts = [(self.promises.get(i) or {}).get("row_count") for i in range(self.total)]
        return sum(counts) if all(isinstance(c, int) for c in counts) else None

    # -- fetching (worker threads: the network only)
    def fetch(self, i: int, fresh: bool = False):
        """What the server answered for chunk ``i`` (parsed later by ``parse``); ``fresh`` asks the
        chunk endpoint even for chunk 0, whose first answer came with the statement."""
        try:
            return self._fetch(i, fresh)
        except _BadChunk as exc:
            return ("bad", str(exc), None)

    def _fetch(self, i: int, fresh: bool):
        first = self.first
        if i == 0 and not fresh and first.get("chunk_index", 0) == 0 and _has_data(first):
            if "external_links" in first and "data_array" not in first:
                return ("links", first, [self._download(i, link) for link in _links(first)])
            return ("doc", first, None)
        path = _chunk_path(self.sid, i)
        if self.links is False:
            return ("json", self.session.response("GET", path).content, None)
        meta = self.session.get(path)
        if isinstance(meta, dict) and "external_links" in meta and "data_array" not in meta:
            return ("links", meta, [self._download(i, link) for link in _links(meta)])
        return ("doc", meta, None)

    def _download(self, i: int, link, attempts: int = 3) -> bytes:
        if not isinstance(link, dict) or not isinstance(link.get("external_link"), str):
            raise _BadChunk("an external link without an external_link URL")
        for attempt in range(attempts):
            response = self.session.storage_get(link["external_link"], headers=link.get("http_headers") or None)
            if response.status_code == 200:
                return response.content
            text = response.text[:500] if response.content else ""
            low = text.lower()
            expired = response.status_code in (400, 403) and (
                "expired" in low or "not valid in the specified time frame" in low or _past(link.get("expiration")))
            if expired and attempt + 1 < attempts:
                self.session.progress(f"SQL statement {self.sid}: link of chunk {i} expired; asking for a fresh one")
                fresh = self.session.get(_chunk_path(self.sid, i))
                links = _links(fresh) if isinstance(fresh, dict) else []
                match = [l for l in links if l.get("chunk_index", i) == link.get("chunk_index", i)] or links
                if not match:
                    break
                link = match[0]
                continue
            code = _xml_field(text, "Code")
            message = _xml_field(text, "Message") or (text.strip().splitlines()[0][:200] if text.strip() else "")
            kind = "permission_denied" if response.status_code == 403 else (
                "not_found" if response.status_code == 404 else "server_error" if response.status_code >= 500 else "bad_request")
            raise ConnectorError(kind, f"Downloading result chunk {i} of SQL statement {self.sid} from cloud storage failed: "
                                 f"HTTP {response.status_code}" + (f" {code}" if code else "") + (f": {message}" if message else ""),
                                 status=response.status_code, error_code=code, details={"statement_id": self.sid, "chunk_index": i},
                                 hint="The workspace's cloud storage refused the presigned link; check network rules "
                                      "(firewalls, private links) to the storage account, then run the step again.")
        raise ConnectorError("server_error", f"Result chunk {i} of SQL statement {self.sid}: the link kept expiring",
                             details={"statement_id": self.sid, "chunk_index": i},
                             hint="Run the step again; if it persists, the clock of this machine may be wrong.")

    # -- parsing and checking (the caller's thread)
    def parse(self, i: int, fetched) -> tuple:
        """(meta, rows) of a fetched chunk; raises _BadChunk for an answer that cannot be read."""
        kind, data, blobs = fetched
        if kind == "bad":
            raise _BadChunk(data)
        if kind == "json":
            try:
                data = json.loads(data)
            except ValueError as exc:
                raise _BadChunk(f"the answer is not valid JSON ({exc.msg})") from None
        if not isinstance(data, dict):
            raise _BadChunk(f"the answer is {type(data).__name__}, not a ResultData object")
        if kind == "links":
            if self.tables:
                return _link_meta(data), self._arrow_table(blobs)
            rows = []
            for blob in blobs:
                rows.extend(self._parse_external(blob, i))
            return _link_meta(data), rows
        if "data_array" in data:
            rows = data.pop("data_array")                 # handed over: never kept alive twice
            if rows is None:
                rows = []
            if not isinstance(rows, list):
                raise _BadChunk(f"data_array is {type(rows).__name__}, not an array of rows")
            return data, rows
        return data, None                                 # no data_array at all

    def _arrow_table(self, blobs: list):
        import pyarrow as pa
        import pyarrow.ipc

        try:
            tables = [pyarrow.ipc.open_stream(b).read_all() for b in blobs]
            if not tables:
                return pa.table({})
            return tables[0] if len(tables) == 1 else pa.concat_tables(tables, promote_options="default")
        except Exception as exc:  # noqa: BLE001 - a truncated or corrupt download, whatever the parser says
            raise _BadChunk(f"the downloaded ARROW_STREAM data cannot be read ({type(exc).__name__}: "
                            f"{str(exc)[:120]})") from None

    def _parse_external(self, blob: bytes, index: int) -> list:
        try:
            if self.format == "CSV":
                import csv

                rows = list(csv.reader(io.StringIO(blob.decode("utf-8"))))
                return rows[1:] if index == 0 and rows else rows    # the header row is in the first chunk only
            if self.format == "ARROW_STREAM":
                return arrow_rows(blob)
            rows = json.loads(blob) if blob else []
        except _BadChunk:
            raise
        except Exception as exc:  # noqa: BLE001 - a truncated or corrupt download, whatever the parser says
            raise _BadChunk(f"the downloaded {self.format} data cannot be read ({type(exc).__name__}: "
                            f"{str(exc)[:120]})") from None
        if not isinstance(rows, list):
            raise _BadChunk(f"the downloaded data is {type(rows).__name__}, not an array of rows")
        return rows

    def problem(self, i: int, meta: dict, rows, offset: int | None) -> str | None:
        """Why this chunk does not match what the manifest promised (None when it does)."""
        promise = self.promises.get(i) or {}
        got_index = meta.get("chunk_index")
        if got_index is not None and got_index != i:
            return f"the answer is chunk {got_index!r}, not chunk {i}"
        want_offset = promise.get("row_offset")
        if want_offset is not None and offset is not None and want_offset != offset:
            return f"the manifest puts chunk {i} at row {want_offset}, but the chunks before it hold {offset} rows"
        got_offset = meta.get("row_offset")
        if offset is None:
            offset = want_offset
        if got_offset is not None and offset is not None and got_offset != offset:
            return f"the answer starts at row {got_offset!r}, expected row {offset}"
        want_rows = promise.get("row_count")
        got_rows = meta.get("row_count")
        if want_rows is not None and got_rows is not None and got_rows != want_rows:
            return f"the answer says {got_rows!r} rows, the manifest promised {want_rows}"
        expected = want_rows if want_rows is not None else got_rows
        if rows is None:
            if expected:
                return f"the answer has no data_array, the manifest promised {expected} rows"
            rows = []
        if expected is not None and len(rows) != expected:
            return f"the answer holds {len(rows)} rows, {'the manifest promised' if want_rows is not None else 'it says'} {expected}"
        nxt = meta.get("next_chunk_index")
        if nxt is not None and nxt != i + 1:
            return f"the answer says the next chunk is {nxt!r}, expected {i + 1}"
        if nxt is not None and i + 1 >= self.total:
            return f"the answer says chunk {nxt} follows, but the manifest has {self.total} chunk(s)"
        if self.tables and rows is not None:
            if len(rows) and self.columns and rows.num_columns != len(self.columns):
                return f"a record batch does not have {len(self.columns)} columns"
        elif rows and self.format != "ARROW_STREAM":
            if set(map(type, rows)) != {list}:
                return "a row is not an array of values"
            if self.columns and set(map(len, rows)) != {len(self.columns)}:
                return f"a row does not have {len(self.columns)} values (one per column)"
        return None

    def checked(self, i: int, fetched, offset: int | None) -> tuple:
        """(meta, rows) of chunk ``i``, checked; a chunk that does not match is fetched again
        (``REFETCHES`` times), then the step fails with a classified error. ``offset``: the row
        the chunk must start at (None: as the manifest says)."""
        for attempt in range(REFETCHES + 1):
            if attempt:
                self.session.progress(f"SQL statement {self.sid}: chunk {i} did not match the manifest ({reason}); "
                                      "fetching it again")
                fetched = self.fetch(i, fresh=True)
            try:
                meta, rows = self.parse(i, fetched)
                reason = self.problem(i, meta, rows, offset)
            except _BadChunk as exc:
                meta, rows, reason = {}, None, str(exc)
            fetched = None
            if reason is None:
                return meta, (rows if rows is not None else [])
        promise = self.promises.get(i) or {}
        raise ConnectorError(
            "server_error",
            f"Result chunk {i} of SQL statement {self.sid} does not match the statement's manifest "
            f"({REFETCHES + 1} attempts): {reason}. No partial result is returned.",
            details={"statement_id": self.sid, "chunk_index": i,
                     "expected": {"row_offset": promise.get("row_offset", offset), "row_count": promise.get("row_count")},
                     "received": {"chunk_index": meta.get("chunk_index"), "row_offset": meta.get("row_offset"),
                                  "row_count": meta.get("row_count"),
                                  "rows": len(rows) if isinstance(rows, list) else None}},
            hint="The server (or something between it and this machine, such as a proxy) answered a result chunk "
                 "that is incomplete or not the one asked for. Run the step again; if it persists, fetch the "
                 "chunk with Get Statement Result Chunk and report it.")

    def stream(self, indexes: list, workers: int = CHUNK_WORKERS):
        """Yield (index, checked text rows) in order, downloading up to ``workers`` chunks ahead."""
        offset = (self.promises.get(indexes[0]) or {}).get("row_offset", 0) if indexes else 0
        for i, fetched in ordered(self.fetch, indexes, workers=workers, name="sql-chunks"):
            box = [fetched]
            del fetched
            rows = self.checked(i, box.pop(), offset)[1]
            offset += len(rows)
            yield i, rows


class _BadChunk(Exception):
    pass


def _has_data(meta) -> bool:
    return isinstance(meta, dict) and ("data_array" in meta or "external_links" in meta or meta.get("row_count") is not None)


def _link_meta(meta: dict) -> dict:
    """The facts of an EXTERNAL_LINKS chunk: its own fields, else its links' (each link carries
    chunk_index, row_offset, row_count and next_chunk_index)."""
    links = [l for l in meta.get("external_links") or [] if isinstance(l, dict)]
    if not links:
        return meta
    out = {k: meta.get(k) for k in ("chunk_index", "row_offset", "row_count", "next_chunk_index")}
    for k in ("chunk_index", "row_offset"):
        if out[k] is None:
            out[k] = links[0].get(k)
    if out["next_chunk_index"] is None:
        out["next_chunk_index"] = links[-1].get("next_chunk_index")
    counts = [l.get("row_count") for l in links]
    if out["row_count"] is None and all(isinstance(c, int) for c in counts):
        out["row_count"] = sum(counts)
    return out


def _links(meta: dict) -> list:
    links = meta.get("external_links")
    if links is None:
        return []
    if not isinstance(links, list):
        raise _BadChunk("external_links is not an array")
    return links


def _xml_field(text: str, name: str) -> str | None:
    m = re.search(rf"<{name}>(.*?)</{name}>", text or "", re.S)
    return m.group(1).strip() if m else None


def _past(expiration) -> bool:
    if not expiration:
        return False
    import datetime as dt

    try:
        when = dt.datetime.fromisoformat(str(expiration).replace("Z", "+00:00"))
    except ValueError:
        return False
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.timezone.utc)
    return when <= dt.datetime.now(dt.timezone.utc)


def have_pyarrow() -> bool:
    try:
        import pyarrow  # noqa: F401
        import pyarrow.ipc  # noqa: F401
    except ImportError:
        return False
    return True


def arrow_rows(blob: bytes) -> list:
    """Arrow IPC stream -> rows of the values JSON_ARRAY would carry, so one converter serves both.
    Integers, floats, booleans and strings stay typed (the converter takes them as they are);
    other types become Databricks' text."""
    import base64
    import datetime as dt
    import decimal

    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.ipc

    table = pyarrow.ipc.open_stream(blob).read_all()

    def text(v):
        if v is None or isinstance(v, str):
            return v
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, decimal.Decimal):
            return format(v, "f")
        if isinstance(v, dt.datetime):
            if v.tzinfo is not None:
                v = v.astimezone(dt.timezone.utc).replace(tzinfo=None)
            return v.isoformat(timespec="milliseconds") + "Z"
        if isinstance(v, dt.date):
            return v.isoformat()
        if isinstance(v, bytes):
            return base64.b64encode(v).decode()
        if isinstance(v, (list, dict)):
            return json.dumps(v, default=str)
        return repr(v) if isinstance(v, float) else str(v)

    cols = []
    for col in table.columns:
        t = col.type
        if pa.types.is_integer(t) or pa.types.is_boolean(t) or pa.types.is_string(t) or pa.types.is_large_string(t):
            cols.append(col.to_pylist())
        elif pa.types.is_floating(t):
            values = col.to_pylist()
            if not pc.all(pc.is_finite(col)).as_py() and len(col) - col.null_count:
                values = [v if v is None or math.isfinite(v) else ("NaN" if v != v else "Infinity" if v > 0 else "-Infinity")
                          for v in values]
            cols.append(values)
        else:
            cols.append([text(v) for v in col.to_pylist()])
    return [list(r) for r in zip(*cols)] if cols else []


# =========================================================================== statement results

_GC_LOCK = threading.Lock()
_GC_PAUSES = 0
_GC_WAS_ENABLED = False


@contextlib.contextmanager
def gc_paused():
    """Large results allocate millions of small lists; the cyclic collector would rescan them all
    again and again (half of the conversion time). They hold no cycles, so it is paused while a
    result is assembled in memory; reference counting still frees memory. The pause is counted
    across threads: the collector comes back when the last concurrent result is done, and only if
    it was on before the first one started."""
    global _GC_PAUSES, _GC_WAS_ENABLED
    with _GC_LOCK:
        if _GC_PAUSES == 0:
            _GC_WAS_ENABLED = gc.isenabled()
            gc.disable()
        _GC_PAUSES += 1
    try:
        yield
    finally:
        with _GC_LOCK:
            _GC_PAUSES -= 1
            if _GC_PAUSES == 0 and _GC_WAS_ENABLED:
                gc.enable()


def columns_of(manifest: dict | None) -> list:
    cols = ((manifest or {}).get("schema") or {}).get("columns") or []
    return [c for c in cols if isinstance(c, dict)]


def column_summary(columns: list) -> list:
    return [{"name": c.get("name"), "type_name": c.get("type_name"), "type_text": c.get("type_text")} for c in columns]


def manifest_summary(manifest: dict | None) -> dict:
    manifest = manifest or {}
    out = {"total_row_count": manifest.get("total_row_count"), "total_chunk_count": manifest.get("total_chunk_count"),
           "truncated": bool(manifest.get("truncated")), "format": manifest.get("format")}
    if manifest.get("total_byte_count") is not None:
        out["total_byte_count"] = manifest["total_byte_count"]
    return out


def statement_result(session, doc: dict, *, max_rows: int | None = None, shape: str = "objects",
                     decimals_as: str = "string", output_path: str | None = None, output_format: str | None = None,
                     workers: int | None = None) -> dict:
    """Every row of a SUCCEEDED StatementResponse ``doc``: in memory (``rows``) or written to
    ``output_path`` (then ``output_path``, ``output_format``, ``bytes_written`` instead of rows).
    Also ``columns``, ``row_count``, ``truncated``, ``truncated_by`` and a ``manifest`` summary.
    Check the file first with ``check_file`` (before the statement runs)."""
    sid = doc.get("statement_id")
    manifest = doc.get("manifest") or {}
    fmt = file_format(output_path, output_format) if output_path else None
    arrow_file = fmt in ARROW_FILE_FORMATS
    if arrow_file and manifest.get("format") != "ARROW_STREAM":
        raise ConnectorError("server_error", f"An {fmt} file is written from ARROW_STREAM chunks, but the result is "
                             f"{manifest.get('format')}", details={"statement_id": sid},
                             hint="Run the statement with Format ARROW_STREAM, or write JSON Lines or CSV.")
    chunks = StatementChunks(session, sid, manifest, doc.get("result"), tables=arrow_file)
    columns = chunks.columns
    indexes = chunks.indexes(max_rows)
    converter = Converter(columns, shape=shape, decimals_as=decimals_as, csv_nulls=chunks.format == "CSV")
    if not output_path:
        sink = _MemorySink(converter)
    elif arrow_file:
        sink = _ArrowSink(output_path, fmt, columns)
    else:
        sink = _FileSink(output_path, fmt, converter, columns)
    if workers is None:
        workers = CHUNK_WORKERS if sink.kind == "memory" else FILE_WORKERS
    count = 0
    capped = False
    try:
        with gc_paused():
            for i, rows in chunks.stream(indexes, workers=workers):
                if max_rows is not None and count + len(rows) > max_rows:
                    rows = rows.slice(0, max_rows - count) if chunks.tables else rows[:max_rows - count]
                    capped = True
                sink.add(rows)
                count += len(rows)
                del rows
                if max_rows is not None and count >= max_rows:
                    if i + 1 < chunks.total:
                        capped = True
                    break
        size = sink.commit() if sink.kind == "file" else None
    except BaseException:
        if sink.kind == "file":
            sink.discard()
        raise
    produced = chunks.promised_rows()
    if max_rows is not None and produced is not None and produced > count:
        capped = True
    truncated_by = "max_rows" if capped else ("server" if manifest.get("truncated") else None)
    out = {"columns": column_summary(columns)}
    if sink.kind == "memory":
        out["rows"] = sink.rows
    out.update(row_count=count, truncated=truncated_by is not None, truncated_by=truncated_by,
               manifest=manifest_summary(manifest))
    if sink.kind == "file":
        out.update(output_path=sink.file.path, output_format=fmt, bytes_written=size)
    return out


def first_chunk(session, doc: dict, *, shape: str = "objects", decimals_as: str = "string") -> dict:
    """The first chunk of a SUCCEEDED StatementResponse, checked and converted: ``columns``,
    ``rows``, ``row_count``, ``manifest`` summary and ``next_chunk_index``."""
    manifest = doc.get("manifest") or {}
    chunks = StatementChunks(session, doc.get("statement_id"), manifest, doc.get("result"))
    first = doc.get("result") or {}
    convert = Converter(chunks.columns, shape=shape, decimals_as=decimals_as, csv_nulls=chunks.format == "CSV")
    rows = convert(chunks.checked(0, chunks.fetch(0), 0)[1]) if chunks.total else []
    nxt = first.get("next_chunk_index") if isinstance(first, dict) else None
    if nxt is None and chunks.total > 1:
        nxt = 1
    return {"columns": column_summary(chunks.columns), "rows": rows, "row_count": len(rows),
            "manifest": manifest_summary(manifest), "next_chunk_index": nxt}


def one_chunk(session, statement_id: str, manifest: dict, index: int, *, shape: str = "objects",
              decimals_as: str = "string") -> dict:
    """Chunk ``index`` of a result, checked against ``manifest`` and converted: ``chunk_index``,
    ``row_offset``, ``row_count``, ``columns``, ``rows``, ``next_chunk_index``."""
    chunks = StatementChunks(session, statement_id, manifest, None)
    offset = (chunks.promises.get(index) or {}).get("row_offset")
    meta, rows = chunks.checked(index, chunks.fetch(index, fresh=True), offset)
    convert = Converter(chunks.columns, shape=shape, decimals_as=decimals_as, csv_nulls=chunks.format == "CSV")
    return {"statement_id": statement_id, "chunk_index": index,
            "row_offset": offset if offset is not None else meta.get("row_offset"), "row_count": len(rows),
            "columns": column_summary(chunks.columns), "rows": convert(rows),
            "next_chunk_index": meta.get("next_chunk_index")}
