"""Tests for net_dhcp.dhcp4.codec against real captured packets and the RFC rules.

Fixtures in tests/unit/fixtures/*.hex were captured from busybox udhcpc 1.35.0, dnsmasq 2.90 and
the Linux 6.18 kernel in a throwaway netns lab (see each file's first comment line). The lab
constants and ``load_hex`` here are shared with test_wire_udp4.py and test_acd_arp_codec.py.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

import pytest

from net_dhcp.dhcp4.codec import (
    BROADCAST_FLAG,
    CLIENT_PORT,
    DEFAULT_PARAMS,
    SERVER_PORT,
    CodecError,
    DhcpMessage,
    MessageType,
    Opt,
    client_id_for_mac,
    decline,
    discover,
    mac_from_str,
    mac_to_str,
    release,
    request_init_reboot,
    request_rebinding,
    request_renewing,
    request_selecting,
)
from net_dhcp.wire.udp4 import UdpDatagram, parse_udp_ipv4

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


@pytest.mark.parametrize("name", DHCP_FIXTURES)
def test_real_messages_reencode_byte_exact(name: str) -> None:
    datagram, message = load_dhcp(name)
    assert message.encode() == datagram.payload


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


def test_discover_can_suggest_an_address() -> None:
    msg = discover(xid=1, chaddr=MAC, client_id=CID, requested_ip=IP("192.0.2.50"),
                   rapid_commit=True)
    assert list(msg.options)[:4] == [53, 61, 50, 80]
    assert msg.requested_ip == IP("192.0.2.50")
    assert DhcpMessage.decode(msg.encode()).requested_ip == IP("192.0.2.50")
    assert Opt.REQUESTED_IP not in discover(xid=1, chaddr=MAC, client_id=CID).options


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
