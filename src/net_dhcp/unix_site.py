"""The one way the plugin listens on a unix socket: mode 0600 (root's alone) from the moment
it exists, for the plugin socket (daemon.py) and the metrics listener (metrics_server.py)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aiohttp import web


async def start_private(runner: web.AppRunner, path: Path) -> None:
    """Serve `runner` on the unix socket `path`, created under a umask that leaves it 0600
    (no window in which others could connect), and chmod'ed to 0600 after."""
    from aiohttp import web

    site = web.UnixSite(runner, str(path))
    old_umask = os.umask(0o177)
    try:
        await site.start()
    finally:
        os.umask(old_umask)
    os.chmod(path, 0o600)
