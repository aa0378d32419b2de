"""Benchmark: many running containers on one plugin process (one event loop).

Starts N containers (default 50; --n 200 for the full run) on a throwaway lab whose server
sends T1=5 s, waits for every lease to be renewed once, and prints the plugin's RSS,
threads, fds and CPU time, and how long the starts and the first renewal round took.
Asserts nothing.

    .venv/bin/python -m bench.bench_scale [--n 50]
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import time
from pathlib import Path

from tests.lab import DhcpLan, Plugin, docker, ensure_dockerd, ensure_image, random_mac


def process_stats(pid: int) -> tuple[float, int, int, float]:
    """(RSS in MiB, threads, open fds, CPU seconds) of a process, from /proc."""
    status = Path(f"/proc/{pid}/status").read_text().splitlines()
    rss_kib = next(int(line.split()[1]) for line in status if line.startswith("VmRSS"))
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu_s = (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK")
    return (rss_kib / 1024, len(os.listdir(f"/proc/{pid}/task")),
            len(os.listdir(f"/proc/{pid}/fd")), cpu_s)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=50)
    args = ap.parse_args()
    handle = ensure_dockerd()
    image = ensure_image()
    lab = DhcpLan(t1=5, t2=8, range_start=None, range_end=None)
    lab.stop_dnsmasq()
    lab.start_dnsmasq(range_start=lab.address(2), range_end=lab.address(250))
    plugin = Plugin(log_level=os.environ.get("LOG_LEVEL", "info"))
    net = "nd-bench-" + lab.id
    names: list[str] = []
    try:
        plugin.start()
        assert plugin.proc is not None
        pid = plugin.proc.pid
        docker("network", "create", "-d", plugin.name, "--ipam-driver", "null",
               "-o", f"bridge={lab.bridge}", net)
        idle = process_stats(pid)
        macs = [random_mac() for _ in range(args.n)]
        t = time.perf_counter()
        for i, mac in enumerate(macs):
            name = f"nd-bench-{lab.id}-{i}"
            docker("run", "-d", "--init", "--name", name, "--network", net,
                   "--mac-address", mac, image, "sleep", "3600")
            names.append(name)
        start_s = time.perf_counter() - t
        since = lab.log_offset()
        t, wall = time.perf_counter(), time.time()
        pending = set(macs)
        while pending and time.perf_counter() - t < 120:
            # A renewal moves the lease's expiry in dnsmasq's lease file past wall + lease
            # time; its log (which may drop lines under load) is the second witness.
            log = lab.log(since)
            renewed = {lease.mac for lease in lab.leases() if lease.expiry >= wall + 119}
            pending = {m for m in pending
                       if m not in renewed and not re.search(rf"DHCPACK\(\w+\) \S+ {m}", log)}
            time.sleep(0.5)
        renew_s = time.perf_counter() - t
        busy = process_stats(pid)
        if pending:
            os.kill(pid, signal.SIGUSR1)  # thread stacks into the plugin's output file
            time.sleep(1)
            print(f"  not renewed: {sorted(pending)[:5]} (plugin log: {plugin.log_file}, "
                  f"stacks: {plugin.output_file})")
        print(f"{args.n} containers on one plugin process:")
        print(f"  starts: {start_s:.1f} s in all, {start_s / args.n * 1000:.0f} ms each "
              "(sequential docker run -d)")
        print(f"  first renewal round: {args.n - len(pending)}/{args.n} renewed within "
              f"{renew_s:.1f} s of the last start (T1 = 5 s)")
        print(f"  plugin idle:   RSS {idle[0]:.1f} MiB, {idle[1]} threads, {idle[2]} fds")
        print(f"  plugin loaded: RSS {busy[0]:.1f} MiB, {busy[1]} threads, {busy[2]} fds, "
              f"+{(busy[0] - idle[0]) / args.n * 1024:.0f} KiB and "
              f"+{(busy[2] - idle[2]) / args.n:.1f} fds per container, "
              f"CPU {busy[3] - idle[3]:.1f} s so far")
        return 0
    finally:
        for i in range(0, len(names), 20):
            docker("rm", "-f", *names[i:i + 20], check=False, timeout=300)
        docker("network", "rm", net, check=False)
        plugin.close()
        lab.close()
        handle.stop()


if __name__ == "__main__":
    raise SystemExit(main())
