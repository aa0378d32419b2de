"""A DHCPv4 lease: what the server granted and when, as stored and applied."""

from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from typing import Any, TypeVar

from ..errors import DhcpReplyError
from ..routes import Route, on_link
from . import codec

_V = TypeVar("_V")

# RFC 2131 4.4.5: T1 defaults to 0.5 and T2 to 0.875 of the lease duration.
T1_FRACTION = 0.5
T2_FRACTION = 0.875
INFINITE = 0xFFFFFFFF
UNKNOWN_SERVER = IPv4Address(0)
"""server_id of a lease recovered from Docker: its server is learnt from the next ACK."""
_UNUSABLE_NETS = tuple(IPv4Network(n) for n in (
    "0.0.0.0/8",  # "this network" (RFC 1122 3.2.1.3)
    "127.0.0.0/8",  # loopback
    "224.0.0.0/4",  # multicast
    "240.0.0.0/4",  # reserved, and 255.255.255.255
))


def check_host_address(ip: IPv4Address, what: str = "yiaddr") -> None:
    """Raise DhcpReplyError unless `ip` can be a host's unicast address."""
    for net in _UNUSABLE_NETS:
        if ip in net:
            raise DhcpReplyError(f"{what} {ip} is not a usable host address (in {net})")


def is_host_address(ip: IPv4Address) -> bool:
    """Whether `ip` can be a host's unicast address (see check_host_address)."""
    return not any(ip in net for net in _UNUSABLE_NETS)


@dataclass(frozen=True)
class Lease:
    """A bound lease; times are wall-clock seconds so they survive a restart.

    One lives for every running container: a renewal's lease shares with the one it
    renews every part that did not change (its address objects above all).
    """

    address: IPv4Interface
    server_id: IPv4Address
    server_mac: bytes
    gateway: IPv4Address | None
    routes: tuple[Route, ...]
    dns: tuple[IPv4Address, ...]
    domain: str | None
    lease_time_s: float
    t1_s: float
    t2_s: float
    obtained_at: float
    hostname_sent: str | None = field(default=None, compare=False)
    mtu: int | None = None
    """Option 26 (Interface MTU) as the server sent it (at least 68), if it did."""
    search: tuple[str, ...] = ()
    """Option 119 (domain search list), in the server's order."""

    @property
    def t1_at(self) -> float:
        """When to start renewing (RENEWING)."""
        return self.obtained_at + self.t1_s

    @property
    def t2_at(self) -> float:
        """When to start rebinding (REBINDING)."""
        return self.obtained_at + self.t2_s

    @property
    def expires_at(self) -> float:
        """When the address must stop being used."""
        return self.obtained_at + self.lease_time_s

    @property
    def server_known(self) -> bool:
        """False for a lease recovered from Docker, whose server has not answered yet."""
        return self.server_id != UNKNOWN_SERVER

    @classmethod
    def from_ack(cls, ack: codec.DhcpMessage, *, server_mac: bytes, sent_at: float,
                 hostname: str | None = None, previous: Lease | None = None) -> Lease:
        """Build from an ACK, or raise DhcpReplyError if it is unusable.

        RFC 2131 4.4.1: times count from when the REQUEST was sent. `previous` is the lease
        being renewed: a renewal that omits the subnet mask keeps its prefix.
        """
        server = ack.server_id
        if server is None:
            raise DhcpReplyError("ACK carries no server identifier (option 54)")
        check_host_address(server, "server identifier")
        check_host_address(ack.yiaddr)
        if server == ack.yiaddr:
            raise DhcpReplyError(f"yiaddr {ack.yiaddr} is the server's own address")
        prefix = _prefix(ack, previous)
        host_bits = int(ack.yiaddr) & ((1 << (32 - prefix)) - 1)
        if prefix <= 30 and host_bits in (0, (1 << (32 - prefix)) - 1):
            network = IPv4Network((ack.yiaddr, prefix), strict=False)
            raise DhcpReplyError(f"yiaddr {ack.yiaddr} is the network or broadcast address "
                                 f"of {network}")
        if (previous is not None and previous.address.ip == ack.yiaddr
                and previous.address.network.prefixlen == prefix):
            address = previous.address  # a renewal: the same address, shared
        else:
            address = IPv4Interface((ack.yiaddr, prefix))
        lease_raw = ack.lease_time_s
        if lease_raw is None:
            # RFC 2131 table 3: a DHCPACK to a DHCPREQUEST MUST carry the lease time; the
            # client may not guess one (an infinite guess would never be renewed).
            raise DhcpReplyError("ACK carries no lease time (option 51)")
        if lease_raw == 0:
            raise DhcpReplyError("ACK grants a lease time of 0 s")
        lease_s = float(lease_raw)
        t1 = float(ack.renewal_time_s or 0)
        t2 = float(ack.rebinding_time_s or 0)
        if not 0 < t2 < lease_s:
            t2 = lease_s * T2_FRACTION
        if not 0 < t1 < t2:
            t1 = min(lease_s * T1_FRACTION, t2 * T1_FRACTION / T2_FRACTION)
        # RFC 3442: with option 121 present the router option is ignored.
        gateway: IPv4Address | None = None
        routes: list[Route] = []
        classless = ack.classless_routes
        if classless:
            for net, gw in classless:
                if net.prefixlen == 0:
                    gateway = gateway or (gw if gw != IPv4Address(0) else None)
                else:
                    routes.append(Route(net, None if gw == IPv4Address(0) else gw))
        else:
            gateway = ack.routers[0] if ack.routers else None
            routes.extend(Route(net, gw) for net, gw in ack.static_routes)
        gateway, usable = on_link(address, gateway, tuple(routes))
        dns = tuple(d for d in ack.dns_servers if is_host_address(d))
        domain = ack.domain_name
        search = ack.domain_search
        if previous is not None:
            server = _same(server, previous.server_id)
            server_mac = _same(server_mac, previous.server_mac)
            gateway = _same(gateway, previous.gateway)
            usable = _same(usable, previous.routes)
            dns = _same(dns, previous.dns)
            domain = _same(domain, previous.domain)
            search = _same(search, previous.search)
        return cls(
            address=address,
            server_id=server,
            server_mac=server_mac,
            gateway=gateway,
            routes=usable,
            dns=dns,
            domain=domain,
            lease_time_s=lease_s,
            t1_s=t1,
            t2_s=t2,
            obtained_at=sent_at,
            hostname_sent=hostname,
            mtu=ack.mtu,
            search=search,
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able form for the state store."""
        return {
            "address": str(self.address),
            "server_id": str(self.server_id),
            "server_mac": self.server_mac.hex(),
            "gateway": str(self.gateway) if self.gateway else None,
            "routes": [[str(r.destination), str(r.gateway) if r.gateway else None]
                       for r in self.routes],
            "dns": [str(d) for d in self.dns],
            "domain": self.domain,
            "lease_time_s": self.lease_time_s,
            "t1_s": self.t1_s,
            "t2_s": self.t2_s,
            "obtained_at": self.obtained_at,
            "hostname_sent": self.hostname_sent,
            "mtu": self.mtu,
            "search": list(self.search),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Lease:
        """Inverse of to_dict."""
        return cls(
            address=IPv4Interface(d["address"]),
            server_id=IPv4Address(d["server_id"]),
            server_mac=bytes.fromhex(d["server_mac"]),
            gateway=IPv4Address(d["gateway"]) if d.get("gateway") else None,
            routes=tuple(Route(IPv4Network(dst), IPv4Address(gw) if gw else None)
                         for dst, gw in d.get("routes", [])),
            dns=tuple(IPv4Address(x) for x in d.get("dns", [])),
            domain=d.get("domain"),
            lease_time_s=float(d["lease_time_s"]),
            t1_s=float(d["t1_s"]),
            t2_s=float(d["t2_s"]),
            obtained_at=float(d["obtained_at"]),
            hostname_sent=d.get("hostname_sent"),
            mtu=int(d["mtu"]) if d.get("mtu") else None,
            search=tuple(str(x) for x in d.get("search", [])),
        )


def _same(new: _V, old: _V) -> _V:
    """`old` if it equals `new` (so a renewed lease shares it), else `new`."""
    return old if new == old else new


def _prefix(ack: codec.DhcpMessage, previous: Lease | None) -> int:
    """The prefix length option 1 gives; without it, the renewed lease's, else classful."""
    raw = ack.options.get(codec.Opt.SUBNET_MASK)
    if raw is not None:
        if len(raw) != 4:
            raise DhcpReplyError(f"subnet mask (option 1) is {len(raw)} octets, not 4")
        prefix = ack.prefixlen
        if prefix is None:
            raise DhcpReplyError(f"subnet mask {ack.subnet_mask} is not contiguous")
        if prefix == 0:
            raise DhcpReplyError("subnet mask 0.0.0.0 makes the whole internet on-link")
        return prefix
    if previous is not None and previous.address.ip == ack.yiaddr:
        return previous.address.network.prefixlen
    return _classful_prefix(ack.yiaddr)


def _classful_prefix(addr: IPv4Address) -> int:
    first = int(addr) >> 24
    if first < 128:
        return 8
    if first < 192:
        return 16
    return 24
