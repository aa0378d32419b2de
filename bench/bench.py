"""Benchmark: what net-dhcp costs next to Docker's own bridge driver, on both test engines.

One run measures, on each engine (dockerd 20.10 on the default socket, Docker 28.5 on its
private socket; ``--engines``), against Docker's bridge driver measured in the same run and
interleaved with it so machine noise hits both alike:

1. ``docker run --rm IMAGE true``, median of interleaved rounds: net-dhcp (with its conflict
   probe, the default) and net-dhcp ``-o ignore_conflicts=true`` (no probe), as ratios to a
   user-defined ``bridge`` network (the like-for-like case: the same Docker code path as any
   user-defined network, embedded DNS resolver included) and to the default ``bridge``
   network; ``--network none`` for reference. Target <= 1.10x of the user-defined bridge.
2. N containers started at once (``docker run -d`` launched concurrently), wall time until
   all N commands returned, net-dhcp / user-defined bridge (and / default bridge), order
   alternated, median of the repetitions; every net-dhcp container must get its own address
   in the DHCP range. Target <= 1.15x and N/N.
3. Plugin RSS per live lease: (RSS with N running containers - RSS with none) / N.
   Target <= 20 KiB.
4. Plugin CPU while those N leases renew (dnsmasq sends T1): CPU seconds over 2 x T1 as a
   percentage of one core, with the renewals counted in dnsmasq's log (its DHCPACKs).
   Target <= 1 %.
5. ``net-dhcp serve`` until POST /Plugin.Activate answers, median (``bench.serve_start``;
   engine-independent, measured once). Target <= 0.3 s.
6. The plugin's own time per CreateEndpoint (veth, DHCPv4 exchange, conflict probe), medians
   parsed from its log over figure 1's runs ("n/a" when the plugin does not log them).

Prints a table and writes every figure, its target and pass/short to a JSON file. It asserts
nothing and exits 0 unless the bench itself broke (then 1, after cleaning up).

    .venv/bin/python -m bench.bench [--quick] [--engines docker20,docker28] [--json PATH]
        [--figures 1,2,3,4,5,6] [--rounds N] [--burst N] [--burst-reps N] [--leases N]
        [--serve-runs N]

Full size: 15 rounds, 50 containers at once x 5, 200 leases with T1 = 60 s (a 120 s CPU
window), 15 serve starts: 15-30 minutes for both engines. ``--quick``: 5 rounds, 10 at once
x 1, 30 leases with T1 = 20 s (a 40 s window), 5 serve starts.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import secrets
import signal
import statistics
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from tests.lab import (
    ENGINE20,
    ENGINE28,
    DhcpLan,
    DockerdHandle,
    Engine,
    LabError,
    Plugin,
    docker,
    docker_client,
    ensure_engine,
    ensure_image,
)
from tests.lab import engine as engine_named

DEFAULT_JSON = Path(__file__).resolve().parent / "results.json"
FIGURES = (1, 2, 3, 4, 5, 6)

RUN_RATIO_TARGET = 1.10
BURST_RATIO_TARGET = 1.15
RSS_PER_LEASE_TARGET_KIB = 20.0
RENEW_CPU_TARGET_PCT = 1.0
SERVE_START_TARGET_S = 0.3

# The plugin's INFO lines with its own timings (figure 6).
CREATE_RX = re.compile(r"endpoint \w+: CreateEndpoint ([\d.]+) ms \(([^)]*)\)")
SPLIT_PARTS = ("veth", "DHCPv4", "probe", "store")
"""The parts of the CreateEndpoint log line that figures 2 and 6 show (driver._Stopwatch)."""
SPLIT_PART_RX = re.compile(r"(\w+) ([\d.]+) ms")
# A renewal, in the plugin's log (dhcp4/keeper.py) and in dnsmasq's.
PLUGIN_RENEW_RX = re.compile(r": lease on (\S+) renewed for ")
DNSMASQ_ACK_RX = re.compile(r"DHCPACK\(\w+\) (\d+\.\d+\.\d+\.\d+) ([0-9a-f:]{17})")

LEASE_RELEASE_TIMEOUT_S = 120.0
SETTLE_S = 5.0
QUIET_FRACTION = 0.10
QUIET_WAIT_S = 20.0
T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class Size:
    """How big each figure's run is."""

    rounds: int  # figure 1: interleaved rounds
    burst: int  # figure 2: containers started at once
    burst_reps: int  # figure 2: repetitions (median)
    leases: int  # figures 3 and 4: live leases
    t1_s: int  # figure 4: dnsmasq's T1 (renewal interval); the window is 2 x T1
    t2_s: int  # dnsmasq's T2 (< the 120 s lease, dnsmasq's minimum)
    serve_runs: int  # figure 5


FULL = Size(rounds=15, burst=50, burst_reps=5, leases=200, t1_s=60, t2_s=105, serve_runs=15)
QUICK = Size(rounds=5, burst=10, burst_reps=1, leases=30, t1_s=20, t2_s=35, serve_runs=5)


@dataclass
class Figure:
    """One measured figure: its value, its target and whether it meets it.

    ``counts``: False for figures shown next to a counted one for information (their result
    is printed in parentheses). ``target`` None: no target (result "info")."""

    engine: str
    fig: int
    key: str
    label: str
    value: float | None
    unit: str
    target: float | None = None
    op: str = "<="
    counts: bool = True
    detail: str = ""
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def result(self) -> str:
        if self.value is None:
            return "n/a"
        if self.target is None:
            return "info"
        ok = self.value <= self.target if self.op == "<=" else self.value >= self.target
        return "pass" if ok else "short"

    def as_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["result"] = self.result
        return d


def fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "n/a"
    if unit == "x":
        return f"{value:.2f}x"
    if unit in ("ms", "KiB"):
        return f"{value:.1f} {unit}"
    if unit == "s":
        return f"{value:.3f} s"
    if unit == "%":
        return f"{value:.2f} %"
    if unit == "count":
        return f"{value:.0f}"
    return f"{value:g} {unit}"


def log(msg: str) -> None:
    stamp = time.strftime("%H:%M:%S")
    print(f"[{stamp}] {msg}", file=sys.stderr, flush=True)


def median(xs: Sequence[float]) -> float | None:
    return statistics.median(xs) if xs else None


def percentile(xs: Sequence[float], q: float) -> float | None:
    """The value below which a fraction `q` of `xs` lies (nearest rank), None if empty."""
    if not xs:
        return None
    ordered = sorted(xs)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def parallel(fn: Callable[[T], R], items: Iterable[T], workers: int) -> list[R]:
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        return list(pool.map(fn, items))


def chunks(xs: Sequence[T], n: int) -> list[list[T]]:
    return [list(xs[i:i + n]) for i in range(0, len(xs), n)]


# --------------------------------------------------------------------------- the plugin process


def rss_kib(pid: int) -> int:
    """The process's resident set (VmRSS) in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise LabError(f"no VmRSS for pid {pid}")


def cpu_s(pid: int) -> float:
    """utime + stime of the process (all its threads), in seconds."""
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK")


def busy_cpu_s() -> float:
    """CPU seconds the whole machine has spent busy (all but idle and iowait) since boot."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    ticks = [int(f) for f in fields[:8]]  # user nice system idle iowait irq softirq steal
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")


def wait_until_quiet() -> float:
    """Wait until the machine is quiet (under QUIET_FRACTION of its cores busy over two
    consecutive 0.25 s windows; the kernel tears down removed containers' namespaces after
    `docker rm` returns), at most QUIET_WAIT_S: how long it took. (Not SETTLE_S: the fixed
    wait before figures 3-4 read the plugin's RSS.)"""
    cores, t0 = os.cpu_count() or 1, time.monotonic()
    calm = 0
    while calm < 2 and time.monotonic() - t0 < QUIET_WAIT_S:
        b0, w0 = busy_cpu_s(), time.monotonic()
        time.sleep(0.25)
        busy = (busy_cpu_s() - b0) / ((time.monotonic() - w0) * cores)
        calm = calm + 1 if busy < QUIET_FRACTION else 0
    return time.monotonic() - t0


def threads_fds(pid: int) -> tuple[int, int]:
    return len(os.listdir(f"/proc/{pid}/task")), len(os.listdir(f"/proc/{pid}/fd"))


# --------------------------------------------------------------------------- one engine's run


class EngineBench:
    """Everything the bench makes on one engine, and how to remove it all."""

    def __init__(self, eng: Engine, size: Size, quick: bool) -> None:
        self.eng = eng
        self.size = size
        self.quick = quick
        self.host = eng.docker_host
        self.id = secrets.token_hex(3)
        self.handle: DockerdHandle | None = None
        self.lab: DhcpLan | None = None
        self.image = ""
        self.version = ""
        self.plugins: list[Plugin] = []
        self.networks: list[str] = []
        self.containers: list[str] = []
        self.figures: list[Figure] = []
        self.raw: dict[str, Any] = {}
        self.errors: list[str] = []
        self.segments: dict[str, list[str]] = {}  # figure 6: plugin log per net-dhcp run

    # -- helpers

    def docker(self, *args: str, check: bool = True,
               timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
        return docker(*args, check=check, timeout=timeout, host=self.host)

    def argv(self, *args: str) -> list[str]:
        return [docker_client(self.host), "-H", self.host, *args]

    def fig(self, fig: int, key: str, label: str, value: float | None, unit: str,
            **kw: Any) -> Figure:
        f = Figure(self.eng.name, fig, key, label, value, unit, **kw)
        self.figures.append(f)
        return f

    def net_create(self, name: str, *args: str) -> str:
        self.networks.append(name)
        self.docker("network", "create", *args, name)
        return name

    def nd_net(self, plugin: Plugin, name: str, *opts: str) -> str:
        assert self.lab is not None
        return self.net_create(name, "-d", plugin.name, "--ipam-driver", "null",
                               "-o", f"bridge={self.lab.bridge}", *opts)

    def new_plugin(self) -> Plugin:
        # Default settings as a user runs it, on this engine's API socket; INFO logs the
        # renewals (figure 4) and the timings (figure 6).
        p = Plugin(log_level="info",
                   extra_args=["--docker-socket", str(self.eng.socket_path)])
        self.plugins.append(p)
        p.start()
        return p

    def rm(self, names: Sequence[str], workers: int = 8) -> None:
        """docker rm -f, concurrently (a few names per command)."""
        if not names:
            return

        def one(batch: list[str]) -> None:
            self.docker("rm", "-f", "-v", *batch, check=False, timeout=600)

        parallel(one, chunks(names, 5), workers)
        gone = set(names)
        self.containers = [c for c in self.containers if c not in gone]

    def wait_leases(self, at_most: int, what: str) -> float:
        """Wait until dnsmasq holds at most ``at_most`` leases; the seconds it took."""
        assert self.lab is not None
        t = time.monotonic()
        while len(self.lab.leases()) > at_most:
            if time.monotonic() - t > LEASE_RELEASE_TIMEOUT_S:
                n = len(self.lab.leases())
                log(f"  {self.eng.name}: {n} leases still held {LEASE_RELEASE_TIMEOUT_S:g} s "
                    f"after {what} (want <= {at_most}); going on")
                break
            time.sleep(0.2)
        return time.monotonic() - t

    def cleanup(self) -> None:
        """Remove containers, networks, plugins and the lab; best effort, each step."""
        steps: list[tuple[str, Callable[[], object]]] = [
            ("containers", lambda: self.rm(list(self.containers))),
            ("networks", self._rm_networks),
            ("plugins", self._close_plugins),
        ]
        if self.lab is not None:
            steps.append(("lab", self.lab.close))
        if self.handle is not None:
            steps.append(("dockerd", self.handle.stop))  # only stops one the bench started
        for what, fn in steps:
            try:
                fn()
            except Exception as err:  # noqa: BLE001 - teardown goes on whatever fails
                log(f"  {self.eng.name} cleanup of {what}: {err}")

    def _rm_networks(self) -> None:
        for n in reversed(self.networks):
            res = self.docker("network", "rm", n, check=False, timeout=60)
            if res.returncode != 0 and "not found" not in res.stderr:
                problem = f"docker network rm {n}: {res.stderr.strip()}"
                log(f"  {self.eng.name}: {problem}")
                self.errors.append(f"cleanup: {problem}")
        self.networks.clear()

    def _close_plugins(self) -> None:
        for p in self.plugins:
            p.close()
        self.plugins.clear()

    # -- the run

    def run(self, figures: set[int]) -> None:
        log(f"{self.eng.name}: engine")
        self.handle = ensure_engine(self.eng)
        self.version = self.docker("version", "--format", "{{.Server.Version}}").stdout.strip()
        self.image = ensure_image(host=self.host)
        # ~240 addresses: figure 2's bursts and figure 3's leases never run the pool dry.
        probe_lab = DhcpLan(t1=self.size.t1_s, t2=self.size.t2_s)
        self.lab = probe_lab
        probe_lab.stop_dnsmasq()
        probe_lab.start_dnsmasq(range_start=probe_lab.address(10),
                                range_end=probe_lab.address(250))
        log(f"{self.eng.name}: Docker {self.version}, lab {probe_lab.bridge} "
            f"{probe_lab.subnet} pool .10-.250, T1 {self.size.t1_s} s")
        if figures & {1, 2, 6}:
            self.guard("figures 1, 2, 6", lambda: self.start_figures(figures))
        if figures & {3, 4}:
            self.guard("figures 3, 4", lambda: self.lease_figures(figures))

    def guard(self, what: str, fn: Callable[[], None]) -> None:
        try:
            fn()
        except Exception as err:  # noqa: BLE001 - the other figures still run
            traceback.print_exc()
            self.errors.append(f"{what}: {type(err).__name__}: {err}")
            log(f"  {self.eng.name}: {what} failed: {err}")

    # -- figures 1, 2 and 6: one plugin, five networks

    def start_figures(self, figures: set[int]) -> None:
        plugin = self.new_plugin()
        try:
            user_br = self.net_create(f"bench-br-{self.id}")
            # The probe network first: the second one on the same bridge needs
            # ignore_conflicts=true, which also turns the probe off.
            nd = self.nd_net(plugin, f"bench-nd-{self.id}")
            nd_np = self.nd_net(plugin, f"bench-ndnp-{self.id}", "-o", "ignore_conflicts=true")
            if figures & {1, 6}:
                self.fig_docker_run(plugin, {"none": "none", "default bridge": "bridge",
                                             "user bridge": user_br, "net-dhcp": nd,
                                             "net-dhcp no probe": nd_np})
                if 6 in figures:
                    self.fig_create_endpoint()
            if 2 in figures:
                self.fig_burst(plugin, {"net-dhcp": nd, "user bridge": user_br,
                                        "default bridge": "bridge"})
        finally:
            self.rm(list(self.containers))
            self._rm_networks()
            plugin.close()

    def fig_docker_run(self, plugin: Plugin, cases: dict[str, str]) -> None:
        rounds = self.size.rounds
        log(f"{self.eng.name}: figure 1, docker run --rm x {rounds} interleaved rounds")
        labels = list(cases)
        for label in labels:  # warm-up: first use of the plugin, image, networks
            self.docker("run", "--rm", "--network", cases[label], self.image, "true")
        times: dict[str, list[float]] = {k: [] for k in labels}
        self.segments = {k: [] for k in labels if k.startswith("net-dhcp")}
        for r in range(rounds):
            k = r % len(labels)
            for label in labels[k:] + labels[:k]:  # every case takes every position
                off = plugin.log_offset()
                t = time.perf_counter()
                self.docker("run", "--rm", "--network", cases[label], self.image, "true")
                times[label].append(time.perf_counter() - t)
                if label in self.segments:
                    self.segments[label].append(plugin.log(off))
        med = {k: statistics.median(v) for k, v in times.items()}
        self.raw["docker_run_s"] = times
        ms = {k: v * 1000 for k, v in med.items()}
        base = (f"medians: net-dhcp {ms['net-dhcp']:.0f} ms, no probe "
                f"{ms['net-dhcp no probe']:.0f}, user br {ms['user bridge']:.0f}, default br "
                f"{ms['default bridge']:.0f}, none {ms['none']:.0f}")
        for nd, tag in (("net-dhcp", "probe"), ("net-dhcp no probe", "noprobe")):
            name = "net-dhcp" if nd == "net-dhcp" else "net-dhcp ignore_conflicts"
            self.fig(1, f"docker_run_{tag}_vs_user_bridge",
                     f"docker run: {name} / user bridge",
                     ratio(med[nd], med["user bridge"]), "x", target=RUN_RATIO_TARGET,
                     detail=base if tag == "probe" else
                     f"probe adds {ms['net-dhcp'] - ms['net-dhcp no probe']:.0f} ms",
                     data={"median_ms": ms[nd], "base_median_ms": ms["user bridge"],
                           "rounds": rounds})
            self.fig(1, f"docker_run_{tag}_vs_default_bridge",
                     f"docker run: {name} / default bridge",
                     ratio(med[nd], med["default bridge"]), "x", target=RUN_RATIO_TARGET,
                     counts=False, detail="info: no embedded DNS, see note",
                     data={"median_ms": ms[nd], "base_median_ms": ms["default bridge"],
                           "rounds": rounds})
        self.fig(1, "docker_run_none_ms", "docker run: --network none (reference)",
                 ms["none"], "ms",
                 detail=f"user br / none {med['user bridge'] / med['none']:.2f}x, "
                        f"net-dhcp / none {med['net-dhcp'] / med['none']:.2f}x",
                 data={"median_ms": ms})

    def fig_create_endpoint(self) -> None:
        """Figure 6: the plugin's own timings, from its log over figure 1's runs."""
        for label, segs in self.segments.items():
            tag = "probe" if label == "net-dhcp" else "noprobe"
            self.create_endpoint_split(6, f"create_endpoint_{tag}_ms",
                                       f"CreateEndpoint in plugin: {label}", segs)

    def create_endpoint_split(self, fig: int, key: str, label: str, segs: list[str]) -> None:
        """An info figure: the median CreateEndpoint in the plugin log `segs`, with the
        median of each part and of what is left of each line after its parts (the median
        total minus the parts' medians would say little: under load the tails are long)."""
        parts: dict[str, list[float]] = {k: [] for k in SPLIT_PARTS}
        total: list[float] = []
        rest: list[float] = []
        for seg in segs:
            for m in CREATE_RX.finditer(seg):
                total.append(float(m.group(1)))
                got = {k: float(v) for k, v in SPLIT_PART_RX.findall(m.group(2))}
                for k in SPLIT_PARTS:
                    if k in got:
                        parts[k].append(got[k])
                rest.append(total[-1] - sum(got.values()))
        med = {k: median(v) for k, v in parts.items()}
        mt = median(total)
        if mt is None:
            detail = "the plugin logs no CreateEndpoint timings (yet)"
        else:
            detail = (", ".join(f"{k} {fmt(med[k], 'ms')}" for k in SPLIT_PARTS)
                      + f", rest {fmt(median(rest), 'ms')} (n={len(total)}; p90 "
                        f"{fmt(percentile(total, 0.9), 'ms')})")
        self.fig(fig, key, label, mt, "ms", detail=detail,
                 data={"median_veth_ms": med["veth"], "median_dhcp4_ms": med["DHCPv4"],
                       "median_probe_ms": med["probe"], "median_store_ms": med["store"],
                       "median_rest_ms": median(rest), "n": len(total),
                       "n_probe": len(parts["probe"])})

    def fig_burst(self, plugin: Plugin, cases: dict[str, str]) -> None:
        n, reps = self.size.burst, self.size.burst_reps
        assert self.lab is not None
        lab = self.lab
        log(f"{self.eng.name}: figure 2, {n} x docker run -d at once, {reps} repetition(s)")
        labels = list(cases)
        walls: dict[str, list[float]] = {k: [] for k in labels}
        failures: dict[str, int] = dict.fromkeys(labels, 0)
        distinct: list[int] = []
        outside: list[list[str]] = []
        segments: list[str] = []  # the plugin's log over each net-dhcp burst
        busy: dict[str, list[float]] = {k: [] for k in labels}  # machine CPU s per burst
        plugin_cpu: list[float] = []  # the plugin's CPU s per net-dhcp burst
        assert plugin.proc is not None
        pid = plugin.proc.pid
        # Warm-up (not timed): one full burst of each kind. With 5 each, the first timed
        # burst (net-dhcp's) was the slowest net-dhcp burst of its run in 8 of 13 runs on
        # 20.10 (9.18 s against 8.33 s on average; a user bridge's first, 7.62 against
        # 7.40), mostly in dockerd's hooks and CLIs, not in the plugin.
        t = time.monotonic()
        for label in labels:
            self.rm(self.burst(cases[label], n, f"w{label[:2]}")[1], workers=10)
            wait_until_quiet()
        self.wait_leases(0, "the warm-up")
        log(f"  warm-up: {time.monotonic() - t:.1f} s")
        for r in range(reps):
            order = labels if r % 2 == 0 else labels[::-1]
            for label in order:
                off = plugin.log_offset()
                b0, p0 = busy_cpu_s(), cpu_s(pid)
                wall, names, failed = self.burst(cases[label], n, f"{r}{label[:2]}")
                busy[label].append(busy_cpu_s() - b0)
                if label == "net-dhcp":
                    segments.append(plugin.log(off))
                    plugin_cpu.append(cpu_s(pid) - p0)
                walls[label].append(wall)
                failures[label] += failed
                if label == "net-dhcp":
                    ips = self.addresses(names)
                    distinct.append(len({ip for ip in ips if ip and lab.in_range(ip)}))
                    outside.append([ip for ip in ips if not ip or not lab.in_range(ip)])
                log(f"  {label}: {n} started in {wall:.2f} s ({failed} failed)")
                t = time.monotonic()
                self.rm(names, workers=10)
                rm_s = time.monotonic() - t
                if label == "net-dhcp":
                    wait_s = self.wait_leases(0, f"removing {n} containers")
                    log(f"  removed in {rm_s:.1f} s, leases released {wait_s:.1f} s later")
                log(f"  quiet {wait_until_quiet():.1f} s after")
        med = {k: statistics.median(v) for k, v in walls.items()}
        self.raw["burst_wall_s"] = walls
        for base, counts in (("user bridge", True), ("default bridge", False)):
            self.fig(2, "burst_vs_" + base.replace(" ", "_"),
                     f"{n} at once: net-dhcp / {base}", ratio(med["net-dhcp"], med[base]), "x",
                     target=BURST_RATIO_TARGET, counts=counts,
                     detail=(f"net-dhcp {med['net-dhcp']:.2f} s, {base} {med[base]:.2f} s "
                             f"(median of {reps}); failed runs: "
                             + ", ".join(f"{k} {v}" for k, v in failures.items()))
                     if counts else "info",
                     data={"median_s": med, "failures": failures, "n": n, "reps": reps})
        self.burst_cpu(n, walls, busy, plugin_cpu)
        self.create_endpoint_split(2, "burst_create_endpoint_ms",
                                   f"{n} at once: CreateEndpoint in plugin", segments)
        worst = min(distinct) if distinct else None
        self.fig(2, "burst_distinct_addresses", f"{n} at once: distinct addresses in range",
                 worst, "count", target=n, op=">=",
                 detail=f"per repetition {distinct}"
                        + (f"; outside/missing {outside}" if any(outside) else ""),
                 data={"per_rep": distinct, "outside_or_missing": outside})

    def burst_cpu(self, n: int, walls: dict[str, list[float]], busy: dict[str, list[float]],
                  plugin_cpu: list[float]) -> None:
        """An info figure: the machine's CPU per container start in each kind's bursts
        (median), with the share of the cores busy, and the plugin's own."""
        cores = os.cpu_count() or 1
        per_start = {k: statistics.median(v) * 1000 / n for k, v in busy.items()}
        use = {k: statistics.median(b / (w * cores) for b, w in zip(v, walls[k], strict=True))
               for k, v in busy.items()}
        own = statistics.median(plugin_cpu) * 1000 / n
        self.fig(2, "burst_cpu_per_start_ms", f"{n} at once: machine CPU per container start",
                 per_start["net-dhcp"], "ms",
                 detail=", ".join(f"{k} {per_start[k]:.0f} ms ({use[k]:.0%} of {cores} cores)"
                                  for k in busy) + f"; the plugin's own {own:.1f} ms",
                 data={"per_start_ms": per_start, "busy_fraction": use,
                       "plugin_per_start_ms": own})

    def burst(self, net: str, n: int, tag: str) -> tuple[float, list[str], int]:
        """Start ``n`` containers at once on ``net``: (wall seconds, names started, failed)."""
        names = [f"bench-{self.id}-{tag.replace(' ', '')}-{i}" for i in range(n)]
        self.containers += names
        procs: list[subprocess.Popen[str]] = []
        t = time.perf_counter()
        for name in names:
            procs.append(subprocess.Popen(
                self.argv("run", "-d", "--init", "--name", name, "--network", net, self.image,
                          "sleep", "3600"),
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                text=True))
        failed: list[str] = []
        for p in procs:
            _, err = p.communicate(timeout=600)
            if p.returncode != 0:
                failed.append(err.strip().splitlines()[-1] if err.strip() else "?")
        wall = time.perf_counter() - t
        for msg in failed[:3]:
            log(f"  docker run failed: {msg}")
        return wall, names, len(failed)

    def addresses(self, names: Sequence[str]) -> list[str]:
        """Each container's IPv4 address as Docker reports it ("" if none)."""
        res = self.docker("inspect", "-f",
                          "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", *names,
                          check=False)
        return [line.strip() for line in res.stdout.splitlines()]

    # -- figures 3 and 4: a fresh plugin, N live leases

    def lease_figures(self, figures: set[int]) -> None:
        assert self.lab is not None
        lab = self.lab
        n, t1 = self.size.leases, self.size.t1_s
        plugin = self.new_plugin()
        assert plugin.proc is not None
        pid = plugin.proc.pid
        try:
            net = self.nd_net(plugin, f"bench-ndl-{self.id}")
            # Warm-up: the first endpoints import and connect what every later one uses.
            for _ in range(2):
                self.docker("run", "--rm", "--network", net, self.image, "true")
            self.wait_leases(0, "the warm-up")
            time.sleep(SETTLE_S)
            rss0, (thr0, fds0) = rss_kib(pid), threads_fds(pid)
            log(f"{self.eng.name}: figures 3-4, starting {n} containers (plugin RSS "
                f"{rss0 / 1024:.1f} MiB idle)")
            names = [f"bench-{self.id}-l{i}" for i in range(n)]
            self.containers += names

            def start(name: str) -> bool:
                res = self.docker("run", "-d", "--init", "--name", name, "--network", net,
                                  self.image, "sleep", "3600", check=False, timeout=300)
                if res.returncode != 0:
                    log(f"  {name}: {res.stderr.strip()[-200:]}")
                return res.returncode == 0

            t = time.perf_counter()
            ok = parallel(start, names, 8)
            start_s = time.perf_counter() - t
            live = sum(ok)
            # dnsmasq may write its lease file a little later than it answers.
            deadline = time.monotonic() + 2 * SETTLE_S
            while len(lab.leases()) < live and time.monotonic() < deadline:
                time.sleep(0.2)
            leases = len(lab.leases())
            log(f"  {live}/{n} started in {start_s:.1f} s, dnsmasq holds {leases} leases")
            time.sleep(SETTLE_S)
            rss1 = rss_kib(pid)
            data: dict[str, Any] = {"n": n, "live": live, "dnsmasq_leases": leases,
                                    "start_s": start_s, "rss0_kib": rss0,
                                    "rss_after_start_kib": rss1, "threads0": thr0,
                                    "fds0": fds0}
            rss2 = rss1
            if 4 in figures:
                window = 2 * t1
                log(f"  figure 4: {window} s window (T1 {t1} s)")
                poff, doff = plugin.log_offset(), lab.log_offset()
                c0, w0 = cpu_s(pid), time.monotonic()
                time.sleep(window)
                c1, w1 = cpu_s(pid), time.monotonic()
                rss2 = rss_kib(pid)
                plog, dlog = plugin.log(poff), lab.log(doff)
                renewed = PLUGIN_RENEW_RX.findall(plog)
                acks = DNSMASQ_ACK_RX.findall(dlog)
                pct = (c1 - c0) / (w1 - w0) * 100
                n_renewed = len(set(renewed))
                n_acked = len({ip for ip, _ in acks})
                rate = n / t1
                scale = ("" if not self.quick else
                         f"; quick: {n} leases / T1 {t1} s = {rate:.1f} renewals/s, full: "
                         f"{FULL.leases} / {FULL.t1_s} s = {FULL.leases / FULL.t1_s:.1f}/s")
                self.fig(4, "renew_cpu_pct", f"plugin CPU, {live} leases renewing",
                         pct, "%", target=RENEW_CPU_TARGET_PCT,
                         detail=f"{c1 - c0:.2f} CPU s in {w1 - w0:.0f} s, T1 {t1} s{scale}",
                         data={"cpu_s": c1 - c0, "window_s": w1 - w0, "t1_s": t1,
                               "renewals_per_s": live / t1})
                # The server's DHCPACKs count: the plugin logs a renewal that changes
                # nothing at DEBUG only (its INFO lines are the changed ones).
                self.fig(4, "renewals_in_window", "leases renewed in the window",
                         n_acked, "count", target=live, op=">=",
                         detail=f"dnsmasq {len(acks)} DHCPACKs of {n_acked} addresses; the "
                                f"plugin logged {len(renewed)} changed renewals at INFO",
                         data={"plugin_renewals": len(renewed), "plugin_addresses": n_renewed,
                               "dnsmasq_acks": len(acks), "dnsmasq_addresses": n_acked})
            thr2, fds2 = threads_fds(pid)
            data |= {"rss_kib": rss2, "threads": thr2, "fds": fds2}
            if 3 in figures:
                per = (rss2 - rss0) / live if live else None
                self.fig(3, "rss_per_lease_kib", f"plugin RSS per live lease ({live})",
                         per, "KiB", target=RSS_PER_LEASE_TARGET_KIB,
                         detail=f"RSS {rss0 / 1024:.1f} -> {rss2 / 1024:.1f} MiB "
                                f"(right after the starts {rss1 / 1024:.1f}); threads "
                                f"{thr0} -> {thr2}, fds {fds0} -> {fds2}",
                         data=data)
            self.raw["leases"] = data
            log(f"  removing {len(names)} containers")
            self.rm(names, workers=10)
            self.wait_leases(0, f"removing {n} containers")
        finally:
            self.rm(list(self.containers))
            self._rm_networks()
            plugin.close()


# --------------------------------------------------------------------------- figure 5


def fig_serve_start(runs: int) -> list[Figure]:
    """`net-dhcp serve` until POST /Plugin.Activate answers 200 (bench.serve_start), and for
    information the floor under it on this machine: Python importing aiohttp.web alone."""
    f = Figure("any", 5, "serve_start_s", "net-dhcp serve until Activate answers", None, "s",
               target=SERVE_START_TARGET_S)
    from bench import serve_start
    log(f"figure 5: net-dhcp serve x {runs}, then the floor (import aiohttp.web) x {runs}")
    times = serve_start.measure_serve_start(runs)
    floors = serve_start.measure_import_floor(runs)
    f.value, under = statistics.median(times), statistics.median(floors)
    f.detail = (f"median of {len(times)}, min {min(times):.3f} s, max {max(times):.3f} s")
    f.data = {"runs_s": times}
    floor = Figure("any", 5, "serve_floor_s", "floor: Python + import aiohttp.web", under,
                   "s", counts=False,
                   detail=f"median of {len(floors)}; serve takes {(f.value - under) * 1000:.0f}"
                          " ms more (the plugin's own)",
                   data={"runs_s": floors})
    return [f, floor]


# --------------------------------------------------------------------------- output


NOTES = [
    "Ratios are to Docker's bridge driver measured in the same run, interleaved.",
    "Figures 1-2 pass/short use a user-defined bridge network (docker network create: the "
    "same Docker code path as any user-defined network, embedded DNS resolver included, as a "
    "net-dhcp network has). The default `bridge` network skips that resolver and is faster; "
    "its ratios are shown in parentheses for information.",
    "Figure 3: RSS with the containers running (after the figure 4 window) minus RSS with "
    "none (after a warm-up), over the number of live leases.",
]


def table(figures: Sequence[Figure]) -> str:
    rows = [("engine", "fig", "measure", "value", "target", "result", "detail")]
    engines = list(dict.fromkeys(f.engine for f in figures if f.engine != "any"))
    order = {e: i for i, e in enumerate([*engines, "any"])}
    for f in sorted(figures, key=lambda f: (order[f.engine], f.fig)):
        target = "" if f.target is None else (
            f"{f.op} {f.target:.0f}" if f.unit == "count" else f"{f.op} {fmt(f.target, f.unit)}")
        result = f.result if f.counts else f"({f.result})"
        rows.append((f.engine, str(f.fig), f.label, fmt(f.value, f.unit), target, result,
                     f.detail))
    widths = [max(len(r[i]) for r in rows) for i in range(6)]
    out = []
    for i, r in enumerate(rows):
        out.append("  ".join(c.ljust(w) for c, w in zip(r[:6], widths, strict=True))
                   + "  " + r[6])
        if i == 0:
            out.append("-" * (sum(widths) + 2 * 6 + 6))
    return "\n".join(line.rstrip() for line in out)


# --------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m bench.bench", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--engines", default="docker20,docker28",
                    help="comma-separated: docker20 (20.10), docker28 (28.5); default both")
    ap.add_argument("--quick", action="store_true", help="small sizes, for development")
    ap.add_argument("--json", type=Path, default=DEFAULT_JSON, metavar="PATH",
                    help=f"where to write the results (default {DEFAULT_JSON})")
    ap.add_argument("--figures", default=",".join(map(str, FIGURES)),
                    help="which figures, e.g. 1,6 (default all)")
    ap.add_argument("--rounds", type=int, help="figure 1 rounds")
    ap.add_argument("--burst", type=int, help="figure 2 containers at once")
    ap.add_argument("--burst-reps", type=int, help="figure 2 repetitions")
    ap.add_argument("--leases", type=int, help="figures 3-4 live leases")
    ap.add_argument("--serve-runs", type=int, help="figure 5 runs")
    return ap.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    base = QUICK if args.quick else FULL
    size = Size(rounds=args.rounds or base.rounds, burst=args.burst or base.burst,
                burst_reps=args.burst_reps or base.burst_reps,
                leases=args.leases or base.leases, t1_s=base.t1_s, t2_s=base.t2_s,
                serve_runs=args.serve_runs or base.serve_runs)
    figures = {int(x) for x in args.figures.split(",") if x.strip()}
    engines: list[Engine] = []
    for name in args.engines.split(","):
        if name.strip() and engine_named(name) not in engines:
            engines.append(engine_named(name))
    engines.sort(key=lambda e: [ENGINE20, ENGINE28].index(e))

    # SIGTERM unwinds like Ctrl-C, so every finally removes what the bench made.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started = datetime.datetime.now(datetime.UTC)
    load0 = os.getloadavg()
    all_figures: list[Figure] = []
    report: dict[str, Any] = {
        "command": [sys.executable, "-m", "bench.bench", *(argv or sys.argv[1:])],
        "quick": args.quick, "size": asdict(size), "figures_selected": sorted(figures),
        "host": {"cpus": os.cpu_count(), "kernel": platform.release(),
                 "python": platform.python_version(), "loadavg_start": load0},
        "started": started.isoformat(timespec="seconds"), "engines": {}, "errors": [],
        "notes": list(NOTES),
    }
    mode = ("quick" if args.quick else "full")
    log(f"bench ({mode}): engines {', '.join(e.id for e in engines)}, figures "
        f"{sorted(figures)}, {size}")
    if args.quick:
        report["notes"].append(
            f"--quick: {size.leases} leases with T1 = {size.t1_s} s "
            f"({size.leases / size.t1_s:.1f} renewals/s, window {2 * size.t1_s} s); the full "
            f"run renews {FULL.leases} leases with T1 = {FULL.t1_s} s "
            f"({FULL.leases / FULL.t1_s:.1f}/s): quick scales the renewal rate differently.")
    if 5 in figures:
        try:
            all_figures += fig_serve_start(size.serve_runs)
        except Exception as err:  # noqa: BLE001 - the engines' figures still run
            traceback.print_exc()
            report["errors"].append(f"figure 5: {type(err).__name__}: {err}")
    for eng in engines:
        why_not = eng.missing()
        if why_not:
            report["errors"].append(f"{eng.name}: {why_not}")
            continue
        bench = EngineBench(eng, size, args.quick)
        try:
            bench.run(figures)
        except Exception as err:  # noqa: BLE001 - the next engine still runs
            traceback.print_exc()
            bench.errors.append(f"{type(err).__name__}: {err}")
        finally:
            bench.cleanup()
        all_figures += bench.figures
        report["engines"][eng.name] = {"id": eng.id, "version": bench.version,
                                       "raw": bench.raw, "errors": bench.errors}
        report["errors"] += [f"{eng.name}: {e}" for e in bench.errors]

    report["finished"] = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    report["host"]["loadavg_end"] = os.getloadavg()
    report["figures"] = [f.as_json() for f in all_figures]
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n")

    versions = ", ".join(f"{k} = Docker {v['version']}" for k, v in report["engines"].items())
    print(f"\nnet-dhcp bench ({mode}: {size.rounds} rounds, {size.burst} at once x "
          f"{size.burst_reps}, {size.leases} leases with T1 {size.t1_s} s, "
          f"{size.serve_runs} serve starts); {versions}; {os.cpu_count()} CPUs, load "
          f"{load0[0]:.2f} -> {os.getloadavg()[0]:.2f}")
    print(table(all_figures))
    print()
    for note in report["notes"]:
        print(f"note: {note}")
    for problem in report["errors"]:
        print(f"error: {problem}")
    counted = [f for f in all_figures if f.counts and f.result in ("pass", "short")]
    print(f"{sum(f.result == 'pass' for f in counted)}/{len(counted)} counted figures pass; "
          f"results in {args.json}")
    return 1 if report["errors"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
