"""Work inside a container's network namespace: find its interface, apply and remove leases.

Every call runs a netlink.py function in a thread that entered the namespace
(netlink.run_in_netns), or reads through sockets such a function opened there (the wait for
the interface: linkdump.py); nothing here opens a socket itself.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import logging
import socket
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path, PurePath

from . import linkdump, netlink
from .dhcp4.lease import Lease
from .dhcp6.lease import Lease6

LOG = logging.getLogger(__name__)

IFACE_WAIT_S = 60.0
IFACE_POLL_MAX_S = 0.25
NETNS_POLL_FIRST_S = 0.004
NETNS_POLL_MAX_S = 0.05


def local_path(sandbox_key: str | None, netns_dir: Path | None) -> str | None:
    """Where Docker's sandbox `sandbox_key` (a host path) is seen from here: as it is, or,
    for a managed plugin that has the host's netns folder mounted at `netns_dir`, the same
    file name there."""
    if netns_dir is None or not sandbox_key:
        return sandbox_key
    return str(netns_dir / PurePath(sandbox_key).name)


async def route_destinations(sandbox: str) -> set[str]:
    """Destinations the container already has routes for."""
    return await netlink.run_in_netns(sandbox, netlink.route_destinations)


async def find(sandbox: str, mac: str) -> tuple[int, str] | None:
    """(index, name) of the container's interface with this MAC, if it is there."""
    return await netlink.run_in_netns(sandbox, functools.partial(netlink.lookup_mac, mac))


async def wait_for_iface(sandbox: str, mac: str, lease: Lease,
                         not_named: str | None = None) -> tuple[int, str]:
    """Wait until Docker has moved, renamed, addressed and brought up the interface.

    Docker's order varies by version (the address may be set before the rename), so the
    interface counts as ready only once it is up, has the leased address and no longer
    carries its host-side name `not_named`. Until the namespace is mounted (Docker <= 27
    mounts it in its prestart hook) only the path is looked at, cheaply; then the
    interface is looked at again at each link or address change there (and at least every
    IFACE_POLL_MAX_S), so what waits for it (the IPv6 default route, route6.py) follows
    Docker within milliseconds. The looks are raw dumps through a socket opened in the
    namespace once (linkdump.ready_link), in a worker thread. TimeoutError after
    IFACE_WAIT_S; OSError if the namespace cannot be entered or is no longer mounted at
    `sandbox` (the sockets would keep a deleted one alive).
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + IFACE_WAIT_S
    wait = NETNS_POLL_FIRST_S
    while not netlink.is_netns(sandbox):
        if loop.time() >= deadline:
            raise TimeoutError
        await asyncio.sleep(wait)
        wait = min(wait * 1.25, NETNS_POLL_MAX_S)
    inode = netlink.netns_inode(sandbox)
    events, query = await netlink.run_in_netns(sandbox, netlink.open_link_watch)
    look = functools.partial(linkdump.ready_link, query, mac, lease.address, not_named)
    looking: asyncio.Future[tuple[int, str] | None] | None = None
    try:
        while True:
            netlink.drain(events)  # before looking: a change after the look wakes us
            if netlink.netns_inode(sandbox) != inode:
                raise FileNotFoundError(errno.ENOENT, "the network namespace is gone",
                                        sandbox)
            looking = loop.run_in_executor(None, look)
            try:
                found = await asyncio.shield(looking)  # cancelled, it runs to its end
            except Exception as err:  # noqa: BLE001 - Docker may be mid-way configuring it
                LOG.debug("%s: looking for %s failed (%r); trying again", sandbox, mac, err)
                found = None
            if found is not None:
                return found
            left = deadline - loop.time()
            if left <= 0:
                raise TimeoutError
            await _readable(events, min(left, IFACE_POLL_MAX_S))
    finally:
        events.close()
        if looking is not None and not looking.done():  # cancelled: its thread goes on
            looking.add_done_callback(lambda _: query.close())
        else:
            query.close()


async def _readable(sock: socket.socket, timeout: float) -> None:
    """Return when `sock` is readable or after `timeout` seconds."""
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[None] = loop.create_future()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    loop.add_reader(sock.fileno(), wake)
    try:
        await asyncio.wait_for(ready, timeout)
    except TimeoutError:
        pass
    finally:
        loop.remove_reader(sock.fileno())


async def apply(sandbox: str, mac: str, old: Lease | None, new: Lease, *,
                gateway: IPv4Address | None = None) -> None:
    """Configure `new` on the container's interface in place of `old`, with the default
    route via `gateway` (the network's `gateway` option) if given, else the lease's
    router."""
    await netlink.run_in_netns(sandbox, functools.partial(
        netlink.apply_lease_by_mac, mac, old.address if old else None, new.address,
        gateway or new.gateway, list(new.routes)))


async def unapply(sandbox: str, mac: str, old: Lease) -> None:
    """Take `old`'s address off the container's interface."""
    await netlink.run_in_netns(sandbox, functools.partial(
        netlink.remove_address_by_mac, mac, old.address))


async def apply6(sandbox: str, mac: str, old: Lease6 | None, new: Lease6) -> None:
    """Configure IPv6 lease `new` on the container's interface in place of `old`."""
    await netlink.run_in_netns(sandbox, functools.partial(
        netlink.apply_lease6_by_mac, mac, old.interface if old else None, new.interface,
        new.router))


async def default_route6(sandbox: str, mac: str, router: IPv6Address) -> bool | None:
    """An IPv6 default route via `router` on the container's interface, unless the
    container has one already (True: added, False: one was there, None: the interface is
    not there or not up yet)."""
    return await netlink.run_in_netns(sandbox, functools.partial(
        netlink.add_default_route6_by_mac, mac, router))


async def unapply6(sandbox: str, mac: str, old: Lease6) -> None:
    """Remove an IPv6 lease's address from the container's interface."""
    await netlink.run_in_netns(sandbox, functools.partial(
        netlink.remove_address6_by_mac, mac, old.interface))
