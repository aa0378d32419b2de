"""propagate_dns: the lease's DNS servers and search domains into a container's
/etc/resolv.conf.

The plugin knows a container only by its network namespace. The file is reached through a
process of the container (one whose network namespace is the sandbox's and whose root is
not the plugin's), at /proc/<pid>/root/etc/resolv.conf, every path component opened
without following symbolic links: a link the container made must not lead the write out
of it (to the host's /etc/resolv.conf, say). Docker bind-mounts its own per-container copy
there, so the file is rewritten in place (a rename cannot replace a mount point), and
Docker then leaves it alone (it sees the user changed it).
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Sequence
from ipaddress import IPv4Address

LOG = logging.getLogger(__name__)

MAX_NAMESERVERS = 3
"""The resolver reads at most three nameserver lines (glibc MAXNS, musl the same)."""
HEADER = "# nameserver and search lines from the DHCP lease (net-dhcp propagate_dns)"
FIND_WAIT_S = 30.0
"""How long to wait for the container's first process after Join."""
SETTLE_CHECKS_S = (0.5, 1.0, 2.0, 4.0)
"""After the first write, when to look again: Docker may still rewrite the file while the
container starts (its embedded DNS server); a changed file is written again."""


def render(current: str, servers: Sequence[IPv4Address], search: Sequence[str]) -> str:
    """`current` with its nameserver lines replaced by `servers` (the first three) and its
    search and domain lines by one search line of `search`; other lines (options,
    comments) are kept. No servers: the nameserver lines stay; no search: they stay too.
    Rendering its own output again changes nothing."""
    kept: list[str] = []
    for line in current.splitlines():
        words = line.split()
        key = words[0] if words else ""
        if line == HEADER:
            continue
        if servers and key == "nameserver":
            continue
        if search and key in ("search", "domain"):
            continue
        kept.append(line)
    ours = [f"nameserver {ip}" for ip in servers[:MAX_NAMESERVERS]]
    if search:
        ours.append("search " + " ".join(search))
    return "\n".join([HEADER, *ours, *kept]) + "\n"


def _netns_key(path: str) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_dev, st.st_ino


def container_pid(sandbox: str) -> int | None:
    """A process of the container whose network namespace is mounted at `sandbox`: in that
    namespace, and with a root other than this process's (blocking; reads /proc)."""
    try:
        wanted = _netns_key(sandbox)
    except OSError:
        return None
    own_root = _netns_key("/")
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            if (_netns_key(f"/proc/{entry.name}/ns/net") == wanted
                    and _netns_key(f"/proc/{entry.name}/root") != own_root):
                return int(entry.name)
        except OSError:
            continue  # gone meanwhile, or not ours to look at
    return None


def _open_in_root(root_dir: str, flags: int) -> int:
    """<root_dir>/etc/resolv.conf opened with `flags`, no symlink followed below root_dir."""
    root = os.open(root_dir, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        etc = os.open("etc", os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                      dir_fd=root)
    finally:
        os.close(root)
    try:
        return os.open("resolv.conf", flags | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=etc)
    finally:
        os.close(etc)


def _read(root_dir: str) -> str:
    fd = _open_in_root(root_dir, os.O_RDONLY)
    with os.fdopen(fd, "rb") as f:
        return f.read(64 * 1024).decode("utf-8", errors="replace")


def update(root_dir: str, servers: Sequence[IPv4Address], search: Sequence[str]) -> bool:
    """Rewrite <root_dir>/etc/resolv.conf (a container's root: /proc/<pid>/root) for the
    lease; True if it changed (blocking). OSError if a component is a symlink."""
    current = _read(root_dir)
    wanted = render(current, servers, search)
    if wanted == current:
        return False
    fd = _open_in_root(root_dir, os.O_WRONLY | os.O_TRUNC)
    with os.fdopen(fd, "wb") as f:
        f.write(wanted.encode())
    return True


async def find_pid(sandbox: str, timeout: float = FIND_WAIT_S) -> int | None:
    """Wait (polling /proc) for a process of the container in `sandbox`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    delay = 0.05
    while True:
        pid = await asyncio.to_thread(container_pid, sandbox)
        if pid is not None or loop.time() >= deadline:
            return pid
        await asyncio.sleep(delay)
        delay = min(delay * 2, 1.0)


async def propagate(what: str, sandbox: str, servers: Sequence[IPv4Address],
                    search: Sequence[str], *, settle: bool = False) -> bool:
    """Put the lease's servers and search list into the container's resolv.conf (logged);
    with `settle`, look again a few times while the container starts. False if the
    container's file could not be reached (logged), True otherwise."""
    if not servers and not search:
        return True
    pid = await find_pid(sandbox)
    if pid is None:
        LOG.warning("%s: propagate_dns: no process of the container in %s within %gs; "
                    "its resolv.conf is not updated (the plugin must see the host's "
                    "processes: a managed plugin cannot, run the legacy plugin for "
                    "propagate_dns)", what, sandbox, FIND_WAIT_S)
        return False
    for wait in (0.0, *SETTLE_CHECKS_S) if settle else (0.0,):
        await asyncio.sleep(wait)
        try:
            changed = await asyncio.to_thread(update, f"/proc/{pid}/root", servers, search)
        except OSError as err:
            LOG.warning("%s: propagate_dns: cannot update the container's resolv.conf "
                        "(/proc/%d/root/etc/resolv.conf: %s)", what, pid, err.strerror or err)
            return False
        if changed:
            LOG.info("%s: resolv.conf: nameservers %s, search %s (from the lease)", what,
                     ", ".join(map(str, servers[:MAX_NAMESERVERS])) or "(kept)",
                     " ".join(search) or "(kept)")
    return True
