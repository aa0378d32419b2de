"""Bridge mode: a container is wired to the LAN by a veth pair whose host end is on the bridge.

The names derive from the endpoint ID, so a pair can be found again after a crash.
"""

from __future__ import annotations

import logging

from .. import netlink
from ..errors import NetlinkError
from .base import Attachment

LOG = logging.getLogger(__name__)

HOST_IF_PREFIX = "dh"
CONT_IF_PREFIX = "dc"
IF_ID_LEN = 12


def names(endpoint_id: str) -> tuple[str, str]:
    """(host-side, container-side) interface names of an endpoint."""
    suffix = endpoint_id[:IF_ID_LEN]
    return HOST_IF_PREFIX + suffix, CONT_IF_PREFIX + suffix


async def create(endpoint_id: str, bridge: str, mac: str, *,
                 ipv6: bool = False) -> tuple[str, str]:
    """Create the pair for an endpoint on `bridge`, container end with `mac`; both up
    (with `ipv6`, its link-local address usable at once, for DHCPv6).

    The caller has reserved the names (registry.creating), so a pair already there is a
    leftover of a crashed attempt and is replaced.
    """
    host_if, cont_if = names(endpoint_id)
    await netlink.create_veth(host_if, cont_if, bridge, mac, replace_leftover=True,
                              no_dad=ipv6)
    return host_if, cont_if


async def reattach(host_if: str, bridge: str) -> bool:
    """Put the host end back on `bridge` (e.g. after the bridge was deleted and made
    again); True if it was off it. False too when either link is missing."""
    return await netlink.enslave(host_if, bridge)


async def remove(host_if: str, cont_if: str, what: str) -> None:
    """Delete the pair (best effort, logged). Deleting one end deletes both: the container
    end is looked for only when the host end is already gone (it may be back, alone)."""
    for name in (host_if, cont_if):
        try:
            if await netlink.delete_link(name):
                return
        except Exception as err:  # noqa: BLE001 - teardown is best effort
            LOG.warning("%s: could not delete %s: %s", what, name, err)


class VethAttachment(Attachment):
    """mode=bridge (the default): a veth pair per endpoint, host end on the bridge."""

    kind = "bridge"
    prefix = HOST_IF_PREFIX
    lan_word = "bridge"

    def names(self, endpoint_id: str) -> tuple[str, str]:
        return names(endpoint_id)

    async def info(self, *, with_routes: bool = True) -> netlink.BridgeInfo:
        return await netlink.bridge_info(self.lan, with_routes=with_routes)

    async def create(self, endpoint_id: str, mac: str, *, ipv6: bool) -> str:
        await create(endpoint_id, self.lan, mac, ipv6=ipv6)
        return mac

    async def remove(self, host_if: str, cont_if: str, what: str) -> None:
        await remove(host_if, cont_if, what)

    async def wait_passing(self, host_if: str) -> bool:
        # Moving the container end into its namespace took the host end's carrier away;
        # it came back as Docker brought the container end up there.
        try:
            return await netlink.wait_passing(host_if)
        except NetlinkError as err:
            LOG.debug("%s: cannot read its state (%s)", host_if, err)
            return False
