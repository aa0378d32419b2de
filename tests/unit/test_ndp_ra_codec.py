"""Tests for net_dhcp.ndp.ra_codec against Router Advertisements captured from dnsmasq 2.90.

Fixtures tests/unit/fixtures/dnsmasq-2.90-ra*.hex: the ICMPv6 message of one RA each, as a raw
ICMPv6 socket on a lab veth received it, with the IPv6 source, destination and hop limit the
kernel reported in comment lines (first line: how it was captured, with dnsmasq's arguments).
Prefix fd5e:1ab0:7c2d:1::/64 in all of them.
"""

from __future__ import annotations

import struct
from collections import Counter
from dataclasses import dataclass
from ipaddress import IPv6Address, IPv6Network
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from net_dhcp.ndp.ra_codec import (
    ALL_ROUTERS,
    ICMPV6_ROUTER_SOLICIT,
    NdpCodecError,
    PrefixInfo,
    RouterAdvert,
    decode_ra,
    icmpv6_checksum,
    ipv6_icmp_packet,
    prefix_for,
    router_solicit,
)
from net_dhcp.wire.common import CodecError

FIXTURES = Path(__file__).parent / "fixtures"
PREFIX = IPv6Network("fd5e:1ab0:7c2d:1::/64")
INFINITY = 0xFFFFFFFF
LL = IPv6Address("fe80::1")
MAC = bytes.fromhex("02cd00112233")


@dataclass(frozen=True)
class Captured:
    icmp: bytes
    source: IPv6Address
    destination: IPv6Address
    hop_limit: int


def load_ra(name: str) -> Captured:
    """A fixture: the hex line is the ICMPv6 message; ``# key value`` lines say the rest."""
    lines = (FIXTURES / name).read_text().splitlines()
    assert lines[0].startswith("# captured 2026-12-02"), "fixture must say how it was captured"
    meta = dict(line[2:].split(" ", 1) for line in lines[1:] if line.startswith("# "))
    return Captured(
        icmp=bytes.fromhex("".join(line.strip() for line in lines if not line.startswith("#"))),
        source=IPv6Address(meta["source"]),
        destination=IPv6Address(meta["destination"]),
        hop_limit=int(meta["hop-limit"]),
    )


RA_FIXTURES = sorted(p.name for p in FIXTURES.glob("dnsmasq-2.90-ra*.hex"))


def eui64_mac(link_local: IPv6Address) -> bytes:
    """The MAC a modified-EUI-64 interface id (RFC 4291 2.5.1) was made from."""
    iid = link_local.packed[8:]
    assert iid[3:5] == b"\xff\xfe", f"{link_local} is not an EUI-64 address"
    return bytes([iid[0] ^ 0x02]) + iid[1:3] + iid[5:]


def ra_header(*, kind: int = 134, code: int = 0, flags: int = 0xC0, lifetime: int = 1800) -> bytes:
    return struct.pack("!BBHBBHII", kind, code, 0, 64, flags, lifetime, 0, 0)


def prefix_opt(prefix: str, plen: int, flags: int = 0x80, valid: int = 600,
               preferred: int = 300) -> bytes:
    return struct.pack("!BBBBIII16s", 3, 4, plen, flags, valid, preferred, 0,
                       IPv6Address(prefix).packed)


def rdnss_opt(lifetime: int, *servers: str) -> bytes:
    body = b"".join(IPv6Address(s).packed for s in servers)
    return struct.pack("!BBHI", 25, 1 + 2 * len(servers), 0, lifetime) + body


# --------------------------------------------------------------------------- real captures


def test_fixtures_are_all_here() -> None:
    assert RA_FIXTURES == [
        "dnsmasq-2.90-ra-lifetime0-rdnss.hex",
        "dnsmasq-2.90-ra-only.hex",
        "dnsmasq-2.90-ra-slaac.hex",
        "dnsmasq-2.90-ra-to-unspecified.hex",
        "dnsmasq-2.90-ra.hex",
    ]


@pytest.mark.parametrize("name", RA_FIXTURES)
def test_captured_checksums_verify(name: str) -> None:
    """Our checksum agrees with the one dnsmasq and the kernel put on the wire."""
    cap = load_ra(name)
    assert cap.hop_limit == 255
    zeroed = cap.icmp[:2] + b"\x00\x00" + cap.icmp[4:]
    assert icmpv6_checksum(cap.source, cap.destination, zeroed).to_bytes(2, "big") == cap.icmp[2:4]
    assert icmpv6_checksum(cap.source, cap.destination, cap.icmp) == 0


@pytest.mark.parametrize("name", ["dnsmasq-2.90-ra.hex", "dnsmasq-2.90-ra-to-unspecified.hex"])
def test_dnsmasq_default_ra_is_managed_with_an_on_link_64(name: str) -> None:
    """--enable-ra with a DHCPv6 range: M and O set, the /64 on-link but not for SLAAC."""
    cap = load_ra(name)
    ra = decode_ra(cap.icmp, source=cap.source)
    assert ra == RouterAdvert(
        router=cap.source,
        managed=True,
        other=True,
        lifetime_s=1800,
        prefixes=(PrefixInfo(PREFIX, on_link=True, autonomous=False, valid_s=1800,
                             preferred_s=1800),),
        mtu=1500,
        dns_servers=(),  # the lab runs dnsmasq with --port=0: no DNS, so no RDNSS
        source_mac=eui64_mac(cap.source),
    )
    assert prefix_for(ra, IPv6Address("fd5e:1ab0:7c2d:1::123")) == 64


def test_dnsmasq_answers_a_solicitation_from_unspecified_to_all_nodes() -> None:
    assert load_ra("dnsmasq-2.90-ra-to-unspecified.hex").destination == IPv6Address("ff02::1")
    assert load_ra("dnsmasq-2.90-ra.hex").destination.is_link_local  # to our address


def test_dnsmasq_slaac_mode_sets_the_a_flag_and_keeps_m() -> None:
    cap = load_ra("dnsmasq-2.90-ra-slaac.hex")
    ra = decode_ra(cap.icmp, source=cap.source)
    assert (ra.managed, ra.other, ra.lifetime_s) == (True, True, 1800)
    assert ra.prefixes == (PrefixInfo(PREFIX, True, True, 1800, 1800),)


def test_dnsmasq_ra_only_mode_clears_m_and_o() -> None:
    cap = load_ra("dnsmasq-2.90-ra-only.hex")
    ra = decode_ra(cap.icmp, source=cap.source)
    assert (ra.managed, ra.other, ra.lifetime_s) == (False, False, 1800)
    assert ra.prefixes == (PrefixInfo(PREFIX, True, True, 1800, 1800),)
    assert ra.source_mac == eui64_mac(cap.source)


def test_dnsmasq_ra_param_lifetime_0_mtu_and_dns_servers() -> None:
    """--ra-param=lan0,mtu:1400,high,10,0 plus option6:dns-server: not a default router, the
    prefix still on-link (lifetimes = the 2 min lease), two RDNSS servers in order."""
    cap = load_ra("dnsmasq-2.90-ra-lifetime0-rdnss.hex")
    ra = decode_ra(cap.icmp, source=cap.source)
    assert ra.lifetime_s == 0
    assert (ra.managed, ra.other) == (True, True)
    assert ra.mtu == 1400
    assert ra.prefixes == (PrefixInfo(PREFIX, True, False, 120, 120),)
    assert ra.dns_servers == (IPv6Address("fd5e:1ab0:7c2d:1::53"), IPv6Address("fd00::35"))
    assert prefix_for(ra, IPv6Address("fd5e:1ab0:7c2d:1::1ff")) == 64


# --------------------------------------------------------------------------- hand-made RAs


def test_prefix_for_takes_the_longest_on_link_valid_prefix() -> None:
    ra = decode_ra(
        ra_header()
        + prefix_opt("2001:db8::", 48)
        + prefix_opt("2001:db8:0:1::", 64)
        + prefix_opt("2001:db8:0:1:8000::", 65, flags=0x40)  # not on-link (A only)
        + prefix_opt("2001:db8:0:2::", 64, valid=0),  # withdrawn
        source=LL,
    )
    assert prefix_for(ra, IPv6Address("2001:db8:0:1::5")) == 64
    assert prefix_for(ra, IPv6Address("2001:db8:0:1:8000::5")) == 64
    assert prefix_for(ra, IPv6Address("2001:db8:0:2::5")) == 48
    assert prefix_for(ra, IPv6Address("2001:db9::5")) is None


def test_prefix_bits_past_the_length_are_ignored() -> None:
    ra = decode_ra(ra_header() + prefix_opt("2001:db8::ffff", 64, valid=INFINITY), source=LL)
    assert ra.prefixes[0].prefix == IPv6Network("2001:db8::/64")
    assert ra.prefixes[0].valid_s == INFINITY


def test_a_bare_ra_has_no_options() -> None:
    ra = decode_ra(ra_header(flags=0, lifetime=0), source=LL)
    assert ra == RouterAdvert(LL, False, False, 0, (), None, (), None)
    assert prefix_for(ra, LL) is None


def test_unknown_options_are_skipped_and_only_the_first_mtu_and_mac_count() -> None:
    ra = decode_ra(
        ra_header()
        + bytes([200, 2]) + bytes(14)  # unknown option, 16 octets
        + struct.pack("!BBHI", 5, 1, 0, 9000) + struct.pack("!BBHI", 5, 1, 0, 1280)
        + bytes([1, 1]) + MAC + bytes([1, 1]) + bytes(6)
        + bytes([1, 2]) + bytes(14),  # a non-Ethernet link-layer address: skipped
        source=LL,
    )
    assert ra.mtu == 9000
    assert ra.source_mac == MAC


def test_rdnss_servers_are_collected_and_withdrawn_ones_dropped() -> None:
    ra = decode_ra(
        ra_header() + rdnss_opt(600, "2001:db8::53", "2001:db8::54")
        + rdnss_opt(0, "2001:db8::99") + rdnss_opt(INFINITY, "2001:db8::55"),
        source=LL,
    )
    assert ra.dns_servers == tuple(IPv6Address(f"2001:db8::{n}") for n in (53, 54, 55))


MALFORMED = {
    "empty": b"",
    "short header": ra_header()[:15],
    "router solicitation": ra_header(kind=133),
    "neighbor advertisement": ra_header(kind=136),
    "code 1": ra_header(code=1),
    "option length 0": ra_header() + bytes([1, 0]) + MAC,
    "option past the end": ra_header() + bytes([3, 4]) + bytes(22),
    "half an option header": ra_header() + bytes([1]),
    "option length 0 after a good one": ra_header() + bytes([1, 1]) + MAC + bytes([25, 0]),
    "prefix length 129": ra_header() + prefix_opt("2001:db8::", 129),
    "prefix length 255": ra_header() + prefix_opt("2001:db8::", 255),
    "prefix option of 24 octets": ra_header() + bytes([3, 3]) + bytes(22),
    "prefix option of 40 octets": ra_header() + bytes([3, 5]) + bytes(38),
    "mtu option of 16 octets": ra_header() + bytes([5, 2]) + bytes(14),
    "rdnss of 8 octets": ra_header() + bytes([25, 1]) + bytes(6),
    "rdnss of 32 octets": ra_header() + bytes([25, 4]) + bytes(30),
}


@pytest.mark.parametrize("data", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_ras_raise_ndp_codec_error(data: bytes) -> None:
    with pytest.raises(NdpCodecError):
        decode_ra(data, source=LL)


@pytest.mark.parametrize("source", ["::", "2001:db8::1", "fd5e:1ab0:7c2d:1::1", "ff02::1",
                                    "fec0::1"])
def test_ra_from_a_non_link_local_source_is_refused(source: str) -> None:
    cap = load_ra("dnsmasq-2.90-ra.hex")
    with pytest.raises(NdpCodecError, match="not a link-local"):
        decode_ra(cap.icmp, source=IPv6Address(source))


def test_ndp_codec_error_is_the_projects_codec_error() -> None:
    assert issubclass(NdpCodecError, CodecError)
    assert issubclass(NdpCodecError, ValueError)


# --------------------------------------------------------------------------- builders


def test_router_solicit_with_and_without_our_mac() -> None:
    assert router_solicit(None) == bytes([ICMPV6_ROUTER_SOLICIT]) + bytes(7)
    assert router_solicit(MAC) == bytes([ICMPV6_ROUTER_SOLICIT]) + bytes(7) + b"\x01\x01" + MAC


@pytest.mark.parametrize("mac", [b"", bytes(5), bytes(7), "02:cd:00:11:22:33"])
def test_router_solicit_refuses_a_bad_mac(mac: object) -> None:
    with pytest.raises(NdpCodecError):
        router_solicit(mac)  # type: ignore[arg-type]


def test_unspecified_source_solicitation_packet() -> None:
    """What goes out of the packet socket while our link-local address is tentative."""
    unspecified = IPv6Address("::")
    packet = ipv6_icmp_packet(unspecified, ALL_ROUTERS, router_solicit(None))
    assert len(packet) == 48
    first, plen, nxt, hops, src, dst = struct.unpack_from("!IHBB16s16s", packet)
    assert (first >> 28, plen, nxt, hops) == (6, 8, 58, 255)
    assert (IPv6Address(src), IPv6Address(dst)) == (unspecified, ALL_ROUTERS)
    assert packet[40] == ICMPV6_ROUTER_SOLICIT
    assert icmpv6_checksum(unspecified, ALL_ROUTERS, packet[40:]) == 0
    # A stale checksum in the message is replaced, not summed in.
    stale = bytearray(router_solicit(MAC))
    stale[2:4] = b"\xde\xad"
    framed = ipv6_icmp_packet(LL, ALL_ROUTERS, bytes(stale), hop_limit=1)
    assert framed[7] == 1
    assert icmpv6_checksum(LL, ALL_ROUTERS, framed[40:]) == 0


@pytest.mark.parametrize(("message", "hop_limit"), [(b"", 255), (bytes(3), 255),
                                                     (bytes(8), 256), (bytes(8), -1)])
def test_ipv6_icmp_packet_refuses_what_cannot_be_framed(message: bytes, hop_limit: int) -> None:
    with pytest.raises(NdpCodecError):
        ipv6_icmp_packet(LL, ALL_ROUTERS, message, hop_limit=hop_limit)


@pytest.mark.parametrize("length", [4, 5, 9, 1499])
def test_framed_checksums_verify_for_odd_and_even_lengths(length: int) -> None:
    message = bytes([128, 0]) + bytes(range(256)) * 6
    framed = ipv6_icmp_packet(LL, ALL_ROUTERS, message[:length])
    assert icmpv6_checksum(LL, ALL_ROUTERS, framed[40:]) == 0


# --------------------------------------------------------------------------- fuzz

FUZZ_EXAMPLES = 400
CAPTURES = [load_ra(name).icmp for name in RA_FIXTURES]
OPTION_BITS = [bytes([t, n]) + bytes(max(0, 8 * n - 2))
               for t in (1, 3, 5, 25, 200) for n in (0, 1, 2, 3, 4, 5)]


@st.composite
def mutated_ras(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(CAPTURES)))
    for _ in range(draw(st.integers(0, 4))):
        i = draw(st.integers(0, len(data) - 1))
        data[i] = draw(st.integers(0, 255))
    if draw(st.booleans()):
        data += draw(st.sampled_from(OPTION_BITS))[: draw(st.integers(0, 40))]
    if draw(st.integers(0, 3)) == 0:
        del data[draw(st.integers(0, len(data))):]
    return bytes(data)


def test_fuzzed_ras_raise_only_ndp_codec_error() -> None:
    """Mutated captures, random bytes and random options after a good header: decode_ra either
    returns a sane RA or raises NdpCodecError, and both happen often."""
    outcomes: Counter[str] = Counter()

    @settings(max_examples=FUZZ_EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(data=st.one_of(mutated_ras(), st.binary(max_size=120),
                          st.binary(max_size=120).map(lambda b: ra_header() + b)),
           source=st.sampled_from([LL, IPv6Address("fe80::c0ff:1fff:fe70:c6ff"), LL,
                                   IPv6Address("2001:db8::1")]))
    def run(data: bytes, source: IPv6Address) -> None:
        try:
            ra = decode_ra(data, source=source)
        except NdpCodecError:
            outcomes["error"] += 1
            return
        outcomes["decoded"] += 1
        outcomes["with prefixes"] += bool(ra.prefixes)
        assert ra.router == source
        assert all(0 <= p.prefix.prefixlen <= 128 for p in ra.prefixes)
        assert ra.source_mac is None or len(ra.source_mac) == 6
        for p in ra.prefixes:
            prefix_for(ra, p.prefix.network_address)

    run()
    assert outcomes["error"] >= FUZZ_EXAMPLES // 10, outcomes
    assert outcomes["decoded"] >= FUZZ_EXAMPLES // 10, outcomes
    assert outcomes["with prefixes"] > 0, outcomes
