"""Decoder fuzz: mutated real captures through every decoder and every consumer of what it decodes.

Why: whatever the LAN sends reaches the plugin through three decoders (``parse_udp_ipv4``,
``DhcpMessage.decode``, ``ArpPacket.decode``) and then through the code that believes what they
return: the option accessors, ``Lease.from_ack``, the judges in client.py (``judge_reply``,
``_judge_offer``), ``wait_reply`` that calls them, and the state machine the outcomes drive. A
broken or hostile server, a mangled frame or another host's ARP traffic must never make anything
but the codec's own ``CodecError`` leave a decoder, that one must be handled by its caller (the
socket read paths drop the packet), the judges must never raise, and a lease is believed only if
it is sane (usable host address, 0 < prefix <= 32, 0 < t1 <= t2 <= lease time, server id set).

What: the real captures in tests/unit/fixtures (the DHCP ones are IPv4+UDP packets without an
Ethernet header, the ARP ones bare 28-octet ARP payloads, the ICMP one an IPv4+ICMP packet),
mutated by hypothesis: bytes flipped and overwritten, truncation at any length, junk appended,
option TLVs spliced (repeated, unknown, truncated, lengths past the end, PAD runs, END missing,
option 52 overload with options in sname/file), the fields consumers read rewritten (op,
htype/hlen, xid, chaddr, yiaddr; options 53, 54, 1, 51/58/59, 3, 6, 26, 33, 121, 56 with control
characters), fully random bytes, and corrupted IPv4/UDP framing (version/IHL, IP options, total
length, fragment bits, protocol, both checksums, ports, UDP length). No exception is caught
broadly: anything but the allowed errors fails the test with its traceback. Each test also
counts what its examples reached and asserts every branch was exercised, so a strategy that
stopped producing (say) usable ACKs would fail instead of silently fuzzing nothing.

Stand-ins, no real socket: a decoder fuzz needs none (a packet socket needs root and a link,
and would only add the kernel between the bytes and the code under test). ``DhcpSocket`` is made
with ``object.__new__`` and given a ``StubPacketSocket`` as ``_pkt``: its ``recvmsg`` returns
the mutated packets (with PACKET_AUXDATA ancillary data saying whether the UDP checksum is ready,
and an AF_PACKET address), then raises ``BlockingIOError`` (or ``OSError``) as the non-blocking
socket does; the real ``_on_packet`` then fills the real queue that ``recv`` and ``wait_reply``
read. ``ArpSocket`` is made the same way with a ``StubArpSocket`` as ``_sock``; ``watch`` runs on
an event loop whose ``add_reader`` calls the reader at once (the stub is "readable" until it
says ``BlockingIOError``), so nothing waits and nothing sleeps.

All hypothesis runs are derandomized (the same examples every run) and bounded: 2,800 examples
in all (about 3,200 packets and 300 walks of the state machine), 12-18 s on a busy 2-core machine.
"""

from __future__ import annotations

import asyncio
import json
import socket
import struct
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network
from typing import Any, TypeVarTuple, cast

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from net_dhcp.acd import arp_codec
from net_dhcp.acd.socket import ArpSocket
from net_dhcp.dhcp4 import codec
from net_dhcp.dhcp4.client import NAK_MESSAGE_LIMIT, AcquireStats, Nak, _judge_offer, judge_reply
from net_dhcp.dhcp4.client import wait_reply as client_wait_reply
from net_dhcp.dhcp4.fsm import TRANSITIONS, IllegalTransition, Machine, State
from net_dhcp.dhcp4.lease import Lease
from net_dhcp.dhcp4.sockets import (
    BROADCAST_MAC,
    PACKET_AUXDATA,
    SOL_PACKET,
    TP_STATUS_CSUMNOTREADY,
    DhcpSocket,
)
from net_dhcp.errors import DhcpReplyError
from net_dhcp.routes import Route
from net_dhcp.wire.udp4 import UdpDatagram, parse_udp_ipv4
from tests.unit.test_dhcp4_codec import DHCP_FIXTURES, LAB_MAC, LEASED, SERVER, SERVER_MAC, load_hex

# -- the captures -----------------------------------------------------------------------------

CSUM_OFFLOAD = "dnsmasq-2.90-offer-csum-offload.hex"
DHCP_CAPTURES = [*DHCP_FIXTURES, CSUM_OFFLOAD]
"""IPv4+UDP packets (no Ethernet header); the offload one has a partial UDP checksum."""
ARP_CAPTURES = ["busybox-1.35.0-arping-probe.hex", "linux-6.18-arp-reply-to-probe.hex"]
"""Bare 28-octet ARP payloads (no Ethernet header)."""
ICMP_CAPTURE = "linux-6.18-icmp-port-unreachable.hex"
"""An IPv4+ICMP packet quoting a DHCPACK: IPv4 but not UDP."""
ACK = "dnsmasq-2.90-ack.hex"
OFFER = "dnsmasq-2.90-offer.hex"
ACK_XID = 0xC0DE0001
OTHER_SERVER = IPv4Address("10.233.7.2")
SENT_AT = 1_800_000_000.0
OTHER_MAC = bytes.fromhex("02cd00445566")

PACKETS = {name: load_hex(name) for name in [*DHCP_CAPTURES, *ARP_CAPTURES, ICMP_CAPTURE]}


def _framing(name: str) -> UdpDatagram:
    dgram = parse_udp_ipv4(PACKETS[name], verify_udp_checksum=name != CSUM_OFFLOAD)
    assert dgram is not None, name
    return dgram


FRAMING = {name: _framing(name) for name in DHCP_CAPTURES}
PAYLOADS = {name: dgram.payload for name, dgram in FRAMING.items()}
PREVIOUS = Lease.from_ack(codec.DhcpMessage.decode(PAYLOADS[ACK]), server_mac=SERVER_MAC,
                          sent_at=SENT_AT - 60)
"""The lease a renewal or rebinding judges against: dnsmasq's real ACK (10.233.7.106/24)."""
JUDGE_MODES: list[tuple[IPv4Address | None, Lease | None, State]] = [
    (SERVER, None, State.REQUESTING),  # acquire: the offer's server
    (SERVER, PREVIOUS, State.RENEWING),  # keeper, unicast to the lease's server
    (None, PREVIOUS, State.REBINDING),  # keeper, broadcast: any server
    (None, None, State.REBINDING),  # any server, nothing to fall back on
    (OTHER_SERVER, PREVIOUS, State.RENEWING),  # a server that did not send these captures
]
"""(server, previous, the client state that judges with them)."""


def fuzz(examples: int) -> settings:
    """Settings of every fuzz run here: the same examples every run, bounded, no deadline."""
    return settings(max_examples=examples, derandomize=True, database=None, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


# -- independent wire helpers (not the code under test) ---------------------------------------

def inet_checksum(data: bytes) -> int:
    """RFC 1071 Internet checksum."""
    if len(data) % 2:
        data += b"\x00"
    total = sum(int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def split_options(area: bytes) -> list[bytes]:
    """The options area as chunks: one per TLV, PAD or END, plus what follows END as one chunk.

    Joining the chunks gives ``area`` back byte for byte (the no-op control checks it).
    """
    chunks: list[bytes] = []
    i = 0
    while i < len(area):
        code = area[i]
        if code == 0:
            chunks.append(b"\x00")
            i += 1
            continue
        if code == 255:
            chunks.append(b"\xff")
            if i + 1 < len(area):
                chunks.append(area[i + 1 :])
            break
        length = area[i + 1] if i + 1 < len(area) else 0
        end = min(i + 2 + length, len(area))
        chunks.append(area[i:end])
        i = end
    return chunks


def tlv(code: int, value: bytes) -> bytes:
    value = value[:255]
    return bytes((code, len(value))) + value


def reframe(name: str, payload: bytes) -> bytes:
    """The capture's IPv4 and UDP headers around ``payload``: lengths and both checksums redone."""
    packet = PACKETS[name]
    ihl = (packet[0] & 0x0F) * 4
    udp_len = 8 + len(payload)
    ip = bytearray(packet[:ihl])
    struct.pack_into("!H", ip, 2, ihl + udp_len)
    struct.pack_into("!H", ip, 10, 0)
    struct.pack_into("!H", ip, 10, inet_checksum(bytes(ip)))
    udp = bytearray(packet[ihl : ihl + 8])
    struct.pack_into("!HH", udp, 4, udp_len, 0)
    pseudo = bytes(ip[12:20]) + struct.pack("!BBH", 0, 17, udp_len)
    udp_sum = inet_checksum(pseudo + bytes(udp) + payload) or 0xFFFF
    struct.pack_into("!H", udp, 6, udp_sum)
    return bytes(ip) + bytes(udp) + payload


def fix_checksums(packet: bytearray) -> None:
    """Make the IP header checksum, and the UDP one where it can be found, right again."""
    if not packet:
        return
    ihl = (packet[0] & 0x0F) * 4
    if ihl < 20 or ihl > len(packet):
        return
    struct.pack_into("!H", packet, 10, 0)
    struct.pack_into("!H", packet, 10, inet_checksum(bytes(packet[:ihl])))
    if packet[9] != 17 or ihl + 8 > len(packet):
        return
    udp_len = struct.unpack_from("!H", packet, ihl + 4)[0]
    if udp_len < 8 or ihl + udp_len > len(packet):
        return
    struct.pack_into("!H", packet, ihl + 6, 0)
    pseudo = bytes(packet[12:20]) + struct.pack("!BBH", 0, 17, udp_len)
    udp_sum = inet_checksum(pseudo + bytes(packet[ihl : ihl + udp_len])) or 0xFFFF
    struct.pack_into("!H", packet, ihl + 6, udp_sum)


def add_ip_options(packet: bytes, words: int) -> bytes:
    """``packet`` with ``words`` 32-bit words of IPv4 options (NOPs), IHL and length updated."""
    ihl = (packet[0] & 0x0F) * 4
    words = min(words, 15 - ihl // 4)
    out = bytearray(packet[:ihl] + b"\x01" * (4 * words) + packet[ihl:])
    out[0] = 0x40 | (ihl // 4 + words)
    struct.pack_into("!H", out, 2, (struct.unpack_from("!H", packet, 2)[0] + 4 * words) & 0xFFFF)
    fix_checksums(out)
    return bytes(out)


def usable_host(ip: IPv4Address) -> bool:
    """Not 0/8, loopback, multicast, reserved or limited broadcast (independent of lease.py)."""
    first = ip.packed[0]
    return first not in (0, 127) and first < 224


# -- mutations ---------------------------------------------------------------------------------

Op = tuple[str, int, bytes]
"""One mutation: (what, where/how much, bytes); plain data so a failing example reads well."""

INTERESTING_IPS = [IPv4Address(a) for a in (
    "0.0.0.0", "255.255.255.255", "127.0.0.1", "224.0.0.251", "240.0.0.1", "10.233.7.0",
    "10.233.7.255", "10.233.7.1", "10.233.7.106", "10.233.7.2", "10.0.0.0", "10.255.255.255",
    "192.168.1.0", "169.254.1.1", "1.2.3.4", "10.9.0.1",
)]
ip4 = st.sampled_from([ip.packed for ip in INTERESTING_IPS]) | st.binary(min_size=4, max_size=4)
wrong_length = st.binary(max_size=7).filter(lambda b: len(b) != 4)
u32 = (st.sampled_from([0, 1, 2, 9, 10, 14, 15, 119, 120, 121, 0x7FFFFFFF, 0xFFFFFFFE,
                        0xFFFFFFFF])
       | st.integers(0, 0xFFFFFFFF)).map(lambda n: n.to_bytes(4, "big"))
masks = (st.integers(0, 32).map(lambda p: (0xFFFFFFFF << (32 - p) & 0xFFFFFFFF).to_bytes(4, "big"))
         | st.binary(min_size=4, max_size=4))
ip_list = st.lists(ip4, max_size=4).map(b"".join)
ascii_with_controls = st.text(st.characters(max_codepoint=0x7F), max_size=80).map(
    lambda s: s.encode("ascii"))


@st.composite
def classless_routes(draw: st.DrawFn) -> bytes:
    """RFC 3442 option 121 entries: widths 0..40, destinations and gateways, maybe cut short."""
    out = b""
    for _ in range(draw(st.integers(0, 4))):
        width = draw(st.integers(0, 32) | st.integers(33, 40))
        octets = (min(width, 32) + 7) // 8
        dest = draw(st.binary(min_size=octets, max_size=octets))
        out += bytes((width,)) + dest + draw(ip4)
    if out and draw(st.booleans()):
        out = out[: draw(st.integers(0, len(out) - 1))]
    return out


OPTION_VALUES: dict[int, st.SearchStrategy[bytes]] = {
    codec.Opt.MESSAGE_TYPE: st.integers(0, 10).map(lambda t: bytes((t,)))
    | st.sampled_from([b"", b"\xff", b"\x05\x05", b"\x06\x00"]),
    codec.Opt.SERVER_ID: ip4 | wrong_length,
    codec.Opt.SUBNET_MASK: masks | wrong_length,
    codec.Opt.LEASE_TIME: u32 | wrong_length,
    codec.Opt.T1: u32 | wrong_length,
    codec.Opt.T2: u32 | wrong_length,
    codec.Opt.ROUTER: ip_list | st.binary(max_size=9),
    codec.Opt.DNS: ip_list | st.binary(max_size=9),
    codec.Opt.CLASSLESS_ROUTES: classless_routes() | st.binary(max_size=20),
    codec.Opt.STATIC_ROUTES: st.lists(st.tuples(ip4, ip4).map(b"".join), max_size=3).map(b"".join)
    | st.binary(max_size=12),
    codec.Opt.MESSAGE: ascii_with_controls | st.binary(max_size=255),
    codec.Opt.HOST_NAME: ascii_with_controls | st.binary(max_size=20),
    codec.Opt.DOMAIN_NAME: ascii_with_controls | st.binary(max_size=20),
    codec.Opt.MTU: st.integers(0, 0xFFFF).map(lambda n: n.to_bytes(2, "big"))
    | st.binary(max_size=3),
    codec.Opt.OVERLOAD: st.sampled_from([b"\x01", b"\x02", b"\x03", b"\x00", b"\x04", b"\xff", b"",
                                         b"\x01\x02"]),
}
known_option = st.sampled_from(sorted(OPTION_VALUES)).flatmap(
    lambda code: OPTION_VALUES[code].map(lambda value: (code, value)))
unknown_option = st.tuples(st.sampled_from([2, 77, 82, 99, 200, 224, 254]) | st.integers(1, 254),
                           st.binary(max_size=40))
options = known_option | unknown_option
option_chunk = options.map(lambda cv: tlv(*cv))
option_area = st.lists(option_chunk | st.just(b"\x00") | st.just(b"\xff"), max_size=6).map(
    b"".join)

header_op = st.one_of(
    st.tuples(st.just("byte"), st.sampled_from([0, 1, 2, 3]), st.sampled_from(
        [b"\x00", b"\x01", b"\x02", b"\x03", b"\x06", b"\x10", b"\x11", b"\xff"])),
    st.tuples(st.just("byte"), st.integers(0, 239), st.binary(min_size=1, max_size=1)),
    st.tuples(st.just("field"), st.sampled_from([12, 16, 20, 24]), ip4),  # ciaddr..giaddr
    st.tuples(st.just("field"), st.just(4), st.sampled_from(
        [ACK_XID.to_bytes(4, "big"), bytes(4)]) | st.binary(min_size=4, max_size=4)),  # xid
    st.tuples(st.just("field"), st.just(28), st.sampled_from([LAB_MAC, OTHER_MAC, bytes(16)])),
    st.tuples(st.just("field"), st.sampled_from([44, 108]), option_area),  # sname, file
    st.tuples(st.just("byte"), st.sampled_from([107, 235]), st.binary(min_size=1, max_size=1)
              .filter(lambda b: b not in (b"\x00", b"\xff"))),  # a code, last octet of sname/file
    st.tuples(st.just("field"), st.just(236), st.binary(min_size=4, max_size=4)),  # cookie
)
option_op = st.one_of(
    known_option.map(lambda cv: ("set", cv[0], cv[1])),
    st.tuples(st.just("ins"), st.integers(0, 20), option_chunk),
    st.tuples(st.just("del"), st.integers(0, 20), st.just(b"")),
    st.tuples(st.just("dup"), st.integers(0, 20), st.just(b"")),
    st.tuples(st.just("cut"), st.integers(0, 20), st.integers(0, 8).map(lambda n: bytes((n,)))),
    st.tuples(st.just("len"), st.integers(0, 20), st.binary(min_size=1, max_size=1)),
    st.tuples(st.just("pad"), st.integers(0, 20), st.integers(1, 40).map(bytes)),
    st.tuples(st.just("noend"), st.just(0), st.just(b"")),
    st.tuples(st.just("dangle"), st.integers(1, 254), st.binary(max_size=3)),
    st.tuples(st.just("overload"), st.integers(1, 3), option_area),
)
consumer_op = st.one_of(  # the fields judges and Lease.from_ack decide on
    st.tuples(st.just("set"), st.just(int(codec.Opt.MESSAGE_TYPE)), st.sampled_from(
        [bytes((codec.MessageType.OFFER,)), bytes((codec.MessageType.ACK,)),
         bytes((codec.MessageType.NAK,))]) | OPTION_VALUES[codec.Opt.MESSAGE_TYPE]),
    st.tuples(st.just("set"), st.just(int(codec.Opt.SERVER_ID)),
              OPTION_VALUES[codec.Opt.SERVER_ID]),
    st.tuples(st.just("set"), st.just(int(codec.Opt.SUBNET_MASK)), masks),
    st.tuples(st.just("set"), st.sampled_from([int(codec.Opt.LEASE_TIME), int(codec.Opt.T1),
                                               int(codec.Opt.T2)]), u32),
)
byte_op = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, 400), st.binary(min_size=1, max_size=1)),
    st.tuples(st.just("trunc"), st.integers(0, 400), st.just(b"")),
    st.tuples(st.just("junk"), st.just(0), st.binary(min_size=1, max_size=80)),
)


def apply_header_op(header: bytearray, op: Op) -> None:
    _, at, data = op
    if at == 44:  # sname
        data = data[:64].ljust(64, b"\x00")
    elif at == 108:  # file
        data = data[:128].ljust(128, b"\x00")
    header[at : at + len(data)] = data


def apply_option_op(chunks: list[bytes], header: bytearray, op: Op) -> None:
    what, at, data = op
    where = at % (len(chunks) + 1)
    end_at = chunks.index(b"\xff") if b"\xff" in chunks else len(chunks)
    if what == "set":  # replace every instance of the option with one
        chunks[:] = [c for c in chunks if len(c) < 2 or c[0] != at]
        end_at = chunks.index(b"\xff") if b"\xff" in chunks else len(chunks)
        chunks.insert(min(1, end_at), tlv(at, data))
    elif what in ("ins", "pad"):
        chunks.insert(where, data)
    elif chunks and what in ("del", "dup", "cut", "len"):
        where %= len(chunks)
        if what == "del":
            del chunks[where]
        elif what == "dup":
            chunks.insert(where, chunks[where])
        elif what == "cut":
            chunks[where] = chunks[where][: data[0]]
        elif len(chunks[where]) >= 2:
            chunks[where] = chunks[where][:1] + data + chunks[where][2:]
    elif what == "noend":
        del chunks[end_at:]
    elif what == "dangle":  # the area ends inside an option: no END, a code, maybe a length
        del chunks[end_at:]
        chunks.append(bytes((at,)) + data[:1] if data else bytes((at,)))
    elif what == "overload":
        chunks[:] = [c for c in chunks if len(c) < 2 or c[0] != codec.Opt.OVERLOAD]
        chunks.insert(min(1, end_at), tlv(codec.Opt.OVERLOAD, bytes((at,))))
        if at & 1:
            header[108:236] = data[:128].ljust(128, b"\x00")
        if at & 2:
            header[44:108] = data[:64].ljust(64, b"\x00")


def apply_byte_op(data: bytes, op: Op) -> bytes:
    what, at, arg = op
    if what == "flip" and data:
        i = at % len(data)
        return data[:i] + bytes((data[i] ^ (arg[0] or 1),)) + data[i + 1 :]
    if what == "trunc":
        return data[: at % (len(data) + 1)]
    if what == "junk":
        return data + arg
    return data


def mutate_dhcp(payload: bytes, header_ops: list[Op], option_ops: list[Op],
                byte_ops: list[Op]) -> bytes:
    header = bytearray(payload[:240])
    chunks = split_options(payload[240:])
    for op in header_ops:
        apply_header_op(header, op)
    for op in option_ops:
        apply_option_op(chunks, header, op)
    data = bytes(header) + b"".join(chunks)
    for op in byte_ops:
        data = apply_byte_op(data, op)
    return data


@st.composite
def dhcp_payloads(draw: st.DrawFn, bases: tuple[str, ...] = (ACK, ACK, OFFER, *DHCP_CAPTURES)
                  ) -> bytes:
    """A DHCP payload: a mutated capture (mostly), random bytes, or random bytes with a cookie."""
    kind = draw(st.integers(0, 11))
    if kind == 0:
        return draw(st.binary(max_size=600))
    if kind == 1:
        return draw(st.binary(min_size=236, max_size=236)) + codec.MAGIC_COOKIE + draw(option_area)
    base = PAYLOADS[draw(st.sampled_from(bases))]
    header_ops = draw(st.lists(header_op, max_size=2))
    yiaddr = draw(st.none() | st.none() | ip4)
    if yiaddr is not None:
        header_ops.append(("field", 16, yiaddr))
    return mutate_dhcp(base, header_ops,
                       draw(st.lists(consumer_op, max_size=3)) + draw(st.lists(option_op,
                                                                               max_size=4)),
                       draw(st.lists(byte_op, max_size=2)) if kind < 5 else [])


framing_op = st.one_of(
    st.tuples(st.just("byte"), st.just(0), st.sampled_from(
        [b"\x45", b"\x46", b"\x4f", b"\x44", b"\x40", b"\x55", b"\x65", b"\x05"])),
    st.tuples(st.just("u16"), st.just(2), st.sampled_from([0, 19, 20, 27, 28, 0xFFFF]).map(
        lambda n: n.to_bytes(2, "big"))),  # total length
    st.tuples(st.just("delta"), st.just(2), st.integers(-40, 40).map(
        lambda n: n.to_bytes(2, "big", signed=True))),  # total length off by a little
    st.tuples(st.just("u16"), st.just(6), st.sampled_from(
        [0x2000, 0x0001, 0x1FFF, 0x4000, 0x6000, 0x2001, 0x8000]).map(
        lambda n: n.to_bytes(2, "big"))),  # flags + fragment offset
    st.tuples(st.just("byte"), st.just(9), st.sampled_from([b"\x11", b"\x01", b"\x06", b"\x00"])),
    st.tuples(st.just("u16"), st.just(10), st.binary(min_size=2, max_size=2)),  # header checksum
    st.tuples(st.just("udp"), st.sampled_from([0, 2]), st.sampled_from(
        [67, 68, 0, 546, 0xFFFF]).map(lambda n: n.to_bytes(2, "big"))),  # ports
    st.tuples(st.just("udp"), st.just(4), st.integers(0, 400).map(
        lambda n: n.to_bytes(2, "big"))),  # UDP length
    st.tuples(st.just("udp"), st.just(6), st.sampled_from([b"\x00\x00", b"\xff\xff"])
              | st.binary(min_size=2, max_size=2)),  # UDP checksum
    st.tuples(st.just("options"), st.integers(1, 10), st.just(b"")),
    st.tuples(st.just("flip"), st.integers(0, 59), st.binary(min_size=1, max_size=1)),
    st.tuples(st.just("trunc"), st.integers(0, 400), st.just(b"")),
    st.tuples(st.just("junk"), st.just(0), st.binary(min_size=1, max_size=40)),
    st.tuples(st.just("fix"), st.just(0), st.just(b"")),
)


def apply_framing_op(packet: bytes, op: Op) -> bytes:
    what, at, arg = op
    out = bytearray(packet)
    if what == "options" and len(out) >= 20 and out[0] >> 4 == 4:
        return add_ip_options(packet, at)
    if what == "fix":
        fix_checksums(out)
        return bytes(out)
    if what in ("byte", "u16", "delta") and at + len(arg) <= len(out):
        if what == "delta":
            old = struct.unpack_from("!H", out, at)[0]
            arg = ((old + int.from_bytes(arg, "big", signed=True)) & 0xFFFF).to_bytes(2, "big")
        out[at : at + len(arg)] = arg
        return bytes(out)
    if what == "udp" and out:
        at += (out[0] & 0x0F) * 4
        if at + 2 <= len(out):
            out[at : at + 2] = arg
        return bytes(out)
    return apply_byte_op(packet, op)


@st.composite
def ip_packets(draw: st.DrawFn) -> tuple[bytes, UdpDatagram | None]:
    """(packet, the datagram it must parse to or None when its framing was mutated)."""
    kind = draw(st.integers(0, 9))
    if kind == 0:
        return draw(st.binary(max_size=400)), None
    if kind == 1:
        base = PACKETS[draw(st.sampled_from([*ARP_CAPTURES, ICMP_CAPTURE]))]
        expected = None
    else:
        name = draw(st.sampled_from(DHCP_CAPTURES))
        payload = draw(dhcp_payloads(bases=(name,)))
        base = reframe(name, payload)
        framing = FRAMING[name]
        expected = UdpDatagram(framing.src, framing.dst, framing.sport, framing.dport, payload)
    ops = draw(st.lists(framing_op, max_size=4))
    packet = base
    for op in ops:
        packet = apply_framing_op(packet, op)
    if ops and not all(op[0] in ("options", "fix") for op in ops):
        expected = None
    return packet, expected


@st.composite
def arp_payloads(draw: st.DrawFn) -> bytes:
    """A mutated ARP capture (fields rewritten, bytes flipped, cut, extended) or random bytes."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.binary(max_size=60))
    data = bytearray(PACKETS[draw(st.sampled_from(ARP_CAPTURES))])
    field_op = st.one_of(
        st.tuples(st.sampled_from([0, 2, 6]), st.sampled_from(
            [b"\x00\x01", b"\x08\x00", b"\x00\x02", b"\x00\x06", b"\x86\xdd", b"\x00\x00",
             b"\xff\xff"])),  # htype, ptype, op
        st.tuples(st.sampled_from([4, 5]), st.sampled_from([b"\x06", b"\x04", b"\x00", b"\x10"])),
        st.tuples(st.sampled_from([8, 18]), st.sampled_from([LAB_MAC, SERVER_MAC, OTHER_MAC,
                                                             bytes(6), BROADCAST_MAC])),
        st.tuples(st.sampled_from([14, 24]), ip4),
    )
    for at, value in draw(st.lists(field_op, max_size=3)):
        data[at : at + len(value)] = value
    out = bytes(data)
    for op in draw(st.lists(byte_op, max_size=2)) if draw(st.booleans()) else []:
        out = apply_byte_op(out, op)
    return out


# -- checks shared by the tests ----------------------------------------------------------------

def check_accessors(msg: codec.DhcpMessage) -> None:
    """Every typed accessor a consumer uses returns its documented type (and never raises)."""
    assert msg.message_type is None or isinstance(msg.message_type, codec.MessageType)
    for ip in (msg.server_id, msg.requested_ip, msg.subnet_mask):
        assert ip is None or isinstance(ip, IPv4Address)
    for seconds in (msg.lease_time_s, msg.renewal_time_s, msg.rebinding_time_s):
        assert seconds is None or 0 <= seconds <= 0xFFFFFFFF
    assert msg.prefixlen is None or 0 <= msg.prefixlen <= 32
    assert all(isinstance(ip, IPv4Address) for ip in (*msg.routers, *msg.dns_servers))
    for text in (msg.domain_name, msg.host_name):
        assert text is None or (text.isascii() and text.isprintable() and text)
    assert msg.mtu is None or 68 <= msg.mtu <= 0xFFFF
    assert msg.error_message is None or isinstance(msg.error_message, str)
    for net, gw in (*msg.classless_routes, *msg.static_routes):
        assert isinstance(net, IPv4Network)
        assert isinstance(gw, IPv4Address)
    assert msg.client_id is None or len(msg.client_id) >= 2


def check_lease(lease: Lease, ack: codec.DhcpMessage, server: IPv4Address | None,
                previous: Lease | None, server_mac: bytes = SERVER_MAC) -> None:
    """The sanity invariants of a lease the client will apply, store and renew."""
    assert isinstance(lease, Lease)
    ip = lease.address.ip
    net = lease.address.network
    assert ip == ack.yiaddr
    assert usable_host(ip), lease
    assert 0 < net.prefixlen <= 32, lease
    if net.prefixlen <= 30:
        assert ip not in (net.network_address, net.broadcast_address), lease
    if codec.Opt.SUBNET_MASK in ack.options:
        assert net.prefixlen == ack.prefixlen
    elif previous is not None and previous.address.ip == ip:
        assert net.prefixlen == previous.address.network.prefixlen
    assert lease.lease_time_s > 0
    assert 0 < lease.t1_s <= lease.t2_s <= lease.lease_time_s, lease
    assert lease.server_id == ack.server_id
    assert usable_host(lease.server_id), lease
    assert server is None or lease.server_id == server
    assert lease.server_mac == server_mac
    assert lease.obtained_at == SENT_AT
    assert lease.gateway is None or (lease.gateway in net and lease.gateway != ip), lease
    for route in lease.routes:
        assert isinstance(route, Route)
        assert route.destination.prefixlen > 0, lease
        assert route.gateway is None or (route.gateway in net and route.gateway != ip), lease
    assert all(isinstance(d, IPv4Address) for d in lease.dns)
    assert lease.domain is None or lease.domain.isprintable()
    # What the state store writes comes back the same.
    assert Lease.from_dict(json.loads(json.dumps(lease.to_dict()))) == lease


def lease_or_error(ack: codec.DhcpMessage, previous: Lease | None) -> Lease | DhcpReplyError:
    """Lease.from_ack, or the one error it may raise (anything else propagates and fails)."""
    try:
        return Lease.from_ack(ack, server_mac=SERVER_MAC, sent_at=SENT_AT, previous=previous)
    except DhcpReplyError as err:
        return err


# -- controls: the captures are what their comments say, and a no-op mutation changes nothing --

@pytest.mark.parametrize("name", DHCP_CAPTURES)
def test_noop_mutation_of_a_dhcp_capture_changes_nothing(name: str) -> None:
    payload = PAYLOADS[name]
    msg = codec.DhcpMessage.decode(payload)
    assert b"".join(split_options(payload[240:])) == payload[240:]
    assert mutate_dhcp(payload, [], [], []) == payload
    assert codec.DhcpMessage.decode(mutate_dhcp(payload, [], [], [])) == msg
    # Rebuilt around the same payload, the packet parses to the same datagram (offload: the
    # rebuilt checksum is a real one, so it now verifies).
    assert parse_udp_ipv4(reframe(name, payload)) == FRAMING[name]
    if name != CSUM_OFFLOAD:
        assert reframe(name, payload) == PACKETS[name]
    assert parse_udp_ipv4(add_ip_options(reframe(name, payload), 3)) == FRAMING[name]
    # A setting that changes nothing decodes to the same message.
    kept = mutate_dhcp(payload, [("field", 16, msg.yiaddr.packed)],
                       [("set", codec.Opt.MESSAGE_TYPE, payload[242:243])], [])
    assert codec.DhcpMessage.decode(kept) == msg


def test_capture_kinds() -> None:
    assert parse_udp_ipv4(PACKETS[ICMP_CAPTURE]) is None  # IPv4, protocol 1
    assert parse_udp_ipv4(PACKETS[CSUM_OFFLOAD]) is None  # partial checksum, verified
    for name in ARP_CAPTURES:
        assert len(PACKETS[name]) == 28
        assert arp_codec.ArpPacket.decode(PACKETS[name]).encode() == PACKETS[name]
        assert parse_udp_ipv4(PACKETS[name]) is None
    ack = codec.DhcpMessage.decode(PAYLOADS[ACK])
    assert ack.xid == ACK_XID
    assert PREVIOUS.address.ip == LEASED
    assert PREVIOUS.address.network.prefixlen == 24


# -- IPv4/UDP framing --------------------------------------------------------------------------

def test_parse_udp_ipv4_never_raises_and_parses_only_sound_packets() -> None:
    seen: Counter[str] = Counter()

    @fuzz(700)
    @given(case=ip_packets(), verify=st.booleans())
    def run(case: tuple[bytes, UdpDatagram | None], verify: bool) -> None:
        packet, expected = case
        dgram = parse_udp_ipv4(packet, verify_udp_checksum=verify)
        if expected is not None:  # framing untouched (or only valid IP options): a control
            assert dgram == expected
            seen["control"] += 1
        if dgram is None:
            seen["rejected"] += 1
            return
        seen["parsed"] += 1
        assert isinstance(dgram, UdpDatagram)
        ihl = (packet[0] & 0x0F) * 4
        (total,) = struct.unpack_from("!H", packet, 2)
        (frag,) = struct.unpack_from("!H", packet, 6)
        assert packet[0] >> 4 == 4
        assert 20 <= ihl <= total <= len(packet)
        assert inet_checksum(packet[:ihl]) == 0
        assert packet[9] == 17
        assert frag & 0x3FFF == 0
        sport, dport, udp_len, udp_sum = struct.unpack_from("!HHHH", packet, ihl)
        assert 8 <= udp_len <= total - ihl
        assert (dgram.src, dgram.dst) == (IPv4Address(packet[12:16]), IPv4Address(packet[16:20]))
        assert (dgram.sport, dgram.dport) == (sport, dport)
        assert dgram.payload == packet[ihl + 8 : ihl + udp_len]
        if verify and udp_sum:
            pseudo = packet[12:20] + struct.pack("!BBH", 0, 17, udp_len)
            assert inet_checksum(pseudo + packet[ihl : ihl + udp_len]) == 0

    run()
    assert seen["parsed"] >= 200, seen
    assert seen["rejected"] >= 200, seen
    assert seen["control"] >= 150, seen


# -- DHCP decode, accessors, Lease.from_ack, the judges, the state they drive ------------------

def judge_everything(msg: codec.DhcpMessage, seen: Counter[str]) -> None:
    """Every judge in every mode on one decoded message, with the type and sanity checks."""
    kind = msg.message_type
    for server, previous, state in JUDGE_MODES:
        stats = AcquireStats()
        outcome = judge_reply(ifname="fuzz0", server=server, sent_at=SENT_AT, hostname=None,
                              previous=previous, stats=stats)(msg, SERVER_MAC)
        assert outcome is None or isinstance(outcome, Lease | Nak)
        if kind not in (codec.MessageType.ACK, codec.MessageType.NAK):
            assert outcome is None
            assert stats.dropped == 0
            continue
        # A reply must name its server, by a host address (0.0.0.0, loopback, multicast and
        # broadcast names are nobody's), and while renewing, the lease's server.
        named = (msg.server_id is not None and usable_host(msg.server_id)
                 and (server is None or msg.server_id == server))
        if isinstance(outcome, Nak):
            seen["nak"] += 1
            assert kind is codec.MessageType.NAK
            assert named
            assert outcome.server_id == msg.server_id
            if outcome.message is not None:
                assert outcome.message.isprintable()
                assert len(outcome.message) <= NAK_MESSAGE_LIMIT + 4  # one escape may overrun
        elif isinstance(outcome, Lease):
            seen["lease"] += 1
            assert kind is codec.MessageType.ACK
            assert named
            check_lease(outcome, msg, server, previous)
            assert outcome == lease_or_error(msg, previous)
        else:
            seen["dropped"] += 1
            assert stats.dropped == 1
            assert stats.last_drop_reason
            # Dropped: an ACK that makes no lease, or a reply from a server not to be believed.
            assert not named or (kind is codec.MessageType.ACK
                                 and isinstance(lease_or_error(msg, previous), DhcpReplyError))
        # The outcome drives the client's state as acquire and the keeper do: ACK -> BOUND,
        # NAK -> INIT, nothing -> stay (a timeout is not a reply). None of these may be illegal.
        fsm = Machine("fuzz0", state)
        fsm.move(State.BOUND if isinstance(outcome, Lease)
                 else State.INIT if isinstance(outcome, Nak) else state)
        assert fsm.state in TRANSITIONS[state] | {state}
    stats = AcquireStats()
    offer = _judge_offer(stats, "fuzz0")(msg, SERVER_MAC)
    if offer is not None:
        seen["offer"] += 1
        assert offer is msg
        assert kind is codec.MessageType.OFFER
        assert offer.server_id is not None
        assert usable_host(offer.server_id)
        assert usable_host(offer.yiaddr)
        # The REQUEST built from an accepted offer must encode (acquire does exactly this).
        codec.request_selecting(offer=offer, xid=msg.xid, chaddr=LAB_MAC,
                                client_id=codec.client_id_for_mac(LAB_MAC)).encode()
    else:
        assert stats.dropped == (kind is codec.MessageType.OFFER)


def test_dhcp_decode_accessors_leases_and_judges() -> None:
    seen: Counter[str] = Counter()

    @fuzz(1000)
    @given(payload=dhcp_payloads())
    def run(payload: bytes) -> None:
        try:
            msg = codec.DhcpMessage.decode(payload)
        except codec.CodecError:  # the one error the decoder may raise
            seen["codec-error"] += 1
            return
        seen["decoded"] += 1
        check_accessors(msg)
        assert codec.DhcpMessage.decode(msg.encode()) == msg  # what was decoded re-encodes
        judge_everything(msg, seen)
        for previous in (None, PREVIOUS):
            result = lease_or_error(msg, previous)
            if isinstance(result, Lease):
                check_lease(result, msg, None, previous)

    run()
    for what, least in (("codec-error", 200), ("decoded", 400), ("lease", 200), ("nak", 100),
                        ("offer", 50), ("dropped", 450)):
        assert seen[what] >= least, seen


# -- the DHCP socket's read path and wait_reply ------------------------------------------------

AncData = list[tuple[int, int, bytes]]


def auxdata(status: int) -> AncData:
    """PACKET_AUXDATA as the kernel sends it (struct tpacket_auxdata)."""
    return [(SOL_PACKET, PACKET_AUXDATA, struct.pack("IIIHHHH", status, 0, 0, 0, 0, 0, 0))]


@dataclass
class Frame:
    """One packet as recvmsg returns it."""

    data: bytes
    ancdata: AncData
    addr: tuple[Any, ...]


@dataclass
class StubPacketSocket:
    """Stands in for the AF_PACKET socket: hands out frames, then says it is drained."""

    frames: list[Frame]
    end: type[OSError] = BlockingIOError
    reads: int = 0
    sizes: list[int] = field(default_factory=list)

    def recvmsg(self, bufsize: int, ancbufsize: int) -> tuple[bytes, AncData, int, tuple[Any, ...]]:
        self.sizes.append(bufsize)
        if self.reads == len(self.frames):
            raise self.end("stub drained")
        frame = self.frames[self.reads]
        self.reads += 1
        return frame.data[:bufsize], frame.ancdata, 0, frame.addr


def stub_dhcp_socket(pkt: StubPacketSocket) -> DhcpSocket:
    """A DhcpSocket with no socket behind it: _on_packet, recv and drain work unchanged."""
    sock = object.__new__(DhcpSocket)
    sock.ifname = "fuzz0"
    sock.ifindex = 7
    sock.mac = LAB_MAC
    sock._pkt = cast(socket.socket, pkt)
    sock._sink = None
    sock._queue = asyncio.Queue(maxsize=64)
    sock._loop = None
    return sock


ADDRS = [("fuzz0", 0x0800, 0, 1, SERVER_MAC), ("fuzz0", 0x0800, 0, 1, SERVER_MAC + b"\x00\x00"),
         ("fuzz0", 0x0800)]
ANCDATA = [[], auxdata(0x81), auxdata(0x81 | TP_STATUS_CSUMNOTREADY),
           [(SOL_PACKET, PACKET_AUXDATA, b"\x08")]]


@st.composite
def frames(draw: st.DrawFn) -> Frame:
    """A packet the socket could read: mutated (payload and framing), or a capture as it is."""
    if draw(st.integers(0, 4)) == 0:
        data = PACKETS[draw(st.sampled_from(sorted(PACKETS)))]
    else:
        data, _ = draw(ip_packets())
        if draw(st.booleans()):  # make the reply's xid the one being waited for
            data = retarget_xid(data)
    return Frame(data, draw(st.sampled_from(ANCDATA)), draw(st.sampled_from(ADDRS)))


def retarget_xid(packet: bytes) -> bytes:
    """``packet`` with the DHCP xid set to ACK_XID (checksums redone), if it has a DHCP header."""
    out = bytearray(packet)
    ihl = (out[0] & 0x0F) * 4 if out else 0
    if ihl < 20 or len(out) < ihl + 16:
        return packet
    out[ihl + 12 : ihl + 16] = ACK_XID.to_bytes(4, "big")
    fix_checksums(out)
    return bytes(out)


def expected_queue(batch: list[Frame]) -> list[tuple[codec.DhcpMessage, bytes]]:
    """What _on_packet should queue for ``batch``: only DHCP replies to LAB_MAC that parse."""
    out = []
    for frame in batch:
        csum_ready = not (frame.ancdata and len(frame.ancdata[0][2]) >= 4
                          and frame.ancdata[0][2][0] & TP_STATUS_CSUMNOTREADY)
        dgram = parse_udp_ipv4(frame.data[:4096], verify_udp_checksum=csum_ready)
        if dgram is None or dgram.dport != 68:
            continue
        try:
            msg = codec.DhcpMessage.decode(dgram.payload)
        except codec.CodecError:
            continue
        if msg.op == 2 and msg.chaddr == LAB_MAC:
            out.append((msg, bytes(frame.addr[4][:6]) if len(frame.addr) > 4 else BROADCAST_MAC))
    return out


GOOD_ACK = Frame(PACKETS[ACK], auxdata(0x81), ADDRS[0])
OUR_REPLIES = {PACKETS[name]: codec.DhcpMessage.decode(PAYLOADS[name]) for name in DHCP_CAPTURES
               if name.startswith("dnsmasq") and name != CSUM_OFFLOAD}
"""The unmutated dnsmasq replies to LAB_MAC: each must reach the queue whenever it is read."""


def test_dhcp_socket_read_path_and_wait_reply() -> None:
    seen: Counter[str] = Counter()

    async def read_and_wait(batch: list[Frame], end: type[OSError]) -> None:
        pkt = StubPacketSocket([*batch, GOOD_ACK], end)
        sock = stub_dhcp_socket(pkt)
        sock._on_packet()  # must not raise, whatever it reads
        # It read every frame, then once more to learn the socket was drained.
        assert pkt.reads == len(batch) + 1
        assert len(pkt.sizes) == len(batch) + 2
        queue = sock._queue
        assert queue is not None
        queued = [queue.get_nowait() for _ in range(queue.qsize())]
        for item in queued:
            queue.put_nowait(item)
        assert queued == expected_queue([*batch, GOOD_ACK])
        for msg, src_mac in queued:
            assert msg.op == 2
            assert msg.chaddr == LAB_MAC
            assert len(src_mac) == 6
        for frame in batch:  # no over-filtering: a pristine reply to us always gets through
            if frame.data in OUR_REPLIES:
                assert OUR_REPLIES[frame.data] in [msg for msg, _ in queued]
        seen["read"] += len(batch)
        seen["queued"] += len(queued) - 1
        # wait_reply hands the queued replies with our xid to the judge in order and returns
        # the first it accepts; the good ACK last guarantees one, so it never reaches the timeout.
        model = judge_reply(ifname="fuzz0", server=SERVER, sent_at=SENT_AT, hostname=None,
                            previous=None, stats=AcquireStats())
        verdicts = [(i, msg, model(msg, mac)) for i, (msg, mac) in enumerate(queued)
                    if msg.xid == ACK_XID]
        index, msg, want = next(v for v in verdicts if v[2] is not None)
        mac = queued[index][1]
        judge = judge_reply(ifname="fuzz0", server=SERVER, sent_at=SENT_AT, hostname=None,
                            previous=None, stats=AcquireStats())
        got = await client_wait_reply(sock, ACK_XID, 5.0, judge)
        assert isinstance(got, Lease | Nak)
        assert got == want
        assert queue.qsize() == len(queued) - index - 1  # nothing after it was consumed
        if isinstance(got, Lease):
            check_lease(got, msg, SERVER, None, mac)
        seen["accepted-mutated"] += index < len(queued) - 1

    with asyncio.Runner() as runner:
        @fuzz(200)
        @given(batch=st.lists(frames(), min_size=1, max_size=5),
               end=st.sampled_from([BlockingIOError, OSError]))
        def run(batch: list[Frame], end: type[OSError]) -> None:
            runner.run(read_and_wait(batch, end))

        run()
    assert seen["read"] >= 400, seen
    assert seen["queued"] >= 40, seen
    assert seen["accepted-mutated"] >= 7, seen


# -- ARP decode, conflicts, and the ARP socket's read path -------------------------------------

PROBED = [SERVER, LEASED, IPv4Address(0)]


def test_arp_decode_and_conflicts() -> None:
    seen: Counter[str] = Counter()

    @fuzz(500)
    @given(data=arp_payloads())
    def run(data: bytes) -> None:
        try:
            pkt = arp_codec.ArpPacket.decode(data)
        except codec.CodecError:  # the one error the decoder may raise
            seen["codec-error"] += 1
            return
        seen["decoded"] += 1
        assert len(data) >= 28
        assert pkt.encode() == data[:28]
        for probed in PROBED:
            for own in (LAB_MAC, SERVER_MAC):
                conflict = arp_codec.arp_conflicts(pkt, probed_ip=probed, own_mac=own)
                assert isinstance(conflict, bool)
                seen["conflict"] += conflict
                if conflict:  # RFC 5227 2.1.1: another MAC claims or probes the address
                    assert pkt.sender_mac != own
                    assert pkt.sender_ip == probed or (
                        pkt.sender_ip == IPv4Address(0) and pkt.target_ip == probed)

    run()
    assert seen["codec-error"] >= 120, seen
    assert seen["decoded"] >= 120, seen
    assert seen["conflict"] >= 150, seen


Ts = TypeVarTuple("Ts")


class ImmediateReaderLoop(asyncio.SelectorEventLoop):
    """An event loop on which every fd is readable at once: add_reader calls the reader now."""

    def add_reader(self, fd: object, callback: Callable[[*Ts], object],
                   *args: *Ts) -> None:
        callback(*args)

    def remove_reader(self, fd: Any) -> bool:
        return True


@dataclass
class StubArpSocket:
    """Stands in for the ARP packet socket: hands out payloads, then says it is drained."""

    payloads: list[bytes]
    end: type[OSError] = BlockingIOError
    reads: int = 0

    def recv(self, bufsize: int) -> bytes:
        if self.reads == len(self.payloads):
            raise self.end("stub drained")
        self.reads += 1
        return self.payloads[self.reads - 1][:bufsize]

    def fileno(self) -> int:
        return 1000


def test_arp_socket_watch_hands_on_only_decoded_packets() -> None:
    seen: Counter[str] = Counter()

    async def watch(payloads: list[bytes], end: type[OSError]) -> None:
        stub = StubArpSocket(payloads, end)
        sock = object.__new__(ArpSocket)
        sock.ifname = "fuzz0"
        sock.mac = LAB_MAC
        sock._sock = cast(socket.socket, stub)
        got: list[arp_codec.ArpPacket] = []

        def on_packet(pkt: arp_codec.ArpPacket) -> None:  # as acd.probe.in_use's `seen`
            assert isinstance(pkt, arp_codec.ArpPacket)
            arp_codec.arp_conflicts(pkt, probed_ip=SERVER, own_mac=sock.mac)
            got.append(pkt)

        await sock.watch(on_packet, 0.0)
        assert stub.reads == len(payloads)
        want = []
        for data in payloads:
            try:
                want.append(arp_codec.ArpPacket.decode(data[:256]))
            except codec.CodecError:
                continue
        assert got == want  # every decodable packet, in order; the rest dropped quietly
        seen["delivered"] += len(got)
        seen["read"] += len(payloads)

    with asyncio.Runner(loop_factory=ImmediateReaderLoop) as runner:
        @fuzz(100)
        @given(payloads=st.lists(arp_payloads(), max_size=6),
               end=st.sampled_from([BlockingIOError, OSError]))
        def run(payloads: list[bytes], end: type[OSError]) -> None:
            runner.run(watch(payloads, end))

        run()
    assert seen["read"] >= 200, seen
    assert seen["delivered"] >= 100, seen


# -- the state machine -------------------------------------------------------------------------

def test_state_machine_random_walks_only_take_allowed_moves() -> None:
    seen: Counter[str] = Counter()

    @fuzz(300)
    @given(start=st.sampled_from(list(State)), moves=st.lists(st.sampled_from(list(State)),
                                                               max_size=20))
    def run(start: State, moves: list[State]) -> None:
        fsm = Machine("fuzz0", start)
        for to in moves:
            now = fsm.state
            allowed = to is now or (now is not State.STOPPED
                                    and (to is State.STOPPED or to in TRANSITIONS[now]))
            if allowed:
                fsm.move(to)
                seen["moved"] += 1
            else:
                with pytest.raises(IllegalTransition):
                    fsm.move(to)
                seen["refused"] += 1
            assert fsm.state is (to if allowed else now)
            assert fsm.state in TRANSITIONS[now] | {now, State.STOPPED}

    run()
    assert seen["moved"] >= 400, seen
    assert seen["refused"] >= 600, seen

