"""The container's IPv6 default route: the plugin adds it, not Docker.

Join returns no GatewayIPv6. The container's kernel takes the router's advertisements
itself (accept_ra=1 in a new namespace, on every engine), and an RA that lands between
Docker bringing the interface up and adding the gateway installs a default route first;
Docker's exclusive add then fails the container's start ("failed to set IPv6 gateway
...: file exists"; any RA on the LAN at that moment does it, a burst of starts makes RAs
frequent). So the route via the router from the RA seen at CreateEndpoint is added here,
as soon as the interface is up in the container:

- Docker 28+: at ProgramExternalConnectivity, which comes after the interface is moved,
  addressed and up and before the container's process starts;
- every engine: when the lease keeper attaches (Docker <= 27 moves the interface later,
  in its prestart hook, and calls nothing after that);
- when a renewal brings another address (netlink.apply_lease6_by_mac, the same add).

Only where the container has no IPv6 default route yet: one that is there came from the
kernel's own RA handling (kept and expired by it, as on any LAN host) or from another
network, and is left alone.
"""

from __future__ import annotations

import logging
from ipaddress import IPv6Address

from . import netlink, sandbox

LOG = logging.getLogger(__name__)

_SAID = {True: "added", False: "already there (left as it is)",
         None: "not added yet: the interface is not in the container, or not up"}


async def add_default(name: str, where: str, mac: str, router: IPv6Address | None) -> None:
    """Add the IPv6 default route via `router` in the namespace at `where` on the interface
    with `mac` if it has none. The outcome is logged; failures are never raised: the
    kernel adds the route at the next RA anyway."""
    if router is None or not netlink.is_netns(where):
        return
    try:
        added = await sandbox.default_route6(where, mac, router)
    except Exception as err:  # noqa: BLE001 - netlink errors, a vanished namespace
        LOG.warning("%s: could not add the IPv6 default route via %s (%s); the container's "
                    "kernel adds one at the router's next advertisement", name, router, err)
        return
    LOG.debug("%s: IPv6 default route via %s %s", name, router, _SAID[added])
