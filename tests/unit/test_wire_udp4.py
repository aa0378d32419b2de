"""Tests for net_dhcp.wire.udp4 (IPv4/UDP framing) against real captured packets and RFC 791/768.

Captures and lab constants come from test_dhcp4_codec.py (see its docstring for their origin).
"""

from __future__ import annotations

import struct
from ipaddress import IPv4Address

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from net_dhcp.dhcp4.codec import DhcpMessage, MessageType, discover
from net_dhcp.wire.common import CodecError
from net_dhcp.wire.udp4 import (
    UdpDatagram,
    _ones_complement_sum,
    build_udp_ipv4,
    parse_udp_ipv4,
)
from tests.unit.test_dhcp4_codec import BCAST, CID, FRAMED, IP, MAC, SERVER, ZERO, load_hex


def ip_checksum_ok(header: bytes) -> bool:
    total: int = sum(struct.unpack(f"!{len(header) // 2}H", header))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total == 0xFFFF


def with_ip_checksum(packet: bytes) -> bytes:
    """Recompute the IPv4 header checksum of ``packet`` after a test edited the header."""
    ihl = (packet[0] & 0x0F) * 4
    header = packet[:10] + b"\x00\x00" + packet[12:ihl]
    total: int = sum(struct.unpack(f"!{ihl // 2}H", header))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return header[:10] + struct.pack("!H", ~total & 0xFFFF) + header[12:] + packet[ihl:]


# -- real captures --------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "src", "dst", "sport", "dport", "size"), FRAMED)
def test_parse_udp_ipv4_on_captures(
    name: str, src: IPv4Address, dst: IPv4Address, sport: int, dport: int, size: int
) -> None:
    packet = load_hex(name)
    datagram = parse_udp_ipv4(packet)
    assert datagram is not None
    assert (datagram.src, datagram.dst, datagram.sport, datagram.dport) == (src, dst, sport, dport)
    assert len(datagram.payload) == size
    assert datagram.payload[236:240] == b"\x63\x82\x53\x63"
    assert datagram.payload == packet[28:]  # IHL 5, no trailing bytes in these captures


@pytest.mark.parametrize(
    "name", ["busybox-1.35.0-udhcpc-discover.hex", "busybox-1.35.0-udhcpc-request.hex"]
)
def test_build_udp_ipv4_matches_udhcpc_framing(name: str) -> None:
    # busybox builds IP id 0, TOS 0, TTL 64, no DF, so our framing must reproduce it exactly,
    # including both checksums computed by another implementation.
    packet = load_hex(name)
    datagram = parse_udp_ipv4(packet)
    assert datagram is not None
    rebuilt = build_udp_ipv4(
        src=datagram.src,
        dst=datagram.dst,
        sport=datagram.sport,
        dport=datagram.dport,
        payload=datagram.payload,
    )
    assert rebuilt == packet


def test_checksum_offload_capture_needs_verification_off() -> None:
    # Real frame with the kernel's partial UDP checksum (TP_STATUS_CSUMNOTREADY on a veth).
    packet = load_hex("dnsmasq-2.90-offer-csum-offload.hex")
    assert parse_udp_ipv4(packet) is None
    datagram = parse_udp_ipv4(packet, verify_udp_checksum=False)
    assert datagram is not None
    offer = DhcpMessage.decode(datagram.payload)
    assert offer.message_type is MessageType.OFFER
    assert offer.yiaddr == IP("10.233.7.162")
    assert offer.server_id == SERVER


def test_icmp_capture_is_not_udp() -> None:
    packet = load_hex("linux-6.18-icmp-port-unreachable.hex")
    assert packet[9] == 1  # ICMP
    assert ip_checksum_ok(packet[:20])
    assert parse_udp_ipv4(packet) is None
    assert parse_udp_ipv4(packet, verify_udp_checksum=False) is None


# -- built packets -------------------------------------------------------------------------------


def _packet(payload: bytes = b"hello dhcp") -> bytes:
    return build_udp_ipv4(
        src=IP("10.1.2.3"), dst=IP("10.4.5.6"), sport=68, dport=67, payload=payload
    )


def test_build_udp_ipv4_layout() -> None:
    pkt = _packet(b"abc")
    assert len(pkt) == 20 + 8 + 3
    assert pkt[0] == 0x45
    assert struct.unpack("!H", pkt[2:4])[0] == 31
    assert pkt[4:8] == b"\x00\x00\x00\x00"  # id 0, no DF, no fragment
    assert (pkt[8], pkt[9]) == (64, 17)
    assert ip_checksum_ok(pkt[:20])
    assert pkt[12:20] == IP("10.1.2.3").packed + IP("10.4.5.6").packed
    assert struct.unpack("!HHH", pkt[20:26]) == (68, 67, 11)
    assert pkt[26:28] != b"\x00\x00"
    assert pkt[28:] == b"abc"
    assert build_udp_ipv4(src=ZERO, dst=BCAST, sport=68, dport=67, payload=b"", ttl=1)[8] == 1


def test_build_parse_round_trip() -> None:
    payload = discover(xid=1, chaddr=MAC, client_id=CID).encode()
    datagram = parse_udp_ipv4(_packet(payload))
    assert datagram == UdpDatagram(
        src=IP("10.1.2.3"), dst=IP("10.4.5.6"), sport=68, dport=67, payload=payload
    )


def test_udp_checksum_zero_is_sent_as_all_ones() -> None:
    # Choose a payload word that makes the one's complement sum 0xffff (checksum 0).
    base = _packet(b"\x00\x00")
    word = base[26:28]
    pkt = _packet(word)
    assert pkt[26:28] == b"\xff\xff"
    assert parse_udp_ipv4(pkt) is not None


def test_parse_accepts_zero_udp_checksum() -> None:
    pkt = bytearray(_packet())
    pkt[26:28] = b"\x00\x00"  # RFC 768: checksum not computed
    assert parse_udp_ipv4(bytes(pkt)) is not None


def test_parse_ignores_trailing_ethernet_padding() -> None:
    pkt = _packet(b"x")
    datagram = parse_udp_ipv4(pkt + bytes(17))
    assert datagram is not None
    assert datagram.payload == b"x"


def test_parse_honours_ip_options() -> None:
    pkt = _packet(b"opts")
    # IHL 6 with a Router Alert option (RFC 2113); total length grows by 4.
    header = bytearray(pkt[:20])
    header[0] = 0x46
    header[2:4] = struct.pack("!H", len(pkt) + 4)
    with_opts = with_ip_checksum(bytes(header) + b"\x94\x04\x00\x00" + pkt[20:])
    datagram = parse_udp_ipv4(with_opts)
    assert datagram is not None
    assert (datagram.sport, datagram.dport, datagram.payload) == (68, 67, b"opts")


def _edit(pkt: bytes, offset: int, value: bytes, *, fix_ip_sum: bool = True) -> bytes:
    out = pkt[:offset] + value + pkt[offset + len(value) :]
    return with_ip_checksum(out) if fix_ip_sum else out


BASE = _packet(b"hello dhcp")
BAD_PACKETS = {
    "empty": b"",
    "19-octets": BASE[:19],
    "ipv6-version": _edit(BASE, 0, b"\x65"),
    "ihl-4": _edit(BASE, 0, b"\x44"),
    "ihl-past-total-length": _edit(BASE, 0, b"\x4f", fix_ip_sum=False),
    "bad-ip-checksum": _edit(BASE, 10, b"\x12\x34", fix_ip_sum=False),
    "ttl-flipped-no-refix": _edit(BASE, 8, b"\x3f", fix_ip_sum=False),
    "more-fragments": _edit(BASE, 6, b"\x20\x00"),
    "fragment-offset": _edit(BASE, 6, b"\x00\x01"),
    "tcp": _edit(BASE, 9, b"\x06"),
    "total-length-past-end": _edit(BASE, 2, struct.pack("!H", len(BASE) + 1)),
    "total-length-below-ihl": _edit(BASE, 2, struct.pack("!H", 19)),
    "no-room-for-udp-header": _edit(BASE[:26], 2, struct.pack("!H", 26)),
    "udp-length-past-segment": _edit(BASE, 24, struct.pack("!H", len(BASE) - 20 + 1)),
    "udp-length-below-8": _edit(BASE, 24, struct.pack("!H", 7)),
    "bad-udp-checksum": _edit(BASE, len(BASE) - 1, b"X"),
    "udp-port-flipped": _edit(BASE, 20, b"\x00\x45"),
}


@pytest.mark.parametrize("packet", list(BAD_PACKETS.values()), ids=list(BAD_PACKETS))
def test_parse_udp_ipv4_rejects(packet: bytes) -> None:
    assert parse_udp_ipv4(packet) is None


def test_parse_udp_ipv4_never_raises_on_truncations_of_a_real_packet() -> None:
    real = load_hex("dnsmasq-2.90-ack.hex")
    for n in range(len(real)):
        assert parse_udp_ipv4(real[:n]) is None
    assert parse_udp_ipv4(real) is not None


def test_parse_udp_ipv4_verification_can_be_skipped_but_not_header_checks() -> None:
    bad_udp = BAD_PACKETS["bad-udp-checksum"]
    datagram = parse_udp_ipv4(bad_udp, verify_udp_checksum=False)
    assert datagram is not None
    assert datagram.payload == b"hello dhcX"
    assert parse_udp_ipv4(BAD_PACKETS["bad-ip-checksum"], verify_udp_checksum=False) is None
    assert parse_udp_ipv4(BAD_PACKETS["more-fragments"], verify_udp_checksum=False) is None


@pytest.mark.parametrize(
    "kwargs",
    [
        {"sport": -1},
        {"sport": 65536},
        {"dport": 70000},
        {"ttl": 256},
        {"payload": bytes(65536 - 28)},
    ],
)
def test_build_udp_ipv4_rejects(kwargs: dict[str, object]) -> None:
    args: dict[str, object] = {
        "src": ZERO,
        "dst": BCAST,
        "sport": 68,
        "dport": 67,
        "payload": b"",
    }
    args.update(kwargs)
    with pytest.raises(CodecError):
        build_udp_ipv4(**args)  # type: ignore[arg-type]


def _word_by_word_sum(data: bytes) -> int:
    """RFC 1071's folded sum as the RFC writes it, one 16-bit word at a time."""
    if len(data) % 2:
        data += b"\x00"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total


@given(st.binary(max_size=1600))
@settings(max_examples=2000, derandomize=True)
def test_the_whole_buffer_sum_equals_the_word_by_word_one(data: bytes) -> None:
    assert _ones_complement_sum(data) == _word_by_word_sum(data)


@pytest.mark.parametrize("data", [b"", b"\x00", b"\x00\x00\x00", b"\xff\xff", b"\xff\xff" * 3,
                                  b"\xff\xfe\x00\x01", b"\xff"])
def test_the_whole_buffer_sum_at_its_edges(data: bytes) -> None:
    """All zeros sum to 0; anything else whose remainder is 0 folds to 0xFFFF."""
    assert _ones_complement_sum(data) == _word_by_word_sum(data)
