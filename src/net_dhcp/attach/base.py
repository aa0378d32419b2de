"""What every attachment mode offers: how a container's interface is made, found and removed.

One subclass per mode (veth.py: bridge; macvlan.py, ipvlan.py: a link on a parent), chosen
in one place (choose.py) from the network's options. Everything else (leases, release,
re-adoption, the sweep) goes through this interface and is the same in every mode.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import ClassVar

from .. import netlink

IF_ID_LEN = 12
"""Interface names are a two-letter prefix and the endpoint ID's first 12 characters."""


class Attachment:
    """How the containers of one network reach its LAN interface (`lan`)."""

    kind: ClassVar[str] = ""
    """The network option mode that selects this attachment."""
    prefix: ClassVar[str] = ""
    """Prefix of the host-side interface names it makes (the sweep's strays)."""
    lan_word: ClassVar[str] = "bridge"
    """What the LAN interface is called in messages: bridge or parent."""
    shares_mac: ClassVar[bool] = False
    """Every container's interface has the parent's MAC (ipvlan): the DHCP identity then
    comes from the endpoint's own MAC (generated), which no interface carries."""
    unique_macs: ClassVar[bool] = False
    """Two links with one MAC cannot be up on the same LAN interface (macvlan)."""

    def __init__(self, lan: str) -> None:
        self.lan = lan

    def names(self, endpoint_id: str) -> tuple[str, str]:
        """(host-side, container-side) interface names of an endpoint; the same name twice
        when there is one interface only."""
        name = self.prefix + endpoint_id[:IF_ID_LEN]
        return name, name

    def where(self) -> str:
        """The LAN interface as messages name it, e.g. 'bridge br0' or 'parent eth0 (macvlan)'."""
        return f"{self.lan_word} {self.lan}"

    async def info(self, *, with_routes: bool = True) -> netlink.BridgeInfo:
        """The LAN interface (checked: OptionError with the fix), its addresses and, with
        routes, the host's default gateway and routes through it."""
        raise NotImplementedError

    async def check(self) -> netlink.BridgeInfo:
        """At network create: the LAN interface is usable for this mode (OptionError)."""
        return await self.info(with_routes=False)

    async def create(self, endpoint_id: str, mac: str, *, ipv6: bool) -> str:
        """Make the endpoint's interface(s) in the host namespace, the container's one up with
        `mac` where the mode allows; returns the MAC the container's interface carries."""
        raise NotImplementedError

    async def remove(self, host_if: str, cont_if: str, what: str) -> None:
        """Delete what `create` made (best effort, logged)."""
        raise NotImplementedError

    def link_mac(self, mac: str) -> str:
        """The MAC the container's interface of an endpoint with (identity) `mac` carries."""
        return mac

    def mtu_names(self, host_if: str, cont_if: str) -> tuple[str, ...]:
        """Host interfaces whose MTU follows the lease (propagate_mtu)."""
        return (host_if,) if host_if == cont_if else (host_if, cont_if)

    async def wait_passing(self, host_if: str) -> bool:
        """After the container's interface came up in its namespace: wait until the LAN's
        replies reach it (True), or give up after a second (False). Nothing to wait for
        unless the host side has a link of its own (bridge mode)."""
        return True

    async def present(self, host_if: str, cont_if: str, sandbox: str | None,
                      link_mac: str) -> bool:
        """Whether the endpoint's interface still exists (else its container is gone).
        Bridge mode: the veth's host end, which lives exactly as long as the container's."""
        return await netlink.link_exists(host_if)

    @contextlib.asynccontextmanager
    async def stand_in(self, name: str, mac: str) -> AsyncIterator[str | None]:
        """A short-lived interface in the host that speaks for a gone endpoint on the LAN
        (its name), for a DHCPRELEASE; None: send through the LAN interface itself."""
        yield None

    async def strays(self, lans: set[str]) -> set[str]:
        """Host interfaces of this mode on `lans` (owned by an endpoint or not)."""
        return set(await netlink.link_names(self.prefix, masters=lans))
