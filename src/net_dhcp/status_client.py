"""The CLI's side of the status route: find the plugin's socket, GET the status document.

Stdlib only (http.client over AF_UNIX): `net-dhcp status` and `leases` stay quick and need
neither aiohttp nor pyroute2. The socket is root's alone (mode 0600).
"""

from __future__ import annotations

import errno
import http.client
import json
import socket
from pathlib import Path
from typing import Any

from .exits import CommandError, NotRunning, UsageError
from .status import STATUS_PATH

PLUGIN_DIR = Path("/run/docker/plugins")
SOCKET_NAME = "net-dhcp.sock"
"""A managed plugin's socket: /run/docker/plugins/<plugin id>/net-dhcp.sock."""
TIMEOUT_S = 10.0
MAX_REPLY = 64 << 20
"""Largest status document read (a few hundred bytes per endpoint)."""
_NOT_THERE = (errno.ENOENT, errno.ECONNREFUSED, errno.ENOTDIR)


def find_socket(given: str | None, plugin_dir: Path | None = None) -> Path:
    """The socket to ask: `given`; else the default one if it exists; else the one managed
    plugin's socket under `plugin_dir` (PLUGIN_DIR)/*/ (UsageError if there are several)."""
    if given:
        return Path(given)
    plugin_dir = plugin_dir or PLUGIN_DIR
    default = plugin_dir / SOCKET_NAME
    if default.exists():
        return default
    managed = sorted(plugin_dir.glob(f"*/{SOCKET_NAME}"))
    if len(managed) > 1:
        raise UsageError("several net-dhcp plugins run here (" + ", ".join(map(str, managed))
                         + "): choose one with --socket")
    return managed[0] if managed else default


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: Path, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(self.timeout)
            sock.connect(str(self._path))
        except BaseException:
            sock.close()
            raise
        self.sock = sock


def fetch_status(path: Path, timeout: float = TIMEOUT_S) -> dict[str, Any]:
    """The running plugin's status document.

    NotRunning if nothing listens at `path`; CommandError for anything else (no
    permission, no answer, a reply that is not a status document).
    """
    conn = _UnixConnection(path, timeout)
    try:
        try:
            conn.request("GET", STATUS_PATH, headers={"Host": "net-dhcp",
                                                      "Accept": "application/json"})
            resp = conn.getresponse()
            data = resp.read(MAX_REPLY + 1)
        except OSError as err:
            if err.errno in _NOT_THERE:
                raise NotRunning(f"nothing listens on {path} ({err.strerror})") from None
            if err.errno in (errno.EACCES, errno.EPERM):
                raise CommandError(f"no permission to use {path}: the plugin's socket is "
                                   "root's alone; run this as root") from None
            if isinstance(err, TimeoutError):
                raise CommandError(f"the plugin did not answer on {path} within "
                                   f"{timeout:g}s") from None
            raise CommandError(f"cannot ask the plugin on {path}: {err}") from None
        except http.client.HTTPException as err:
            raise CommandError(f"the plugin on {path} sent a broken reply ({err!r}): is "
                               "this a net-dhcp socket?") from None
    finally:
        conn.close()
    try:
        doc = json.loads(data) if len(data) <= MAX_REPLY else None
    except ValueError:
        doc = None
    if resp.status != 200:
        err_text = doc.get("Err") if isinstance(doc, dict) else None
        hint = ("; it may be an older net-dhcp without the status route: upgrade it"
                if resp.status == 404 else "")
        raise CommandError(f"the plugin on {path} answered {resp.status}: "
                           f"{err_text or data[:200].decode(errors='replace')}{hint}")
    if not isinstance(doc, dict) or not isinstance(doc.get("endpoints"), list) \
            or not isinstance(doc.get("networks"), list):
        raise CommandError(f"the reply on {path} is not a net-dhcp status document")
    return doc
