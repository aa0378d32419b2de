"""A DHCPv4 lease: what the server granted and when, as stored and applied."""

from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from typing import Any

from ..netlink import Route
from . import codec

# RFC 2131 4.4.5: T1 defaults to 0.5 and T2 to 0.875 of the lease duration.
T1_FRACTION = 0.5
T2_FRACTION = 0.875
INFINITE = 0xFFFFFFFF


@dataclass(frozen=True)
class Lease:
    """A bound lease; times are wall-clock seconds so they survive a restart."""

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

    @classmethod
    def from_ack(cls, ack: codec.DhcpMessage, *, server_mac: bytes, sent_at: float,
                 hostname: str | None = None) -> Lease:
        """Build from an ACK; RFC 2131 4.4.1: times count from when the REQUEST was sent."""
        server = ack.server_id
        if server is None:
            raise codec.CodecError("ACK carries no server identifier (option 54)")
        prefix = ack.prefixlen
        if prefix is None:
            prefix = _classful_prefix(ack.yiaddr)
        lease_s = float(ack.lease_time_s or 0)
        if lease_s <= 0 or lease_s >= INFINITE:
            lease_s = float(INFINITE)
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
        return cls(
            address=IPv4Interface(f"{ack.yiaddr}/{prefix}"),
            server_id=server,
            server_mac=server_mac,
            gateway=gateway,
            routes=tuple(routes),
            dns=tuple(ack.dns_servers),
            domain=ack.domain_name,
            lease_time_s=lease_s,
            t1_s=t1,
            t2_s=t2,
            obtained_at=sent_at,
            hostname_sent=hostname,
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
        )


def _classful_prefix(addr: IPv4Address) -> int:
    first = int(addr) >> 24
    if first < 128:
        return 8
    if first < 192:
        return 16
    return 24
