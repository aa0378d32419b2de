"""The opt-in metrics listener: `GET /metrics` in the Prometheus text format.

`net-dhcp serve --metrics ADDR` (or METRICS_ADDR, the managed plugin's setting) turns it
on; off by default. ADDR is a unix socket unless a TCP address is asked for:

* `unix` -> DEFAULT_UNIX; `unix:/PATH` or `/PATH` -> a unix socket there (mode 0600, like
  the plugin's own: root's alone);
* `HOST:PORT` or `[V6]:PORT` (`tcp://` in front is accepted) -> TCP on that address; port
  0 picks a free one (logged); `:PORT` listens on every address, and says so.

It runs on the daemon's event loop (aiohttp, as the plugin socket does), after the plugin
socket answers; prometheus_client is imported in a worker thread, so start-up and the
requests that come meanwhile do not wait for it. Parsing an address is stdlib only: the
CLI checks `--metrics` before anything heavy is imported.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import logging
import socket
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from . import metrics, unix_site
from .errors import NetDhcpError

if TYPE_CHECKING:
    from aiohttp import web

LOG = logging.getLogger(__name__)

DEFAULT_UNIX = Path("/run/net-dhcp/metrics.sock")
METRICS_PATH = "/metrics"
ENV = "METRICS_ADDR"
"""The environment variable `serve` reads when --metrics is not given (the Go fork's name)."""


@dataclass(frozen=True)
class Address:
    """Where the metrics listener listens: a unix socket `path`, or TCP `host`:`port`."""

    path: Path | None = None
    host: str = ""
    port: int = 0

    def __str__(self) -> str:
        if self.path is not None:
            return f"unix:{self.path}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def parse_address(text: str) -> Address:
    """An Address from `--metrics`/METRICS_ADDR text; ValueError saying what is expected."""
    value = text.strip()
    if value == "unix":
        return Address(path=DEFAULT_UNIX)
    if value.startswith("unix:"):
        value = value[len("unix:"):]
        if value.startswith("//"):
            value = value[2:]  # unix:///run/x.sock, as DOCKER_HOST writes it
        if not value.startswith("/"):
            raise ValueError(f"{text!r}: a unix socket needs an absolute path (unix:/PATH)")
    if value.startswith("/"):
        if "\0" in value or value.endswith("/"):
            raise ValueError(f"{text!r} is not a socket file's path")
        return Address(path=Path(value))
    value = value.removeprefix("tcp://")
    host, sep, port_text = value.rpartition(":")
    if not sep or not port_text.isdigit() or int(port_text) > 65535:
        raise ValueError(f"{text!r} is not a metrics address: use unix, unix:/PATH, /PATH, "
                         "HOST:PORT (e.g. 127.0.0.1:9101) or [V6]:PORT")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if host:
        try:
            ipaddress.ip_address(host)
        except ValueError:
            if host != "localhost":
                raise ValueError(f"{text!r}: the host must be an IP address (or "
                                 "localhost)") from None
    return Address(host=host, port=int(port_text))


def _free_unix_path(path: Path) -> None:
    """Make room for a socket at `path`: remove a stale socket; refuse to take the place
    of a listening one or of anything that is not a socket."""
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise NetDhcpError(f"metrics: {path} exists and is not a socket: remove it, or give "
                           "--metrics another path")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.settimeout(1.0)
        probe.connect(str(path))
    except OSError as err:
        if err.errno not in (errno.ECONNREFUSED, errno.ENOENT):
            raise NetDhcpError(f"metrics: cannot check {path}: {err.strerror}") from None
    else:
        raise NetDhcpError(f"metrics: another process listens on {path}: stop it, or give "
                           "--metrics another path")
    finally:
        probe.close()
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


class MetricsServer:
    """A started listener; `close` stops it (and the counting)."""

    def __init__(self, runner: web.AppRunner, address: Address, shown: str) -> None:
        self.runner = runner
        self.address = address
        self.shown = shown
        """Where it listens, as logged (the real port when port 0 was asked)."""

    async def close(self) -> None:
        """Stop listening, remove the socket file, stop counting."""
        try:
            await self.runner.cleanup()
        finally:
            metrics.disable()
            if self.address.path is not None:
                with contextlib.suppress(OSError):
                    self.address.path.unlink()


async def start(address: Address, source: metrics.LeaseCounts | None) -> MetricsServer:
    """Count from now on and serve GET /metrics at `address`; NetDhcpError if it cannot
    listen there (the address is taken, the folder cannot be made)."""
    import asyncio
    import importlib

    from aiohttp import web

    # ~90 ms of imports: in a thread, so the plugin socket keeps answering meanwhile.
    await asyncio.to_thread(importlib.import_module, "prometheus_client")
    m = metrics.enable(source)

    async def scrape(request: web.Request) -> web.Response:
        try:
            body, content_type = metrics.exposition(m)
        except Exception:  # noqa: BLE001 - a broken scrape answers 500, the plugin goes on
            LOG.exception("metrics: the scrape failed")
            return web.Response(status=500, text="the scrape failed; see the plugin's log\n")
        resp = web.Response(status=200, body=body)
        resp.headers["Content-Type"] = content_type
        return resp

    app = web.Application()
    app.router.add_get(METRICS_PATH, scrape)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    try:
        if address.path is not None:
            try:
                address.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as err:
                raise NetDhcpError(f"metrics: cannot make {address.path.parent}: "
                                   f"{err.strerror}") from None
            _free_unix_path(address.path)
            await unix_site.start_private(runner, address.path)
            shown = f"unix:{address.path}"
        else:
            site = web.TCPSite(runner, address.host or None, address.port,
                               reuse_address=True)
            await site.start()
            shown = _bound(runner, address)
            if not address.host:
                LOG.warning("metrics: listening on every address (%s): anyone who reaches "
                            "this host can read them; give an address, e.g. 127.0.0.1:%d",
                            shown, address.port)
    except OSError as err:
        await runner.cleanup()
        metrics.disable()
        raise NetDhcpError(f"metrics: cannot listen on {address}: {err.strerror or err}; "
                           "give --metrics (METRICS_ADDR) another address") from None
    except BaseException:
        await runner.cleanup()
        metrics.disable()
        raise
    LOG.info("metrics on %s (GET %s)", shown, METRICS_PATH)
    return MetricsServer(runner, address, shown)


def _bound(runner: web.AppRunner, address: Address) -> str:
    """host:port a TCP site really listens on (the port the kernel chose for port 0)."""
    for name in runner.addresses:
        if isinstance(name, tuple) and len(name) >= 2:
            return str(Address(host=str(name[0]), port=int(name[1])))
    return str(address)
