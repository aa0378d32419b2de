"""Benchmark: what net-dhcp adds to `docker run`, measured in one run, as ratios.

Runs `docker run --rm IMAGE true` interleaved over: --network none, the default bridge,
net-dhcp without the RFC 5227 probe (ignore_conflicts=true) and net-dhcp with it, on a
throwaway lab (bridge + dnsmasq --no-ping). Prints medians and ratios; asserts nothing.

    .venv/bin/python -m bench.bench_start [--rounds 15]
"""

from __future__ import annotations

import argparse
import statistics
import time

from tests.lab import DhcpLan, Plugin, docker, ensure_dockerd, ensure_image

from bench.bench_scale import process_stats


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rounds", type=int, default=15)
    args = ap.parse_args()
    handle = ensure_dockerd()
    image = ensure_image()
    lab = DhcpLan()
    plugin = Plugin(log_level="info")
    nets: list[str] = []
    try:
        plugin.start()
        for name, opts in (("bench-probe", []), ("bench-noprobe", ["-o", "ignore_conflicts=true"])):
            docker("network", "create", "-d", plugin.name, "--ipam-driver", "null",
                   "-o", f"bridge={lab.bridge}", *opts, name)
            nets.append(name)
        cases = {"none": "none", "bridge": "bridge", "net-dhcp (no probe)": "bench-noprobe",
                 "net-dhcp (ARP probe)": "bench-probe"}
        times: dict[str, list[float]] = {k: [] for k in cases}
        for net in cases.values():  # warm-up
            docker("run", "--rm", "--network", net, image, "true")
        for _ in range(args.rounds):
            for label, net in cases.items():
                t = time.perf_counter()
                docker("run", "--rm", "--network", net, image, "true")
                times[label].append(time.perf_counter() - t)
        med = {k: statistics.median(v) for k, v in times.items()}
        print(f"docker run --rm {image} true, median of {args.rounds} interleaved rounds:")
        for label, m in med.items():
            print(f"  {label:22s} {m * 1000:7.1f} ms   x{m / med['none']:.2f} of --network none"
                  f"   x{m / med['bridge']:.2f} of bridge")
        probe = med["net-dhcp (ARP probe)"] - med["net-dhcp (no probe)"]
        print(f"  RFC 5227 probe adds {probe * 1000:.1f} ms "
              f"(median difference; by design 10 + 20 ms of listening)")
        pid = plugin.proc.pid if plugin.proc else None
        if pid:
            rss_mib = process_stats(pid)[0]
            print(f"  plugin RSS after {args.rounds * 2 + 2} containers: {rss_mib:.1f} MiB")
        return 0
    finally:
        for n in nets:
            docker("network", "rm", n, check=False)
        plugin.close()
        lab.close()
        handle.stop()


if __name__ == "__main__":
    raise SystemExit(main())
