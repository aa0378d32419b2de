"""The real plugin (daemon.start: store, driver, reconciler, aiohttp on a unix socket) run
in a thread of the test process, so a test can look inside it: its registry and store, its
asyncio tasks, the process's fds, threads and memory.

Requests still go over the real unix socket (`call`, as dockerd would send them). The
Docker socket is a path in the plugin's temp dir that nothing listens on, unless given:
no dockerd's networks can reach an in-process plugin by accident.
"""

from __future__ import annotations

import asyncio
import secrets
import shutil
import sys
import tempfile
import threading
from collections.abc import Coroutine, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from net_dhcp import daemon
from net_dhcp.dhcp4.timing import Timing
from tests.lab import call_plugin, keep_temp

T = TypeVar("T")

START_TIMEOUT_S = 30.0


class InProcessPlugin:
    """`daemon.start` on its own event loop thread; see the module docstring."""

    def __init__(self, *, timing: Timing = Timing(), sweep_interval_s: float = 60.0,
                 docker_socket: str | None = None, state_dir: Path | None = None) -> None:
        self.name = f"net-dhcp-ip{secrets.token_hex(3)}"
        self.workdir = Path(tempfile.mkdtemp(prefix=f"{self.name}-"))
        self.socket_path = self.workdir / f"{self.name}.sock"
        self.state_dir = state_dir or self.workdir / "state"
        self.settings = daemon.Settings(
            socket=self.socket_path, state_dir=self.state_dir,
            docker_socket=docker_socket or str(self.workdir / "no-docker.sock"),
            sweep_interval_s=sweep_interval_s, timing=timing)
        self.loop = asyncio.new_event_loop()
        self.loop.set_default_executor(
            ThreadPoolExecutor(max_workers=daemon.WORKER_THREADS, thread_name_prefix="netlink"))
        self._thread = threading.Thread(target=self.loop.run_forever, name=self.name,
                                        daemon=True)
        self.running: daemon.Running | None = None

    def start(self) -> InProcessPlugin:
        self._thread.start()
        self.running = self.run(daemon.start(self.settings), START_TIMEOUT_S)
        return self

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 60.0) -> T:
        """Run `coro` on the plugin's loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def call(self, method: str, payload: Mapping[str, Any] | None = None,
             timeout: float = 10.0) -> tuple[int, Any]:
        """POST /<method> over the real socket, as dockerd does: (status, json)."""
        return call_plugin(self.socket_path, method, payload, timeout)

    @property
    def driver(self) -> Any:
        assert self.running is not None, "start() first"
        return self.running.driver

    def tasks(self) -> list[str]:
        """Names of the asyncio tasks alive on the plugin's loop (but the asking one)."""
        async def names() -> list[str]:
            me = asyncio.current_task()
            return sorted(t.get_name() for t in asyncio.all_tasks() if t is not me)
        return self.run(names(), 10)

    def close(self) -> None:
        try:
            if self.running is not None:
                self.run(self.running.close(), 30)
                self.running = None
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(10)
            if not self._thread.is_alive():
                self.loop.close()
            if keep_temp():
                print(f"in-process plugin {self.name}: kept {self.workdir}", file=sys.stderr)
            else:
                shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> InProcessPlugin:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
