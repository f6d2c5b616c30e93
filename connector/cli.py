"""``databricks-connector``: spec, check, run, pick, poll, docs, emulator, demo.

stdout carries exactly one JSON document: the action's output, or ``{"error": {...}}`` with a
non-zero exit code. Logs, debug lines and progress go to stderr.
"""
from __future__ import annotations

import argparse
import json
import sys

from .errors import ConnectorError


def _print(doc) -> None:
    sys.stdout.write(json.dumps(doc, indent=2, ensure_ascii=False, default=str) + "\n")
    sys.stdout.flush()


def _fail(err: ConnectorError) -> int:
    _print({"error": err.to_dict()})
    return 1


def _connection(args):
    if args.connection:
        try:
            with open(args.connection, encoding="utf-8") as fh:
                doc = json.load(fh)
        except OSError as exc:
            raise ConnectorError("configuration", f"Cannot read the connection file {args.connection}: {exc.strerror}") from None
        except ValueError as exc:
            raise ConnectorError("configuration", f"The connection file {args.connection} is not valid JSON ({exc})") from None
        return doc
    from .connections.environment import from_environment

    doc = from_environment()
    if doc is None:
        raise ConnectorError("configuration", "No connection: pass --connection FILE.json, or set DATABRICKS_HOST with "
                             "DATABRICKS_TOKEN (or DATABRICKS_CLIENT_ID and DATABRICKS_CLIENT_SECRET), or a profile in ~/.databrickscfg",
                             hint="Run `databricks-connector emulator` to get a local workspace and its connection files.")
    return doc


def _inputs(args) -> dict:
    values: dict = {}
    if args.inputs_json:
        text = args.inputs_json
        if text.startswith("@"):
            try:
                with open(text[1:], encoding="utf-8") as fh:
                    text = fh.read()
            except OSError as exc:
                raise ConnectorError("invalid_input", f"Cannot read {text[1:]}: {exc.strerror}") from None
        try:
            doc = json.loads(text)
        except ValueError as exc:
            raise ConnectorError("invalid_input", f"--inputs-json is not valid JSON ({exc})") from None
        if not isinstance(doc, dict):
            raise ConnectorError("invalid_input", "--inputs-json must be a JSON object of input keys to values")
        values.update(doc)
    for pair in args.pairs:
        if "=" not in pair:
            raise ConnectorError("invalid_input", f"Expected key=value, got {pair!r}",
                                 hint="Give inputs as key=value pairs, e.g. cluster_id=0123-456789-abcdefgh.")
        key, value = pair.split("=", 1)
        values[key.strip()] = value
    return values


def cmd_spec(args) -> int:
    from .runner import default

    _print(default().spec())
    return 0


def cmd_run(args) -> int:
    from .runner import default

    connector = default()
    values = _inputs(args)
    if getattr(args, "output", None):
        values["output_path"] = args.output
    if args.command == "pick":
        _print(connector.pick(args.name, _connection(args), values))
    else:
        connector.action(args.name)  # unknown action: say so before asking for a connection
        _print(connector.run(args.name, _connection(args), values))
    return 0


def cmd_check(args) -> int:
    from .runner import default

    connector = default()
    conn = _connection(args)
    me = connector.run(_test_action(connector, conn), conn, {"debug": args.debug})
    shared = connector.session(conn)
    _print({"ok": True, "host": shared.host, "connection_type": shared.connection.type,
            "user": me.get("userName"), "display_name": me.get("displayName")})
    return 0


def _test_action(connector, conn) -> str:
    """The action that tests a connection, as its type declares in the manifest (``test``)."""
    kind = conn.get("type") if isinstance(conn, dict) else getattr(conn, "type", None)
    tests = {c["key"]: c.get("test") for c in connector.manifest["connections"]}
    return tests.get(kind) or next(t for t in tests.values() if t)


def cmd_docs(args) -> int:
    from .docs import check_docs, write_docs

    if args.check:
        drift = check_docs(args.dir)
        if drift:
            _print({"error": {"type": "configuration", "message": f"docs are out of date: {', '.join(drift)}",
                              "hint": "Run `databricks-connector docs` and commit the result.", "status": None,
                              "error_code": None}})
            return 1
        _print({"ok": True, "checked": args.dir})
        return 0
    _print({"written": write_docs(args.dir)})
    return 0


def cmd_poll(args) -> int:
    """One poll of a trigger. With --state FILE the state is read from FILE (missing: a first poll)
    and the new state written back atomically (a temporary file beside it, then renamed), and
    stdout carries the events; without it, stdout carries the whole result, state included."""
    import os

    from .runner import default

    connector = default()
    connector._lookup("triggers", args.name)   # an unknown trigger is said before asking for a connection
    values = _inputs(args)
    state = None
    if args.state and os.path.exists(args.state):
        try:
            with open(args.state, encoding="utf-8") as fh:
                text = fh.read()
            state = json.loads(text) if text.strip() else None
        except OSError as exc:
            raise ConnectorError("invalid_input", f"Cannot read the state file {args.state}: {exc.strerror}") from None
        except ValueError as exc:
            raise ConnectorError("invalid_input", f"The state file {args.state} is not valid JSON ({exc})",
                                 hint="Pass the file a previous poll wrote, or remove it to start from now.") from None
    result = connector.poll(args.name, _connection(args), values, state)
    if not args.state:
        _print(result)
        return 0
    _write_atomic(args.state, json.dumps(result["state"], sort_keys=True))
    _print({"events": result["events"], "more": result["more"], "activated": result["activated"],
            "state_file": os.path.abspath(args.state)})
    return 0


def _write_atomic(path: str, text: str) -> None:
    import os
    import tempfile

    folder = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(prefix=".poll-state-", dir=folder)
    except OSError as exc:
        raise ConnectorError("invalid_input", f"Cannot write the state file in {folder}: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def cmd_emulator(args) -> int:
    import time

    from .emulator import Emulator

    emu = Emulator(host=args.host, port=args.port)
    emu.start()
    _print({"url": emu.url, "connections": emu.connections(),
            "note": "Save a connection to a file and pass it with --connection; Ctrl-C stops the emulator."})
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        emu.stop()
    return 0


def cmd_demo(args) -> int:
    from .demo import run_demo

    return run_demo(fast=args.fast)


class _UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is a JSON error on stdout like every other failure."""

    def error(self, message):
        raise _UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    p = _Parser(prog="databricks-connector", description="Databricks connector: run actions, "
                                "print the spec, generate docs, serve a local workspace emulator.")
    p.add_argument("--version", action="version", version=f"databricks-connector {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    sub.add_parser("spec", help="print the manifest with compiled JSON Schemas").set_defaults(func=cmd_spec)

    for name, helptext in (("run", "run an action"), ("pick", "run a picker (the options of a dropdown)")):
        r = sub.add_parser(name, help=helptext)
        r.add_argument("name", help="action key or label" if name == "run" else "picker key or label")
        r.add_argument("pairs", nargs="*", metavar="key=value", help="inputs")
        r.add_argument("--inputs-json", help="inputs as a JSON object, or @FILE")
        r.add_argument("--connection", help="connection JSON file (default: DATABRICKS_* environment or ~/.databrickscfg)")
        if name == "run":
            r.add_argument("--output", help="write result rows to this file (actions that support it)")
        r.set_defaults(func=cmd_run)

    q = sub.add_parser("poll", help="poll a trigger once (events on stdout; the state in --state FILE)")
    q.add_argument("name", help="trigger key or label")
    q.add_argument("pairs", nargs="*", metavar="key=value", help="inputs")
    q.add_argument("--inputs-json", help="inputs as a JSON object, or @FILE")
    q.add_argument("--connection", help="connection JSON file (default: DATABRICKS_* environment or ~/.databrickscfg)")
    q.add_argument("--state", help="state file: read (missing = first poll) and rewritten atomically after the poll")
    q.set_defaults(func=cmd_poll)

    c = sub.add_parser("check", help="verify a connection (who am I)")
    c.add_argument("--connection")
    c.add_argument("--debug", action="store_true", help="log the request (secrets redacted) to stderr")
    c.set_defaults(func=cmd_check)

    d = sub.add_parser("docs", help="generate docs from connector.yaml, or check them")
    d.add_argument("--dir", default="docs")
    d.add_argument("--check", action="store_true", help="fail when the docs differ from the manifest")
    d.set_defaults(func=cmd_docs)

    e = sub.add_parser("emulator", help="serve a local Databricks workspace")
    e.add_argument("--host", default="127.0.0.1")
    e.add_argument("--port", type=int, default=8765)
    e.set_defaults(func=cmd_emulator)

    m = sub.add_parser("demo", help="start an emulator and run a tour of real actions")
    m.add_argument("--fast", action="store_true", help="shorten simulated start-up times")
    m.set_defaults(func=cmd_demo)
    return p


def main(argv=None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except _UsageError as exc:
        sys.stderr.write(parser.format_usage())
        _print({"error": ConnectorError("invalid_input", f"databricks-connector: {exc}",
                                        hint="Run `databricks-connector --help` for the commands and options.").to_dict()})
        return 2
    try:
        return args.func(args)
    except ConnectorError as err:
        return _fail(err)
    except KeyboardInterrupt:
        return 130
