"""What macvlan and ipvlan modes share: one link per endpoint, made on a parent interface.

The link is made in the host namespace, gets its lease there and is moved into the
container by Docker at Join (InterfaceName.SrcName), like a veth's container end. There is
no host end: while the container runs the link lives in its namespace, and it dies with
it (the kernel deletes a macvlan/ipvlan link whose namespace goes away, and every link of a
parent that is deleted).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

from .. import netlink, sandbox
from .base import Attachment

LOG = logging.getLogger(__name__)


class ParentLink(Attachment):
    """A macvlan or ipvlan link per endpoint on the parent `lan`."""

    lan_word = "parent"

    def where(self) -> str:
        return f"parent {self.lan} ({self.kind})"

    async def info(self, *, with_routes: bool = True) -> netlink.BridgeInfo:
        return await netlink.parent_info(self.lan, with_routes=with_routes)

    async def create(self, endpoint_id: str, mac: str, *, ipv6: bool) -> str:
        """The caller has reserved the name (registry.creating), so a link already there is
        a leftover of a crashed attempt and is replaced."""
        name, _ = self.names(endpoint_id)
        return await netlink.create_sublink(name, self.lan, self.kind, mac,
                                            replace_leftover=True, no_dad=ipv6)

    async def remove(self, host_if: str, cont_if: str, what: str) -> None:
        try:
            await netlink.delete_link(cont_if)
        except Exception as err:  # noqa: BLE001 - teardown is best effort
            LOG.warning("%s: could not delete %s: %s", what, cont_if, err)

    async def present(self, host_if: str, cont_if: str, sandbox_path: str | None,
                      link_mac: str) -> bool:
        """In the host (not joined yet, or handed back by Docker), or in the container's
        namespace; a sandbox file that is not a namespace yet (Docker <= 27 mounts it late)
        counts as present: it is no proof the container stopped."""
        if await netlink.link_exists(cont_if):
            return True
        if not sandbox_path or not netlink.file_exists(sandbox_path):
            return False
        if not netlink.is_netns(sandbox_path):
            return True
        try:
            return await sandbox.find(sandbox_path, link_mac) is not None
        except OSError:
            return False

    @contextlib.asynccontextmanager
    async def stand_in(self, name: str, mac: str) -> AsyncIterator[str | None]:
        """A link like the endpoint's (same name, same kind, same MAC) on the parent, up,
        IPv6 off, deleted on the way out: a DHCPRELEASE sent from it leaves the host the way
        the container's did, so the server (and a local macvlan neighbour) sees the same
        frame."""
        await netlink.create_sublink(name, self.lan, self.kind, mac, replace_leftover=True,
                                     quiet=True)
        try:
            await netlink.set_up(name)  # waits until the link can send
            yield name
        finally:
            with contextlib.suppress(Exception):
                await netlink.delete_link(name)

    async def strays(self, lans: set[str]) -> set[str]:
        return set(await netlink.sublinks(self.prefix, self.kind, lans))
