"""Wires the plugin together and runs it until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import faulthandler
import fcntl
import logging
import os
import signal
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from . import managed
from .api import make_app
from .dhcp4.timing import Timing
from .driver import Driver
from .errors import AlreadyRunning, StoreError
from .reconcile import Reconciler
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


async def serve(settings: Settings) -> None:
    """Serve the plugin socket; on SIGTERM stop without releasing running containers.

    AlreadyRunning if another serve holds the socket or the state directory.
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
        try:
            await stop.wait()
            LOG.info("shutting down; running containers keep their leases")
        finally:
            await running.close()


@dataclass
class Running:
    """A started plugin: what `start` built, in the order `close` takes it down."""

    store: Store
    driver: Driver
    reconciler: Reconciler
    runner: web.AppRunner
    socket: Path

    async def close(self) -> None:
        """Stop serving and every background task; containers keep their leases."""
        try:
            await self.reconciler.close()
            await self.runner.cleanup()
            with contextlib.suppress(FileNotFoundError):
                self.socket.unlink()
            await self.driver.close()
        finally:
            self.store.close()
            LOG.info("stopped")


async def start(settings: Settings) -> Running:
    """Load state, re-adopt running containers, listen on the socket (mode 0600), and
    start the reconciler. The caller holds the locks and owns the returned `Running`."""
    store = Store(settings.state_dir)
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
        await reconciler.adopt_from_kernel()

        settings.socket.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            settings.socket.unlink()
        runner = web.AppRunner(make_app(driver), access_log=None, handle_signals=False)
        await runner.setup()
    except BaseException:
        store.close()
        raise
    running = Running(store, driver, reconciler, runner, settings.socket)
    try:
        site = web.UnixSite(runner, str(settings.socket))
        old_umask = os.umask(0o177)
        try:
            await site.start()
        finally:
            os.umask(old_umask)
        os.chmod(settings.socket, 0o600)
        LOG.info("listening on %s (state in %s)", settings.socket, store.path)
        reconciler.start()
    except BaseException:
        await running.close()
        raise
    return running
