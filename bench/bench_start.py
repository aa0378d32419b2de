"""What net-dhcp adds to `docker run`: figures 1 and 6 of :mod:`bench.bench`, kept as a name.

    .venv/bin/python -m bench.bench_start [bench.bench options, e.g. --rounds 15 --quick]
"""

from __future__ import annotations

import sys

from bench.bench import main

if __name__ == "__main__":
    raise SystemExit(main(["--figures", "1,6", *sys.argv[1:]]))
