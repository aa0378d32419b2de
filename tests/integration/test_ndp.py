"""Router Discovery (net_dhcp.ndp) against dnsmasq 2.90's Router Advertisements on the lab LAN,
and the lab's own IPv6 (``DhcpLan(ipv6=True)``).

The socket is opened on the container end of a veth on the lab bridge, either left in the host
namespace (its RA processing switched off first, so the host never learns a default route from
the lab) or moved into a namespace of its own as Docker does. Right after link-up the end's
link-local address is tentative (DAD): the first Solicitation then goes from ``::``.

DHCPv6 itself is exchanged by hand here (a Solicit with Rapid Commit, RFC 8415 18.2.1) only to
check the lab's DHCPv6 server: reservations and the lease file.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import socket
import struct
import time
from collections.abc import Iterator
from ipaddress import IPv6Address, IPv6Network
from pathlib import Path

import pytest

from net_dhcp import netlink
from net_dhcp.ndp.ra_codec import PrefixInfo, RouterAdvert, prefix_for
from net_dhcp.ndp.socket import open_ra_socket, read_link_local, solicit_router
from tests.conftest import LanFactory
from tests.integration.test_dhcp_client import Veth
from tests.lab import (
    NETNS_PREFIX,
    DhcpLan,
    LabError,
    LanHost,
    lab_leftovers,
    random_mac,
    sh,
    tool,
    wait_until,
)

pytestmark = pytest.mark.integration

ULA = IPv6Network("fd00::/8")


class LabVeth(Veth):
    """test_dhcp_client's Veth, with names ``python -m tests.lab cleanup`` finds (``ndh*``,
    ``nd-*``) and the host's RA processing off on the end that starts in the host namespace."""

    def __init__(self, lab: DhcpLan) -> None:  # Veth's own, with other names
        tag = secrets.token_hex(3)  # "r" is no hex digit: no clash with the lab's own names
        self.host_if, self.cont_if = f"ndhr{tag}", f"ndhr{tag}c"
        self.netns = f"{NETNS_PREFIX}r{tag}"
        self.mac = random_mac()
        self.path = f"/run/netns/{self.netns}"
        sh("ip", "link", "add", self.host_if, "type", "veth", "peer", "name", self.cont_if)
        for key in ("accept_ra", "autoconf"):
            Path(f"/proc/sys/net/ipv6/conf/{self.cont_if}/{key}").write_text("0\n")
        sh("ip", "link", "set", self.cont_if, "address", self.mac, "up")
        sh("ip", "link", "set", self.host_if, "master", lab.bridge, "up")
        sh("ip", "netns", "add", self.netns)


@pytest.fixture
def v6lan(lan: LanFactory) -> Iterator[tuple[DhcpLan, LabVeth]]:
    lab = lan(ipv6=True)
    v = LabVeth(lab)
    try:
        yield lab, v
    finally:
        v.close()


def _conf(ifname: str, key: str) -> str:
    """An IPv6 sysctl of `ifname` in the host namespace."""
    return Path(f"/proc/sys/net/ipv6/conf/{ifname}/{key}").read_text().strip()


def _server_mac(lab: DhcpLan) -> bytes:
    info = json.loads(sh("ip", "-n", lab.netns, "-j", "link", "show", lab.server_if).stdout)
    return bytes.fromhex(str(info[0]["address"]).replace(":", ""))


def _assert_lab_ra(lab: DhcpLan, ra: RouterAdvert | None) -> None:
    assert ra is not None, "no router advertisement"
    assert lab.prefix6 is not None
    assert ra.router == IPv6Address(lab.server_link_local)
    assert ra.source_mac == _server_mac(lab)
    assert ra.managed, "dnsmasq with a DHCPv6 range sets M"
    assert ra.lifetime_s > 0
    assert [p for p in ra.prefixes if p.prefix == lab.prefix6] == [
        PrefixInfo(lab.prefix6, on_link=True, autonomous=False, valid_s=1800, preferred_s=1800)]
    assert prefix_for(ra, IPv6Address(lab.address6(0x100))) == 64
    assert prefix_for(ra, IPv6Address("2001:db8::1")) is None


async def _link_local_ready(netns_path: str | None, ifname: str, timeout: float) -> float:
    """Wait (bounded) until DAD has finished on `ifname`; seconds it took."""
    started = time.monotonic()
    while True:
        ll = await netlink.run_in_netns(netns_path, lambda: read_link_local(ifname))
        if ll is not None and not ll.tentative:
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            raise LabError(f"{ifname}'s link-local address still tentative after {timeout} s")
        await asyncio.sleep(0.05)


# --------------------------------------------------------------------------- router discovery


@pytest.mark.asyncio
async def test_ra_in_the_host_namespace_after_dad(v6lan: tuple[DhcpLan, LabVeth]) -> None:
    """Once DAD is done, the Solicitation goes from our link-local address with our MAC."""
    lab, v = v6lan
    await _link_local_ready(None, v.cont_if, timeout=10)
    sock = await netlink.run_in_netns(None, lambda: open_ra_socket(v.cont_if))
    try:
        since = lab.log_offset()
        started = time.monotonic()
        ra = await solicit_router(sock, 5.0)
        elapsed = time.monotonic() - started
    finally:
        sock.close()
    _assert_lab_ra(lab, ra)
    assert (sock.sent, sock.sent_unspecified) == (1, 0)
    assert elapsed < 0.9, f"dnsmasq took {elapsed:.3f} s to answer"  # no second RS was needed
    lab.wait_for_log(rf"RTR-SOLICIT\({lab.server_if}\) {v.mac}", since=since, timeout=5)


@pytest.mark.asyncio
async def test_ra_inside_a_namespace_while_the_link_local_is_tentative(
        v6lan: tuple[DhcpLan, LabVeth]) -> None:
    """Just after link-up the kernel will not pick a source: the RS goes from :: through the
    packet socket, and dnsmasq's answer (to all-nodes) arrives before DAD is over. DAD is made
    10 s long here so that "before" does not depend on the machine's speed."""
    lab, v = v6lan
    since = lab.log_offset()
    sh("ip", "link", "set", v.cont_if, "netns", v.netns)
    sh("ip", "netns", "exec", v.netns, tool("sysctl"), "-q", "-w",
       f"net.ipv6.conf.{v.cont_if}.dad_transmits=10")
    sh("ip", "-n", v.netns, "link", "set", v.cont_if, "up")
    sock = await netlink.run_in_netns(v.path, lambda: open_ra_socket(v.cont_if))
    try:
        started = time.monotonic()
        ra = await solicit_router(sock, 5.0)
        elapsed = time.monotonic() - started
        ll = await netlink.run_in_netns(v.path, lambda: read_link_local(v.cont_if))
    finally:
        sock.close()
    _assert_lab_ra(lab, ra)
    assert ll is not None
    assert ll.tentative, f"DAD was over before the RA came: {ll}"
    assert sock.sent == 0
    assert sock.sent_unspecified >= 1
    # dnsmasq logs a Solicitation without a MAC option (only ours: the kernel's carry one) and
    # answered it, rather than us catching its unsolicited start-up RA.
    lab.wait_for_log(rf"RTR-SOLICIT\({lab.server_if}\) $\n.*RTR-ADVERT", since=since, timeout=2)
    assert elapsed < 4.0


@pytest.mark.asyncio
async def test_no_router_means_none_at_the_timeout(v6lan: tuple[DhcpLan, LabVeth]) -> None:
    lab, v = v6lan
    lab.stop_dnsmasq()
    sock = await netlink.run_in_netns(None, lambda: open_ra_socket(v.cont_if))
    try:
        started = time.monotonic()
        ra = await solicit_router(sock, 1.5)
        elapsed = time.monotonic() - started
    finally:
        sock.close()
    assert ra is None
    assert 1.45 <= elapsed < 2.0
    assert sock.sent + sock.sent_unspecified == 2  # at 0 s and 1 s


def _host_without_dad(lab: DhcpLan, mac: str | None = None) -> LanHost:
    """A LAN host whose link-local address is usable at once (DAD off, link bounced)."""
    host = lab.add_host(mac=mac)
    host.exec(tool("sysctl"), "-q", "-w", f"net.ipv6.conf.{host.ifname}.accept_dad=0")
    sh("ip", "-n", host.netns, "link", "set", host.ifname, "down")
    sh("ip", "-n", host.netns, "link", "set", host.ifname, "up")
    return host


def _ra(lifetime: int, options: bytes = b"") -> bytes:
    """A Router Advertisement (checksum 0: the sending raw socket fills it)."""
    return struct.pack("!BBHBBHII", 134, 0, 0, 64, 0x80, lifetime, 0, 0) + options


def _send_ras(ifname: str, ras: list[tuple[bytes, int]]) -> None:
    """Send each (ICMPv6 message, hop limit) to all-nodes on `ifname` (blocking)."""
    with socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, ifname.encode())
        for message, hops in ras:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, hops)
            s.sendto(message, ("ff02::1", 0, 0, socket.if_nametoindex(ifname)))


@pytest.mark.asyncio
async def test_forwarded_and_malformed_ras_are_dropped(
        lan: LanFactory, caplog: pytest.LogCaptureFixture) -> None:
    """A router of our own on the LAN (no dnsmasq) sends an RA with hop limit 64 (as if
    forwarded from off-link), a malformed one, then a good one: only the good one counts."""
    lab = lan(ipv6=True, dhcp=False)
    v = LabVeth(lab)
    try:
        router = _host_without_dad(lab)
        router_ll = await netlink.run_in_netns(f"/run/netns/{router.netns}",
                                               lambda: read_link_local(router.ifname))
        assert router_ll is not None
        assert not router_ll.tentative
        sock = await netlink.run_in_netns(None, lambda: open_ra_socket(v.cont_if))
        try:
            await netlink.run_in_netns(f"/run/netns/{router.netns}", lambda: _send_ras(
                router.ifname, [(_ra(1111), 64), (_ra(2222, b"\x01\x00"), 255), (_ra(3333), 255)]))
            with caplog.at_level(logging.DEBUG, logger="net_dhcp.ndp.socket"):
                ra = await solicit_router(sock, 3.0)
        finally:
            sock.close()
    finally:
        v.close()
    assert ra is not None
    assert (ra.router, ra.lifetime_s, ra.managed) == (router_ll.address, 3333, True)
    assert "with hop limit 64, not 255" in caplog.text
    assert "malformed router advertisement" in caplog.text


# --------------------------------------------------------------------------- the lab's IPv6


def _dhcpv6_solicit(ifname: str, duid: bytes, iaid: int) -> IPv6Address:
    """One Solicit with Rapid Commit from `ifname` (blocking); the address of the Reply."""
    def opt(code: int, body: bytes) -> bytes:
        return struct.pack("!HH", code, len(body)) + body

    xid = secrets.token_bytes(3)
    message = (b"\x01" + xid + opt(1, duid) + opt(3, struct.pack("!III", iaid, 0, 0))
               + opt(8, b"\x00\x00") + opt(14, b""))
    with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, ifname.encode())
        s.bind(("::", 546))
        s.settimeout(5)
        s.sendto(message, ("ff02::1:2", 547, 0, socket.if_nametoindex(ifname)))
        while True:
            reply = s.recv(4096)
            if reply[0] == 7 and reply[1:4] == xid:  # REPLY
                break
    i = 4
    while i + 4 <= len(reply):
        code, length = struct.unpack_from("!HH", reply, i)
        if code == 3:  # IA_NA: IAID, T1, T2, then IA Address (5) options
            ia = reply[i + 4 : i + 4 + length]
            assert struct.unpack_from("!H", ia, 12)[0] == 5, f"no IA Address in {ia.hex()}"
            return IPv6Address(ia[16:32])
        i += 4 + length
    raise AssertionError(f"no IA_NA in the reply {reply.hex()}")


@pytest.mark.asyncio
async def test_ipv6_lab_prefix_addresses_and_dhcpv6_reservations(lan: LanFactory) -> None:
    mac, other_mac = random_mac(), random_mac()
    lab = lan(ipv6=True, dhcp=False)
    second = lan(ipv6=True, dhcp=False)
    assert lab.prefix6 is not None
    assert second.prefix6 is not None
    assert lab.prefix6 != second.prefix6
    assert lab.prefix6.prefixlen == 64
    assert lab.prefix6.subnet_of(ULA)
    reserved4, reserved6 = lab.address(50), lab.address6(0x42)
    other6 = lab.address6(0x43)
    lab.start_dnsmasq(reservations={mac: reserved4},
                      reservations6={mac: reserved6, other_mac: other6})
    args = lab.dnsmasq_args()
    p = lab.prefix6.network_address
    assert f"--dhcp-range={p}100,{p}1ff,64,{lab.lease}" in args
    assert "--enable-ra" in args
    assert f"--dhcp-host={mac},{reserved4},[{reserved6}]" in args
    assert f"--dhcp-host={other_mac},[{other6}]" in args
    assert lab.server_ip6 == lab.address6(1) == f"{p}1"
    assert lab.in_range6(f"{p}100")
    assert lab.in_range6(f"{p}1ff")
    assert not lab.in_range6(f"{p}200")
    assert not lab.in_range6(reserved6)
    out = json.loads(sh("ip", "-n", lab.netns, "-6", "-j", "addr", "show", "dev",
                        lab.server_if).stdout)
    addrs = {a["local"]: a for a in out[0]["addr_info"]}
    assert lab.server_ip6 in addrs
    assert not addrs[lab.server_ip6].get("tentative")
    assert lab.server_link_local in addrs
    assert IPv6Address(lab.server_link_local).is_link_local
    assert _conf(lab.bridge, "accept_ra") == "0"

    reserved_host = _host_without_dad(lab, mac)
    pool_host = _host_without_dad(lab)
    # A DUID without a MAC in it (DUID-UUID): dnsmasq finds the MAC from our link-local source.
    duid_uuid = struct.pack("!H", 4) + secrets.token_bytes(16)
    duid_ll = struct.pack("!HH", 3, 1) + bytes.fromhex(pool_host.mac.replace(":", ""))
    got = await netlink.run_in_netns(f"/run/netns/{reserved_host.netns}", lambda: _dhcpv6_solicit(
        reserved_host.ifname, duid_uuid, 7))
    assert got == IPv6Address(reserved6)
    got_pool = await netlink.run_in_netns(f"/run/netns/{pool_host.netns}", lambda: _dhcpv6_solicit(
        pool_host.ifname, duid_ll, 9))
    assert lab.in_range6(str(got_pool))
    assert reserved_host.dhcp() == reserved4  # the IPv4 half of the combined reservation

    lease = lab.wait_for_lease6(ip=reserved6, timeout=5)
    assert lease.duid == duid_uuid.hex(":")
    assert lease.iaid == "7"
    assert lease.hostname is None
    assert lease.expiry > time.time()
    pool_lease = lab.wait_for_lease6(duid=duid_ll.hex(":"), timeout=5)
    assert IPv6Address(pool_lease.ip) == got_pool
    assert pool_lease.iaid == "9"
    assert [le.ip for le in lab.leases()] == [reserved4]  # IPv4 lines only


def test_ipv6_off_leaves_the_lab_as_it_was(lan: LanFactory) -> None:
    lab = lan()
    assert (lab.ipv6, lab.prefix6, lab.server_ip6, lab.range6_start) == (False, None, None, None)
    args = lab.dnsmasq_args()
    assert not [a for a in args if "enable-ra" in a or "ra-param" in a or "[" in a]
    assert [a for a in args if a.startswith("--dhcp-range=")] == [
        f"--dhcp-range={lab.range_start},{lab.range_end},{lab.subnet.netmask},{lab.lease}"]
    assert _conf(lab.bridge, "accept_ra") == _conf("default", "accept_ra")
    out = json.loads(sh("ip", "-n", lab.netns, "-6", "-j", "addr", "show", "dev",
                        lab.server_if, "scope", "global").stdout)
    assert not [a for link in out for a in link.get("addr_info", [])]
    assert lab.leases6() == []
    with pytest.raises(LabError):
        lab.address6(1)
    assert not lab.in_range6("fd00::100")


def test_lab_cleanup_would_find_our_veth_names(lan: LanFactory) -> None:
    """LabVeth's names carry the lab's prefixes, so a crashed run's leftovers get cleaned."""
    lab = lan(ipv6=True, dhcp=False)
    v = LabVeth(lab)
    try:
        found = " ".join(lab_leftovers())
        assert f"link {v.host_if}" in found
        assert f"link {v.cont_if}" in found
        assert f"netns {v.netns}" in found
    finally:
        v.close()
    assert v.netns not in os.listdir("/run/netns")
    wait_until(lambda: v.host_if not in " ".join(lab_leftovers()), 5, f"{v.host_if} gone")
