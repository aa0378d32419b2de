"""Leaks: many container create/destroy cycles through the plugin API leave nothing behind.

The real plugin (``tests.inprocess.InProcessPlugin``: store, driver, reconciler and the aiohttp
server on a real unix socket) runs in this test process, so its resources are this process's
resources and can be counted. ``tests.dockerplay.PlayedDocker`` makes dockerd's calls over the
socket (CreateEndpoint, Join, the veth moved into a fresh namespace as eth0, then Leave, the
interface back, DeleteEndpoint), against a real bridge and a real dnsmasq (``lan`` fixture).
A small fake Docker Engine API (``FakeDockerd``, below) answers the reconciler, so its event
stream stays connected and its periodic checks and sweep (every ``SWEEP_S``) run their whole
path during the cycles, as they do next to a real dockerd. No real dockerd, no containers:
the API-level, many-cycle counterpart of tests/e2e's
``test_many_starts_and_stops_leak_nothing`` (few real ``docker run``s, fds and threads only).

Size: ``NET_DHCP_LEAK_CYCLES`` cycles, default 40 (each test well under a minute);
``NET_DHCP_LEAK_CYCLES=500`` is the full run (a few minutes)::

    NET_DHCP_LEAK_CYCLES=500 .venv/bin/python -m pytest -v -s tests/integration/test_leaks.py

``test_sequential_cycles_leak_nothing`` runs that many start/stop cycles one container at a
time; ``test_concurrent_cycles_leak_nothing`` runs a quarter as many rounds of ``WIDTH``
containers started at once (from threads) and stopped at once, since concurrency is where
tasks and sockets leak. Each first runs ``WARMUP`` rounds (pool threads, caches and the
allocator settle), then takes a baseline at rest, a sample at rest every few rounds, and a
"peak" sample with containers running (which proves each probe sees what it counts).

At rest, measured against the baseline. Rest samples are taken on the plugin's event loop in
one synchronous step, once no request or keeper task exists, the sweep is parked in its sleep
and no namespace thread is alive: nothing is in flight and nothing can start meanwhile (a
sweep holds a pyroute2 IPRoute, 4 fds and thousands of objects, for tens of ms). So the exact
checks are exact, with no tolerance:

* open fds (``/proc/self/fd``): exactly the baseline;
* threads (``threading`` and ``/proc/self/task``): exactly the baseline's, except that the
  plugin's executor (threads ``netlink_*``) may grow up to its ``daemon.WORKER_THREADS``: it
  starts threads on demand and keeps them (seen: 2 or 3 at the baseline, 3 or 4 later;
  threads in container namespaces end with their call);
* the plugin's asyncio tasks: exactly the reconciler's long-lived ``docker-events`` and
  ``sweep``, no ``keeper:*`` nor anything else;
* live objects (after ``gc.collect()``) of every type from net_dhcp, pyroute2, aiohttp,
  asyncio, socket, selectors and sqlite3, by type, and asyncio timers not cancelled: exactly
  the baseline's. Cancelled timers are left out: asyncio keeps them in its heap until they
  are a majority of over 100, a bounded heap;
* the dicts, lists and sets that net_dhcp objects hold, by class and attribute: exactly the
  baseline's sizes (this is what catches per-endpoint bookkeeping that is never dropped);
* veths of the plugin (``veth.HOST_IF_PREFIX``) on the lab bridge: none; at the end no link
  named after any endpoint of the run, and no played container's namespace;
* endpoints in the registry (or being created), endpoint and lease rows in the SQLite store:
  none (the network's row stays);
* dnsmasq: each container's lease is in its lease file while it runs and gone after it stops
  (DHCPRELEASE), polled for up to ``LEASE_WAIT_S``.

And memory, with allowances measured on this VM (2 cores, Python 3.11, glibc 2.36):

* Python memory blocks (``sys.getallocatedblocks()`` after ``gc.collect()``): at most
  ``BLOCKS_ALLOWANCE`` more at the end; on long runs (``SLOPE_MIN_CONTAINERS``+ containers) at most
  ``BLOCKS_HALF_SLACK`` more over the second half. Interpreter and library caches fill during
  the first 50-100 containers (CPython's type-attribute cache keeps the names pyroute2 builds
  with f-strings, free lists, the timer heap above): +1,500 blocks over the default run, then
  flat (+-300 from sample to sample);
* RSS (``VmRSS``) after ``malloc_trim(0)`` (freed memory the allocator kept is not a leak):
  at most ``RSS_ALLOWANCE_KIB`` more at the end; on long runs at most ``RSS_SLOPE_KIB`` per
  container over the second half (a steady leak grows both halves alike; warm-up only the
  first). Raw RSS and glibc's bytes in use are printed too, to tell a native leak from
  fragmentation.

The size check found one: ``Reconciler._born`` (a dict of when each endpoint was first seen)
got an entry for every endpoint a sweep saw alive and never lost it; the endpoint now carries
that time itself (``known_since``).

The sample table is printed (``pytest -s`` shows it) and is part of every failure message.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ctypes
import dataclasses
import gc
import json
import logging
import os
import re
import sys
import threading
import time
import types
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
from aiohttp import web

from net_dhcp import daemon
from net_dhcp.attach import veth
from net_dhcp.registry import Endpoint
from tests.conftest import LanFactory
from tests.dockerplay import Container, PlayedDocker
from tests.inprocess import InProcessPlugin
from tests.lab import NETNS_PREFIX, DhcpLan, sh

T = TypeVar("T")

CYCLES_ENV = "NET_DHCP_LEAK_CYCLES"
DEFAULT_CYCLES = 40
FULL_CYCLES = 500
WARMUP = 5
"""Rounds before the baseline: the executor's threads, aiohttp's and SQLite's caches, the
first WAL checkpoint and glibc's per-thread arenas come with the first few containers."""
SAMPLES = 8
"""Rest samples taken during the measured rounds (besides the baseline)."""
WIDTH = 4
"""Containers started (and then stopped) at once by the concurrent test."""
SWEEP_S = 0.5
"""The reconciler's check-and-sweep interval: short, so that many sweeps meet live endpoints."""
SETTLE_S = 15.0
"""How long a rest sample waits for transient threads, fds and tasks to end."""
LEASE_WAIT_S = 10.0

BLOCKS_ALLOWANCE = 4000
"""Python memory blocks a run may gain from its baseline. Seen: +1,500 to +1,600 over the
default 40 sequential rounds, +600 over 10 concurrent rounds, +2,100 over 500 sequential
rounds (caches filling, then flat). The census above, not this, is the exact check: this
one catches leaked builtins (strings, bytes, ints) the census does not count."""
BLOCKS_HALF_SLACK = 600
"""Blocks the second half of a long run may gain: twice the sample-to-sample noise (+-300).
Seen: +60 to +350 over the second half of 500 containers."""
RSS_ALLOWANCE_KIB = 10 * 1024
"""Trimmed RSS a run may gain from its baseline. Seen: +0.6 to +1.4 MiB over the default run,
+5.2 to +5.4 MiB over 500 sequential cycles, and +7.5 MiB over the first 1,000 of 2,000 cycles,
then flat (+-150 KiB) for the next 1,000: glibc's per-thread malloc arenas, which the
short-lived namespace threads use, fill and fragment (malloc_trim cannot give back partly
used pages); SQLite's page cache; thread stacks that glibc caches. 20 KiB leaked per
container exceeds it over 500."""
RSS_SLOPE_KIB = 16.0
"""Trimmed RSS growth per container allowed in the second half of a long run. Seen: 2 KiB
(500 sequential, 500 concurrent), up to 6 KiB in other runs, plus a one-off ~1 MiB step of
malloc's in-use memory seen once per ~1,000 cycles (4 KiB per container over a half of 250).
Gross leaks only: the exact checks catch the fine ones."""
SLOPE_MIN_CONTAINERS = 200
LONG_LIVED_TASKS = ("docker-events", "sweep")
POOL_PREFIX = "netlink_"
NETNS_THREAD_PREFIX = "netns:"


def _cycles() -> int:
    raw = os.environ.get(CYCLES_ENV, "").strip()
    if not raw:
        return DEFAULT_CYCLES
    if not raw.isdigit() or int(raw) < 8:
        raise ValueError(f"{CYCLES_ENV}={raw!r}: give a whole number of cycles, at least 8 "
                         f"(default {DEFAULT_CYCLES}, full run {FULL_CYCLES})")
    return int(raw)


CYCLES = _cycles()


# --------------------------------------------------------------------------- fake dockerd


class FakeDockerd:
    """Just enough of the Docker Engine API for the reconciler, on a unix socket, served by
    an event loop in a thread of its own (its tasks are not the plugin's).

    /version; /networks (none to recover); /containers/json (none to learn); /events (held
    open, silent); /networks/{id}: the played network with its joined containers, as the
    sweep asks. Every reply but the event stream closes its connection, so no keep-alive
    connection comes and goes between samples.
    """

    API = "1.41"

    def __init__(self, path: Path, played: PlayedDocker) -> None:
        self.path = path
        self.played = played
        self.requests: Counter[str] = Counter()
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="fake-dockerd",
                                        daemon=True)
        self._runner: web.AppRunner | None = None
        self._closing: asyncio.Event | None = None
        self._streams = 0  # /events requests being served (held open)

    def _run(self, coro: Any, timeout: float = 30.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def start(self) -> FakeDockerd:
        self._thread.start()
        self._run(self._start())
        return self

    async def _start(self) -> None:
        self._closing = asyncio.Event()
        app = web.Application()
        app.router.add_get(r"/{path:.*}", self._dispatch)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        await web.UnixSite(self._runner, str(self.path)).start()

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        path = re.sub(r"^/v[0-9.]+/", "/", request.path)
        self.requests[re.sub(r"/[0-9a-f]{64}", "/{id}", path)] += 1
        if path == "/events":
            return await self._events(request)
        body: Any
        if path == "/version":
            body = {"ApiVersion": self.API, "Version": "20.10.24"}
        elif path in ("/networks", "/containers/json"):
            body = []
        elif (m := re.fullmatch(r"/networks/([0-9a-f]{64})", path)) \
                and m[1] in self.played.networks:
            joined = [c for c in list(self.played.containers)
                      if c.network_id == m[1] and c.joined]
            body = {"Id": m[1], "Containers": {
                f"ctr{c.endpoint_id[:61]}": {"EndpointID": c.endpoint_id, "MacAddress": c.mac,
                                             "IPv4Address": c.address} for c in joined}}
        else:
            resp = web.json_response({"message": f"no such object: {path}"}, status=404)
            resp.force_close()
            return resp
        resp = web.json_response(body)
        resp.force_close()
        return resp

    async def _events(self, request: web.Request) -> web.StreamResponse:
        self._streams += 1
        try:
            resp = web.StreamResponse(headers={"Content-Type": "application/json"})
            await resp.prepare(request)
            assert self._closing is not None
            await self._closing.wait()
            return resp
        finally:
            self._streams -= 1

    def served(self) -> int:
        """How many requests have come in so far."""
        return sum(self.requests.values())

    def busy(self) -> bool:
        """Whether a connection other than an /events stream is open, its request being
        served or its connection closing. Its tasks and aiohttp objects live in this
        process, on this loop: the census, which counts the whole process, would count
        them as the plugin's (it did: a sweep's request whose handler task had not ended
        yet, on a loaded machine)."""
        async def count() -> bool:
            me = asyncio.current_task()
            connections = sum(
                1 for task in asyncio.all_tasks() if task is not me
                and getattr(task.get_coro(), "__qualname__", "") == "RequestHandler.start")
            return connections > self._streams

        return bool(self._run(count()))

    def close(self) -> None:
        async def stop() -> None:
            assert self._closing is not None
            self._closing.set()
            if self._runner is not None:
                await self._runner.cleanup()

        try:
            if self._thread.is_alive():
                self._run(stop())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(10)
            if not self._thread.is_alive():
                self.loop.close()
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()


# --------------------------------------------------------------------------- the rig


@dataclass
class Rig:
    """A LAN, the fake dockerd, the in-process plugin, dockerd's calls and one network.

    The run's endpoint IDs go to a file, not a list: a list would grow this process's
    memory by a string per container and blur the memory check."""

    lab: DhcpLan
    dockerd: FakeDockerd
    plugin: InProcessPlugin
    docker: PlayedDocker
    net_id: str
    ids_file: Path

    def remember(self, containers: list[Container]) -> None:
        with self.ids_file.open("a") as f:
            f.writelines(f"{c.endpoint_id}\n" for c in containers)

    def endpoint_ids(self) -> list[str]:
        return self.ids_file.read_text().split() if self.ids_file.exists() else []


class _NoTracebacksKept(logging.Filter):
    """pytest keeps every log record of a test (its "Captured log" report). A record whose
    arguments hold an exception keeps the exception's traceback, its frames and their
    locals: `LOG.warning("... (%s)", ep.id, err)` in a keeper would keep that endpoint alive
    until the test ends, which the census would count as a leak (it did, in CI, once a
    played namespace was gone before the keeper looked). So records keep text, not
    exceptions; in the plugin, logging writes a record and drops it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and any(isinstance(a, BaseException)
                                                  for a in record.args):
            record.args = tuple(str(a) if isinstance(a, BaseException) else a
                                for a in record.args)
        if record.exc_info:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
            record.exc_info = None
        return True


@pytest.fixture(autouse=True)
def _records_keep_no_tracebacks() -> Iterator[None]:
    keep = _NoTracebacksKept()
    handlers = list(logging.getLogger().handlers)
    for h in handlers:
        h.addFilter(keep)
    try:
        yield
    finally:
        for h in handlers:
            h.removeFilter(keep)


@pytest.fixture
def rig(lan: LanFactory, tmp_path: Path) -> Iterator[Rig]:
    lab = lan(t1=2, t2=4)
    plugin = InProcessPlugin(sweep_interval_s=SWEEP_S,
                             docker_socket=str(tmp_path / "fake-docker.sock"))
    docker = PlayedDocker(plugin)
    dockerd = FakeDockerd(tmp_path / "fake-docker.sock", docker).start()
    problems: list[str] = []
    try:
        plugin.start()
        try:
            net_id = docker.create_network(lab.bridge)
            yield Rig(lab, dockerd, plugin, docker, net_id, tmp_path / "endpoint-ids")
        finally:
            problems += docker.close()
            plugin.close()
    finally:
        dockerd.close()
    if problems:
        pytest.fail("played dockerd could not clean up:\n" + "\n".join(problems))


# --------------------------------------------------------------------------- probes


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]


_LIBC = ctypes.CDLL(None)
_HAVE_MALLINFO2 = hasattr(_LIBC, "mallinfo2")
if _HAVE_MALLINFO2:
    _LIBC.mallinfo2.restype = _MallInfo2


def _malloc_in_use_kib() -> int:
    """Memory handed out by glibc's malloc, all arenas (-1 without glibc >= 2.33)."""
    if not _HAVE_MALLINFO2:
        return -1
    info = _LIBC.mallinfo2()
    return int(info.uordblks + info.hblkhd) // 1024


def _malloc_trim() -> None:
    if hasattr(_LIBC, "malloc_trim"):
        _LIBC.malloc_trim(0)


def _rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS in /proc/self/status")


def _fd_targets() -> dict[str, str]:
    out = {}
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            out[fd] = os.readlink(f"/proc/self/fd/{fd}")
    return out


def _fd_count() -> int:
    # The directory listing holds one fd of its own: the same in every sample.
    return len(os.listdir("/proc/self/fd"))


def _fixed_threads(names: list[str]) -> tuple[str, ...]:
    """Threads that must be exactly the baseline's: not the pool, not namespace calls."""
    return tuple(n for n in names if not n.startswith((POOL_PREFIX, NETNS_THREAD_PREFIX)))


def _bridge_veths(bridge: str) -> list[str]:
    out = sh("ip", "-j", "link", "show", "master", bridge).stdout
    return sorted(str(link["ifname"]) for link in json.loads(out or "[]")
                  if str(link["ifname"]).startswith(veth.HOST_IF_PREFIX))


def _awaiting(task: asyncio.Task[Any]) -> list[str]:
    """Names of the coroutines a task is suspended in, outermost first."""
    out: list[str] = []
    aw: Any = task.get_coro()
    while aw is not None and len(out) < 50:
        out.append(str(getattr(aw, "__qualname__", type(aw).__name__)))
        aw = (getattr(aw, "cr_await", None) or getattr(aw, "gi_yieldfrom", None)
              or getattr(aw, "ag_await", None))
    return out


CENSUS_MODULES = ("net_dhcp", "pyroute2", "aiohttp", "asyncio", "_asyncio", "socket",
                  "selectors", "sqlite3")
"""Live objects of these packages' types are counted (threads are counted apart)."""


def _census() -> tuple[Counter[str], Counter[str]]:
    """(live objects by type, sizes of the containers net_dhcp objects hold by attribute).

    Scheduled asyncio timers count only while not cancelled (by their callback): asyncio
    keeps cancelled ones (aiohttp's keep-alive timers of closed connections) in its heap
    until they are a majority of over 100, a bounded heap that is not a leak. The sizes catch
    a dict or list of a product object that keeps something of each endpoint (its length
    grows, not its object count)."""
    objects: Counter[str] = Counter()
    sizes: Counter[str] = Counter()
    for obj in gc.get_objects():
        kind = type(obj)
        module = getattr(kind, "__module__", None)
        if not isinstance(module, str) or module.split(".")[0] not in CENSUS_MODULES:
            continue
        name = f"{module}.{kind.__qualname__}"
        if isinstance(obj, asyncio.TimerHandle):
            if obj.cancelled():
                continue
            callback = getattr(obj, "_callback", None)
            name += f" ({getattr(callback, '__qualname__', 'pending')})"
        elif isinstance(obj, asyncio.Handle):
            continue  # a callback about to run
        objects[name] += 1
        if module.startswith("net_dhcp"):
            for attr, value in (getattr(obj, "__dict__", None) or {}).items():
                if isinstance(value, (dict, list, set, frozenset, collections.deque)):
                    sizes[f"{kind.__qualname__}.{attr}"] += len(value)
    return objects, sizes


def _describe(obj: object) -> str:
    if isinstance(obj, types.FrameType):
        return f"frame {obj.f_code.co_qualname} ({obj.f_code.co_filename}:{obj.f_lineno})"
    if isinstance(obj, (types.CoroutineType, types.FunctionType, types.MethodType)):
        return f"{type(obj).__name__} {getattr(obj, '__qualname__', '?')}"
    if isinstance(obj, asyncio.Future):
        return f"{type(obj).__name__} {obj!r}"[:300]
    if isinstance(obj, dict):
        return f"dict of {len(obj)} (keys {list(obj)[:5]})"[:300]
    if isinstance(obj, (list, tuple, set)):
        return f"{type(obj).__name__} of {len(obj)}"
    return f"{type(obj).__module__}.{type(obj).__qualname__}"


def _holders(kind: type, live: Iterable[object], depth: int = 8, width: int = 3) -> str:
    """Who holds the objects of `kind` that are not in `live`: their referrers, and theirs,
    as an indented tree (a leak report's first question)."""
    keep = {id(o) for o in live}
    found = [o for o in gc.get_objects() if type(o) is kind and id(o) not in keep]
    lines: list[str] = []
    seen: set[int] = set()
    mine = {id(found), id(lines), id(seen), id(sys._getframe())}

    def walk(obj: object, level: int) -> None:
        if level > depth or id(obj) in seen:
            return
        seen.add(id(obj))
        refs = gc.get_referrers(obj)
        mine.add(id(refs))
        shown = 0
        for i in range(len(refs)):  # by index: an iterator would be one more referrer
            if shown == width:
                break
            ref = refs[i]
            if id(ref) in mine or isinstance(ref, types.FrameType) and ref.f_code in (
                    walk.__code__, _holders.__code__):
                continue
            shown += 1
            lines.append("  " * level + _describe(ref))
            walk(ref, level + 1)

    for n in range(min(2, len(found))):
        lines.append(f"{_describe(found[n])} {found[n]!r}"[:300])
        walk(found[n], 1)
    return "\n".join(lines)


def _diff(now: Counter[str], then: Counter[str]) -> tuple[tuple[str, int], ...]:
    return tuple(sorted((k, now[k] - then[k]) for k in set(now) | set(then)
                        if now[k] != then[k]))


def _poll(predicate: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


# --------------------------------------------------------------------------- samples


@dataclass(frozen=True)
class Sample:
    """One observation of this process, the plugin, the kernel and dnsmasq."""

    label: str
    round: int
    elapsed_s: float
    fds: int
    py_threads: int
    os_threads: int
    pool: int
    fixed_threads: tuple[str, ...]
    tasks: tuple[str, ...]
    registry: int
    creating: int
    objects: tuple[tuple[str, int], ...]
    """Live objects by type, as changed from the baseline (all of them in the baseline)."""
    sizes: tuple[tuple[str, int], ...]
    """Container attributes of net_dhcp objects whose size changed from the baseline."""
    rows: tuple[int, int, int]
    blocks: int
    rss_raw_kib: int
    rss_kib: int
    malloc_kib: int
    veths: int = -1
    dns_leases: int = -1
    note: str = ""
    holders: str = ""
    """Who holds endpoints deleted from the registry (only when some are alive)."""

    @property
    def native_threads(self) -> int:
        """Threads the kernel sees that Python does not know."""
        return self.os_threads - self.py_threads

    @property
    def where(self) -> str:
        return f"{self.label}@{self.round}"

    @property
    def keepers(self) -> int:
        return sum(t.startswith("keeper:") for t in self.tasks)

    def grown(self) -> int:
        """How many more entries net_dhcp objects hold in their dicts, lists and sets."""
        return sum(n for _, n in self.sizes if n > 0) if self.label != "base" else 0

    def changed_objects(self) -> int:
        return sum(abs(n) for _, n in self.objects) if self.label != "base" else 0

    def tasks_text(self) -> str:
        counts = Counter(re.sub(r":.*", ":*", t) for t in self.tasks)
        return ",".join(k if v == 1 else f"{k}x{v}" for k, v in sorted(counts.items()))


HEADER = (f"{'sample':<7}{'round':>6}{'t/s':>7}{'fds':>5}{'thr':>5}{'os':>4}{'pool':>5}"
          f"{'veth':>5}{'reg':>4}{'kpr':>4}{'objs':>5}{'size':>5}{'rows n/e/l':>11}"
          f"{'dnsm':>5}{'rss KiB':>9}{'raw KiB':>9}{'malloc':>8}{'blocks':>8}  tasks")


def _row(s: Sample) -> str:
    rows = "/".join(str(n) for n in s.rows)
    return (f"{s.label:<7}{s.round:>6}{s.elapsed_s:>7.1f}{s.fds:>5}{s.py_threads:>5}"
            f"{s.os_threads:>4}{s.pool:>5}{s.veths:>5}{s.registry:>4}{s.keepers:>4}"
            f"{s.changed_objects():>5}{s.grown():>5}{rows:>11}{s.dns_leases:>5}{s.rss_kib:>9}"
            f"{s.rss_raw_kib:>9}{s.malloc_kib:>8}{s.blocks:>8}  {s.tasks_text()}"
            + (f"  ({s.note})" if s.note else ""))


class Recorder:
    """Takes and keeps the samples of one run; renders them as a table.

    Rest samples are taken on the plugin's event loop, in one synchronous step, once no
    request or keeper task exists, the sweep is parked in its sleep and no namespace
    thread is alive: nothing of the plugin is in flight (a sweep holds a pyroute2 IPRoute,
    4 fds and thousands of memory blocks, for tens of ms) and nothing can start while the
    step runs.
    """

    def __init__(self, rig: Rig, title: str) -> None:
        self.rig = rig
        self.title = title
        self.t0 = time.monotonic()
        self.samples: list[Sample] = []
        self.base: Sample | None = None
        self.base_fd_targets: dict[str, str] = {}
        self.base_census: tuple[Counter[str], Counter[str]] | None = None

    def table(self) -> str:
        lines = [f"--- {self.title}: 'objs' = live objects changed from the baseline; "
                 "'size' = entries net_dhcp objects' dicts/lists/sets gained; 'rss' after "
                 "malloc_trim(0), 'raw' before; 'malloc' KiB in use; 'blocks' = "
                 "sys.getallocatedblocks() ---", HEADER]
        lines += [_row(s) for s in self.samples]
        return "\n".join(lines)

    def fail(self, what: str) -> str:
        """An assertion message: what went wrong, then the samples so far."""
        return f"{what}\n{self.table()}"

    async def _measure(self, label: str, round_no: int, *, quiet: bool,
                       want: Sample | None) -> Sample | str:
        """Runs on the plugin's loop. With `quiet`, a reason (str) unless the plugin is at
        rest (and, given `want`, fds and threads are down to it)."""
        # Let callbacks of tasks that just finished run (e.g. a teardown job's) first.
        for _ in range(2):
            await asyncio.sleep(0)
        me = asyncio.current_task()
        tasks = [t for t in asyncio.all_tasks() if t is not me]
        names = tuple(sorted(t.get_name() for t in tasks))
        threads = sorted(t.name for t in threading.enumerate())
        if quiet:
            if names != LONG_LIVED_TASKS:
                return f"tasks in flight: {list(names)}"
            if any("sleep" not in _awaiting(t) for t in tasks if t.get_name() == "sweep"):
                return "a sweep is running"
            if any(n.startswith(NETNS_THREAD_PREFIX) for n in threads):
                return "a namespace thread is alive"
        gc.collect()
        fds = _fd_count()
        os_threads = len(os.listdir("/proc/self/task"))
        fixed = _fixed_threads(threads)
        if quiet and want is not None:
            if fds > want.fds:
                return f"{fds} fds open"
            if fixed != want.fixed_threads:
                return f"threads {list(fixed)}"
            if os_threads - len(threads) > want.native_threads:
                return f"{os_threads - len(threads)} threads unknown to Python"
        blocks = sys.getallocatedblocks()
        rss_raw = _rss_kib()
        _malloc_trim()
        assert self.rig.plugin.running is not None
        registry = self.rig.plugin.driver.registry
        # Before the census: these statements join the connection's statement cache.
        with self.rig.plugin.running.store._read("count rows for the leak test") as db:
            nets, eps, leases = (int(db.execute(query).fetchone()[0]) for query in (
                "SELECT count(*) FROM networks", "SELECT count(*) FROM endpoints",
                "SELECT count(*) FROM leases"))
        objects, sizes = _census()
        if self.base_census is None:
            self.base_census = (objects, sizes)
            self.base_fd_targets = _fd_targets()
        base_objects, base_sizes = self.base_census
        holders = ""
        if objects["net_dhcp.registry.Endpoint"] > len(registry.endpoints):
            holders = _holders(Endpoint, registry.endpoints.values())
        if quiet and self.base_census is not None and (
                objects["_asyncio.Task"] > self.base_census[0]["_asyncio.Task"]):
            # A finished task something still holds (seen once in CI, transient: rest@5).
            holders += _holders(asyncio.Task, asyncio.all_tasks())
        return Sample(
            label=label, round=round_no, elapsed_s=time.monotonic() - self.t0, fds=fds,
            py_threads=len(threads), os_threads=os_threads,
            pool=sum(t.startswith(POOL_PREFIX) for t in threads), fixed_threads=fixed,
            tasks=names, registry=len(registry.endpoints),
            creating=len(registry.being_created()),
            objects=_diff(objects, base_objects), sizes=_diff(sizes, base_sizes),
            rows=(nets, eps, leases), blocks=blocks, rss_raw_kib=rss_raw, rss_kib=_rss_kib(),
            malloc_kib=_malloc_in_use_kib(), holders=holders)

    def _take(self, label: str, round_no: int, *, quiet: bool) -> Sample:
        plugin = self.rig.plugin
        got: Sample | str = "not measured"
        if quiet:
            deadline = time.monotonic() + SETTLE_S
            dockerd = self.rig.dockerd
            while True:
                served = dockerd.served()
                if dockerd.busy():
                    got = "the fake dockerd is serving a request"
                else:
                    got = plugin.run(self._measure(label, round_no, quiet=True,
                                                   want=self.base))
                    if dockerd.busy() or dockerd.served() != served:
                        got = "the fake dockerd served a request during the census"
                if isinstance(got, Sample) or time.monotonic() >= deadline:
                    break
                time.sleep(0.05)
        if not isinstance(got, Sample):
            # A peak sample, or never at rest: record what is there (and why).
            reason = f"not at rest after {SETTLE_S:g} s: {got}" if quiet else ""
            got = plugin.run(self._measure(label, round_no, quiet=False, want=None))
            assert isinstance(got, Sample)
            got = dataclasses.replace(got, note=reason)
        sample = dataclasses.replace(
            got, veths=len(_bridge_veths(self.rig.lab.bridge)),
            dns_leases=len(self.rig.lab.leases()))
        self.samples.append(sample)
        return sample

    def baseline(self) -> Sample:
        self.base = self._take("base", 0, quiet=True)
        return self.base

    def rest(self, label: str, round_no: int) -> Sample:
        return self._take(label, round_no, quiet=True)

    def peak(self, round_no: int) -> Sample:
        return self._take("peak", round_no, quiet=False)


# --------------------------------------------------------------------------- the cycles


def _in_threads(fn: Callable[[T], Any], items: list[T], what: str) -> list[Any]:
    """fn(item) for every item at once, each in its own thread; their results in order.
    The threads are joined before returning (none is left to count as a leak)."""
    results: list[Any] = [None] * len(items)
    errors: list[str] = []

    def run(i: int, item: T) -> None:
        try:
            results[i] = fn(item)
        except BaseException as err:  # handed to the test below
            errors.append(f"{what} #{i}: {err!r}")

    threads = [threading.Thread(target=run, args=(i, item), name=f"leak-test-{what}-{i}")
               for i, item in enumerate(items)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    stuck = [t.name for t in threads if t.is_alive()]
    assert not stuck, f"{what}: threads still running after 120 s: {stuck}"
    assert not errors, "\n".join(errors)
    return results


def _our_leases(lab: DhcpLan, macs: set[str]) -> list[str]:
    return sorted(f"{le.ip} {le.mac}" for le in lab.leases() if le.mac in macs)


def _one_round(rig: Rig, rec: Recorder, width: int, round_no: int, peak: bool) -> None:
    """Start `width` containers (at once if more than one), check their leases, optionally
    sample at the peak, stop them (at once), check the leases were released."""
    d, lab = rig.docker, rig.lab
    try:
        if width == 1:
            containers = [d.start(rig.net_id)]
        else:
            containers = _in_threads(lambda _: d.start(rig.net_id), list(range(width)),
                                     "start")
    except Exception as err:
        raise AssertionError(rec.fail(f"round {round_no}: a start failed: {err}")) from err
    rig.remember(containers)
    macs = {c.mac.lower() for c in containers}
    addresses = [c.address.split("/")[0] for c in containers]
    assert len(set(addresses)) == width, \
        rec.fail(f"round {round_no}: leased addresses {addresses} are not distinct")
    assert all(lab.in_range(a) for a in addresses), \
        rec.fail(f"round {round_no}: leased addresses {addresses} not in the server's range")
    assert _poll(lambda: len(_our_leases(lab, macs)) == width, LEASE_WAIT_S), rec.fail(
        f"round {round_no}: dnsmasq holds {_our_leases(lab, macs)} for {sorted(macs)}")
    if peak:
        s = rec.peak(round_no)
        keepers = sorted(t for t in s.tasks if t.startswith("keeper:"))
        wanted = sorted(f"keeper:{c.endpoint_id[:12]}" for c in containers)
        assert (s.veths, s.registry, s.keepers, s.rows, s.dns_leases, keepers) \
            == (width, width, width, (1, width, width), width, wanted), rec.fail(
            f"round {round_no}: with {width} container(s) running, the probes should see "
            f"{width} veth(s), endpoint(s), keeper(s), rows, lease(s) and tasks {wanted}: "
            "a probe is broken, or the plugin is")
    try:
        if width == 1:
            d.stop(containers[0])
        else:
            _in_threads(d.stop, containers, "stop")
    except Exception as err:
        raise AssertionError(rec.fail(f"round {round_no}: a stop failed: {err}")) from err
    assert _poll(lambda: not _our_leases(lab, macs), LEASE_WAIT_S), rec.fail(
        f"round {round_no}: dnsmasq still holds {_our_leases(lab, macs)} "
        f"{LEASE_WAIT_S:g} s after the container(s) stopped: no DHCPRELEASE reached it")


def _run(rig: Rig, title: str, *, rounds: int, width: int) -> Recorder:
    rec = Recorder(rig, title)
    for i in range(WARMUP):
        _one_round(rig, rec, width, i - WARMUP, peak=False)
    rec.baseline()
    every = max(1, rounds // SAMPLES)
    for i in range(1, rounds + 1):
        _one_round(rig, rec, width, i, peak=i in (1, rounds // 2))
        if i % every == 0 or i == rounds:
            rec.rest("end" if i == rounds else "rest", i)
    return rec


def _memory_summary(base: Sample, rests: list[Sample], width: int) -> str:
    """Growth from the baseline, and by half of the run."""
    end = rests[-1]
    mid = min(rests, key=lambda s: abs(s.round - end.round // 2))
    lines = ["memory growth:        blocks  rss KiB  raw KiB  malloc KiB"]
    for what, a, b in (("whole run", base, end), ("first half", base, mid),
                       ("second half", mid, end)):
        n = max(1, (b.round - a.round) * width)
        lines.append(
            f"  {what:<11} {b.round - a.round:>4}r {b.blocks - a.blocks:>+7} "
            f"{b.rss_kib - a.rss_kib:>+8} {b.rss_raw_kib - a.rss_raw_kib:>+8} "
            f"{b.malloc_kib - a.malloc_kib:>+11}   ({(b.rss_kib - a.rss_kib) / n:+.1f} KiB "
            "rss per container)")
    return "\n".join(lines)


def _check(rig: Rig, rec: Recorder, rounds: int, width: int) -> None:
    """Every rest sample against the baseline; the end state; memory."""
    base = rec.base
    assert base is not None
    rests = [s for s in rec.samples if s.label != "peak"]
    end = rests[-1]
    problems: list[str] = []

    def each(what: str, value: Callable[[Sample], object], ok: Callable[[Sample], bool],
             why: str = "") -> None:
        bad = [s for s in rests if not ok(s)]
        if bad:
            seen = ", ".join(f"{s.where}: {value(s)}" for s in bad)
            problems.append(f"{what} ({seen}){why}")

    unsettled = [f"{s.where}: {s.note}" for s in rests if s.note]
    if unsettled:
        problems.append(f"never at rest: {unsettled}")
    each(f"open fds changed from the baseline's {base.fds}", lambda s: s.fds,
         lambda s: s.fds == base.fds)
    each(f"threads changed from the baseline's {list(base.fixed_threads)} (executor and "
         "namespace threads aside)", lambda s: list(s.fixed_threads),
         lambda s: s.fixed_threads == base.fixed_threads)
    each(f"executor threads over its max {daemon.WORKER_THREADS}", lambda s: s.pool,
         lambda s: s.pool <= daemon.WORKER_THREADS)
    each(f"threads unknown to Python changed from the baseline's {base.native_threads}",
         lambda s: s.native_threads, lambda s: s.native_threads == base.native_threads)
    each(f"plugin asyncio tasks other than {list(LONG_LIVED_TASKS)}", lambda s: list(s.tasks),
         lambda s: s.tasks == LONG_LIVED_TASKS)
    each(f"plugin veths left on {rig.lab.bridge}", lambda s: s.veths, lambda s: s.veths == 0)
    each("endpoints left in the registry / being created", lambda s: (s.registry, s.creating),
         lambda s: (s.registry, s.creating) == (0, 0))
    each("store rows (networks, endpoints, leases) other than (1, 0, 0)", lambda s: s.rows,
         lambda s: s.rows == (1, 0, 0))
    each("leases left in dnsmasq's lease file", lambda s: s.dns_leases,
         lambda s: s.dns_leases == 0)
    each("live objects (by type) changed from the baseline", lambda s: dict(s.objects),
         lambda s: not s.objects)
    each("dicts/lists/sets of net_dhcp objects changed size from the baseline (something "
         "of each endpoint is kept after it is deleted)", lambda s: dict(s.sizes),
         lambda s: not s.sizes)
    held = [f"{s.where}:\n{s.holders}" for s in rests if s.holders]
    if held:
        problems.append("deleted endpoints still held, by (referrers, indented):\n"
                        + held[0])
    if end.fds != base.fds:
        now = _fd_targets()
        gone = {k: v for k, v in rec.base_fd_targets.items() if now.get(k) != v}
        new = {k: v for k, v in now.items() if rec.base_fd_targets.get(k) != v}
        problems.append(f"fds at the baseline, not at the end: {gone}; at the end, not at "
                        f"the baseline: {new}")

    # Memory: growth from the baseline to the end; on long runs, the second half's.
    blocks_growth = end.blocks - base.blocks
    if blocks_growth > BLOCKS_ALLOWANCE:
        problems.append(f"Python memory blocks grew by {blocks_growth} over {rounds} rounds "
                        f"({blocks_growth / (rounds * width):.1f} per container; allowed "
                        f"{BLOCKS_ALLOWANCE} in all)")
    rss_growth = end.rss_kib - base.rss_kib
    if rss_growth > RSS_ALLOWANCE_KIB:
        problems.append(f"RSS (trimmed) grew by {rss_growth} KiB over {rounds} rounds "
                        f"({rss_growth / (rounds * width):.1f} KiB per container; allowed "
                        f"{RSS_ALLOWANCE_KIB} KiB in all)")
    if rounds * width >= SLOPE_MIN_CONTAINERS:
        mid = min(rests, key=lambda s: abs(s.round - rounds // 2))
        half = max(1, (end.round - mid.round) * width)
        blocks_first, blocks_second = mid.blocks - base.blocks, end.blocks - mid.blocks
        if blocks_second > BLOCKS_HALF_SLACK:
            problems.append(
                f"Python memory blocks keep growing: +{blocks_first} in rounds 0-{mid.round}, "
                f"+{blocks_second} in rounds {mid.round}-{end.round} ({blocks_second / half:.1f} "
                f"per container; allowed {BLOCKS_HALF_SLACK} in the second half)")
        rss_first, rss_second = mid.rss_kib - base.rss_kib, end.rss_kib - mid.rss_kib
        if rss_second / half > RSS_SLOPE_KIB:
            problems.append(
                f"RSS (trimmed) keeps growing: +{rss_first} KiB in rounds 0-{mid.round}, "
                f"+{rss_second} KiB in rounds {mid.round}-{end.round} "
                f"({rss_second / half:.2f} KiB per container; allowed {RSS_SLOPE_KIB} KiB in "
                "the second half)")

    # The end state beyond the bridge: links and namespaces named after this run.
    ids = rig.endpoint_ids()
    if len(ids) != (rounds + WARMUP) * width:
        problems.append(f"{len(ids)} endpoints made, want {(rounds + WARMUP) * width}")
    ours = {name for eid in ids for name in veth.names(eid)}
    links = {str(link["ifname"]) for link in json.loads(sh("ip", "-j", "link", "show").stdout)}
    if ours & links:
        problems.append(f"links of deleted endpoints still exist: {sorted(ours & links)}")
    prefix = f"{NETNS_PREFIX}play-{rig.docker.tag}"
    netns = [str(ns["name"]) for ns in json.loads(sh("ip", "-j", "netns", "list").stdout or "[]")
             if str(ns["name"]).startswith(prefix)]
    if netns:
        problems.append(f"played containers' namespaces left: {netns}")
    if rig.dockerd.requests["/networks/{id}"] == 0:
        problems.append("the reconciler never swept (no GET /networks/{id} reached the fake "
                        f"dockerd: {dict(rig.dockerd.requests)})")

    report = (f"{rec.table()}\n{len(ids)} containers ({WARMUP * width} of them warm-up) in "
              f"{time.monotonic() - rec.t0:.1f} s; fake dockerd served "
              f"{dict(rig.dockerd.requests)}\n{_memory_summary(base, rests, width)}")
    print(f"\n{report}")
    if problems:
        pytest.fail("leak check failed:\n- " + "\n- ".join(problems) + f"\n{report}",
                    pytrace=False)


# --------------------------------------------------------------------------- tests


def test_sequential_cycles_leak_nothing(rig: Rig) -> None:
    """NET_DHCP_LEAK_CYCLES (default 40, full 500) start/stop cycles, one at a time."""
    rec = _run(rig, f"{CYCLES} sequential cycles", rounds=CYCLES, width=1)
    _check(rig, rec, CYCLES, 1)


def test_concurrent_cycles_leak_nothing(rig: Rig) -> None:
    """NET_DHCP_LEAK_CYCLES / 4 rounds of 4 containers started, then stopped, at once."""
    rounds = max(SAMPLES, CYCLES // WIDTH)
    rec = _run(rig, f"{rounds} rounds of {WIDTH} concurrent cycles", rounds=rounds,
               width=WIDTH)
    _check(rig, rec, rounds, WIDTH)
