"""Many live leases on one plugin process: figures 3 and 4 of :mod:`bench.bench` (RSS per
lease, CPU while they renew), kept as a name.

    .venv/bin/python -m bench.bench_scale [bench.bench options, e.g. --leases 200 --quick]
"""

from __future__ import annotations

import sys

from bench.bench import main

if __name__ == "__main__":
    raise SystemExit(main(["--figures", "3,4", *sys.argv[1:]]))
