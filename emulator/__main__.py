"""Run the emulator as a separate process:

    python -m databricks_connector.emulator [--host 127.0.0.1] [--port 0] [--set key=value ...]
        [--token dapi...] [--client-id ID] [--client-secret SECRET] [--write-connections DIR]

Prints one JSON line with the url and credentials (same as GET /__emulator/info), then serves
until interrupted. ``databricks-connector emulator`` takes the same options (see :func:`launch`).
Every ``--set`` names a field of the one ``Config`` (docs/emulator.md); its value is read as JSON
when it parses (numbers, true/false, null, strings in quotes), else as a string.
"""

import argparse
import json
import os
import sys
from typing import Iterable, Optional

from .server import Emulator
from .state import Config, ConfigError


def _value(text: str):
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_settings(items: Iterable[str]) -> dict:
    """``["k=v", ...]`` -> {k: value}, checked against ``Config``: ConfigError naming every
    malformed item, unknown name and bad value at once."""
    config, problems = {}, []
    for item in items:
        key, sep, val = item.partition("=")
        if not sep or not key.strip():
            problems.append(f"--set {item!r}: expected key=value")
            continue
        config[key.strip()] = _value(val)
    try:
        Config().update(config)
    except ConfigError as exc:
        problems = exc.problems + problems
    if problems:
        raise ConfigError(problems)
    return config


def write_connections(emu: Emulator, directory: str) -> dict:
    """One connection document per connection type, ``<dir>/<type>.json`` (mode 0600: they hold
    credentials). Returns {type: path}."""
    os.makedirs(directory, exist_ok=True)
    out = {}
    for kind, doc in emu.connections().items():
        path = os.path.join(directory, f"{kind}.json")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(doc, fh, indent=2)
            fh.write("\n")
        out[kind] = path
    return out


def launch(host: str = "127.0.0.1", port: int = 0, settings: Iterable[str] = (), *, token: Optional[str] = None,
           client_id: Optional[str] = None, client_secret: Optional[str] = None,
           connections_dir: Optional[str] = None) -> tuple:
    """Configure and start an emulator: (emulator, {type: connection file} or {}). A bad setting
    raises ConfigError naming every bad one, before anything starts."""
    config = parse_settings(settings)
    emu = Emulator(port=port, host=host, token=token or None, client_id=client_id or None,
                   client_secret=client_secret or None, **config)
    emu.start()
    files = write_connections(emu, connections_dir) if connections_dir else {}
    return emu, files


def add_arguments(ap: argparse.ArgumentParser, default_port: int = 0) -> None:
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=default_port)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="a configuration field, e.g. --set cluster_start_seconds=0.5 (repeatable)")
    ap.add_argument("--token", help="the personal access token to accept (default: a random dapi... token)")
    ap.add_argument("--client-id", help="the service principal's application id (default: random)")
    ap.add_argument("--client-secret", help="the service principal's OAuth secret (default: random)")
    ap.add_argument("--write-connections", metavar="DIR",
                    help="write one connection file per connection type into DIR (for --connection)")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="databricks_connector.emulator")
    add_arguments(ap)
    args = ap.parse_args(argv)
    try:
        emu, files = launch(args.host, args.port, args.set, token=args.token, client_id=args.client_id,
                            client_secret=args.client_secret, connections_dir=args.write_connections)
    except ConfigError as exc:
        sys.stderr.write(f"databricks_connector.emulator: {exc}\n")
        return 2
    info = emu.info()
    if files:
        info["connection_files"] = files
    print(json.dumps(info), flush=True)
    emu.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
