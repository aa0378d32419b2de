"""What a managed (v2) plugin must find out or fix for itself, inside its rootfs.

- Its own plugin ID: Docker bind-mounts the host's /run/docker/plugins/<id> at the plugin's
  /run/docker/plugins, so /proc/self/mountinfo names it. With it the plugin tells its own
  networks from those of another enabled copy (another tag) of the same plugin.
- A writable /proc/sys: Docker mounts it read-only in plugins; writing accept_dad (DHCPv6
  without a DAD wait) needs it. The plugin has CAP_SYS_ADMIN (for setns) and its own mount
  namespace, so it remounts /proc/sys read-write there, which touches nothing of the host's.
"""

from __future__ import annotations

import ctypes
import logging
import os
import re
from pathlib import Path

LOG = logging.getLogger(__name__)

PLUGINS_DIR = "/run/docker/plugins"
_ID = re.compile(r"[0-9a-f]{64}")
MS_REMOUNT = 0x20
MS_BIND = 0x1000
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8


def own_plugin_id(mountinfo: str | None = None) -> str | None:
    """The plugin's ID from the mount at /run/docker/plugins (None: not found)."""
    if mountinfo is None:
        try:
            mountinfo = Path("/proc/self/mountinfo").read_text()
        except OSError:
            return None
    for line in mountinfo.splitlines():
        fields = line.split()
        if len(fields) > 4 and fields[4] == PLUGINS_DIR:
            last = fields[3].rstrip("/").rsplit("/", 1)[-1]
            if _ID.fullmatch(last):
                return last
    return None


def make_proc_sys_writable() -> bool:
    """Remount /proc/sys read-write in this mount namespace; False (logged) if refused."""
    libc = ctypes.CDLL(None, use_errno=True)
    flags = MS_REMOUNT | MS_BIND | MS_NOSUID | MS_NODEV | MS_NOEXEC
    if libc.mount(None, b"/proc/sys", None, flags, None) != 0:
        err = ctypes.get_errno()
        LOG.info("cannot make /proc/sys writable (%s): IPv6 starts wait for DAD",
                 os.strerror(err))
        return False
    return True
