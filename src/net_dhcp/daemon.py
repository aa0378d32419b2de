"""Wires the plugin together and runs it until SIGTERM/SIGINT.

Start-up (`start`) answers on the socket as soon as the state is loaded: requests always
see the loaded registry. What may take longer runs after that, in the background task
"adopt": re-adopting the stored endpoints (`Reconciler.adopt_from_kernel`: keepers
restarted, endpoints whose veth or container is gone torn down), then the Docker watcher
and the sweep. Until re-adoption is done, the calls that create, join, leave or delete
endpoints, and DeleteNetwork (which deletes them), wait for it (`AfterAdoption`): it must
not start a keeper for, or tear down, an endpoint that Docker is deleting at the same time.
Activate, GetCapabilities, CreateNetwork, EndpointOperInfo and the status route answer at
once. With `--metrics`, the metrics listener (metrics_server.py) starts right after the
socket answers; it is stopped first at shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import faulthandler
import fcntl
import logging
import os
import signal
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from . import managed, metrics_server, unix_site
from .api import make_app
from .dhcp4.timing import Timing
from .driver import Driver
from .errors import AlreadyRunning, NetDhcpError, StoreError
from .reconcile import Reconciler
from .requests import (
    CreateEndpointRequest,
    CreateNetworkRequest,
    EndpointRequest,
    JoinRequest,
    NetworkRequest,
)
from .status import gauges_for, source_for
from .store import Store

LOG = logging.getLogger(__name__)

WORKER_THREADS = 4
"""Threads for blocking netlink calls in the host namespace (namespace work gets its own)."""
LOCK_NAME = "net-dhcp.lock"


@contextlib.contextmanager
def exclusive(path: Path, *, remove: bool = False) -> Iterator[None]:
    """Hold an advisory lock on `path` (holding our pid) for the block; AlreadyRunning if
    another process holds it, naming its pid. With `remove`, the file goes at the end."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as err:
        raise StoreError(f"cannot create the lock file {path}: {err.strerror}; make "
                         f"{path.parent} writable for root") from err
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            if err.errno not in (errno.EWOULDBLOCK, errno.EACCES):
                raise
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            raise AlreadyRunning(
                f"another net-dhcp serve (pid {holder}) holds {path}: stop it first, or give "
                "this one its own --socket and --state-dir") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        try:
            yield
        finally:
            if remove:
                with contextlib.suppress(OSError):
                    path.unlink()
    finally:
        os.close(fd)


@dataclass(frozen=True)
class Settings:
    """What `net-dhcp serve` was told."""

    socket: Path
    state_dir: Path
    docker_socket: str | None = None
    driver_name: str | None = None
    """None: the socket file's name for a legacy plugin; learnt from Docker if managed."""
    managed: bool = False
    netns_dir: Path | None = None
    sweep_interval_s: float = 60.0
    timing: Timing = Timing()
    metrics: metrics_server.Address | None = None
    """Where to serve GET /metrics (metrics_server.py); None: no metrics (the default)."""


async def serve(settings: Settings) -> None:
    """Serve the plugin socket; on SIGTERM stop without releasing running containers.

    AlreadyRunning if another serve holds the socket or the state directory; the error
    of re-adoption at start, if it fails (after stopping).
    """
    with exclusive(settings.socket.with_name(settings.socket.name + ".lock"), remove=True), \
            exclusive(settings.state_dir / LOCK_NAME):
        asyncio.get_running_loop().set_default_executor(
            ThreadPoolExecutor(max_workers=WORKER_THREADS, thread_name_prefix="netlink"))
        running = await start(settings)
        # `kill -USR1 <pid>` dumps every thread's stack to standard error, for debugging a hang.
        faulthandler.register(signal.SIGUSR1, all_threads=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        running.adoption.add_done_callback(lambda _task: stop.set() if running.failed()
                                           else None)
        try:
            await stop.wait()
            failure = running.failed()
            if failure is None:
                LOG.info("shutting down; running containers keep their leases")
            else:
                LOG.error("re-adopting the stored endpoints failed: %s; stopping", failure,
                          exc_info=failure)
        finally:
            await running.close()
        if failure is not None:
            raise failure


class AfterAdoption:
    """The driver as api.py sees it: the calls that create, join, leave or delete endpoints
    (DeleteNetwork too) wait until the stored endpoints are re-adopted; the others do not."""

    def __init__(self, driver: Driver, adoption: asyncio.Task[None]) -> None:
        self.driver = driver
        self.adoption = adoption

    async def _adopted(self) -> None:
        """Return once re-adoption is done; NetDhcpError if it failed or was cancelled."""
        try:
            await asyncio.shield(self.adoption)
        except asyncio.CancelledError:
            if not self.adoption.cancelled():
                raise  # this request was cancelled, not re-adoption
            raise NetDhcpError("net-dhcp is shutting down") from None
        except Exception as err:
            raise NetDhcpError(f"net-dhcp failed to re-adopt its endpoints at start: "
                               f"{err}") from err

    async def create_network(self, req: CreateNetworkRequest) -> dict[str, Any]:
        """Driver.create_network, at once (re-adoption touches endpoints only)."""
        return await self.driver.create_network(req)

    async def delete_network(self, req: NetworkRequest) -> dict[str, Any]:
        """Driver.delete_network, once re-adopted (it deletes the network's endpoints)."""
        await self._adopted()
        return await self.driver.delete_network(req)

    async def create_endpoint(self, req: CreateEndpointRequest) -> dict[str, Any]:
        """Driver.create_endpoint, once re-adopted (a stale endpoint torn down meanwhile
        could release a lease of the same MAC through the bridge)."""
        await self._adopted()
        return await self.driver.create_endpoint(req)

    async def endpoint_oper_info(self, req: EndpointRequest) -> dict[str, Any]:
        """Driver.endpoint_oper_info, at once (it only reads)."""
        return await self.driver.endpoint_oper_info(req)

    async def delete_endpoint(self, req: EndpointRequest) -> dict[str, Any]:
        """Driver.delete_endpoint, once re-adopted."""
        await self._adopted()
        return await self.driver.delete_endpoint(req)

    async def join(self, req: JoinRequest) -> dict[str, Any]:
        """Driver.join, once re-adopted."""
        await self._adopted()
        return await self.driver.join(req)

    async def leave(self, req: EndpointRequest) -> dict[str, Any]:
        """Driver.leave, once re-adopted."""
        await self._adopted()
        return await self.driver.leave(req)

    async def program_external_connectivity(self, req: EndpointRequest) -> dict[str, Any]:
        """Driver.program_external_connectivity, once re-adopted (it follows a Join)."""
        await self._adopted()
        return await self.driver.program_external_connectivity(req)


async def _adopt_then_reconcile(reconciler: Reconciler, listening: asyncio.Event) -> None:
    """Once the socket is `listening`, re-adopt the stored endpoints, then start the Docker
    watcher and the sweep."""
    await listening.wait()
    await reconciler.adopt_from_kernel()
    reconciler.start()


@dataclass
class Running:
    """A started plugin: what `start` built, in the order `close` takes it down."""

    store: Store
    driver: Driver
    reconciler: Reconciler
    runner: web.AppRunner
    socket: Path
    adoption: asyncio.Task[None]
    """Re-adoption of the stored endpoints, then starting the reconciler (task "adopt")."""
    metrics: metrics_server.MetricsServer | None = None

    def failed(self) -> BaseException | None:
        """What re-adoption failed with, if it has (None: running, done or cancelled)."""
        if not self.adoption.done() or self.adoption.cancelled():
            return None
        return self.adoption.exception()

    async def close(self) -> None:
        """Stop serving and every background task; containers keep their leases."""
        try:
            self.adoption.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.adoption
            await self.reconciler.close()
            if self.metrics is not None:
                await self.metrics.close()
            await self.runner.cleanup()
            with contextlib.suppress(FileNotFoundError):
                self.socket.unlink()
            await self.driver.close()
        finally:
            self.store.close()
            LOG.info("stopped")


async def start(settings: Settings) -> Running:
    """Load state, listen on the socket (mode 0600), and re-adopt running containers and
    start the reconciler in the background (see the module docstring). The caller holds
    the locks and owns the returned `Running`."""
    store = Store(settings.state_dir)
    adoption: asyncio.Task[None] | None = None
    try:
        driver = Driver(store, timing=settings.timing, netns_dir=settings.netns_dir)
        driver.load()
        name = settings.driver_name or (None if settings.managed else settings.socket.stem)
        plugin_id: str | None = None
        if settings.managed:
            plugin_id = managed.own_plugin_id()
            LOG.info("managed plugin %s", plugin_id or "(own ID not found in mountinfo)")
            managed.make_proc_sys_writable()
        reconciler = Reconciler(driver, driver_name=name, socket_name=settings.socket.name,
                                plugin_id=plugin_id,
                                docker_socket=settings.docker_socket,
                                sweep_interval_s=settings.sweep_interval_s)
        # Its first netlink call imports pyroute2 (~100 ms): not before the socket answers.
        listening = asyncio.Event()
        adoption = asyncio.create_task(_adopt_then_reconcile(reconciler, listening),
                                       name="adopt")

        settings.socket.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            settings.socket.unlink()
        app = make_app(AfterAdoption(driver, adoption), status=source_for(driver, time.time()))
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
    except BaseException:
        if adoption is not None:
            adoption.cancel()  # it still waits for `listening`: nothing to undo
        store.close()
        raise
    running = Running(store, driver, reconciler, runner, settings.socket, adoption)
    try:
        await unix_site.start_private(runner, settings.socket)
        LOG.info("listening on %s (state in %s)", settings.socket, store.path)
        listening.set()
        if settings.metrics is not None:
            running.metrics = await metrics_server.start(settings.metrics,
                                                         gauges_for(driver))
    except BaseException:
        await running.close()
        raise
    return running
