"""Tests for net_dhcp.dhcp4.codec against real captured packets and the RFC rules.

Fixtures in tests/unit/fixtures/*.hex were captured from busybox udhcpc 1.35.0, dnsmasq 2.90 and
the Linux 6.18 kernel in a throwaway netns lab (see each file's first comment line).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

import pytest

from net_dhcp.dhcp4.codec import (
    ARP_REPLY,
    ARP_REQUEST,
    BROADCAST_FLAG,
    CLIENT_PORT,
    DEFAULT_PARAMS,
    SERVER_PORT,
    ArpPacket,
    CodecError,
    DhcpMessage,
    MessageType,
    Opt,
    UdpDatagram,
    arp_announcement,
    arp_conflicts,
    arp_probe,
    build_udp_ipv4,
    client_id_for_mac,
    decline,
    discover,
    mac_from_str,
    mac_to_str,
    parse_udp_ipv4,
    release,
    request_init_reboot,
    request_rebinding,
    request_renewing,
    request_selecting,
)

FIXTURES = Path(__file__).parent / "fixtures"

IP = IPv4Address
ZERO = IP("0.0.0.0")
BCAST = IP("255.255.255.255")
SERVER = IP("10.233.7.1")
LEASED = IP("10.233.7.106")  # the address dnsmasq handed out in the fixture run
LAB_MAC = bytes.fromhex("aee68ea81bfc")  # client veth MAC in the fixture run
SERVER_MAC = bytes.fromhex("fe768a10f351")  # server veth MAC in the fixture run
MAC = bytes.fromhex("02cd00112233")
OTHER_MAC = bytes.fromhex("02cd00445566")
CID = b"\x01" + MAC


def load_hex(name: str) -> bytes:
    """The bytes of a fixture: every non-comment line, joined, as hex."""
    lines = (FIXTURES / name).read_text().splitlines()
    assert lines[0].startswith("# captured 2026-11-28"), "fixture must say how it was captured"
    return bytes.fromhex("".join(line.strip() for line in lines if not line.startswith("#")))


def load_dhcp(name: str) -> tuple[UdpDatagram, DhcpMessage]:
    datagram = parse_udp_ipv4(load_hex(name))
    assert datagram is not None, f"{name} did not parse as IPv4/UDP"
    return datagram, DhcpMessage.decode(datagram.payload)


def option_codes(wire: bytes) -> list[int]:
    """Option codes in wire order of an encoded message (independent minimal walker)."""
    codes = []
    i = 240
    while wire[i] != 255:
        if wire[i] == 0:
            i += 1
            continue
        codes.append(wire[i])
        i += 2 + wire[i + 1]
    return codes


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


def raw_message(options: bytes, *, sname: bytes = b"", file: bytes = b"", hlen: int = 6) -> bytes:
    """A BOOTREPLY built by hand (not by the codec) with the given raw options area."""
    header = struct.pack(
        "!BBBBIHH4s4s4s4s16s64s128s",
        2,
        1,
        hlen,
        0,
        0x01020304,
        0,
        0,
        bytes(4),
        IP("10.0.0.5").packed,
        bytes(4),
        bytes(4),
        MAC,
        sname,
        file,
    )
    return header + b"\x63\x82\x53\x63" + options


# -- real captures --------------------------------------------------------------------------------

FRAMED = [
    ("busybox-1.35.0-udhcpc-discover.hex", ZERO, BCAST, CLIENT_PORT, SERVER_PORT, 300),
    ("busybox-1.35.0-udhcpc-request.hex", ZERO, BCAST, CLIENT_PORT, SERVER_PORT, 300),
    ("dnsmasq-2.90-offer.hex", SERVER, LEASED, SERVER_PORT, CLIENT_PORT, 300),
    ("dnsmasq-2.90-ack.hex", SERVER, BCAST, SERVER_PORT, CLIENT_PORT, 304),
    ("dnsmasq-2.90-ack-renewing.hex", SERVER, LEASED, SERVER_PORT, CLIENT_PORT, 300),
    ("dnsmasq-2.90-nak.hex", SERVER, BCAST, SERVER_PORT, CLIENT_PORT, 300),
]
DHCP_FIXTURES = [row[0] for row in FRAMED]


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


@pytest.mark.parametrize("name", DHCP_FIXTURES)
def test_real_messages_reencode_byte_exact(name: str) -> None:
    datagram, message = load_dhcp(name)
    assert message.encode() == datagram.payload


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


def test_udhcpc_discover_fields() -> None:
    _, msg = load_dhcp("busybox-1.35.0-udhcpc-discover.hex")
    assert msg.op == 1
    assert msg.xid == 0x139B6515
    assert msg.chaddr == LAB_MAC
    assert (msg.htype, msg.hlen, msg.hops, msg.secs, msg.flags) == (1, 6, 0, 0, 0)
    assert msg.ciaddr == msg.yiaddr == msg.siaddr == msg.giaddr == ZERO
    assert msg.message_type is MessageType.DISCOVER
    assert msg.client_id == client_id_for_mac(LAB_MAC)
    assert list(msg.options) == [53, 57, 55, 60, 61]
    assert msg.options[Opt.PARAMS] == bytes([1, 3, 6, 12, 15, 28, 42])
    assert msg.options[Opt.MAX_SIZE] == (576).to_bytes(2, "big")
    assert msg.options[Opt.VENDOR_CLASS] == b"udhcp 1.35.0"
    assert msg.requested_ip is None
    assert msg.server_id is None


def test_udhcpc_request_is_selecting() -> None:
    _, msg = load_dhcp("busybox-1.35.0-udhcpc-request.hex")
    assert msg.message_type is MessageType.REQUEST
    assert msg.xid == 0x139B6515
    assert msg.ciaddr == ZERO
    assert msg.requested_ip == LEASED
    assert msg.server_id == SERVER


def test_dnsmasq_offer_fields() -> None:
    datagram, offer = load_dhcp("dnsmasq-2.90-offer.hex")
    _, disc = load_dhcp("busybox-1.35.0-udhcpc-discover.hex")
    assert offer.op == 2
    assert offer.xid == disc.xid
    assert offer.chaddr == disc.chaddr
    assert offer.message_type is MessageType.OFFER
    assert offer.yiaddr == LEASED == datagram.dst
    assert offer.siaddr == SERVER
    assert offer.ciaddr == ZERO
    assert offer.server_id == SERVER
    assert offer.lease_time_s == 120
    assert offer.renewal_time_s == 10
    assert offer.rebinding_time_s == 15
    assert offer.subnet_mask == IP("255.255.255.0")
    assert offer.prefixlen == 24
    assert offer.routers == [SERVER]
    assert offer.options[Opt.BROADCAST] == IP("10.233.7.255").packed
    # udhcpc did not ask for option 121, so dnsmasq did not send it.
    assert Opt.CLASSLESS_ROUTES not in offer.options
    assert offer.classless_routes == []
    assert offer.dns_servers == []
    assert offer.error_message is None


def test_dnsmasq_ack_fields() -> None:
    datagram, ack = load_dhcp("dnsmasq-2.90-ack.hex")
    assert datagram.dst == BCAST  # the codec's REQUEST set the broadcast flag
    assert ack.flags == BROADCAST_FLAG
    assert ack.xid == 0xC0DE0001
    assert ack.chaddr == LAB_MAC
    assert ack.message_type is MessageType.ACK
    assert list(ack.options) == [53, 54, 51, 58, 59, 1, 28, 12, 121, 3]
    assert ack.yiaddr == LEASED
    assert ack.server_id == SERVER
    assert ack.lease_time_s == 120
    assert ack.renewal_time_s == 10
    assert ack.rebinding_time_s == 15
    assert ack.prefixlen == 24
    assert ack.routers == [SERVER]
    assert ack.classless_routes == [(IPv4Network("10.9.0.0/16"), SERVER)]
    assert ack.options[Opt.CLASSLESS_ROUTES] == bytes.fromhex("100a090ae90701")
    assert ack.host_name == "cdx-lab"  # echoed from the codec-built REQUEST
    assert ack.static_routes == []
    assert ack.mtu is None


def test_dnsmasq_renewing_ack_echoes_ciaddr() -> None:
    datagram, ack = load_dhcp("dnsmasq-2.90-ack-renewing.hex")
    assert ack.message_type is MessageType.ACK
    assert ack.xid == 0xC0DE0002
    assert ack.ciaddr == ack.yiaddr == LEASED == datagram.dst
    assert ack.flags == 0
    assert ack.lease_time_s == 120
    # dnsmasq shortens T1/T2 by the time already elapsed in the current lease.
    assert (ack.renewal_time_s, ack.rebinding_time_s) == (9, 14)


def test_dnsmasq_nak_fields() -> None:
    _, nak = load_dhcp("dnsmasq-2.90-nak.hex")
    assert nak.message_type is MessageType.NAK
    assert nak.xid == 0xC0DE0003
    assert nak.error_message == "wrong address"
    assert nak.server_id == SERVER
    assert nak.yiaddr == ZERO
    assert nak.lease_time_s is None
    assert nak.routers == []
    assert list(nak.options) == [53, 54, 56]


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


def test_request_selecting_from_real_offer() -> None:
    _, offer = load_dhcp("dnsmasq-2.90-offer.hex")
    req = request_selecting(offer=offer, xid=offer.xid, chaddr=LAB_MAC, client_id=CID)
    assert req.requested_ip == LEASED
    assert req.server_id == SERVER
    assert req.ciaddr == ZERO


# -- builders --------------------------------------------------------------------------------------


def _offer() -> DhcpMessage:
    return DhcpMessage(
        op=2,
        xid=7,
        chaddr=MAC,
        yiaddr=IP("192.0.2.50"),
        options={Opt.MESSAGE_TYPE: b"\x02", Opt.SERVER_ID: IP("192.0.2.1").packed},
    )


# name, factory, type, ciaddr, has 50, has 54, has 55, has 57, flags
BuilderRow = tuple[
    str, Callable[[], DhcpMessage], MessageType, IPv4Address, bool, bool, bool, bool, int
]
BUILDERS: list[BuilderRow] = [
    (
        "discover",
        lambda: discover(xid=1, chaddr=MAC, client_id=CID),
        MessageType.DISCOVER,
        ZERO,
        False,
        False,
        True,
        True,
        BROADCAST_FLAG,
    ),
    (
        "selecting",
        lambda: request_selecting(offer=_offer(), xid=2, chaddr=MAC, client_id=CID),
        MessageType.REQUEST,
        ZERO,
        True,
        True,
        True,
        True,
        BROADCAST_FLAG,
    ),
    (
        "init-reboot",
        lambda: request_init_reboot(
            xid=3, chaddr=MAC, client_id=CID, requested=IP("192.0.2.50"), broadcast=False
        ),
        MessageType.REQUEST,
        ZERO,
        True,
        False,
        True,
        True,
        0,
    ),
    (
        "renewing",
        lambda: request_renewing(xid=4, chaddr=MAC, client_id=CID, ciaddr=IP("192.0.2.50")),
        MessageType.REQUEST,
        IP("192.0.2.50"),
        False,
        False,
        True,
        True,
        0,
    ),
    (
        "rebinding",
        lambda: request_rebinding(xid=5, chaddr=MAC, client_id=CID, ciaddr=IP("192.0.2.50")),
        MessageType.REQUEST,
        IP("192.0.2.50"),
        False,
        False,
        True,
        True,
        0,
    ),
    (
        "decline",
        lambda: decline(
            xid=6,
            chaddr=MAC,
            client_id=CID,
            requested=IP("192.0.2.50"),
            server_id=IP("192.0.2.1"),
            message="address in use",
        ),
        MessageType.DECLINE,
        ZERO,
        True,
        True,
        False,
        False,
        0,
    ),
    (
        "release",
        lambda: release(
            xid=7, chaddr=MAC, client_id=CID, ciaddr=IP("192.0.2.50"), server_id=IP("192.0.2.1")
        ),
        MessageType.RELEASE,
        IP("192.0.2.50"),
        False,
        True,
        False,
        False,
        0,
    ),
]


@pytest.mark.parametrize(
    ("name", "factory", "mtype", "ciaddr", "has50", "has54", "has55", "has57", "flags"),
    BUILDERS,
    ids=[row[0] for row in BUILDERS],
)
def test_builder_rfc2131_field_rules(
    name: str,
    factory: Callable[[], DhcpMessage],
    mtype: MessageType,
    ciaddr: IPv4Address,
    has50: bool,
    has54: bool,
    has55: bool,
    has57: bool,
    flags: int,
) -> None:
    msg = factory()
    assert msg.op == 1
    assert msg.message_type is mtype
    assert msg.ciaddr == ciaddr
    assert msg.yiaddr == msg.siaddr == msg.giaddr == ZERO
    assert msg.flags == flags
    assert (Opt.REQUESTED_IP in msg.options) is has50
    assert (Opt.SERVER_ID in msg.options) is has54
    assert (Opt.PARAMS in msg.options) is has55
    assert (Opt.MAX_SIZE in msg.options) is has57
    assert Opt.HOST_NAME not in msg.options
    assert msg.client_id == CID
    assert (msg.htype, msg.hlen, msg.chaddr) == (1, 6, MAC)
    keys = list(msg.options)
    assert keys[:2] == [Opt.MESSAGE_TYPE, Opt.CLIENT_ID]
    if has55:
        assert keys[-1] == Opt.PARAMS
        assert msg.options[Opt.PARAMS] == bytes(DEFAULT_PARAMS)
    if has57:
        assert msg.options[Opt.MAX_SIZE] == b"\x05\xdc"  # 1500


@pytest.mark.parametrize("factory", [row[1] for row in BUILDERS], ids=[row[0] for row in BUILDERS])
def test_builder_encode_decode_round_trip(factory: Callable[[], DhcpMessage]) -> None:
    msg = factory()
    wire = msg.encode()
    assert len(wire) >= 300
    assert wire[236:240] == b"\x63\x82\x53\x63"
    assert option_codes(wire) == [int(k) for k in msg.options]
    back = DhcpMessage.decode(wire)
    assert back == msg
    assert back.encode() == wire


def test_builder_values() -> None:
    offer = _offer()
    sel = request_selecting(offer=offer, xid=2, chaddr=MAC, client_id=CID)
    assert sel.requested_ip == IP("192.0.2.50")
    assert sel.server_id == IP("192.0.2.1")
    ir = request_init_reboot(xid=3, chaddr=MAC, client_id=CID, requested=IP("192.0.2.77"))
    assert ir.requested_ip == IP("192.0.2.77")
    assert ir.flags == BROADCAST_FLAG
    dec = decline(
        xid=6, chaddr=MAC, client_id=CID, requested=IP("192.0.2.50"), server_id=IP("192.0.2.1")
    )
    assert Opt.MESSAGE not in dec.options
    assert (dec.requested_ip, dec.server_id) == (IP("192.0.2.50"), IP("192.0.2.1"))
    rel = release(
        xid=7, chaddr=MAC, client_id=CID, ciaddr=IP("192.0.2.50"), server_id=IP("192.0.2.1")
    )
    assert list(rel.options) == [Opt.MESSAGE_TYPE, Opt.CLIENT_ID, Opt.SERVER_ID]
    declined = decline(
        xid=6,
        chaddr=MAC,
        client_id=CID,
        requested=IP("192.0.2.50"),
        server_id=IP("192.0.2.1"),
        message="address in use",
    )
    assert declined.error_message == "address in use"


def test_discover_options_and_flags() -> None:
    msg = discover(xid=0xDEADBEEF, chaddr=MAC, client_id=CID, host_name="web-1", secs=3)
    assert list(msg.options) == [53, 61, 57, 12, 55]
    assert msg.host_name == "web-1"
    assert msg.secs == 3
    assert msg.xid == 0xDEADBEEF
    wire = msg.encode()
    assert wire[4:8] == b"\xde\xad\xbe\xef"
    assert wire[10:12] == b"\x80\x00"
    assert wire[28:34] == MAC
    assert wire[34:44] == bytes(10)
    assert discover(xid=1, chaddr=MAC, client_id=CID, broadcast=False).flags == 0
    short = discover(xid=1, chaddr=MAC, client_id=CID, params=[1, 3])
    assert short.options[Opt.PARAMS] == b"\x01\x03"
    assert Opt.PARAMS not in discover(xid=1, chaddr=MAC, client_id=CID, params=()).options
    assert Opt.HOST_NAME not in discover(xid=1, chaddr=MAC, client_id=CID, host_name="").options


def test_renewing_and_rebinding_have_no_broadcast_flag_even_when_encoded() -> None:
    for factory in (request_renewing, request_rebinding):
        wire = factory(xid=9, chaddr=MAC, client_id=CID, ciaddr=IP("192.0.2.9")).encode()
        assert wire[10:12] == b"\x00\x00"
        assert wire[12:16] == IP("192.0.2.9").packed
        assert 50 not in option_codes(wire)
        assert 54 not in option_codes(wire)


@pytest.mark.parametrize(
    "call",
    [
        lambda: request_selecting(
            offer=DhcpMessage(op=2, xid=1, chaddr=MAC, yiaddr=IP("192.0.2.5")),
            xid=1,
            chaddr=MAC,
            client_id=CID,
        ),
        lambda: request_selecting(
            offer=DhcpMessage(
                op=2, xid=1, chaddr=MAC, options={Opt.SERVER_ID: IP("192.0.2.1").packed}
            ),
            xid=1,
            chaddr=MAC,
            client_id=CID,
        ),
        lambda: request_renewing(xid=1, chaddr=MAC, client_id=CID, ciaddr=ZERO),
        lambda: discover(xid=1, chaddr=MAC[:5], client_id=CID),
        lambda: discover(xid=1, chaddr=MAC, client_id=b"\x01"),
        lambda: discover(xid=1 << 32, chaddr=MAC, client_id=CID),
        lambda: discover(xid=1, chaddr=MAC, client_id=CID, secs=1 << 16),
        lambda: discover(xid=1, chaddr=MAC, client_id=CID, params=[0]),
        lambda: discover(xid=1, chaddr=MAC, client_id=CID, params=[255]),
        lambda: decline(
            xid=1,
            chaddr=MAC,
            client_id=CID,
            requested=IP("192.0.2.5"),
            server_id=SERVER,
            message="bad\nmessage",
        ),
    ],
    ids=[
        "offer-without-server-id",
        "offer-without-yiaddr",
        "renew-without-ciaddr",
        "short-mac",
        "short-client-id",
        "xid-too-big",
        "secs-too-big",
        "param-pad",
        "param-end",
        "decline-message-newline",
    ],
)
def test_builders_reject_bad_arguments(call: Callable[[], DhcpMessage]) -> None:
    with pytest.raises(CodecError):
        call()


@pytest.mark.parametrize(
    "name",
    [
        "a",
        "web-1",
        "0abc",
        "host.example.com",
        "x" * 63,
        ".".join(["y" * 63] * 3) + "." + "z" * 63,  # 255 octets
    ],
)
def test_host_name_accepted(name: str) -> None:
    msg = discover(xid=1, chaddr=MAC, client_id=CID, host_name=name)
    assert msg.options[Opt.HOST_NAME] == name.encode("ascii")
    assert DhcpMessage.decode(msg.encode()).host_name == name


@pytest.mark.parametrize(
    "name",
    [
        "bad\nname",
        "bad\rname",
        "tab\tname",
        "nul\x00name",
        "name\n",
        "-lead",
        "trail-",
        "under_score",
        "sp ace",
        "a..b",
        ".lead",
        "trail.",
        "x" * 64,
        ".".join(["y" * 50] * 5 + ["a"]),  # 256 octets of valid labels
        "café",
    ],
)
def test_host_name_rejected(name: str) -> None:
    with pytest.raises(CodecError):
        discover(xid=1, chaddr=MAC, client_id=CID, host_name=name)
    with pytest.raises(CodecError):
        request_renewing(xid=1, chaddr=MAC, client_id=CID, ciaddr=LEASED, host_name=name)


@pytest.mark.parametrize("name", ["bad\nname", "name\n", "a\r\nb", "del\x7fete"])
def test_host_name_with_control_characters_says_so(name: str) -> None:
    with pytest.raises(CodecError, match="control characters"):
        discover(xid=1, chaddr=MAC, client_id=CID, host_name=name)


# -- helpers ---------------------------------------------------------------------------------------


def test_client_id_for_mac() -> None:
    assert client_id_for_mac(MAC) == b"\x01\x02\xcd\x00\x11\x22\x33"
    with pytest.raises(CodecError):
        client_id_for_mac(b"\x01\x02")


@pytest.mark.parametrize(
    ("text", "raw"),
    [
        ("aa:bb:cc:dd:ee:ff", bytes.fromhex("aabbccddeeff")),
        ("AA:BB:CC:DD:EE:FF", bytes.fromhex("aabbccddeeff")),
        ("02:cd:00:11:22:33", MAC),
        ("00:00:00:00:00:00", bytes(6)),
    ],
)
def test_mac_from_str(text: str, raw: bytes) -> None:
    assert mac_from_str(text) == raw
    assert mac_to_str(raw) == text.lower()


@pytest.mark.parametrize(
    "text",
    [
        "",
        "aa:bb:cc:dd:ee",
        "aa:bb:cc:dd:ee:ff:00",
        "aa-bb-cc-dd-ee-ff",
        "aabbccddeeff",
        "aa:bb:cc:dd:ee:fg",
        "a:bb:cc:dd:ee:ff",
        "aa:bb:cc:dd:ee:ff\n",
        " aa:bb:cc:dd:ee:ff",
    ],
)
def test_mac_from_str_rejects(text: str) -> None:
    with pytest.raises(CodecError):
        mac_from_str(text)


def test_mac_to_str_rejects_wrong_length() -> None:
    with pytest.raises(CodecError):
        mac_to_str(b"\x00" * 5)


# -- encode/decode details ----------------------------------------------------------------------


def test_encode_pads_to_bootp_minimum_and_puts_53_first() -> None:
    msg = DhcpMessage(op=1, xid=1, chaddr=MAC, options={Opt.SERVER_ID: b"\x01\x02\x03\x04"})
    msg.options[Opt.MESSAGE_TYPE] = b"\x03"
    wire = msg.encode()
    assert len(wire) == 300
    assert wire[240:250] == bytes.fromhex("350103360401020304ff")
    assert wire[250:] == bytes(300 - 250)


def test_encode_does_not_pad_long_messages() -> None:
    msg = DhcpMessage(op=1, xid=1, chaddr=MAC, options={Opt.VENDOR_CLASS: b"v" * 100})
    wire = msg.encode()
    assert len(wire) == 240 + 102 + 1
    assert wire[-1] == 255


def test_encode_sname_and_file_fields() -> None:
    msg = DhcpMessage(op=2, xid=1, chaddr=MAC, sname=b"srv", file=b"boot/pxe.0")
    wire = msg.encode()
    assert wire[44:47] == b"srv"
    assert wire[47:108] == bytes(61)
    assert wire[108:118] == b"boot/pxe.0"
    back = DhcpMessage.decode(wire)
    assert (back.sname, back.file) == (b"srv", b"boot/pxe.0")


@pytest.mark.parametrize(
    "msg",
    [
        DhcpMessage(op=1, xid=1, chaddr=bytes(17)),
        DhcpMessage(op=1, xid=1, chaddr=MAC, hlen=17),
        DhcpMessage(op=1, xid=1 << 32, chaddr=MAC),
        DhcpMessage(op=256, xid=1, chaddr=MAC),
        DhcpMessage(op=1, xid=1, chaddr=MAC, flags=1 << 16),
        DhcpMessage(op=1, xid=1, chaddr=MAC, sname=b"s" * 65),
        DhcpMessage(op=1, xid=1, chaddr=MAC, file=b"f" * 129),
        DhcpMessage(op=1, xid=1, chaddr=MAC, options={0: b"x"}),
        DhcpMessage(op=1, xid=1, chaddr=MAC, options={255: b"x"}),
        DhcpMessage(op=1, xid=1, chaddr=MAC, options={256: b"x"}),
    ],
    ids=[
        "chaddr-17",
        "hlen-17",
        "xid-33-bits",
        "op-256",
        "flags-17-bits",
        "sname-65",
        "file-129",
        "option-pad",
        "option-end",
        "option-256",
    ],
)
def test_encode_rejects_unrepresentable(msg: DhcpMessage) -> None:
    with pytest.raises(CodecError):
        msg.encode()


def test_decode_keeps_first_hlen_bytes_of_chaddr() -> None:
    wire = bytearray(raw_message(b"\xff", hlen=4))
    wire[28 + 4 : 28 + 16] = b"\xee" * 12  # garbage after hlen must be dropped
    assert DhcpMessage.decode(bytes(wire)).chaddr == MAC[:4]


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (b"", "shorter"),
        (raw_message(b"")[:239], "shorter"),
        (raw_message(b"\xff")[:236] + b"\x63\x82\x53\x64\xff", "cookie"),
        (raw_message(b"\xff")[:236] + b"\x00\x00\x00\x00\xff", "cookie"),
        (raw_message(b"\x35\x01"), "past the end"),
        (raw_message(b"\x03\x08\x0a\x00\x00\x01"), "past the end"),
        (raw_message(b"\x00\x00\x35"), "no length"),
        (raw_message(b"\xff", hlen=17), "hlen"),
        (raw_message(b"\x34\x01\x02\xff", sname=bytes(62) + b"\x0c\x05"), "sname"),
        (raw_message(b"\x34\x01\x01\xff", file=b"\x0c\x7f"), "file"),
    ],
    ids=[
        "empty",
        "239-octets",
        "cookie-off-by-one",
        "cookie-zero",
        "option-no-room-for-value",
        "router-truncated",
        "no-length-octet",
        "hlen-17",
        "overloaded-sname-overrun",
        "overloaded-file-overrun",
    ],
)
def test_decode_malformed_raises(data: bytes, fragment: str) -> None:
    with pytest.raises(CodecError, match=fragment):
        DhcpMessage.decode(data)


def test_decode_minimal_message_without_end() -> None:
    msg = DhcpMessage.decode(raw_message(b""))
    assert msg.options == {}
    assert msg.yiaddr == IP("10.0.0.5")
    assert msg.message_type is None


def test_decode_skips_pad_and_stops_at_end() -> None:
    options = b"\x00\x00\x35\x01\x05\x00\x33\x04\x00\x00\x0e\x10\xff\x36\x04\x01\x02\x03\x04"
    msg = DhcpMessage.decode(raw_message(options))
    assert msg.options == {53: b"\x05", 51: b"\x00\x00\x0e\x10"}
    assert msg.lease_time_s == 3600
    assert msg.server_id is None  # after END: ignored


# -- RFC 3396 long options ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "pieces"),
    [(0, [0]), (1, [1]), (255, [255]), (256, [255, 1]), (600, [255, 255, 90]), (765, [255] * 3)],
)
def test_rfc3396_split_on_encode(size: int, pieces: list[int]) -> None:
    value = bytes(i % 251 for i in range(size))
    msg = DhcpMessage(op=1, xid=1, chaddr=MAC, options={Opt.MESSAGE_TYPE: b"\x01", 77: value})
    wire = msg.encode()
    i = 240 + 3
    seen = []
    while wire[i] == 77:
        seen.append(wire[i + 1])
        i += 2 + wire[i + 1]
    assert seen == pieces
    assert wire[i] == 255
    assert DhcpMessage.decode(wire).options[77] == value


def test_rfc3396_concatenates_non_adjacent_instances() -> None:
    options = (
        b"\x0c\x03abc" + b"\x35\x01\x02" + b"\x0c\x02de" + b"\x03\x04\x0a\x00\x00\x01" + b"\x03"
        b"\x04\x0a\x00\x00\x02\xff"
    )
    msg = DhcpMessage.decode(raw_message(options))
    assert list(msg.options) == [12, 53, 3]
    assert msg.host_name == "abcde"
    assert msg.routers == [IP("10.0.0.1"), IP("10.0.0.2")]


def test_long_classless_routes_round_trip() -> None:
    # 40 routes of 8 octets = 320 octets, so the option must be split and re-joined.
    entries = b"".join(bytes([24, 10, i, 0, 10, 0, 0, 1]) for i in range(40))
    msg = DhcpMessage(op=2, xid=1, chaddr=MAC, options={Opt.CLASSLESS_ROUTES: entries})
    back = DhcpMessage.decode(msg.encode())
    assert back.classless_routes == [
        (IPv4Network(f"10.{i}.0.0/24"), IP("10.0.0.1")) for i in range(40)
    ]


# -- option overload (RFC 2131 4.1 / RFC 2132 9.3) ----------------------------------------------


def test_overload_both_fields_order_options_file_sname() -> None:
    options = b"\x35\x01\x05\x34\x01\x03\x0c\x02ab\xff"
    file_area = b"\x0c\x02cd\x0f\x0bexample.org\xff"
    sname_area = b"\x0c\x02ef\x03\x04\x0a\x00\x00\x01\xff"
    msg = DhcpMessage.decode(raw_message(options, sname=sname_area, file=file_area))
    assert msg.host_name == "abcdef"
    assert msg.domain_name == "example.org"
    assert msg.routers == [IP("10.0.0.1")]
    assert (msg.sname, msg.file) == (b"", b"")
    assert msg.message_type is MessageType.ACK


@pytest.mark.parametrize(
    ("flag", "host"),
    [(b"\x01", "ab"), (b"\x02", "cd"), (b"\x03", "abcd"), (b"\x04", None), (b"\x00", None)],
)
def test_overload_flag_selects_areas(flag: bytes, host: str | None) -> None:
    options = b"\x34\x01" + flag + b"\xff"
    msg = DhcpMessage.decode(raw_message(options, sname=b"\x0c\x02cd\xff", file=b"\x0c\x02ab\xff"))
    assert msg.host_name == host


def test_no_overload_leaves_sname_file_text() -> None:
    msg = DhcpMessage.decode(raw_message(b"\xff", sname=b"\x0c\x02cd\xff", file=b"pxelinux.0"))
    assert msg.host_name is None
    assert msg.file == b"pxelinux.0"
    assert msg.sname == b"\x0c\x02cd\xff"


# -- typed accessors -------------------------------------------------------------------------------


def _with(code: int, value: bytes) -> DhcpMessage:
    return DhcpMessage(op=2, xid=1, chaddr=MAC, options={code: value})


ACCESSORS: list[tuple[str, int, bytes, object]] = [
    ("message_type", 53, b"\x05", MessageType.ACK),
    ("message_type", 53, b"\x09", None),
    ("message_type", 53, b"\x00", None),
    ("message_type", 53, b"\x05\x05", None),
    ("message_type", 53, b"", None),
    ("server_id", 54, b"\x0a\x00\x00\x01", IP("10.0.0.1")),
    ("server_id", 54, b"\x0a\x00\x00", None),
    ("requested_ip", 50, b"\xc0\x00\x02\x07", IP("192.0.2.7")),
    ("requested_ip", 50, b"\xc0\x00\x02\x07\x00", None),
    ("lease_time_s", 51, b"\x00\x00\x00\x78", 120),
    ("lease_time_s", 51, b"\xff\xff\xff\xff", 0xFFFFFFFF),
    ("lease_time_s", 51, b"\x00\x78", None),
    ("renewal_time_s", 58, b"\x00\x00\x00\x0a", 10),
    ("renewal_time_s", 58, b"\x0a", None),
    ("rebinding_time_s", 59, b"\x00\x00\x00\x0f", 15),
    ("rebinding_time_s", 59, b"\x00\x00\x00\x00\x0f", None),
    ("subnet_mask", 1, b"\xff\xff\xff\x00", IP("255.255.255.0")),
    ("subnet_mask", 1, b"\xff\xff\xff", None),
    ("prefixlen", 1, b"\xff\xff\xff\x00", 24),
    ("prefixlen", 1, b"\xff\xff\xff\xff", 32),
    ("prefixlen", 1, b"\x00\x00\x00\x00", 0),
    ("prefixlen", 1, b"\xff\xff\xfe\x00", 23),
    ("prefixlen", 1, b"\xff\x00\xff\x00", None),
    ("prefixlen", 1, b"\xff\xff\xff\x01", None),
    ("prefixlen", 1, b"\xff\xff", None),
    ("routers", 3, b"\x0a\x00\x00\x01\x0a\x00\x00\x02", [IP("10.0.0.1"), IP("10.0.0.2")]),
    ("routers", 3, b"\x0a\x00\x00\x01\x0a", []),
    ("routers", 3, b"", []),
    ("dns_servers", 6, b"\x01\x01\x01\x01", [IP("1.1.1.1")]),
    ("dns_servers", 6, b"\x01\x01\x01", []),
    ("domain_name", 15, b"lan.example", "lan.example"),
    ("domain_name", 15, b"lan.example\x00", "lan.example"),
    ("domain_name", 15, b"", None),
    ("domain_name", 15, b"bad\nname", None),
    ("domain_name", 15, b"caf\xc3\xa9", None),
    ("host_name", 12, b"box", "box"),
    ("host_name", 12, b"\x00", None),
    ("mtu", 26, b"\x05\xdc", 1500),
    ("mtu", 26, b"\x00\x44", 68),
    ("mtu", 26, b"\x00\x43", None),
    ("mtu", 26, b"\x05\xdc\x00", None),
    ("error_message", 56, b"wrong address", "wrong address"),
    ("error_message", 56, b"", None),
    ("error_message", 56, b"no\xffway", "no\ufffdway"),
    ("client_id", 61, b"\x01\x02\xcd\x00\x11\x22\x33", CID),
    ("client_id", 61, b"\x01", None),
    (
        "static_routes",
        33,
        b"\x0a\x01\x02\x03\x0a\x00\x00\x01",
        [(IPv4Network("10.1.2.3/32"), IP("10.0.0.1"))],
    ),
    (
        "static_routes",
        33,
        b"\x00\x00\x00\x00\x0a\x00\x00\x01\x0a\x01\x02\x03\x0a\x00\x00\x02",
        [(IPv4Network("10.1.2.3/32"), IP("10.0.0.2"))],
    ),
    ("static_routes", 33, b"\x0a\x01\x02\x03\x0a\x00\x00", []),
]


@pytest.mark.parametrize(("attr", "code", "value", "expected"), ACCESSORS)
def test_accessors(attr: str, code: int, value: bytes, expected: object) -> None:
    assert getattr(_with(code, value), attr) == expected


@pytest.mark.parametrize(
    "attr",
    [
        "message_type",
        "server_id",
        "requested_ip",
        "lease_time_s",
        "renewal_time_s",
        "rebinding_time_s",
        "subnet_mask",
        "prefixlen",
        "domain_name",
        "host_name",
        "mtu",
        "error_message",
        "client_id",
    ],
)
def test_accessors_absent_are_none(attr: str) -> None:
    assert getattr(DhcpMessage(op=2, xid=1, chaddr=MAC), attr) is None


@pytest.mark.parametrize("attr", ["routers", "dns_servers", "classless_routes", "static_routes"])
def test_list_accessors_absent_are_empty(attr: str) -> None:
    assert getattr(DhcpMessage(op=2, xid=1, chaddr=MAC), attr) == []


# -- RFC 3442 classless static routes -----------------------------------------------------------

GW = bytes([10, 0, 0, 1])


@pytest.mark.parametrize(
    ("value", "routes"),
    [
        (b"\x00" + GW, [(IPv4Network("0.0.0.0/0"), IP("10.0.0.1"))]),
        (b"\x08\x0a" + GW, [(IPv4Network("10.0.0.0/8"), IP("10.0.0.1"))]),
        (b"\x10\x0a\x09" + bytes(4), [(IPv4Network("10.9.0.0/16"), ZERO)]),  # on-link
        (b"\x18\xc0\x00\x02" + GW, [(IPv4Network("192.0.2.0/24"), IP("10.0.0.1"))]),
        (b"\x19\xc0\x00\x02\x80" + GW, [(IPv4Network("192.0.2.128/25"), IP("10.0.0.1"))]),
        (b"\x20\xc0\x00\x02\x07" + GW, [(IPv4Network("192.0.2.7/32"), IP("10.0.0.1"))]),
        (b"\x09\x0a\xff" + GW, [(IPv4Network("10.128.0.0/9"), IP("10.0.0.1"))]),  # masked
        (
            bytes.fromhex("100a090ae90701") + b"\x00" + bytes([10, 233, 7, 1]),
            [
                (IPv4Network("10.9.0.0/16"), IP("10.233.7.1")),
                (IPv4Network("0.0.0.0/0"), IP("10.233.7.1")),
            ],
        ),
        (b"\x21\x0a\x00\x00\x00\x00" + GW, []),  # width 33
        (b"\x18\x0a\x00\x00" + GW[:3], []),  # truncated gateway
        (b"\x18\x0a\x00", []),  # truncated destination
        (b"\x00" + GW + b"\x08", []),  # trailing garbage after a valid route
        (b"", []),
    ],
    ids=[
        "default-0-width",
        "slash8",
        "on-link",
        "slash24",
        "slash25",
        "slash32",
        "host-bits-masked",
        "two-routes",
        "width-33",
        "short-gateway",
        "short-destination",
        "trailing-garbage",
        "empty",
    ],
)
def test_rfc3442_classless_routes(
    value: bytes, routes: list[tuple[IPv4Network, IPv4Address]]
) -> None:
    assert _with(Opt.CLASSLESS_ROUTES, value).classless_routes == routes


# -- IPv4 / UDP framing ------------------------------------------------------------------------


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


# -- ARP (RFC 5227) ----------------------------------------------------------------------------


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
