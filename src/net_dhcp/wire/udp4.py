"""Pure IPv4 (RFC 791) + UDP (RFC 768) framing: the builder raises CodecError, the parser never."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from ipaddress import IPv4Address

from .common import CodecError

__all__ = ["UdpDatagram", "build_udp_ipv4", "parse_udp_ipv4"]

_IPV4_HEADER = struct.Struct("!BBHHHBBH4s4s")
_UDP_HEADER = struct.Struct("!HHHH")
_IPPROTO_UDP = 17
_IPV4_MF = 0x2000
_IPV4_OFFSET_MASK = 0x1FFF


@dataclass(frozen=True)
class UdpDatagram:
    """A UDP datagram lifted out of an IPv4 packet."""

    src: IPv4Address
    dst: IPv4Address
    sport: int
    dport: int
    payload: bytes


def _ones_complement_sum(data: bytes) -> int:
    """RFC 1071's folded sum of 16-bit words. 2**16 is 1 modulo 0xFFFF, so the sum of the
    words is the whole buffer as one integer modulo 0xFFFF (one C-level operation, not a
    Python loop per word), except that the folded sum of data that is not all zeros is
    0xFFFF where the remainder is 0."""
    if len(data) % 2:
        data += b"\x00"
    whole = int.from_bytes(data, "big")
    total = whole % 0xFFFF
    return 0xFFFF if total == 0 and whole else total


def _checksum(data: bytes) -> int:
    """RFC 1071 Internet checksum of ``data``."""
    return ~_ones_complement_sum(data) & 0xFFFF


def _udp_ipv4_pseudo_header(src: IPv4Address, dst: IPv4Address, udp_length: int) -> bytes:
    return src.packed + dst.packed + struct.pack("!BBH", 0, _IPPROTO_UDP, udp_length)


def build_udp_ipv4(
    *,
    src: IPv4Address,
    dst: IPv4Address,
    sport: int,
    dport: int,
    payload: bytes,
    ttl: int = 64,
) -> bytes:
    """IPv4 packet (IHL 5, id 0, DF clear, TOS 0) carrying one UDP datagram, both checksums
    valid; CodecError on an out-of-range port/TTL or oversize payload."""
    for name, port in (("sport", sport), ("dport", dport)):
        if not 0 <= port <= 0xFFFF:
            raise CodecError(f"{name} {port} is not in 0..65535")
    if not 0 <= ttl <= 0xFF:
        raise CodecError(f"ttl {ttl} is not in 0..255")
    udp_length = _UDP_HEADER.size + len(payload)
    total_length = _IPV4_HEADER.size + udp_length
    if total_length > 0xFFFF:
        raise CodecError(f"payload of {len(payload)} octets does not fit in one IPv4 packet")
    udp_header = _UDP_HEADER.pack(sport, dport, udp_length, 0)
    udp_sum = _checksum(_udp_ipv4_pseudo_header(src, dst, udp_length) + udp_header + payload)
    if udp_sum == 0:
        udp_sum = 0xFFFF  # RFC 768: a computed zero is sent as all ones
    udp_header = _UDP_HEADER.pack(sport, dport, udp_length, udp_sum)
    ip_header = _IPV4_HEADER.pack(
        0x45, 0, total_length, 0, 0, ttl, _IPPROTO_UDP, 0, src.packed, dst.packed
    )
    ip_header = ip_header[:10] + _checksum(ip_header).to_bytes(2, "big") + ip_header[12:]
    return ip_header + udp_header + bytes(payload)


def parse_udp_ipv4(packet: bytes, *, verify_udp_checksum: bool = True) -> UdpDatagram | None:
    """The UDP datagram in an IPv4 packet, or None (never raises) if not IPv4/UDP, truncated, bad
    header checksum, a fragment, or a bad nonzero UDP checksum (checked unless
    ``verify_udp_checksum`` is False, for packets the kernel flags TP_STATUS_CSUMNOTREADY)."""
    packet = bytes(packet)
    if len(packet) < _IPV4_HEADER.size:
        return None
    ver_ihl, _tos, total_length, _ident, frag, _ttl, proto, _sum, src, dst = (
        _IPV4_HEADER.unpack_from(packet)
    )
    if ver_ihl >> 4 != 4:
        return None
    ihl = (ver_ihl & 0x0F) * 4
    if ihl < _IPV4_HEADER.size or total_length < ihl or total_length > len(packet):
        return None
    if _ones_complement_sum(packet[:ihl]) != 0xFFFF:
        return None
    if frag & _IPV4_MF or frag & _IPV4_OFFSET_MASK:
        return None
    if proto != _IPPROTO_UDP:
        return None
    segment = packet[ihl:total_length]
    if len(segment) < _UDP_HEADER.size:
        return None
    sport, dport, udp_length, udp_sum = _UDP_HEADER.unpack_from(segment)
    if udp_length < _UDP_HEADER.size or udp_length > len(segment):
        return None
    datagram = segment[:udp_length]
    src_ip = IPv4Address(src)
    dst_ip = IPv4Address(dst)
    if (
        verify_udp_checksum
        and udp_sum != 0
        and _ones_complement_sum(_udp_ipv4_pseudo_header(src_ip, dst_ip, udp_length) + datagram)
        != 0xFFFF
    ):
        return None
    return UdpDatagram(
        src=src_ip, dst=dst_ip, sport=sport, dport=dport, payload=datagram[_UDP_HEADER.size :]
    )
