"""File transfer benchmark: peak Python memory of an Upload File and a Download File through the
emulator's Files API, for a small and a large file. Streaming means the peak is flat: it does not
grow with the file. Run: PYTHONPATH=.dev python bench/transfer.py [--sizes 10,1024] (MiB).

The emulator runs in this process over plain HTTP (it streams too: uploads are read and downloads
sent in pieces), so the figure is the peak of both sides together (tracemalloc); the files live on
disk in a temporary folder."""
from __future__ import annotations

import argparse
import os
import tempfile
import time
import tracemalloc


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="10,1024", help="file sizes in MiB, comma-separated")
    args = ap.parse_args()
    from databricks_connector.emulator import Emulator
    from databricks_connector.runner import Connector

    with Emulator(tls=False) as emu, tempfile.TemporaryDirectory() as tmp:
        conn = emu.connections()["personal_access_token"]
        connector = Connector()
        connector.run("create_schema", conn, {"catalog_name": "main", "schema_name": "bench"})
        connector.run("create_volume", conn, {"catalog_name": "main", "schema_name": "bench", "volume_name": "v"})
        print(f"{'size MiB':>9} {'upload s':>9} {'MiB/s':>7} {'download s':>11} {'MiB/s':>7} {'peak MiB':>9}")
        for mib in (int(s) for s in args.sizes.split(",")):
            src = os.path.join(tmp, f"in-{mib}.bin")
            block = os.urandom(1 << 20)
            with open(src, "wb") as fh:
                for _ in range(mib):
                    fh.write(block)
            path = f"/Volumes/main/bench/v/f{mib}.bin"
            out = os.path.join(tmp, f"out-{mib}.bin")
            tracemalloc.start()
            t0 = time.perf_counter()
            connector.run("upload_file", conn, {"file_path": path, "local_path": src}, progress=False)
            t1 = time.perf_counter()
            got = connector.run("download_file", conn, {"file_path": path, "output_path": out}, progress=False)
            t2 = time.perf_counter()
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            assert got["size"] == mib << 20 and os.path.getsize(out) == mib << 20
            print(f"{mib:>9} {t1 - t0:>9.2f} {mib / (t1 - t0):>7.0f} {t2 - t1:>11.2f} {mib / (t2 - t1):>7.0f} "
                  f"{peak / 2 ** 20:>9.1f}")
            os.unlink(src)
            os.unlink(out)
            connector.run("delete_file", conn, {"file_path": path})


if __name__ == "__main__":
    main()
