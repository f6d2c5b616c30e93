"""Run one command and write its own wall time, peak RSS and CPU as JSON to RESULT.json.

    python -S bench/_launch.py RESULT.json CMD [ARG ...]

Why a launcher: on Linux a child's peak RSS (ru_maxrss) starts at the high-water mark of the
process it was forked from, so children forked from the benchmark driver (which has imported
requests, the connector and the SDK) would all report the driver's size. This launcher is a
fresh, small interpreter (no site-packages), so the floor is its own size, about 11 MB, below
every measured client except a bare ``python -c pass``.
"""
import json
import os
import subprocess
import sys
import time

result, cmd = sys.argv[1], sys.argv[2:]
t0 = time.perf_counter()
p = subprocess.Popen(cmd)
_, status, ru = os.wait4(p.pid, 0)
wall = time.perf_counter() - t0
with open(result, "w") as fh:
    json.dump({"wall": wall, "rss_kb": ru.ru_maxrss, "cpu": ru.ru_utime + ru.ru_stime,
               "rc": os.waitstatus_to_exitcode(status)}, fh)
