"""DHCPv4 Rapid Commit (RFC 4039) against dnsmasq, no dockerd: the client asks for it in
every DISCOVER; dnsmasq with --dhcp-rapid-commit answers with the lease at once (two
messages), without that flag it offers and the usual four messages run.

The client runs on the container end of a veth on the lab bridge (test_dhcp_client.Veth),
in the host's namespace; what the server saw is read from dnsmasq's log (--log-dhcp).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from ipaddress import IPv4Address

import pytest

from net_dhcp.acd import probe as acd
from net_dhcp.dhcp4 import codec
from net_dhcp.dhcp4.client import AcquireStats, acquire, send_release
from net_dhcp.dhcp4.lease import Lease
from net_dhcp.dhcp4.sockets import open_dhcp_socket
from tests.conftest import LanFactory
from tests.integration.test_dhcp_client import FAST, Veth
from tests.lab import DhcpLan

HOSTNAME = "rc1"
RAPID_SENT = re.compile(r"sent size: +0 option: 80 rapid-commit")
"""What dnsmasq --log-dhcp logs when its reply carries option 80."""


@pytest.fixture
def veths() -> Iterator[list[Veth]]:
    """Veths made by the test, removed at teardown (before the labs they are on)."""
    made: list[Veth] = []
    try:
        yield made
    finally:
        for v in made:
            v.close()


def on(lab: DhcpLan, veths: list[Veth]) -> Veth:
    v = Veth(lab)
    veths.append(v)
    return v


def messages(lab: DhcpLan, mac: str, since: int = 0) -> list[str]:
    """The DHCP messages dnsmasq logged for `mac`, in order: ['DHCPDISCOVER', 'DHCPACK']."""
    return re.findall(rf"\b(DHCP[A-Z]+)\(\S+\)(?: [\d.]+)? {re.escape(mac)}\b", lab.log(since))


async def get_lease(v: Veth, stats: AcquireStats, **kwargs: object) -> Lease:
    sock = await asyncio.to_thread(open_dhcp_socket, v.cont_if, with_sink=False)
    sock.start()
    try:
        return await acquire(sock, client_id=codec.client_id_for_mac(sock.mac),
                             hostname=HOSTNAME, timeout_s=10, timing=FAST, stats=stats,
                             **kwargs)  # type: ignore[arg-type]
    finally:
        sock.close()


def check_lease(lab: DhcpLan, v: Veth, lease: Lease) -> None:
    """The lease is what dnsmasq granted and recorded for this client."""
    assert lab.in_range(str(lease.address.ip)), lease
    assert lease.address.network == lab.subnet
    assert lease.server_id == IPv4Address(lab.server_ip)
    assert lease.gateway == IPv4Address(lab.router)
    assert lease.lease_time_s == 120  # the lab's "2m"
    recorded = lab.wait_for_lease(mac=v.mac, timeout=5)
    assert (recorded.ip, recorded.hostname) == (str(lease.address.ip), HOSTNAME)


@pytest.mark.asyncio
async def test_a_rapid_commit_server_grants_the_lease_in_two_messages(
        lan: LanFactory, veths: list[Veth]) -> None:
    lab = lan(rapid_commit=True)
    v = on(lab, veths)
    stats = AcquireStats()
    lease = await get_lease(v, stats)
    check_lease(lab, v, lease)
    assert stats.rapid_commit
    assert (stats.offers, stats.requests) == (0, 0)
    # Only DISCOVER(s) and their ACK(s): no OFFER, no REQUEST for this client.
    seen = messages(lab, v.mac)
    assert seen[:2] == ["DHCPDISCOVER", "DHCPACK"], seen
    assert set(seen) == {"DHCPDISCOVER", "DHCPACK"}, seen
    assert RAPID_SENT.search(lab.log()), "dnsmasq's ACK carried no option 80"
    # A binding the server really committed: it takes the release.
    sock = await asyncio.to_thread(open_dhcp_socket, v.cont_if, with_sink=False)
    try:
        send_release(sock, lease, codec.client_id_for_mac(sock.mac))
    finally:
        sock.close()
    lab.wait_for_log(rf"DHCPRELEASE\(\S+\) {lease.address.ip} {v.mac}", timeout=5)


@pytest.mark.asyncio
async def test_a_server_without_rapid_commit_gets_the_four_messages(
        lan: LanFactory, veths: list[Veth]) -> None:
    lab = lan()
    assert "--dhcp-rapid-commit" not in lab.dnsmasq_args()
    v = on(lab, veths)
    stats = AcquireStats()
    lease = await get_lease(v, stats)
    check_lease(lab, v, lease)
    assert not stats.rapid_commit
    assert stats.offers == 1
    assert stats.requests >= 1
    assert messages(lab, v.mac)[:4] == ["DHCPDISCOVER", "DHCPOFFER", "DHCPREQUEST", "DHCPACK"]
    assert not RAPID_SENT.search(lab.log())


@pytest.mark.asyncio
async def test_turned_off_the_client_gets_four_messages_from_a_rapid_commit_server(
        lan: LanFactory, veths: list[Veth]) -> None:
    lab = lan(rapid_commit=True)
    v = on(lab, veths)
    stats = AcquireStats()
    lease = await get_lease(v, stats, rapid_commit=False)
    check_lease(lab, v, lease)
    assert not stats.rapid_commit
    assert messages(lab, v.mac)[:4] == ["DHCPDISCOVER", "DHCPOFFER", "DHCPREQUEST", "DHCPACK"]
    assert not RAPID_SENT.search(lab.log())


@pytest.mark.asyncio
async def test_a_rapid_commit_address_in_use_is_declined_and_another_comes(
        lan: LanFactory, veths: list[Veth]) -> None:
    lab = lan(rapid_commit=True)
    v = on(lab, veths)
    taken = lab.address(50)
    lab.stop_dnsmasq()
    lab.start_dnsmasq(reservations={v.mac: taken})  # dnsmasq hands out `taken` first...
    lab.add_host(ip=taken)  # ...which another machine on the LAN already uses (ARP)

    async def probe(ip: IPv4Address) -> bool:
        return await acd.in_use(v.cont_if, None, ip)

    stats = AcquireStats()
    lease = await get_lease(v, stats, probe=probe)
    assert stats.declined == [IPv4Address(taken)]
    assert lease.address.ip != IPv4Address(taken)
    check_lease(lab, v, lease)
    assert stats.rapid_commit
    assert (stats.offers, stats.requests, stats.rapid_acks) == (0, 0, 2)
    lab.wait_for_log(rf"DHCPDECLINE\(\S+\) {taken} {v.mac}", timeout=5)
    seen = messages(lab, v.mac)
    assert seen[:3] == ["DHCPDISCOVER", "DHCPACK", "DHCPDECLINE"], seen
    assert "DHCPOFFER" not in seen, seen
    assert "DHCPREQUEST" not in seen, seen
