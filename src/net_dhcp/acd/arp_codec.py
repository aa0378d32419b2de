"""Pure Ethernet/IPv4 ARP codec (RFC 826) and RFC 5227 probe rules; bad input raises CodecError."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from ipaddress import IPv4Address

from ..wire.common import CodecError, check_mac

__all__ = [
    "ARP_REPLY",
    "ARP_REQUEST",
    "ArpPacket",
    "arp_announcement",
    "arp_conflicts",
    "arp_probe",
]

#: ARP opcode for a request (RFC 826; RFC 5227 probes and announcements are requests).
ARP_REQUEST = 1
#: ARP opcode for a reply (RFC 826).
ARP_REPLY = 2
_ARP = struct.Struct("!HHBBH6s4s6s4s")
_ARP_HTYPE_ETHERNET = 1
_ARP_PTYPE_IPV4 = 0x0800
_ZERO_MAC = bytes(6)
_IP0 = IPv4Address(0)


@dataclass(frozen=True)
class ArpPacket:
    """An Ethernet/IPv4 ARP payload (RFC 826), without the Ethernet header."""

    op: int
    sender_mac: bytes
    sender_ip: IPv4Address
    target_mac: bytes
    target_ip: IPv4Address

    def encode(self) -> bytes:
        """28 wire octets (htype 1, ptype 0x0800); CodecError on a bad MAC length or opcode."""
        if not 0 <= self.op <= 0xFFFF:
            raise CodecError(f"ARP opcode {self.op} is not in 0..65535")
        return _ARP.pack(
            _ARP_HTYPE_ETHERNET,
            _ARP_PTYPE_IPV4,
            6,
            4,
            self.op,
            check_mac(self.sender_mac, "sender_mac"),
            self.sender_ip.packed,
            check_mac(self.target_mac, "target_mac"),
            self.target_ip.packed,
        )

    @classmethod
    def decode(cls, data: bytes) -> ArpPacket:
        """Parse the first 28 octets (trailing padding ignored); CodecError if short or not
        Ethernet/IPv4 ARP."""
        data = bytes(data)
        if len(data) < _ARP.size:
            raise CodecError(f"ARP packet is {len(data)} octets, shorter than 28")
        htype, ptype, hlen, plen, op, sha, spa, tha, tpa = _ARP.unpack_from(data)
        if (htype, ptype, hlen, plen) != (_ARP_HTYPE_ETHERNET, _ARP_PTYPE_IPV4, 6, 4):
            raise CodecError(
                f"not an Ethernet/IPv4 ARP packet (htype {htype}, ptype {ptype:#06x}, "
                f"hlen {hlen}, plen {plen})"
            )
        return cls(
            op=op,
            sender_mac=sha,
            sender_ip=IPv4Address(spa),
            target_mac=tha,
            target_ip=IPv4Address(tpa),
        )


def arp_probe(*, sender_mac: bytes, target_ip: IPv4Address) -> ArpPacket:
    """ARP Probe (RFC 5227 2.1.1): request, sender IP 0.0.0.0, target MAC zero, target = ip."""
    return ArpPacket(
        op=ARP_REQUEST,
        sender_mac=check_mac(sender_mac, "sender_mac"),
        sender_ip=_IP0,
        target_mac=_ZERO_MAC,
        target_ip=target_ip,
    )


def arp_announcement(*, sender_mac: bytes, ip: IPv4Address) -> ArpPacket:
    """ARP Announcement (RFC 5227 2.3): request, sender IP = target IP = ip, target MAC zero."""
    return ArpPacket(
        op=ARP_REQUEST,
        sender_mac=check_mac(sender_mac, "sender_mac"),
        sender_ip=ip,
        target_mac=_ZERO_MAC,
        target_ip=ip,
    )


def arp_conflicts(packet: ArpPacket, *, probed_ip: IPv4Address, own_mac: bytes) -> bool:
    """RFC 5227 2.1.1: True if ``packet`` is from another MAC and either claims ``probed_ip`` as
    its sender IP or is another host's probe (sender IP 0.0.0.0) for ``probed_ip``."""
    if packet.sender_mac == own_mac:
        return False
    if packet.sender_ip == probed_ip:
        return True
    return packet.sender_ip == _IP0 and packet.target_ip == probed_ip
