"""propagate_dns: the lease's DNS servers and search domains into a container's
/etc/resolv.conf.

The plugin knows a container only by its network namespace. The file is reached through a
process of the container (one whose network namespace is the sandbox's and whose root is
not the plugin's), at /proc/<pid>/root/etc/resolv.conf, every path component opened
without following symbolic links: a link the container made must not lead the write out
of it (to the host's /etc/resolv.conf, say). The /proc/<pid> directory is held open and
checked again before each write, so a process that exits does not hand the write to a host
process that gets its PID; the file must be a regular one (opened non-blocking).
Docker bind-mounts its own per-container copy there, so the file is rewritten in place (a
rename cannot replace a mount point), and Docker then leaves it alone (it sees the user
changed it).
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import stat
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


def _key(path: str, dir_fd: int | None = None) -> tuple[int, int]:
    st = os.stat(path, dir_fd=dir_fd)
    return st.st_dev, st.st_ino


def _is_container(proc_fd: int, netns: tuple[int, int], own_root: tuple[int, int]) -> bool:
    """Whether the process of the /proc/<pid> directory `proc_fd` is in network namespace
    `netns` with a root other than `own_root`. Through the directory's fd, so a process
    that has exited meanwhile fails (OSError) rather than its reused PID's successor
    answering: that would lead the write to a host process's root."""
    return _key("ns/net", proc_fd) == netns and _key("root", proc_fd) != own_root


def open_container(sandbox: str) -> tuple[int, tuple[int, int]] | None:
    """(an fd of /proc/<pid>, the namespace's key) for a process of the container whose
    network namespace is mounted at `sandbox` (blocking; reads /proc); the caller closes
    the fd. None if there is none."""
    try:
        wanted = _key(sandbox)
    except OSError:
        return None
    own_root = _key("/")
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            fd = os.open(f"/proc/{entry.name}", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError:
            continue  # gone meanwhile
        try:
            if _is_container(fd, wanted, own_root):
                return fd, wanted
        except OSError:
            pass  # gone meanwhile, or not ours to look at
        os.close(fd)
    return None


def _open_in_root(root: str | int, flags: int) -> int:
    """<root>/etc/resolv.conf (`root` a directory's path or O_PATH fd) opened with
    `flags`, no symlink followed below the root; OSError unless it is a regular file (a
    FIFO there would block the thread for ever: opened non-blocking, then checked)."""
    root_fd = (os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
               if isinstance(root, str) else root)
    try:
        etc = os.open("etc", os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                      dir_fd=root_fd)
    finally:
        if isinstance(root, str):
            os.close(root_fd)
    try:
        fd = os.open("resolv.conf", flags | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
                     dir_fd=etc)
    finally:
        os.close(etc)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(errno.EINVAL, "not a regular file")
    return fd


def _read(root: str | int) -> str:
    fd = _open_in_root(root, os.O_RDONLY)
    with os.fdopen(fd, "rb") as f:
        return f.read(64 * 1024).decode("utf-8", errors="replace")


def update(root: str | int, servers: Sequence[IPv4Address], search: Sequence[str]) -> bool:
    """Rewrite <root>/etc/resolv.conf (`root` a container's root directory, as a path or an
    O_PATH fd) for the lease; True if it changed (blocking). OSError if a component is a
    symlink or the file is not a regular file."""
    current = _read(root)
    wanted = render(current, servers, search)
    if wanted == current:
        return False
    fd = _open_in_root(root, os.O_WRONLY | os.O_TRUNC)
    with os.fdopen(fd, "wb") as f:
        f.write(wanted.encode())
    return True


def update_container(proc_fd: int, netns: tuple[int, int], servers: Sequence[IPv4Address],
                     search: Sequence[str]) -> bool:
    """`update` in the root of the process `proc_fd` (from open_container), after checking
    again that it is still the container's (blocking)."""
    if not _is_container(proc_fd, netns, _key("/")):
        raise OSError(errno.ESRCH, "the container's process is gone")
    root = os.open("root", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=proc_fd)
    try:
        return update(root, servers, search)
    finally:
        os.close(root)


async def find_container(sandbox: str, timeout: float = FIND_WAIT_S
                         ) -> tuple[int, tuple[int, int]] | None:
    """Wait (polling /proc) for a process of the container in `sandbox`: open_container's
    answer."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    delay = 0.05
    while True:
        found = await asyncio.to_thread(open_container, sandbox)
        if found is not None or loop.time() >= deadline:
            return found
        await asyncio.sleep(delay)
        delay = min(delay * 2, 1.0)


async def propagate(what: str, sandbox: str, servers: Sequence[IPv4Address],
                    search: Sequence[str], *, settle: bool = False) -> bool:
    """Put the lease's servers and search list into the container's resolv.conf (logged);
    with `settle`, look again a few times while the container starts. False if the
    container's file could not be reached (logged), True otherwise."""
    if not servers and not search:
        return True
    found = await find_container(sandbox)
    if found is None:
        LOG.warning("%s: propagate_dns: no process of the container in %s within %gs; "
                    "its resolv.conf is not updated (the plugin must see the host's "
                    "processes: a managed plugin cannot, run the legacy plugin for "
                    "propagate_dns)", what, sandbox, FIND_WAIT_S)
        return False
    proc_fd, netns = found
    try:
        for wait in (0.0, *SETTLE_CHECKS_S) if settle else (0.0,):
            await asyncio.sleep(wait)
            try:
                changed = await asyncio.to_thread(update_container, proc_fd, netns, servers,
                                                  search)
            except OSError as err:
                LOG.warning("%s: propagate_dns: cannot update the container's resolv.conf "
                            "(%s)", what, err.strerror or err)
                return False
            if changed:
                LOG.info("%s: resolv.conf: nameservers %s, search %s (from the lease)", what,
                         ", ".join(map(str, servers[:MAX_NAMESERVERS])) or "(kept)",
                         " ".join(search) or "(kept)")
        return True
    finally:
        os.close(proc_fd)
