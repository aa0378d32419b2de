"""Pure ICMPv6 Neighbor Discovery codec for what an IPv6 host needs from its router.

Router Advertisements in (RFC 4861 4.2, with the Prefix Information, MTU and Source Link-Layer
Address options of 4.6 and the RDNSS option of RFC 8106), Router Solicitations out (4.1).
Malformed input raises NdpCodecError (a CodecError, so a ValueError). The ICMPv6 checksum is
not checked on input: a raw ICMPv6 socket only delivers messages whose checksum the kernel has
verified. For a Solicitation sent from the unspecified address on a packet socket (no kernel
IPv6 stack in the way), `ipv6_icmp_packet` frames it with its checksum.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from ipaddress import IPv6Address, IPv6Network

from ..wire.common import CodecError

__all__ = [
    "ALL_NODES",
    "ALL_ROUTERS",
    "ICMPV6_ROUTER_ADVERT",
    "ICMPV6_ROUTER_SOLICIT",
    "NdpCodecError",
    "PrefixInfo",
    "RouterAdvert",
    "decode_ra",
    "icmpv6_checksum",
    "ipv6_icmp_packet",
    "prefix_for",
    "router_solicit",
]

ICMPV6_ROUTER_SOLICIT = 133
ICMPV6_ROUTER_ADVERT = 134
#: The link-local all-routers group, where Router Solicitations go (RFC 4291 2.7.1).
ALL_ROUTERS = IPv6Address("ff02::2")
#: The link-local all-nodes group, where unsolicited Router Advertisements go.
ALL_NODES = IPv6Address("ff02::1")

_IPPROTO_ICMPV6 = 58
_RA_HEADER = struct.Struct("!BBHBBHII")  # type, code, checksum, hop limit, flags, lifetime, ...
_PREFIX_INFO = struct.Struct("!BBIII16s")  # after type + length: 30 octets
_IPV6_HEADER = struct.Struct("!IHBB16s16s")
_FLAG_MANAGED = 0x80
_FLAG_OTHER = 0x40
_PREFIX_ON_LINK = 0x80
_PREFIX_AUTONOMOUS = 0x40
_OPT_SOURCE_LLADDR = 1
_OPT_PREFIX_INFO = 3
_OPT_MTU = 5
_OPT_RDNSS = 25
_LINK_LOCAL = IPv6Network("fe80::/10")


class NdpCodecError(CodecError):
    """A malformed Neighbor Discovery message (or builder argument); the message says what."""


@dataclass(frozen=True)
class PrefixInfo:
    """A Prefix Information option (RFC 4861 4.6.2); bits past the length are cleared."""

    prefix: IPv6Network
    on_link: bool  # L flag: addresses in the prefix are on this link
    autonomous: bool  # A flag: hosts may form SLAAC addresses in it
    valid_s: int  # 0xffffffff = infinity
    preferred_s: int


@dataclass(frozen=True)
class RouterAdvert:
    """The parts of a Router Advertisement (RFC 4861 4.2) a DHCPv6 client acts on."""

    router: IPv6Address  # the RA's IPv6 source address (link-local), given by the receiver
    managed: bool  # M flag: addresses come from DHCPv6
    other: bool  # O flag: other configuration comes from DHCPv6
    lifetime_s: int  # router lifetime; 0 = not a default router
    prefixes: tuple[PrefixInfo, ...]
    mtu: int | None  # the first MTU option's value, as sent (not checked against 1280)
    dns_servers: tuple[IPv6Address, ...]  # RDNSS (RFC 8106) with a lifetime > 0, in order
    source_mac: bytes | None  # the Source Link-Layer Address option, if 6 octets (Ethernet)


def decode_ra(icmp: bytes, *, source: IPv6Address) -> RouterAdvert:
    """Parse an ICMPv6 Router Advertisement (the ICMPv6 message, type 134 first).

    NdpCodecError if it is not one or is malformed in a way RFC 4861 6.1.2 says to drop: wrong
    type or code, shorter than 16 octets, an option of length 0 or running past the end, a
    source that is not link-local; also a Prefix Information option that is not 32 octets or
    whose prefix length is over 128, an MTU option that is not 8 octets, an RDNSS option
    shorter than 24 octets or of even length (RFC 8106 5.1). Other options are skipped.
    """
    data = bytes(icmp)
    if len(data) < _RA_HEADER.size:
        raise NdpCodecError(f"router advertisement is {len(data)} octets, shorter than 16")
    kind, code, _csum, _hops, flags, lifetime, _reachable, _retrans = _RA_HEADER.unpack_from(data)
    if kind != ICMPV6_ROUTER_ADVERT or code != 0:
        raise NdpCodecError(f"not a router advertisement (ICMPv6 type {kind}, code {code})")
    if source not in _LINK_LOCAL:
        raise NdpCodecError(f"router advertisement from {source}, not a link-local address")
    prefixes: list[PrefixInfo] = []
    dns: list[IPv6Address] = []
    mtu: int | None = None
    source_mac: bytes | None = None
    for opt_type, body in _options(data, _RA_HEADER.size):
        if opt_type == _OPT_PREFIX_INFO:
            prefixes.append(_prefix_info(body))
        elif opt_type == _OPT_MTU:
            if len(body) != 6:
                raise NdpCodecError(f"MTU option is {len(body) + 2} octets, not 8")
            if mtu is None:
                mtu = int.from_bytes(body[2:6], "big")
        elif opt_type == _OPT_RDNSS:
            dns += _rdnss(body)
        elif opt_type == _OPT_SOURCE_LLADDR and source_mac is None and len(body) == 6:
            source_mac = body  # Ethernet; other link types have other lengths and are skipped
    return RouterAdvert(
        router=source,
        managed=bool(flags & _FLAG_MANAGED),
        other=bool(flags & _FLAG_OTHER),
        lifetime_s=lifetime,
        prefixes=tuple(prefixes),
        mtu=mtu,
        dns_servers=tuple(dns),
        source_mac=source_mac,
    )


def _options(data: bytes, start: int) -> list[tuple[int, bytes]]:
    """(type, body) per option from `start` on; the body excludes the type and length octets."""
    found: list[tuple[int, bytes]] = []
    i = start
    while i < len(data):
        if len(data) - i < 2:
            raise NdpCodecError(f"option header at octet {i} runs past the end ({len(data)})")
        opt_type, units = data[i], data[i + 1]
        if units == 0:
            raise NdpCodecError(f"option {opt_type} at octet {i} has length 0")
        end = i + 8 * units
        if end > len(data):
            raise NdpCodecError(
                f"option {opt_type} at octet {i} ({8 * units} octets) runs past the end "
                f"({len(data)})"
            )
        found.append((opt_type, data[i + 2 : end]))
        i = end
    return found


def _prefix_info(body: bytes) -> PrefixInfo:
    if len(body) != _PREFIX_INFO.size:
        raise NdpCodecError(f"prefix information option is {len(body) + 2} octets, not 32")
    plen, flags, valid, preferred, _reserved, raw = _PREFIX_INFO.unpack(body)
    if plen > 128:
        raise NdpCodecError(f"prefix information option has prefix length {plen} > 128")
    return PrefixInfo(
        prefix=IPv6Network((IPv6Address(raw), plen), strict=False),
        on_link=bool(flags & _PREFIX_ON_LINK),
        autonomous=bool(flags & _PREFIX_AUTONOMOUS),
        valid_s=valid,
        preferred_s=preferred,
    )


def _rdnss(body: bytes) -> list[IPv6Address]:
    # 2 reserved + 4 lifetime octets, then 16 per address: total 8 + 16n octets, n >= 1.
    if len(body) < 22 or (len(body) - 6) % 16:
        raise NdpCodecError(f"RDNSS option is {len(body) + 2} octets, not 8 + 16n with n >= 1")
    if int.from_bytes(body[2:6], "big") == 0:
        return []  # lifetime 0: the servers are withdrawn
    return [IPv6Address(body[j : j + 16]) for j in range(6, len(body), 16)]


def router_solicit(source_mac: bytes | None) -> bytes:
    """An ICMPv6 Router Solicitation (RFC 4861 4.1), checksum 0 (a raw ICMPv6 socket fills it).

    With `source_mac` it carries the Source Link-Layer Address option, so the router can answer
    without resolving us first; leave it out (None) when sending from the unspecified address
    (RFC 4861 4.1 forbids it there). NdpCodecError if `source_mac` is not 6 octets.
    """
    message = struct.pack("!BBHI", ICMPV6_ROUTER_SOLICIT, 0, 0, 0)
    if source_mac is None:
        return message
    if not isinstance(source_mac, bytes | bytearray) or len(source_mac) != 6:
        raise NdpCodecError(f"source_mac must be a 6-octet MAC address, got {source_mac!r}")
    return message + bytes((_OPT_SOURCE_LLADDR, 1)) + bytes(source_mac)


def prefix_for(ra: RouterAdvert, address: IPv6Address) -> int | None:
    """The length of the longest on-link prefix (L flag, valid lifetime > 0) of `ra` that holds
    `address`, or None if none does."""
    lengths = [
        p.prefix.prefixlen
        for p in ra.prefixes
        if p.on_link and p.valid_s > 0 and address in p.prefix
    ]
    return max(lengths, default=None)


def icmpv6_checksum(src: IPv6Address, dst: IPv6Address, message: bytes) -> int:
    """The ICMPv6 checksum (RFC 4443 2.3) of `message` over the IPv6 pseudo-header (RFC 8200
    8.1); `message`'s own checksum field must be 0 (or the result is 0 if it was right)."""
    data = src.packed + dst.packed + struct.pack("!I3xB", len(message), _IPPROTO_ICMPV6)
    data += bytes(message) + b"\x00" * (len(message) % 2)
    total = sum(int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2))
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def ipv6_icmp_packet(
    src: IPv6Address, dst: IPv6Address, message: bytes, *, hop_limit: int = 255
) -> bytes:
    """An IPv6 packet (RFC 8200 header, no extension headers) carrying the ICMPv6 `message`,
    its checksum filled in; NdpCodecError if `message` is too short or too long."""
    if not 4 <= len(message) <= 0xFFFF:
        raise NdpCodecError(f"ICMPv6 message of {len(message)} octets cannot be framed")
    if not 0 <= hop_limit <= 255:
        raise NdpCodecError(f"hop limit {hop_limit} is not in 0..255")
    body = bytearray(message)
    body[2:4] = b"\x00\x00"
    body[2:4] = icmpv6_checksum(src, dst, bytes(body)).to_bytes(2, "big")
    header = _IPV6_HEADER.pack(
        6 << 28, len(body), _IPPROTO_ICMPV6, hop_limit, src.packed, dst.packed
    )
    return header + bytes(body)
