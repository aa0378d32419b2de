"""mode=ipvlan (L2): each container gets an ipvlan link on the parent; every link carries the
parent's MAC.

So the DHCP server sees the parent's MAC as chaddr for every container, and tells them apart
by their client identifier (option 61) only: it comes from the endpoint's own MAC, generated
from the endpoint ID (never on any interface), as does the DHCPv6 DUID. DISCOVER and REQUEST
ask for a broadcast answer (RFC 2131 BROADCAST flag), since the parent's MAC is no proof the
link owns the address being offered. --mac-address is refused: an ipvlan link's MAC cannot be
changed, and Docker would fail the container's start setting it.
"""

from __future__ import annotations

from ..dhcp4 import codec
from ..dhcp4.sockets import read_mac
from .parent import ParentLink

PREFIX = "dv"


class IpvlanAttachment(ParentLink):
    """mode=ipvlan on -o parent (L2 mode only)."""

    kind = "ipvlan"
    prefix = PREFIX
    shares_mac = True

    def link_mac(self, mac: str) -> str:
        """The parent's MAC, which every ipvlan link carries (it follows the parent's)."""
        try:
            return codec.mac_to_str(read_mac(self.lan))
        except OSError:
            return mac  # parent gone: so are its links, and nothing will be found
