"""``databricks-connector``: list, describe, spec, check, run, pick, poll, login, docs, emulator,
serve, demo.

stdout carries exactly one JSON document: the action's output, or ``{"error": {...}}`` with the
exit code of the error's family (``EXIT_CODES``, docs/cli.md). Logs, debug lines and progress go
to stderr. ``list`` and ``describe`` print text for people, or JSON with ``--json``.
"""
from __future__ import annotations

import argparse
import json
import sys

from .errors import ConnectorError

# One exit code per error family: what the caller does about it (docs/cli.md has this table).
EXIT_FAMILIES = [
    (1, "input", ("invalid_input", "bad_request"),
     "Fix the command: an unknown action or option, a bad input, or a request Databricks refused as invalid."),
    (2, "connection", ("configuration", "authentication"),
     "Fix the connection: no connection, a bad connection file, or credentials Databricks refused."),
    (3, "permission", ("permission_denied",), "Grant the user or service principal the permission named."),
    (4, "not found", ("not_found",), "Check the id: the resource does not exist or was deleted."),
    (5, "conflict or state", ("conflict", "invalid_state"),
     "The resource exists already, changed meanwhile, or is in a state that does not allow this; wait or change it first."),
    (6, "rate limited", ("rate_limited",), "Databricks throttled the requests; run again later."),
    (7, "server or network", ("server_error", "unavailable", "network"),
     "Databricks or the network failed; run again (check the host when it persists)."),
    (8, "timeout", ("timeout",), "A wait passed its timeout; follow the step with the action the error names."),
    (9, "operation failed", ("operation_failed",), "The run, command or statement ran and failed; see its error."),
    (10, "other", ("internal",), "A bug in the connector; report it with the command."),
    (130, "interrupted", ("interrupted",), "Ctrl-C or SIGTERM; what the step started was cancelled where it could be."),
]
EXIT_CODES = {t: code for code, _, types, _ in EXIT_FAMILIES for t in types}
EXIT_OTHER = 10
EXIT_INTERRUPTED = 130   # SIGINT or SIGTERM during a step: {"error": {"type": "interrupted", ...}} on stdout


def exit_code(error_type: str) -> int:
    """The exit code of an error type (its family's), ``EXIT_OTHER`` for a type not in the table."""
    return EXIT_CODES.get(error_type, EXIT_OTHER)


def _print(doc) -> None:
    sys.stdout.write(json.dumps(doc, indent=2, ensure_ascii=False, default=str) + "\n")
    sys.stdout.flush()


def _fail(err: ConnectorError) -> int:
    _print({"error": err.to_dict()})
    return exit_code(err.type)


def _connection(args):
    if args.connection:
        try:
            with open(args.connection, encoding="utf-8") as fh:
                doc = json.load(fh)
        except OSError as exc:
            raise ConnectorError("configuration", f"Cannot read the connection file {args.connection}: {exc.strerror}") from None
        except ValueError as exc:
            raise ConnectorError("configuration", f"The connection file {args.connection} is not valid JSON ({exc})") from None
        except RecursionError:
            raise ConnectorError("configuration", f"The connection file {args.connection} is nested too deeply") from None
        args.connection_doc = doc
        return doc
    from .connections.environment import from_environment

    doc = from_environment()
    if doc is None:
        raise ConnectorError("configuration", "No connection: pass --connection FILE.json, or set DATABRICKS_HOST with "
                             "DATABRICKS_TOKEN (or DATABRICKS_CLIENT_ID and DATABRICKS_CLIENT_SECRET), or a profile in ~/.databrickscfg",
                             hint="Run `databricks-connector emulator` to get a local workspace and its connection files.")
    return doc


class _Stdin:
    """Standard input, read once: ``--inputs-json @-`` or one ``key=@-``."""

    def __init__(self):
        self.used_by = None

    def read(self, who: str) -> str:
        if self.used_by is not None:
            raise ConnectorError("invalid_input", f"Standard input is read once; {self.used_by} already read it, so {who} cannot",
                                 hint="Put one of the values in a file and pass it as @FILE.")
        self.used_by = who
        return sys.stdin.read()


def _read_at(ref: str, who: str, stdin: _Stdin) -> str:
    """The text of ``@FILE`` (``@-``: standard input); one trailing newline is dropped."""
    name = ref[1:]
    if name == "-":
        text = stdin.read(who)
    else:
        try:
            with open(name, encoding="utf-8") as fh:
                text = fh.read()
        except OSError as exc:
            raise ConnectorError("invalid_input", f"Cannot read {name} for {who}: {exc.strerror}",
                                 hint="Give a readable file after @ (or @- for standard input); start a value with @@ "
                                      "for a literal @.") from None
        except UnicodeDecodeError:
            raise ConnectorError("invalid_input", f"{name} (for {who}) is not UTF-8 text") from None
    return text[:-1] if text.endswith("\n") else text


def _inputs(args) -> dict:
    """Inputs from ``--inputs-json`` (JSON, ``@FILE`` or ``@-``) and then ``key=value`` pairs
    (``key=@FILE`` reads the value from a file, ``key=@-`` from standard input, ``key=@@x`` is
    the literal ``@x``); a pair wins over the same key in the JSON."""
    values: dict = {}
    stdin = _Stdin()
    if args.inputs_json is not None:
        text = args.inputs_json
        if text.startswith("@"):
            text = _read_at(text, "--inputs-json", stdin)
        try:
            doc = json.loads(text)
        except ValueError as exc:
            raise ConnectorError("invalid_input", f"--inputs-json is not valid JSON ({exc})") from None
        except RecursionError:
            raise ConnectorError("invalid_input", "--inputs-json is nested too deeply") from None
        if not isinstance(doc, dict):
            raise ConnectorError("invalid_input", "--inputs-json must be a JSON object of input keys to values")
        values.update(doc)
    for pair in args.pairs:
        if "=" not in pair:
            raise ConnectorError("invalid_input", f"Expected key=value, got {pair!r}",
                                 hint="Give inputs as key=value pairs, e.g. cluster_id=0123-456789-abcdefgh; "
                                      "`databricks-connector describe ACTION` lists them.")
        key, value = pair.split("=", 1)
        key = key.strip()
        if value.startswith("@@"):
            value = value[1:]
        elif value.startswith("@") and len(value) > 1:
            value = _read_at(value, key, stdin)
        values[key] = value
    return values


def _find(connector, name: str, sections=("actions", "pickers", "triggers")):
    """(section, item) of a name in the first section that has it; the first section's error (with
    its did-you-mean) when none does."""
    first = None
    for section in sections:
        try:
            return section, connector._lookup(section, name)
        except ConnectorError as err:
            first = first or err
    raise first


def cmd_spec(args) -> int:
    from .runner import default

    _print(default().spec())
    return 0


def cmd_run(args) -> int:
    from .runner import default

    connector = default()
    section = "pickers" if args.command == "pick" else "actions"
    if args.help or not args.name:
        if not args.name:
            if args.help:
                sys.stdout.write(args._parser.format_help())
                return 0
            sys.stderr.write(args._parser.format_usage())     # stdout keeps its one JSON document
            return _fail(ConnectorError("invalid_input", f"databricks-connector {args.command}: name the {section[:-1]} to run",
                                        hint="`databricks-connector list` shows them all."))
        sys.stdout.write(describe_text(connector, section, connector._lookup(section, args.name)))
        return 0
    item = connector._lookup(section, args.name)   # an unknown name is said before asking for a connection
    values = _inputs(args)
    if getattr(args, "output", None):
        values["output_path"] = args.output
    if args.debug:
        if not any(i["key"] == "debug" for i in item["inputs"]):
            raise ConnectorError("invalid_input", f"{item['label']} has no Debug Request input; run it without --debug")
        values["debug"] = True
    try:
        if args.command == "pick":
            _print(connector.pick(item["key"], _connection(args), values))
        else:
            _print(connector.run(item["key"], _connection(args), values, progress=False if args.quiet else None))
    finally:
        _save_rotated_tokens(args)
    return 0


# --------------------------------------------------------------------------- list and describe

def _one_line(text: str | None, width: int = 88) -> str:
    line = " ".join((text or "").split())
    return line if len(line) <= width else line[:width - 3].rstrip() + "..."


def _listing(connector, kind: str | None, area: str | None) -> list[dict]:
    from .inputs import suggest

    manifest = connector.manifest
    areas = sorted({i.get("area") for s in ("actions", "pickers", "triggers") for i in manifest.get(s, []) if i.get("area")})
    if area is not None and area not in areas:
        guess = suggest(area, areas)
        raise ConnectorError("invalid_input", f"Unknown area {area!r}" + (f"; did you mean {' or '.join(guess)}?" if guess else ""),
                             hint=f"Areas: {', '.join(areas)}.")
    out = []
    for section in ("actions", "pickers", "triggers"):
        if kind and section != kind:
            continue
        for item in manifest.get(section, []):
            if area and item.get("area") != area:
                continue
            out.append({"kind": section[:-1], "key": item["key"], "label": item["label"], "group": item.get("group"),
                        "area": item.get("area"), "description": _one_line(item.get("description"), 10_000)})
    return out


def cmd_list(args) -> int:
    from .runner import default

    rows = _listing(default(), args.kind, args.area)
    if args.json:
        _print(rows)
        return 0
    lines = []
    for section in ("action", "picker", "trigger"):
        part = [r for r in rows if r["kind"] == section]
        if not part:
            continue
        width = max(len(r["key"]) for r in part)
        gwidth = max(len(r["group"] or r["area"] or "") for r in part)
        lines.append(f"{section.upper()}S ({len(part)})")
        for r in part:
            lines.append(f"  {r['key'].ljust(width)}  {(r['group'] or r['area'] or '').ljust(gwidth)}  {_one_line(r['description'], 72)}")
        lines.append("")
    lines.append("`databricks-connector describe KEY` shows an item's inputs and output; `databricks-connector run KEY "
                 "key=value ...` runs an action (`pick` a picker, `poll` a trigger).")
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


def describe(connector, section: str, item: dict) -> dict:
    """What a caller needs to call an item: its inputs (key, label, type, required, default, choices,
    comments, aliases), its output schema and example, and how to run it."""
    from . import inputs as _inputs
    from .runner import _spec_item

    spec = _spec_item(section, item, connector.manifest.get("definitions", {}))
    required = set(spec["input_schema"].get("required", []))
    rows = []
    for inp in _inputs.data_inputs(item):
        row = {"key": inp["key"], "label": inp["label"], "type": inp.get("type", "string"),
               "required": inp["key"] in required}
        if "default" in inp:
            row["default"] = inp["default"]
        if inp.get("choices"):
            row["choices"] = [c["value"] if isinstance(c, dict) else c for c in inp["choices"]]
        if inp.get("comments"):
            row["comments"] = inp["comments"]
        if inp.get("aliases"):
            row["aliases"] = [a["key"] for a in _inputs.aliases_of(inp)]
        if _inputs.is_secret(inp):
            row["secret"] = True
        if inp.get("picker"):
            row["picker"] = inp["picker"]
        if inp.get("advanced"):
            row["advanced"] = True
        rows.append(row)
    verb = {"actions": "run", "pickers": "pick", "triggers": "poll"}[section]
    usage = " ".join([f"databricks-connector {verb} {item['key']}", *(f"{r['key']}=VALUE" for r in rows if r["required"]),
                      "[key=value ...]", "[--connection FILE]"])
    out = {"kind": section[:-1], "key": item["key"], "label": item["label"], "description": item.get("description"),
           "group": item.get("group"), "area": item.get("area"), "version": item.get("version"),
           "annotations": item.get("annotations"), "usage": usage, "inputs": rows}
    if section == "triggers":
        out["event_schema"] = spec.get("event_schema")
        out["example_event"] = item.get("example_event")
    else:
        out["output_schema"] = spec.get("output_schema")
        out["example_output"] = item.get("example_output")
    return out


def _schema_summary(schema) -> str:
    if not isinstance(schema, dict):
        return "any JSON"
    if schema.get("type") == "array":
        items = schema.get("items") or {}
        return f"an array of {_schema_summary(items)}"
    props = schema.get("properties")
    if props:
        return "an object with " + ", ".join(props)
    for combo in ("oneOf", "anyOf"):
        if schema.get(combo):
            return " | ".join(filter(None, (b.get("title") or _schema_summary(b) for b in schema[combo] if isinstance(b, dict))))
    if "$ref" in schema:
        return schema["$ref"].rsplit("/", 1)[-1]
    return schema.get("type") or "any JSON"


def describe_text(connector, section: str, item: dict) -> str:
    doc = describe(connector, section, item)
    where = [f"{doc['kind']} {doc['key']}", *(f"{k} {doc[k]}" for k in ("area", "group", "version") if doc.get(k))]
    lines = [f"{doc['label']}  ({'; '.join(where[:1])}; {', '.join(where[1:])})"]
    if doc.get("description"):
        lines += ["", doc["description"].strip()]
    ann = doc.get("annotations") or {}
    flags = [k.replace("_", "-") for k, v in ann.items() if v]
    if flags:
        lines += ["", "Annotations: " + ", ".join(flags)]
    lines += ["", "Usage:", "  " + doc["usage"], ""]
    rows = doc["inputs"]
    if rows:
        head = ["KEY", "LABEL", "TYPE", "REQUIRED", "DEFAULT"]
        cells = [[r["key"], r["label"], r["type"], "yes" if r["required"] else "",
                  json.dumps(r["default"]) if "default" in r else ""] for r in rows]
        widths = [max(len(head[i]), *(len(c[i]) for c in cells)) for i in range(len(head))]
        lines.append("Inputs:")
        lines.append("  " + "  ".join(h.ljust(w) for h, w in zip(head, widths)).rstrip())
        for r, c in zip(rows, cells):
            lines.append("  " + "  ".join(x.ljust(w) for x, w in zip(c, widths)).rstrip())
            notes = []
            if r.get("comments"):
                notes.append(" ".join(r["comments"].split()))
            if r.get("choices"):
                notes.append("One of: " + ", ".join(map(str, r["choices"])) + ".")
            if r.get("aliases"):
                notes.append("Also accepted as: " + ", ".join(r["aliases"]) + ".")
            if r.get("secret"):
                notes.append("Secret: never printed.")
            if r.get("picker"):
                notes.append(f"Options: databricks-connector pick {r['picker']}.")
            if notes:
                lines.append("      " + " ".join(notes))
        lines.append("")
    schema_key, example_key = ("event_schema", "example_event") if section == "triggers" else ("output_schema", "example_output")
    lines.append(("Event: " if section == "triggers" else "Output: ") + _schema_summary(doc.get(schema_key)))
    if doc.get(example_key) is not None:
        lines += ["Example:", *("  " + ln for ln in json.dumps(doc[example_key], indent=2, default=str).splitlines())]
    lines.append("")
    lines.append(f"`databricks-connector describe {doc['key']} --json` gives this with the full "
                 f"{'event' if section == 'triggers' else 'output'} schema.")
    return "\n".join(lines) + "\n"


def cmd_describe(args) -> int:
    from .runner import default

    connector = default()
    section, item = _find(connector, args.name)
    if args.json:
        _print(describe(connector, section, item))
    else:
        sys.stdout.write(describe_text(connector, section, item))
    return 0


def cmd_check(args) -> int:
    from .runner import default

    connector = default()
    conn = _connection(args)
    try:
        me = connector.run(_test_action(connector, conn), conn, {"debug": args.debug})
    finally:
        _save_rotated_tokens(args)
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
    from .emulator.__main__ import launch
    from .emulator.state import ConfigError

    try:
        emu, files = launch(args.host, args.port, args.set, token=args.token, client_id=args.client_id,
                            client_secret=args.client_secret, connections_dir=args.write_connections)
    except ConfigError as exc:
        raise ConnectorError("invalid_input", f"Bad emulator settings: {exc}",
                             hint="See docs/emulator.md for every setting, its type and default.") from None
    doc = {"url": emu.url, "connections": emu.connections(),
           "note": "Save a connection to a file and pass it with --connection; Ctrl-C stops the emulator."}
    if files:
        doc["connection_files"] = files
        doc["note"] = "Pass a connection file with --connection; Ctrl-C stops the emulator."
    _print(doc)
    emu.serve_forever()
    return 0


def cmd_serve(args) -> int:
    try:
        from .server.app import ServerConfig, serve
    except ImportError as exc:
        raise ConnectorError("configuration", f"serve needs the server extra ({exc.name} is not installed)",
                             hint="pip install 'databricks-connector[server]'") from None
    hosts = [h for h in (args.allowed_hosts or "").split(",") if h.strip()] if args.allowed_hosts is not None else None
    config = ServerConfig(host=args.host, port=args.port, api_key_env=args.api_key_env, no_auth=args.no_auth,
                          connections_dir=args.connections, default_connection=args.default_connection, ca_bundle=args.ca_bundle, read_only=args.read_only,
                          sync_budget=args.sync_budget, poll_budget=args.poll_budget, token_secret_env=args.token_secret_env,
                          public_url=args.public_url, workers=args.workers, threads=args.threads,
                          max_body=args.max_body)
    if hosts is not None:
        config.allowed_hosts = hosts
    return serve(config)


def cmd_demo(args) -> int:
    from .demo import run_demo

    return run_demo(fast=args.fast, full=args.full)


def _write_json_atomically(path: str, doc: dict) -> None:
    """Replace ``path`` with ``doc`` in one step (a file beside it, synced, then renamed), readable
    by the owner only: a crash leaves the old file or the new one, never half of either."""
    import os
    import tempfile

    path = os.path.abspath(path)
    fd, tmp = tempfile.mkstemp(prefix=".connection-", suffix=".json", dir=os.path.dirname(path))
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(doc, fh, indent=2)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _save_rotated_tokens(args) -> None:
    """A user login refreshed during the command (Databricks may rotate its refresh token): write
    the new tokens back to the connection file, so the next command signs in with them."""
    doc = getattr(args, "connection_doc", None)
    if not doc or not getattr(args, "connection", None):
        return
    from .connections import current_connection

    latest = current_connection(doc)
    if latest != doc:
        try:
            _write_json_atomically(args.connection, latest)
            args.connection_doc = latest
        except OSError as exc:
            sys.stderr.write(f"[databricks] could not write the refreshed sign-in to {args.connection}: {exc.strerror}\n")


def cmd_login(args) -> int:
    """Sign a person in through their browser (OAuth user login) and write a connection file."""
    import os
    import webbrowser

    from .connections.user_oauth import login

    host = args.host or os.environ.get("DATABRICKS_HOST")
    if not host:
        raise ConnectorError("invalid_input", "No host: pass --host or set DATABRICKS_HOST",
                             hint="For example: databricks-connector login --host dbc-1234567890123456.cloud.databricks.com")

    def announce(url):
        sys.stderr.write(f"Sign in to Databricks in your browser. If it does not open, open this URL:\n{url}\n")
        sys.stderr.flush()

    doc = login(host, client_id=args.client_id, client_secret=os.environ.get("DATABRICKS_CLIENT_SECRET") or None,
                scopes=args.scopes, port=args.port, account_id=args.account_id, ca_bundle=args.ca_bundle,
                open_browser=None if args.no_browser else webbrowser.open, announce=announce, timeout=args.timeout)
    _write_json_atomically(args.output, doc)
    _print({"ok": True, "connection_file": args.output, "connection_type": doc["type"], "host": doc["host"],
            "expires_at": doc.get("expires_at"), "refresh_token": bool(doc.get("refresh_token"))})
    return 0


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

    ls = sub.add_parser("list", help="list the actions, pickers and triggers (key, group, description)")
    ls.add_argument("kind", nargs="?", choices=("actions", "pickers", "triggers"), help="only this kind")
    ls.add_argument("--area", help="only this API area (clusters, jobs, ...)")
    ls.add_argument("--json", action="store_true", help="a JSON array instead of text")
    ls.set_defaults(func=cmd_list)

    ds = sub.add_parser("describe", help="an action's (picker's, trigger's) inputs, output schema and example")
    ds.add_argument("name", help="action, picker or trigger key or label")
    ds.add_argument("--json", action="store_true", help="JSON instead of text (with the full output schema)")
    ds.set_defaults(func=cmd_describe)

    inputs_help = ("inputs as a JSON object, @FILE or @- (standard input); key=value pairs given too win")
    conn_help = "connection JSON file (default: DATABRICKS_* environment or ~/.databrickscfg)"
    for name, helptext in (("run", "run an action"), ("pick", "run a picker (the options of a dropdown)")):
        r = sub.add_parser(name, help=helptext, add_help=False,
                           epilog="Inputs: key=value, key=@FILE (the file's text), key=@- (standard input), key=@@x "
                                  "(a literal @x). Options and inputs go in any order. "
                                  f"`databricks-connector {name} KEY --help` describes one {'action' if name == 'run' else 'picker'}.")
        r.add_argument("name", nargs="?", help="action key or label" if name == "run" else "picker key or label")
        r.add_argument("pairs", nargs="*", metavar="key=value", help="inputs")
        r.add_argument("-h", "--help", action="store_true", help="describe the action (or show this help without one)")
        r.add_argument("--inputs-json", help=inputs_help)
        r.add_argument("--connection", help=conn_help)
        r.add_argument("--debug", action="store_true", help="log each request and answer to stderr, secrets redacted")
        if name == "run":
            r.add_argument("--output", help="write result rows to this file (actions that support it)")
            r.add_argument("--quiet", action="store_true", help="no progress lines on stderr while the step waits")
        r.set_defaults(func=cmd_run, _parser=r)

    q = sub.add_parser("poll", help="poll a trigger once (events on stdout; the state in --state FILE)", add_help=False)
    q.add_argument("name", nargs="?", help="trigger key or label")
    q.add_argument("pairs", nargs="*", metavar="key=value", help="inputs")
    q.add_argument("-h", "--help", action="store_true", help="describe the trigger (or show this help without one)")
    q.add_argument("--inputs-json", help=inputs_help)
    q.add_argument("--connection", help=conn_help)
    q.add_argument("--state", help="state file: read (missing = first poll) and rewritten atomically after the poll")
    q.set_defaults(func=_poll_or_help, _parser=q)

    c = sub.add_parser("check", help="verify a connection (who am I)")
    c.add_argument("--connection")
    c.add_argument("--debug", action="store_true", help="log the request (secrets redacted) to stderr")
    c.set_defaults(func=cmd_check)

    lg = sub.add_parser("login", help="sign in to Databricks in a browser (OAuth user login) and write a connection file")
    lg.add_argument("--host", help="workspace host (default: DATABRICKS_HOST)")
    lg.add_argument("--output", default="connection.json", help="connection file to write (default: connection.json)")
    lg.add_argument("--client-id", default="databricks-cli",
                    help="OAuth app connection's client ID (default: databricks-cli); a secret comes from DATABRICKS_CLIENT_SECRET")
    lg.add_argument("--scopes", default="all-apis offline_access")
    lg.add_argument("--account-id", help="for an accounts host")
    lg.add_argument("--port", type=int, default=8020, help="loopback port of the redirect (default: 8020)")
    lg.add_argument("--ca-bundle", help="PEM file of certificate authorities to trust (a TLS-inspecting proxy)")
    lg.add_argument("--no-browser", action="store_true", help="print the sign-in URL instead of opening a browser")
    lg.add_argument("--timeout", type=float, default=300, help="seconds to wait for the sign-in (default: 300)")
    lg.set_defaults(func=cmd_login)

    d = sub.add_parser("docs", help="generate docs from connector.yaml, or check them")
    d.add_argument("--dir", default="docs")
    d.add_argument("--check", action="store_true", help="fail when the docs differ from the manifest")
    d.set_defaults(func=cmd_docs)

    e = sub.add_parser("emulator", help="serve a local Databricks workspace")
    e.add_argument("--host", default="127.0.0.1")
    e.add_argument("--port", type=int, default=8765)
    e.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="an emulator setting, e.g. --set cluster_start_seconds=0.5 (repeatable; docs/emulator.md)")
    e.add_argument("--token", help="the personal access token to accept (default: a random one)")
    e.add_argument("--client-id", help="the service principal's application id (default: a random one)")
    e.add_argument("--client-secret", help="the service principal's OAuth secret (default: a random one)")
    e.add_argument("--write-connections", metavar="DIR", help="write one connection file per type into DIR")
    e.set_defaults(func=cmd_emulator)

    v = sub.add_parser("serve", help="serve the actions over HTTP (OpenAPI 3.1 and 2.0), MCP and a playground page")
    v.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    v.add_argument("--port", type=int, default=8080, help="port (default 8080; 0 picks a free one)")
    v.add_argument("--api-key-env", metavar="NAME", help="environment variable holding the key callers send in X-API-Key")
    v.add_argument("--no-auth", action="store_true", help="no API key (only on a loopback address)")
    v.add_argument("--allowed-hosts", metavar="LIST", help="comma-separated hosts a request's connection may point to: "
                   "host, *.domain or loopback (default: the Databricks cloud domains and loopback)")
    v.add_argument("--connections", metavar="DIR", help="folder of NAME.json connection files for X-Databricks-Connection")
    v.add_argument("--default-connection", metavar="NAME", help="the named connection of a request that sends none")
    v.add_argument("--ca-bundle", metavar="PEM", help="certificate authorities to trust for request-supplied hosts")
    v.add_argument("--read-only", action="store_true", help="expose only read-only actions")
    v.add_argument("--sync-budget", type=float, default=100.0, metavar="SECONDS",
                   help="longest wait before a call answers 202 with an operation (default 100)")
    v.add_argument("--poll-budget", type=float, default=5.0, metavar="SECONDS",
                   help="longest a GET /operations/{token} waits before it answers 202 again (default 5)")
    v.add_argument("--token-secret-env", metavar="NAME", help="environment variable holding the secret that signs "
                   "operation tokens (share it between servers behind a load balancer)")
    v.add_argument("--public-url", metavar="URL", help="the server's external URL (for Location headers and documents)")
    v.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    v.add_argument("--threads", type=int, default=64, help="concurrent calls per worker (default 64)")
    v.add_argument("--max-body", type=int, default=20 * 1024 * 1024, metavar="BYTES",
                   help="largest request body accepted (default 20 MiB)")
    v.set_defaults(func=cmd_serve)

    m = sub.add_parser("demo", help="start an emulator and run a tour of real actions, printing each command")
    m.add_argument("--fast", action="store_true", help="shorten simulated start-up times")
    m.add_argument("--full", action="store_true", help="print every output in full (long ones are cut otherwise)")
    m.set_defaults(func=cmd_demo)
    return p


def _poll_or_help(args) -> int:
    if args.help or not args.name:
        from .runner import default

        if not args.name:
            if args.help:
                sys.stdout.write(args._parser.format_help())
                return 0
            sys.stderr.write(args._parser.format_usage())
            return _fail(ConnectorError("invalid_input", "databricks-connector poll: name the trigger to poll",
                                        hint="`databricks-connector list triggers` shows them."))
        connector = default()
        sys.stdout.write(describe_text(connector, "triggers", connector._lookup("triggers", args.name)))
        return 0
    return cmd_poll(args)


POSITIONAL_EXTRAS = ("run", "pick", "poll")   # commands whose key=value inputs may follow their options


def _parse(parser, argv):
    """argparse with inputs and options in any order (``run ACTION --connection F key=value``) and
    a did-you-mean for an unknown option."""
    args, extras = parser.parse_known_args(argv)
    unknown = []
    for extra in extras:
        if args.command in POSITIONAL_EXTRAS and not extra.startswith("-"):
            if args.name is None:
                args.name = extra
            else:
                args.pairs.append(extra)
        else:
            unknown.append(extra)
    if unknown:
        from .inputs import suggest

        options = sorted({o for a in _subparser(parser, args.command)._actions for o in a.option_strings if o.startswith("--")})
        flag = unknown[0].split("=", 1)[0]
        guess = suggest(flag.lstrip("-"), [o[2:] for o in options]) if flag.startswith("-") else []
        mean = f"; did you mean {' or '.join('--' + g for g in guess)}?" if guess else ""
        raise _UsageError(f"unrecognized arguments: {' '.join(unknown)}{mean}")
    return args


def _subparser(parser, command):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action.choices.get(command, parser)
    return parser


def _terminated(signum, frame):
    """SIGTERM stops a step the way Ctrl-C does: its clean-up runs and one JSON error is printed."""
    exc = KeyboardInterrupt()
    exc.signal = signum
    raise exc


def main(argv=None) -> int:
    import signal
    import threading

    from .errors import Interrupted

    parser = build_parser()
    try:
        args = _parse(parser, argv)
    except _UsageError as exc:
        sys.stderr.write(parser.format_usage())
        _print({"error": ConnectorError("invalid_input", f"databricks-connector: {exc}",
                                        hint="Run `databricks-connector --help` for the commands and options.").to_dict()})
        return exit_code("invalid_input")
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _terminated)
    try:
        return args.func(args)
    except ConnectorError as err:
        return _fail(err)
    except Interrupted as exc:
        _print({"error": exc.error.to_dict()})
        return EXIT_INTERRUPTED
    except KeyboardInterrupt:
        if args.command in ("run", "pick", "check"):
            _print({"error": ConnectorError("interrupted", "Interrupted before the step started anything.",
                                            hint="Run the step again when ready.").to_dict()})
        return EXIT_INTERRUPTED
    except Exception as exc:  # noqa: BLE001 - a bug: one JSON error, never a traceback with a secret in it
        return _fail(ConnectorError("internal", f"Unexpected {type(exc).__name__} in databricks-connector {args.command}",
                                    hint="This is a bug in the connector; please report it with the command."))
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":      # python -m databricks_connector.cli
    sys.exit(main())
