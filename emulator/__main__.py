"""Run the emulator as a separate process:

    python -m databricks_connector.emulator [--host 127.0.0.1] [--port 8765] [--set key=value ...]

Prints one JSON line with the url and credentials (same as GET /__emulator/info), then
serves until interrupted.
"""

import argparse
import json
import sys

from .server import Emulator


def _value(text: str):
    try:
        return json.loads(text)
    except ValueError:
        return text


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="databricks_connector.emulator")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="config field, e.g. --set cluster_start_seconds=0.5")
    args = ap.parse_args(argv)
    config = {}
    for item in args.set:
        key, _, val = item.partition("=")
        config[key.strip()] = _value(val)
    emu = Emulator(port=args.port, host=args.host, **config)
    emu.start()
    print(json.dumps(emu.info()), flush=True)
    emu.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
