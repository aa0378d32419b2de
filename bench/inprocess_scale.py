"""Measure the plugin's resident memory per live lease and its CPU while the leases renew.

Not a test: it asserts nothing and prints numbers. The real plugin serves its unix socket;
dockerd's calls are played over it (tests/dockerplay.py: CreateEndpoint, Join, the veth moved
into a fresh network namespace as eth0, ... Leave, DeleteEndpoint), one real namespace per
"container", against a real bridge and a real dnsmasq (tests/lab.py DhcpLan) whose T1 is
short. No dockerd is involved: the plugin is pointed at a Docker socket nothing listens on.

    .venv/bin/python -m bench.inprocess_scale            # N = 50, T1 = 10 s
    .venv/bin/python -m bench.inprocess_scale --n 200    # the full run
    .venv/bin/python -m bench.inprocess_scale --n 200 --t1 60   # the real period, directly

What it does, in order: warm-up containers started and stopped (the executor's threads,
lazily imported modules, aiohttp's and SQLite's caches); the baseline (0 leases): RSS, and
the idle CPU rate over --idle-s; N containers started (--parallel at once) and joined; a
wait until every keeper is attached (the status route shows an RFC 2131 state for every
endpoint); RSS again; then a CPU window of --window-s (default 2 x T1: every lease renews
at least once, about twice) over which the plugin's CPU seconds are read from
/proc/PID/stat and the renewals counted from the status route (each endpoint's own count
must have grown); RSS once more, once the reconciler's periodic sweep (every 60 s, left at
its default) has run with the N leases present (it holds transient memory that the
allocator keeps, in production too), with the busiest seconds of that time (CPU, RSS
change, when in the sweep's period). Everything is torn down in `finally`: containers stopped
(Leave, DeleteEndpoint), namespaces and leftover veths deleted, the network, the plugin,
dnsmasq, the bridge.

RSS per lease = (RSS with N leases - RSS with 0) / N, both read from /proc/PID/status
(VmRSS) of the plugin process.

Why the plugin runs as a subprocess (`python -m net_dhcp serve`, as tests/lab.py Plugin):
its RSS and CPU are then the plugin's alone. In-process (--inprocess, tests/inprocess.py
InProcessPlugin) this script's own memory (the played containers, subprocess handling, the
status documents it decodes) and its CPU would be counted with the plugin's; that mode is
kept for comparison and for debugging with a plain debugger.

Scaling the CPU to "every 60 s": a keeper sleeps between renewals (an asyncio timer, no
work), so the CPU is an idle rate (the reconciler's timers, measured with 0 leases), plus
N / T1 renewals a second, each costing what the window measured, plus the reconciler's
sweep every 60 s whatever T1 (its cost grows with the number of host interfaces: it is
read from the samples around the sweep's times, and taken out of the window's CPU when the
window held one). The projection is
    idle% + renewals' share of the window% * T1 / 60 + one sweep's CPU / 60 s,
printed next to the measured figure; `--t1 60` measures it all directly (a window of
120 s: about two renewals per lease and two sweeps).

Profiling: --tracemalloc traces the plugin's allocations from the baseline on (see
TRACEMALLOC_WRAPPER) and prints what is still allocated at the end of the window, by file,
line and traceback (tracemalloc inflates RSS and CPU: use such a run for the breakdown
only, and a larger --t1, e.g. 30). --py-spy FILE records the CPU window with py-spy (raw
collapsed stacks in FILE) and prints the hottest functions.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import pickle
import signal
import subprocess
import sys
import time
import tracemalloc
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.dockerplay import Container, PlayedDocker, PlayError, no_docker_socket
from tests.lab import NETNS_PREFIX, REPO_ROOT, DhcpLan, Plugin, pick_subnet, sh

from net_dhcp.attach import veth
from net_dhcp.status_client import fetch_status

KEEPER_STATES = frozenset({"BOUND", "RENEWING", "REBINDING", "INIT", "SELECTING",
                           "REQUESTING"})
"""Status-route states of an endpoint whose keeper has attached to the interface."""
ATTACH_TIMEOUT_S = 180.0
START_TRIES = 3
SWEEP_S = 60.0
"""The plugin's default --sweep-interval (left as it is)."""
SWEEP_SLACK_S = 5.0
"""A sweep's own time and the drift of its schedule (it sleeps SWEEP_S after each)."""
SETTLE_S = 3.0
"""Pause before an RSS reading: in-flight requests and namespace threads end."""
MAX_N = 240
"""Addresses the lab's /24 can lease at once (.3 - .254), warm-up included."""
SNAPSHOT_ENV = "NET_DHCP_BENCH_SNAPSHOTS"
TRACEMALLOC_FRAMES = 12
TRACEMALLOC_WRAPPER = f"""
import gc, os, signal, sys, tracemalloc
out, count = os.environ["{SNAPSHOT_ENV}"], [0]
def dump(signum, frame):
    gc.collect()
    if not tracemalloc.is_tracing():
        tracemalloc.start({TRACEMALLOC_FRAMES})
    count[0] += 1
    path = os.path.join(out, f"snap-{{count[0]}}")
    tracemalloc.take_snapshot().dump(path + ".tmp")
    os.rename(path + ".tmp", path + ".pickle")
signal.signal(signal.SIGUSR2, dump)
from net_dhcp.cli import main
raise SystemExit(main(sys.argv[1:]))
"""
"""Runs `net-dhcp` with a SIGUSR2 handler that (after a GC) starts tracemalloc the first
time, and dumps a snapshot into $NET_DHCP_BENCH_SNAPSHOTS. Tracing starts at the baseline,
not at start-up (the plugin's start under tracemalloc takes minutes): the snapshot at the
end holds what was allocated since the baseline and is still alive. The main thread runs
the event loop, so the handler runs between two of its callbacks."""


# --------------------------------------------------------------------------- the plugin


@dataclass(frozen=True)
class ProcStats:
    """What /proc says about the plugin process."""

    rss_kib: int
    cpu_s: float
    """User + system CPU seconds."""
    sys_s: float
    threads: int
    fds: int
    anon_kib: int
    file_kib: int
    shmem_kib: int

    def parts(self, base: ProcStats | None = None) -> str:
        """RSS by kind (anonymous: heaps and stacks; file: mapped files; shmem: SQLite's
        WAL index), or its growth from `base`."""
        if base is None:
            return f"anon {kib(self.anon_kib)}, file {kib(self.file_kib)}, " \
                   f"shmem {kib(self.shmem_kib)}"
        return (f"anon {self.anon_kib - base.anon_kib:+d}, file "
                f"{self.file_kib - base.file_kib:+d}, shmem "
                f"{self.shmem_kib - base.shmem_kib:+d} KiB")


def proc_stats(pid: int) -> ProcStats:
    fields = dict(line.split(":", 1) for line in
                  Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)

    def field(name: str) -> int:
        return int(fields[name].split()[0])

    # utime and stime (fields 14, 15) count the process's threads, the ended ones included.
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return ProcStats(field("VmRSS"), (int(stat[11]) + int(stat[12])) / tick,
                     int(stat[12]) / tick, len(os.listdir(f"/proc/{pid}/task")),
                     len(os.listdir(f"/proc/{pid}/fd")), field("RssAnon"), field("RssFile"),
                     field("RssShmem"))


def smaps(pid: int) -> Counter[str]:
    """Resident KiB by kind of mapping: the main heap (brk), anonymous mappings (other
    threads' malloc arenas, big mallocs, thread stacks, pymalloc arenas), files."""
    out: Counter[str] = Counter()
    kind = "?"
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        head = line.split()
        if head and "-" in head[0] and len(head) >= 5 and ":" not in head[0]:
            path = head[5] if len(head) > 5 else ""
            kind = (path if path.startswith("[") else
                    "anonymous" if not path else
                    "python/.so files" if path.endswith(".so") or ".so." in path
                    or "python" in path else "other files")
        elif line.startswith("Rss:"):
            out[kind] += int(head[1])
    return out


def smaps_growth(before: Counter[str], after: Counter[str]) -> str:
    keys = sorted(set(before) | set(after), key=lambda k: -(after[k] - before[k]))
    return ", ".join(f"{k} {after[k] - before[k]:+d}" for k in keys
                     if after[k] != before[k]) or "none"


class Target:
    """The plugin under measurement, whichever way it runs."""

    pid: int
    socket_path: Path
    workdir: Path

    def call(self, method: str, payload: Mapping[str, Any] | None = None,
             timeout: float = 10.0) -> tuple[int, Any]:
        raise NotImplementedError

    def snapshot(self) -> tracemalloc.Snapshot | None:
        """A tracemalloc snapshot of the plugin (after a GC), if it is traced."""
        return None

    def close(self) -> None:
        raise NotImplementedError


class SubprocessTarget(Target):
    """`python -m net_dhcp serve` (tests/lab.py Plugin), optionally under tracemalloc."""

    def __init__(self, log_level: str, traced: bool, env: Mapping[str, str]) -> None:
        self.traced = traced
        self.plugin = _BenchPlugin(traced, log_level=log_level, env=env,
                                   extra_args=["--docker-socket", no_docker_socket()])
        self.socket_path = self.plugin.socket_path
        self.workdir = self.plugin.workdir
        self.snapshots = self.workdir / "snapshots"
        self.snapshots.mkdir()
        self.plugin.env[SNAPSHOT_ENV] = str(self.snapshots)
        self.plugin.start(timeout=60.0)
        assert self.plugin.proc is not None
        self.pid = self.plugin.proc.pid
        self._taken = 0

    def call(self, method: str, payload: Mapping[str, Any] | None = None,
             timeout: float = 10.0) -> tuple[int, Any]:
        return self.plugin.call(method, payload, timeout)

    def snapshot(self) -> tracemalloc.Snapshot | None:
        if not self.traced:
            return None
        self._taken += 1
        path = self.snapshots / f"snap-{self._taken}.pickle"
        os.kill(self.pid, signal.SIGUSR2)
        deadline = time.monotonic() + 300
        while not path.exists():
            if time.monotonic() > deadline or not self.plugin.running:
                raise RuntimeError(f"no tracemalloc snapshot from the plugin ({path})")
            time.sleep(0.2)
        with path.open("rb") as f:
            snap: tracemalloc.Snapshot = pickle.load(f)  # noqa: S301 - written by our child
        path.unlink()
        return snap

    def close(self) -> None:
        self.plugin.close()


class _BenchPlugin(Plugin):
    def __init__(self, traced: bool, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.traced = traced

    def command(self) -> list[str]:
        if not self.traced:
            return super().command()
        serve = super().command()[3:]  # what follows `python -m net_dhcp`
        return [sys.executable, "-c", TRACEMALLOC_WRAPPER, *serve]


class InProcessTarget(Target):
    """tests/inprocess.py InProcessPlugin: the plugin on a thread of this process."""

    def __init__(self, log_level: str, traced: bool, env: Mapping[str, str]) -> None:
        from tests.inprocess import InProcessPlugin

        from net_dhcp.logs import setup_logging

        self.traced = traced
        self.plugin = InProcessPlugin(docker_socket=no_docker_socket())
        self.workdir = self.plugin.workdir
        os.environ["LOG_LEVEL"] = log_level
        setup_logging(str(self.workdir / "plugin.log"))
        self.plugin.start()
        self.socket_path = self.plugin.socket_path
        self.pid = os.getpid()

    def call(self, method: str, payload: Mapping[str, Any] | None = None,
             timeout: float = 10.0) -> tuple[int, Any]:
        return self.plugin.call(method, payload, timeout)

    def snapshot(self) -> tracemalloc.Snapshot | None:
        if not self.traced:
            return None
        gc.collect()
        if not tracemalloc.is_tracing():
            tracemalloc.start(TRACEMALLOC_FRAMES)  # from the baseline on, as above
        return tracemalloc.take_snapshot()

    def close(self) -> None:
        self.plugin.close()
        if tracemalloc.is_tracing():
            tracemalloc.stop()


# --------------------------------------------------------------------------- helpers


def status(target: Target) -> dict[str, Any]:
    return fetch_status(target.socket_path, timeout=60.0)


def keepers_attached(doc: dict[str, Any], ids: set[str]) -> tuple[int, Counter[str]]:
    states = Counter(str(ep["state"]) for ep in doc["endpoints"] if ep["id"] in ids)
    return sum(n for s, n in states.items() if s in KEEPER_STATES), states



def renewals_by_endpoint(doc: dict[str, Any]) -> dict[str, int]:
    return {str(ep["id"]): int(ep["renewals"]) for ep in doc["endpoints"]}


def watch(pid: int, seconds: float) -> list[tuple[float, ProcStats]]:
    """The process's stats every second for `seconds` (the last at the end)."""
    out: list[tuple[float, ProcStats]] = []
    end = time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0:
        time.sleep(min(1.0, left))
        out.append((time.monotonic(), proc_stats(pid)))
    return out


def sweep_cost(timeline: list[tuple[float, ProcStats]], up: float, *,
               window_end: float) -> tuple[float, int]:
    """(CPU seconds of one sweep, sweeps within the CPU window). The sweep runs every
    SWEEP_S from the plugin's start (`up`); its cost is the CPU of the samples around its
    times beyond the median sample's, averaged over the sweeps the timeline saw."""
    steps = [(t1, b.cpu_s - a.cpu_s)
             for (_, a), (t1, b) in zip(timeline, timeline[1:], strict=False)]
    if not steps:
        return 0.0, 0
    usual = sorted(c for _, c in steps)[len(steps) // 2]
    first, last = steps[0][0], steps[-1][0]
    times = [up + SWEEP_S * k for k in range(1, int((last - up) // SWEEP_S) + 2)]
    seen = [t for t in times if first < t < last - SWEEP_SLACK_S]
    costs = [sum(c - usual for when, c in steps if t - 1 <= when <= t + SWEEP_SLACK_S)
             for t in seen]
    in_window = sum(1 for t in seen if t < window_end)
    return (max(0.0, sum(costs) / len(costs)) if costs else 0.0), in_window


def busiest(timeline: list[tuple[float, ProcStats]],
            top: int = 3) -> list[tuple[float, float, int]]:
    """(when, CPU seconds, RSS change) of the `top` busiest samples of a timeline."""
    steps = [(t1, b.cpu_s - a.cpu_s, b.rss_kib - a.rss_kib)
             for (_, a), (t1, b) in zip(timeline, timeline[1:], strict=False)]
    return sorted(steps, key=lambda step: -step[1])[:top]


def in_parallel(fn: Callable[[Any], Any], items: list[Any], width: int) -> list[Any]:
    """fn(item) for every item, `width` at a time; the first failure is raised (after the
    rest finished, so nothing is left running)."""
    with ThreadPoolExecutor(max_workers=max(1, width)) as pool:
        futures = [pool.submit(fn, item) for item in items]
    return [f.result() for f in futures]


def kib(n: float) -> str:
    return f"{n / 1024:.1f} MiB" if abs(n) >= 10 * 1024 else f"{n:.0f} KiB"


def print_tracemalloc(before: tracemalloc.Snapshot, after: tracemalloc.Snapshot, n: int,
                      top: int = 25) -> None:
    ignore = [tracemalloc.Filter(False, tracemalloc.__file__),
              tracemalloc.Filter(False, "<frozen importlib._bootstrap>"),
              tracemalloc.Filter(False, "<frozen importlib._bootstrap_external>")]
    before, after = before.filter_traces(ignore), after.filter_traces(ignore)
    total = sum(s.size for s in after.statistics("filename")) \
        - sum(s.size for s in before.statistics("filename"))
    print(f"\ntracemalloc: Python heap {total / 1024:+.0f} KiB from the baseline "
          f"({total / max(1, n) / 1024:+.2f} KiB per lease)")
    print("  by file:")
    for stat in after.compare_to(before, "filename")[:12]:
        frame = stat.traceback[0]
        print(f"    {stat.size_diff / 1024:+9.1f} KiB {stat.count_diff:+7} blocks  "
              f"{_short(frame.filename)}")
    print("  by line (where the memory was allocated):")
    for stat in after.compare_to(before, "lineno")[:top]:
        frame = stat.traceback[0]
        print(f"    {stat.size_diff / 1024:+9.1f} KiB {stat.count_diff:+7} blocks  "
              f"{_short(frame.filename)}:{frame.lineno}")
    print("  by traceback (the project's frames, innermost last):")
    for stat in after.compare_to(before, "traceback")[:top]:
        frames = [f"{_short(f.filename)}:{f.lineno}" for f in stat.traceback
                  if "net_dhcp" in f.filename or "asyncio" in f.filename]
        inner = stat.traceback[0]
        where = " <- ".join(reversed(frames[-4:])) if frames else "?"
        print(f"    {stat.size_diff / 1024:+9.1f} KiB {stat.count_diff:+7} blocks  "
              f"{_short(inner.filename)}:{inner.lineno}  [{where}]")


def _short(filename: str) -> str:
    for marker in ("/site-packages/", "/src/", "/lib/python3"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    return filename


def print_py_spy(path: Path, top: int = 20) -> None:
    """Summarise py-spy's raw (collapsed) stacks: self and inclusive samples. Recorded
    with --gil (only the thread holding the GIL is sampled: Python's CPU, not threads
    waiting in a lock or a syscall such as SQLite's fsync)."""
    own: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = [f for f in stack.split(";") if f]
        if not frames:
            continue
        own[frames[-1]] += count
        for f in set(frames):
            incl[f] += count
    if not total:
        print(f"\npy-spy: no samples in {path}")
        return
    print(f"\npy-spy: {total} samples (non-idle) in {path}")
    print("  self (innermost frame):")
    for frame, count in own.most_common(top):
        print(f"    {count / total:6.1%}  {frame}")
    print("  inclusive, the project's functions:")
    ours = [(f, c) for f, c in incl.most_common() if "net_dhcp" in f]
    for frame, count in ours[:top]:
        print(f"    {count / total:6.1%}  {frame}")


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM unwinds like Ctrl-C, so `finally` cleans up."""
    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")
    old = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


# --------------------------------------------------------------------------- the run


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=50, help="containers (leases) to run")
    ap.add_argument("--t1", type=int, default=10, help="T1 the server sends (s)")
    ap.add_argument("--lease", type=int, default=120,
                    help="lease time (s); dnsmasq's minimum is 120")
    ap.add_argument("--window-s", type=float, default=None,
                    help="CPU window (default: 2 x T1)")
    ap.add_argument("--idle-s", type=float, default=10.0, help="idle CPU window, 0 leases")
    ap.add_argument("--warmup", type=int, default=4, help="containers before the baseline")
    ap.add_argument("--parallel", type=int, default=4, help="starts and stops at once")
    ap.add_argument("--probe", action="store_true",
                    help="keep the RFC 5227 ARP probe on (slower starts; default off)")
    ap.add_argument("--log-level", default="info")
    ap.add_argument("--src", type=Path, default=None, metavar="DIR",
                    help="run the plugin from this source tree (a copy holding the "
                         "net_dhcp package) instead of the checkout's: before/after runs")
    ap.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                    help="set in the plugin's environment (subprocess only; experiments "
                         "such as MALLOC_ARENA_MAX=2)")
    ap.add_argument("--inprocess", action="store_true",
                    help="run the plugin in this process (RSS and CPU include this script)")
    ap.add_argument("--tracemalloc", action="store_true", help="allocation breakdown")
    ap.add_argument("--py-spy", type=Path, default=None, metavar="FILE",
                    help="record the CPU window with py-spy into FILE")
    args = ap.parse_args()
    if not 1 <= args.n + args.warmup <= MAX_N:
        ap.error(f"--n + --warmup must be 1..{MAX_N} (one /24)")
    if args.src is not None and (args.inprocess
                                 or not (args.src / "net_dhcp" / "daemon.py").is_file()):
        ap.error("--src needs a directory holding net_dhcp/ (and no --inprocess)")
    if args.lease < 120 or not 0 < args.t1 < args.lease:
        ap.error("need 0 < --t1 < --lease and --lease >= 120")
    window_s = args.window_s if args.window_s is not None else 2.0 * args.t1
    t2 = int(args.lease * 0.875) if args.t1 < args.lease * 0.875 else args.lease - 1

    with sigterm_as_interrupt():
        return run(args, window_s, t2)


def run(args: argparse.Namespace, window_s: float, t2: int) -> int:
    subnet = pick_subnet()
    lab: DhcpLan | None = None
    target: Target | None = None
    docker: PlayedDocker | None = None
    endpoint_ids: list[str] = []
    failed_starts: list[str] = []
    t_start = time.monotonic()

    def note(text: str) -> None:
        print(f"[{time.monotonic() - t_start:6.1f}s] {text}", flush=True)

    try:
        lab = DhcpLan(subnet=subnet, t1=args.t1, t2=t2, lease=str(args.lease),
                      range_start=str(subnet.network_address + 3),
                      range_end=str(subnet.network_address + 254))
        note(f"lab: bridge {lab.bridge}, {subnet}, T1 {args.t1}s T2 {t2}s lease "
             f"{args.lease}s")
        make: Callable[[str, bool, Mapping[str, str]], Target] = (
            InProcessTarget if args.inprocess else SubprocessTarget)
        env = dict(item.split("=", 1) for item in args.env)
        if args.src is not None:
            env["PYTHONPATH"] = str(args.src.resolve())  # ahead of the checkout's src
        target = make(args.log_level, args.tracemalloc, env)
        up = time.monotonic()  # the reconciler's sweep runs every SWEEP_S from about now
        note(f"plugin pid {target.pid} ({'in-process' if args.inprocess else 'subprocess'}"
             f"{', tracemalloc' if args.tracemalloc else ''}"
             f"{f', from {args.src}' if args.src else ''}), log {target.workdir}")
        docker = PlayedDocker(target)
        options = {} if args.probe else {"ignore_conflicts": "true"}
        net_id = docker.create_network(lab.bridge, **options)
        played = docker

        def start(_: int) -> Container:
            # A start can fail under load (e.g. dnsmasq NAKs an address it offered twice);
            # the failed one's namespace stays in `played` and goes at teardown.
            for attempt in range(1, START_TRIES + 1):
                try:
                    c = played.start(net_id)
                except PlayError as err:
                    failed_starts.append(str(err))
                    if attempt == START_TRIES:
                        raise
                else:
                    endpoint_ids.append(c.endpoint_id)
                    return c
            raise AssertionError("unreachable")

        warm = in_parallel(start, list(range(args.warmup)), args.parallel)
        in_parallel(played.stop, warm, args.parallel)
        time.sleep(SETTLE_S)
        status(target)  # the status route's own first-use costs, before the baseline
        time.sleep(SETTLE_S)
        base = proc_stats(target.pid)
        maps0 = smaps(target.pid)
        snap0 = target.snapshot()
        time.sleep(args.idle_s)
        idle = proc_stats(target.pid)
        idle_pct = (idle.cpu_s - base.cpu_s) / args.idle_s * 100
        note(f"baseline (0 leases, after {args.warmup} warm-up containers): RSS "
             f"{kib(base.rss_kib)}, {base.threads} threads, {base.fds} fds; idle CPU "
             f"{idle_pct:.2f}% over {args.idle_s:g}s")

        t = time.monotonic()
        containers = in_parallel(start, list(range(args.n)), args.parallel)
        ids = {c.endpoint_id for c in containers}
        note(f"{args.n} containers started in {time.monotonic() - t:.1f}s"
             + (f" ({len(failed_starts)} start(s) failed and were retried; last: "
                f"{failed_starts[-1]})" if failed_starts else ""))
        deadline = time.monotonic() + ATTACH_TIMEOUT_S
        while True:
            attached, states = keepers_attached(status(target), ids)
            if attached == args.n:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {attached}/{args.n} keepers attached after "
                                   f"{ATTACH_TIMEOUT_S:g}s: {dict(states)}")
            time.sleep(0.5)
        attached_at = time.monotonic()
        note(f"every keeper attached ({dict(states)})")
        time.sleep(SETTLE_S)
        loaded = proc_stats(target.pid)
        maps1 = smaps(target.pid)

        py_spy: subprocess.Popen[bytes] | None = None
        before = renewals_by_endpoint(status(target))
        cpu0 = proc_stats(target.pid)
        if args.py_spy is not None:
            py_spy = subprocess.Popen(
                [str(REPO_ROOT / ".venv/bin/py-spy"), "record", "--pid", str(target.pid),
                 "--duration", str(int(window_s)), "--rate", "200", "--format", "raw",
                 "--output", str(args.py_spy), "--threads", "--gil"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        timeline = [(time.monotonic(), cpu0)]
        timeline += watch(target.pid, window_s)
        window_end, cpu1 = timeline[-1]
        after = renewals_by_endpoint(status(target))
        if py_spy is not None:
            py_spy.wait(60)
        grown = {i: after.get(i, 0) - before.get(i, 0) for i in ids}
        renewals = sum(grown.values())
        laggards = sorted(i[:12] for i, g in grown.items() if g < 1)
        # The final RSS comes after at least one sweep saw the N leases: sweeps (every
        # SWEEP_S) hold transient memory that the allocator keeps, as it does in production.
        swept = up + SWEEP_S * (int((attached_at - up) // SWEEP_S) + 1) + SWEEP_SLACK_S
        timeline += watch(target.pid, max(SETTLE_S, swept - time.monotonic()))
        end = timeline[-1][1]
        maps2 = smaps(target.pid)
        snap1 = target.snapshot()

        cpu_s = cpu1.cpu_s - cpu0.cpu_s
        pct = cpu_s / window_s * 100
        sweep_s, sweeps_in_window = sweep_cost(timeline, up, window_end=window_end)
        # Renewals only: the window's CPU less the idle rate and the sweeps it held.
        renewing_s = max(0.0, cpu_s - idle_pct / 100 * window_s - sweeps_in_window * sweep_s)
        per_renewal_ms = renewing_s / max(1, renewals) * 1000
        at60 = idle_pct + renewing_s / window_s * 100 * args.t1 / 60 + sweep_s / SWEEP_S * 100
        print()
        print(f"=== {args.n} leases, T1 {args.t1}s, "
              f"{'in-process' if args.inprocess else 'plugin subprocess'}"
              f"{' (tracemalloc: RSS inflated)' if args.tracemalloc else ''}")
        print(f"RSS 0 leases:            {kib(base.rss_kib)} ({base.threads} threads, "
              f"{base.fds} fds; {base.parts()})")
        print(f"RSS {args.n} leases attached: {kib(loaded.rss_kib)} ({loaded.threads} "
              f"threads, {loaded.fds} fds): "
              f"{(loaded.rss_kib - base.rss_kib) / args.n:.1f} KiB per lease "
              f"({loaded.parts(base)})")
        print(f"RSS after window + sweep: {kib(end.rss_kib)} ({end.threads} threads, "
              f"{end.fds} fds): {(end.rss_kib - base.rss_kib) / args.n:.1f} KiB per lease "
              f"({end.parts(base)})")
        print(f"RSS growth by mapping (KiB): attached: {smaps_growth(maps0, maps1)}; "
              f"window: {smaps_growth(maps1, maps2)}")
        print(f"CPU window {window_s:g}s: {cpu_s:.2f} s (system {cpu1.sys_s - cpu0.sys_s:.2f}"
              f" s) = {pct:.2f}% of a core; "
              f"{renewals} renewals ({renewals / args.n:.1f} per lease; "
              f"{'every lease renewed' if not laggards else f'NOT renewed: {laggards[:5]}'})"
              f", {per_renewal_ms:.2f} ms CPU per renewal")
        print(f"CPU idle (0 leases):     {idle_pct:.2f}%")
        print("busiest seconds (uptime mod {:g} s: the sweep runs near 0): {}".format(
            SWEEP_S, "; ".join(f"@{(t - up) % SWEEP_S:.0f}s cpu {c * 1000:.0f} ms rss {r:+d} KiB"
                               for t, c, r in busiest(timeline))))
        print(f"CPU of a sweep (every {SWEEP_S:g}s, whatever T1): {sweep_s * 1000:.0f} ms; "
              f"{sweeps_in_window} in the window")
        print(f"CPU at T1 = 60s (projected: idle + renewals x {args.t1}/60 + a sweep per "
              f"{SWEEP_S:g}s): {at60:.2f}% of a core")
        print(f"SUMMARY n={args.n} rss_per_lease_kib={(end.rss_kib - base.rss_kib) / args.n:.1f}"
              f" rss_attached_per_lease_kib={(loaded.rss_kib - base.rss_kib) / args.n:.1f}"
              f" cpu_pct={pct:.2f} cpu_pct_at_60s={at60:.2f} ms_per_renewal="
              f"{per_renewal_ms:.2f} sweep_ms={sweep_s * 1000:.0f} renewed_all={not laggards}")
        if snap0 is not None and snap1 is not None:
            print_tracemalloc(snap0, snap1, args.n)
        if args.py_spy is not None and args.py_spy.exists():
            print_py_spy(args.py_spy)
        return 0 if not laggards else 1
    finally:
        teardown(lab, target, docker, endpoint_ids, args.parallel, note)


def teardown(lab: DhcpLan | None, target: Target | None, docker: PlayedDocker | None,
             endpoint_ids: list[str], parallel: int, note: Callable[[str], None]) -> None:
    """Undo everything, best effort, each step whatever the others did (and whatever
    signal comes meanwhile: a second Ctrl-C or SIGTERM must not leave things behind)."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
    problems: list[str] = []

    def step(what: str, fn: Callable[[], object]) -> None:
        try:
            fn()
        except BaseException as err:  # noqa: BLE001 - the rest must still be cleaned up
            problems.append(f"{what}: {err!r}")

    if docker is not None and target is not None:
        left = list(docker.containers)
        note(f"teardown: stopping {len(left)} container(s)")

        def stop(c: Container) -> None:
            try:
                docker.stop(c)
            except Exception:  # noqa: BLE001 - close() below retries and reports
                docker.forget(c)
                raise

        step("stop containers", lambda: in_parallel(stop, left, parallel))
        step("close played dockerd", lambda: problems.extend(docker.close()))
    elif docker is not None:
        for c in list(docker.containers):
            step(f"forget {c.netns}", lambda c=c: docker.forget(c))  # type: ignore[misc]
    if target is not None:
        step("stop the plugin", target.close)
    # Whatever the plugin could not delete: the namespaces went with the containers above;
    # veth pairs of endpoints never joined (or of a crashed plugin) stay in the host.
    links = {str(link["ifname"]) for link in json.loads(
        sh("ip", "-j", "link", "show", check=False).stdout or "[]")}
    for eid in endpoint_ids:
        for name in veth.names(eid):
            if name in links:
                step(f"delete {name}", lambda name=name: sh(  # type: ignore[misc]
                    "ip", "link", "del", name, check=False))
    if docker is not None:
        prefix = f"{NETNS_PREFIX}play-{docker.tag}"
        for ns in json.loads(sh("ip", "-j", "netns", "list", check=False).stdout or "[]"):
            if str(ns.get("name", "")).startswith(prefix):
                step(f"delete netns {ns['name']}", lambda ns=ns: sh(  # type: ignore[misc]
                    "ip", "netns", "del", str(ns["name"]), check=False))
    if lab is not None:
        step("close the lab", lambda: problems.extend(lab.close()))
    note("teardown done" + (":\n  " + "\n  ".join(problems) if problems else ""))


if __name__ == "__main__":
    raise SystemExit(main())
