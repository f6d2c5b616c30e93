"""``databricks-connector``: spec, check, run, pick, login, docs, emulator, serve, demo.

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
        except RecursionError:
            raise ConnectorError("invalid_input", "--inputs-json is nested too deeply") from None
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
    try:
        if args.command == "pick":
            _print(connector.pick(args.name, _connection(args), values))
        else:
            connector.action(args.name)  # unknown action: say so before asking for a connection
            _print(connector.run(args.name, _connection(args), values, progress=False if args.quiet else None))
    finally:
        _save_rotated_tokens(args)
    return 0


def cmd_check(args) -> int:
    from .runner import default

    connector = default()
    conn = _connection(args)
    try:
        me = connector.run("get_current_user", conn, {"debug": args.debug})
    finally:
        _save_rotated_tokens(args)
    shared = connector.session(conn)
    _print({"ok": True, "host": shared.host, "connection_type": shared.connection.type,
            "user": me.get("userName"), "display_name": me.get("displayName")})
    return 0


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

    return run_demo(fast=args.fast)


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

    for name, helptext in (("run", "run an action"), ("pick", "run a picker (the options of a dropdown)")):
        r = sub.add_parser(name, help=helptext)
        r.add_argument("name", help="action key or label" if name == "run" else "picker key or label")
        r.add_argument("pairs", nargs="*", metavar="key=value", help="inputs")
        r.add_argument("--inputs-json", help="inputs as a JSON object, or @FILE")
        r.add_argument("--connection", help="connection JSON file (default: DATABRICKS_* environment or ~/.databrickscfg)")
        if name == "run":
            r.add_argument("--output", help="write result rows to this file (actions that support it)")
            r.add_argument("--quiet", action="store_true", help="no progress lines on stderr while the step waits")
        r.set_defaults(func=cmd_run)

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

    m = sub.add_parser("demo", help="start an emulator and run a tour of real actions")
    m.add_argument("--fast", action="store_true", help="shorten simulated start-up times")
    m.set_defaults(func=cmd_demo)
    return p


EXIT_INTERRUPTED = 130   # SIGINT or SIGTERM during a step: {"error": {"type": "interrupted", ...}} on stdout


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
        args = parser.parse_args(argv)
    except _UsageError as exc:
        sys.stderr.write(parser.format_usage())
        _print({"error": ConnectorError("invalid_input", f"databricks-connector: {exc}",
                                        hint="Run `databricks-connector --help` for the commands and options.").to_dict()})
        return 2
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
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
