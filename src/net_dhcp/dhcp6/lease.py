"""A DHCPv6 lease (one IA_NA address): what the server granted and when, as stored and
applied, plus what the router's advertisement said about the link."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from ipaddress import IPv6Address, IPv6Interface
from typing import Any, TypeVar

from ..errors import DhcpReplyError
from . import codec
from .timing import INFINITY, T1_FRACTION, T2_FRACTION

_V = TypeVar("_V")

HOST_PREFIX = 128
"""The address's prefix length when no router advertisement names an on-link prefix."""


def check_host_address6(ip: IPv6Address, what: str = "address") -> None:
    """Raise DhcpReplyError unless `ip` can be a host's global or ULA unicast address."""
    if (ip.is_unspecified or ip.is_loopback or ip.is_multicast or ip.is_link_local
            or ip.ipv4_mapped is not None or ip.is_reserved):
        raise DhcpReplyError(f"{what} {ip} is not a usable IPv6 host address")


@dataclass(frozen=True)
class Lease6:
    """A bound IA_NA address; times are wall-clock seconds so they survive a restart.

    A lifetime of `INFINITY` never runs out; T1/T2 of `INFINITY` mean never renew. A
    renewal's lease shares with the one it renews every part that did not change.
    """

    address: IPv6Address
    iaid: int
    server_duid: bytes
    preferred_s: float
    valid_s: float
    t1_s: float
    t2_s: float
    obtained_at: float
    prefixlen: int = HOST_PREFIX
    router: IPv6Address | None = None
    dns: tuple[IPv6Address, ...] = ()
    domains: tuple[str, ...] = ()
    hostname_sent: str | None = field(default=None, compare=False)

    @property
    def interface(self) -> IPv6Interface:
        """The address with its prefix length, as configured in the container."""
        return IPv6Interface((self.address, self.prefixlen))

    @property
    def t1_at(self) -> float:
        """When to Renew."""
        return _at(self.obtained_at, self.t1_s)

    @property
    def t2_at(self) -> float:
        """When to Rebind."""
        return _at(self.obtained_at, self.t2_s)

    @property
    def expires_at(self) -> float:
        """When the valid lifetime ends and the address must go."""
        return _at(self.obtained_at, self.valid_s)

    @property
    def server_known(self) -> bool:
        """False for a lease recovered from Docker, whose server has not answered yet."""
        return bool(self.server_duid)

    def on_link(self, prefixlen: int | None, router: IPv6Address | None) -> Lease6:
        """This lease with what a router advertisement said (prefix None: /128)."""
        return dataclasses.replace(self, prefixlen=prefixlen or HOST_PREFIX, router=router)

    @classmethod
    def from_reply(cls, reply: codec.Message6, *, iaid: int, sent_at: float,
                   hostname: str | None = None, previous: Lease6 | None = None) -> Lease6:
        """Build from a Reply (or Advertise) for our IA_NA, or raise DhcpReplyError.

        RFC 8415 18.2.10.1: times count from when the message was sent; an IA with a
        failure status, or no address with a valid lifetime, grants nothing. `previous`
        (the lease being renewed) keeps its prefix length and router.
        """
        try:
            return cls._from_reply(reply, iaid=iaid, sent_at=sent_at, hostname=hostname,
                                   previous=previous)
        except codec.CodecError as err:
            raise DhcpReplyError(f"malformed reply: {err}") from err

    @classmethod
    def _from_reply(cls, reply: codec.Message6, *, iaid: int, sent_at: float,
                    hostname: str | None, previous: Lease6 | None) -> Lease6:
        server = reply.server_id
        if not server:
            raise DhcpReplyError("reply carries no Server Identifier")
        if reply.status is not None and reply.status.code != codec.Status.SUCCESS:
            raise DhcpReplyError(f"server status {_status_text(reply.status)}")
        ia = reply.ia_na(iaid)
        if ia is None:
            raise DhcpReplyError(f"reply has no IA_NA for IAID {iaid:#x}")
        if ia.status is not None and ia.status.code != codec.Status.SUCCESS:
            raise DhcpReplyError(f"IA_NA status {_status_text(ia.status)}")
        usable = [a for a in ia.addresses if a.valid_s > 0
                  and (a.status is None or a.status.code == codec.Status.SUCCESS)]
        if not usable:
            raise DhcpReplyError("IA_NA grants no address with a valid lifetime")
        addr = usable[0]
        check_host_address6(addr.address)
        if addr.preferred_s > addr.valid_s:
            raise DhcpReplyError(f"preferred lifetime {addr.preferred_s} s exceeds the "
                                 f"valid lifetime {addr.valid_s} s (RFC 8415 21.6)")
        t1, t2 = float(ia.t1_s), float(ia.t2_s)
        if t1 and t2 and t1 > t2:
            raise DhcpReplyError(f"T1 {ia.t1_s} s is after T2 {ia.t2_s} s (RFC 8415 21.4)")
        preferred = float(addr.preferred_s)
        if not t1 or not t2:
            # RFC 8415 21.4: left to the client; 0.5 and 0.8 of the preferred lifetime.
            base = preferred if 0 < preferred < INFINITY else float(addr.valid_s)
            if base < INFINITY:
                t1, t2 = t1 or base * T1_FRACTION, t2 or base * T2_FRACTION
            else:
                t1, t2 = t1 or INFINITY, t2 or INFINITY
        keep = previous if previous is not None and previous.address == addr.address else None
        address, dns, domains = addr.address, reply.dns_servers, reply.domains
        if keep is not None:  # a renewal: share what did not change
            address, server = keep.address, _same(server, keep.server_duid)
            dns, domains = _same(dns, keep.dns), _same(domains, keep.domains)
        return cls(
            address=address, iaid=iaid, server_duid=server, preferred_s=preferred,
            valid_s=float(addr.valid_s), t1_s=t1, t2_s=t2, obtained_at=sent_at,
            prefixlen=keep.prefixlen if keep else HOST_PREFIX,
            router=keep.router if keep else None,
            dns=dns, domains=domains, hostname_sent=hostname,
        )

    def ia(self, *, lifetimes: bool = True) -> codec.IaNa:
        """This lease as the IA_NA a Renew, Rebind, Release or Decline carries
        (RFC 8415 18.2.4: lifetimes and T1/T2 sent as 0 where the server decides)."""
        return codec.IaNa(iaid=self.iaid, t1_s=0, t2_s=0, addresses=(
            codec.IaAddress(self.address, int(self.preferred_s) if lifetimes else 0,
                            int(self.valid_s) if lifetimes else 0),))

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able form for the state store."""
        return {
            "address": str(self.address), "iaid": self.iaid,
            "server_duid": self.server_duid.hex(), "preferred_s": self.preferred_s,
            "valid_s": self.valid_s, "t1_s": self.t1_s, "t2_s": self.t2_s,
            "obtained_at": self.obtained_at, "prefixlen": self.prefixlen,
            "router": str(self.router) if self.router else None,
            "dns": [str(d) for d in self.dns], "domains": list(self.domains),
            "hostname_sent": self.hostname_sent,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Lease6:
        """Inverse of to_dict."""
        return cls(
            address=IPv6Address(d["address"]), iaid=int(d["iaid"]),
            server_duid=bytes.fromhex(d["server_duid"]),
            preferred_s=float(d["preferred_s"]), valid_s=float(d["valid_s"]),
            t1_s=float(d["t1_s"]), t2_s=float(d["t2_s"]),
            obtained_at=float(d["obtained_at"]), prefixlen=int(d.get("prefixlen", HOST_PREFIX)),
            router=IPv6Address(d["router"]) if d.get("router") else None,
            dns=tuple(IPv6Address(x) for x in d.get("dns", [])),
            domains=tuple(str(x) for x in d.get("domains", [])),
            hostname_sent=d.get("hostname_sent"),
        )


def _same(new: _V, old: _V) -> _V:
    """`old` if it equals `new` (so a renewed lease shares it), else `new`."""
    return old if new == old else new


def _at(start: float, seconds: float) -> float:
    return float("inf") if seconds >= INFINITY else start + seconds


def _status_text(status: codec.StatusCode) -> str:
    try:
        name = codec.Status(status.code).name
    except ValueError:
        name = str(status.code)
    return f"{name}: {status.message}" if status.message else name
