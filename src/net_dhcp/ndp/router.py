"""The router's part of a container's IPv6 set-up: ask for a Router Advertisement on the
container's interface, and read from it the default router and the on-link prefix.

RFC 4861: a router that sends RAs answers a Router Solicitation; its link-local source
address is the next hop for the default route (Join's GatewayIPv6) when its router
lifetime is not 0, and the prefix with the on-link (L) flag that holds the leased address
gives the address its prefix length. No RA: the address is a /128 and there is no IPv6
default route (the README says what that means).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging

from .. import netlink
from ..dhcp6.lease import Lease6
from .ra_codec import RouterAdvert, prefix_for
from .socket import open_ra_socket, solicit_router

LOG = logging.getLogger(__name__)


async def solicit(ifname: str, netns: str | None, timeout_s: float,
                  sent: asyncio.Event | None = None) -> RouterAdvert | None:
    """The first valid RA on `ifname` (in `netns`, None: here) within `timeout_s`; `sent` is
    set once the first Router Solicitation has gone (or failed to)."""
    sock = await netlink.run_in_netns(netns, functools.partial(open_ra_socket, ifname))
    try:
        return await solicit_router(sock, timeout_s, sent=sent)
    finally:
        sock.close()


async def wait(task: asyncio.Task[RouterAdvert | None], timeout_s: float) -> RouterAdvert | None:
    """The RA `task` brings within `timeout_s` more, or None (the task is then cancelled).
    A failure to solicit (no IPv6 on the interface, say) is logged, not raised."""
    try:
        async with asyncio.timeout(timeout_s):
            return await task
    except TimeoutError:
        LOG.info("no router advertisement on the link within the wait; IPv6 address as a "
                 "/128 without a default route")
    except OSError as err:
        LOG.warning("cannot solicit a router advertisement: %s", err)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
    return None


def on_link(lease: Lease6, ra: RouterAdvert | None) -> Lease6:
    """`lease` with the prefix length and default router `ra` gives it."""
    if ra is None:
        return lease
    prefixlen = prefix_for(ra, lease.address)
    router_ll = ra.router if ra.lifetime_s > 0 else None
    if not ra.managed:
        LOG.info("router %s advertises the M flag off (no DHCPv6 expected), but a DHCPv6 "
                 "server answered: keeping its address", ra.router)
    return lease.on_link(prefixlen, router_ll)
