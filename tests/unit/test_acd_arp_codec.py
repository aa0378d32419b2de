"""Tests for net_dhcp.acd.arp_codec (ARP, RFC 826 / RFC 5227) against real captures.

Captures and lab constants come from test_dhcp4_codec.py (see its docstring for their origin).
"""

from __future__ import annotations

from ipaddress import IPv4Address

import pytest

from net_dhcp.acd.arp_codec import (
    ARP_REPLY,
    ARP_REQUEST,
    ArpPacket,
    arp_announcement,
    arp_conflicts,
    arp_probe,
)
from net_dhcp.wire.common import CodecError
from tests.unit.test_dhcp4_codec import (
    IP,
    LAB_MAC,
    MAC,
    OTHER_MAC,
    SERVER,
    SERVER_MAC,
    ZERO,
    load_hex,
)


def test_arp_probe_bytes() -> None:
    pkt = arp_probe(sender_mac=MAC, target_ip=IP("192.0.2.50"))
    assert pkt.encode() == bytes.fromhex("000108000604000102cd0011223300000000000000000000c0000232")


def test_arp_announcement_bytes() -> None:
    pkt = arp_announcement(sender_mac=MAC, ip=IP("192.0.2.50"))
    assert pkt.encode() == bytes.fromhex("000108000604000102cd00112233c0000232000000000000c0000232")


def test_arp_real_probe_and_reply() -> None:
    probe_raw = load_hex("busybox-1.35.0-arping-probe.hex")
    probe = ArpPacket.decode(probe_raw)
    assert probe == ArpPacket(
        op=ARP_REQUEST,
        sender_mac=LAB_MAC,
        sender_ip=ZERO,
        target_mac=b"\xff" * 6,  # busybox puts broadcast here, RFC 5227 suggests zeros
        target_ip=SERVER,
    )
    assert probe.encode() == probe_raw
    reply_raw = load_hex("linux-6.18-arp-reply-to-probe.hex")
    reply = ArpPacket.decode(reply_raw)
    assert reply == ArpPacket(
        op=ARP_REPLY, sender_mac=SERVER_MAC, sender_ip=SERVER, target_mac=LAB_MAC, target_ip=ZERO
    )
    assert reply.encode() == reply_raw
    # The address is taken: the owner's reply is a conflict for the prober...
    assert arp_conflicts(reply, probed_ip=SERVER, own_mac=LAB_MAC)
    # ...its own probe echoed back is not, but another host probing the same address is.
    assert not arp_conflicts(probe, probed_ip=SERVER, own_mac=LAB_MAC)
    assert arp_conflicts(probe, probed_ip=SERVER, own_mac=OTHER_MAC)
    assert not arp_conflicts(reply, probed_ip=IP("10.233.7.2"), own_mac=LAB_MAC)


def test_arp_decode_ignores_trailing_padding() -> None:
    raw = arp_probe(sender_mac=MAC, target_ip=IP("192.0.2.50")).encode()
    assert ArpPacket.decode(raw + bytes(18)) == ArpPacket.decode(raw)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        bytes.fromhex("00010800060400010000"),
        bytes.fromhex("0006080006040001") + bytes(20),  # IEEE 802 hardware type
        bytes.fromhex("000186dd06040001") + bytes(20),  # IPv6 protocol type
        bytes.fromhex("0001080008040001") + bytes(24),  # hlen 8
        bytes.fromhex("0001080006100001") + bytes(44),  # plen 16
    ],
    ids=["empty", "short", "htype", "ptype", "hlen", "plen"],
)
def test_arp_decode_rejects(data: bytes) -> None:
    with pytest.raises(CodecError):
        ArpPacket.decode(data)


def test_arp_encode_rejects_bad_mac() -> None:
    with pytest.raises(CodecError):
        ArpPacket(
            op=ARP_REQUEST, sender_mac=b"\x00", sender_ip=ZERO, target_mac=bytes(6), target_ip=ZERO
        ).encode()


PROBED = IP("192.0.2.50")
ARP_CASES = [
    # name, op, sender mac, sender ip, target ip, conflict?
    ("other-host-reply-owns-it", ARP_REPLY, OTHER_MAC, PROBED, IP("192.0.2.9"), True),
    ("other-host-request-from-it", ARP_REQUEST, OTHER_MAC, PROBED, IP("192.0.2.1"), True),
    ("other-host-announces-it", ARP_REQUEST, OTHER_MAC, PROBED, PROBED, True),
    ("other-host-probes-it", ARP_REQUEST, OTHER_MAC, ZERO, PROBED, True),
    ("own-probe-looped-back", ARP_REQUEST, MAC, ZERO, PROBED, False),
    ("own-announcement", ARP_REQUEST, MAC, PROBED, PROBED, False),
    ("other-host-asks-for-it", ARP_REQUEST, OTHER_MAC, IP("192.0.2.9"), PROBED, False),
    ("other-host-probes-other", ARP_REQUEST, OTHER_MAC, ZERO, IP("192.0.2.51"), False),
    ("unrelated-traffic", ARP_REPLY, OTHER_MAC, IP("192.0.2.9"), IP("192.0.2.1"), False),
]


@pytest.mark.parametrize(
    ("name", "op", "sender_mac", "sender_ip", "target_ip", "conflict"),
    ARP_CASES,
    ids=[c[0] for c in ARP_CASES],
)
def test_arp_conflicts_table(
    name: str,
    op: int,
    sender_mac: bytes,
    sender_ip: IPv4Address,
    target_ip: IPv4Address,
    conflict: bool,
) -> None:
    pkt = ArpPacket(
        op=op, sender_mac=sender_mac, sender_ip=sender_ip, target_mac=bytes(6), target_ip=target_ip
    )
    assert arp_conflicts(pkt, probed_ip=PROBED, own_mac=MAC) is conflict
    # and the same holds after a trip through the wire format
    assert arp_conflicts(ArpPacket.decode(pkt.encode()), probed_ip=PROBED, own_mac=MAC) is conflict
