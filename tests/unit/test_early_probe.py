"""The conflict probe started at the OFFER (acd.probe.EarlyProbes and acquire's `offered`
hook), so its first interval overlaps the REQUEST's round trip: when each address is told,
which probe is taken at the ACK, and that nothing is left running. Against scripted servers
(test_rapid_commit.Wire) and a fake ARP socket; the same against a real LAN and host is in
tests/integration/test_conflict_probe.py."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from ipaddress import IPv4Address, IPv4Interface

import pytest

from net_dhcp.acd import arp_codec
from net_dhcp.acd import probe as acd
from net_dhcp.dhcp4 import codec
from net_dhcp.dhcp4.client import AcquireStats, acquire
from tests.unit.test_keeper import FAST
from tests.unit.test_rapid_commit import CID, MT, RAPID, Wire, answer, four_messages

OFFERED = IPv4Address("10.0.0.50")


@pytest.mark.asyncio
async def test_the_offered_address_is_told_before_its_request_goes_out() -> None:
    events: list[tuple[str, IPv4Address, int]] = []
    sock = Wire(four_messages)

    def offered(ip: IPv4Address) -> None:
        events.append(("offered", ip, len(sock.of(MT.REQUEST))))

    async def probe(ip: IPv4Address) -> bool:
        events.append(("probe", ip, len(sock.of(MT.REQUEST))))
        return False

    lease = await acquire(sock, client_id=CID, hostname=None,  # type: ignore[arg-type]
                          timeout_s=5, timing=FAST, stats=AcquireStats(),
                          probe=probe, offered=offered, rapid_commit=False)
    assert lease.address.ip == OFFERED
    assert events == [("offered", OFFERED, 0), ("probe", OFFERED, 1)]


@pytest.mark.asyncio
async def test_each_offer_after_a_nak_is_told_and_a_rapid_ack_needs_none() -> None:
    told: list[IPv4Address] = []

    def lan(req: codec.DhcpMessage) -> list[bytes]:
        if req.message_type is MT.DISCOVER:
            return [answer(req, MT.OFFER, "10.0.0.51" if sock.of(MT.REQUEST) else "10.0.0.50")]
        if req.message_type is MT.REQUEST and len(sock.of(MT.REQUEST)) == 1:
            return [answer(req, MT.NAK, "0.0.0.0")]
        return [answer(req, MT.ACK, "10.0.0.51")]

    async def free(_ip: IPv4Address) -> bool:
        return False

    sock = Wire(lan)
    lease = await acquire(sock, client_id=CID, hostname=None,  # type: ignore[arg-type]
                          timeout_s=5, timing=FAST, stats=AcquireStats(), probe=free,
                          offered=told.append, rapid_commit=False)
    assert lease.address == IPv4Interface("10.0.0.51/24")
    assert told == [IPv4Address("10.0.0.50"), IPv4Address("10.0.0.51")]

    told.clear()
    rapid = Wire(lambda req: [answer(req, MT.ACK, "10.0.0.50", extra=RAPID)])
    await acquire(rapid, client_id=CID, hostname=None,  # type: ignore[arg-type]
                  timeout_s=5, timing=FAST, stats=AcquireStats(), probe=free,
                  offered=told.append)
    assert told == []  # no OFFER: the probe starts at the ACK, as before


class FakeArp:
    """An ARP socket on which nobody answers; records what happened to it."""

    def __init__(self) -> None:
        self.mac = b"\x02\x00\x00\x00\x00\x01"
        self.probes = 0
        self.closed = False

    def send(self, _frame: bytes) -> None:
        self.probes += 1

    async def watch(self, _seen: Callable[[arp_codec.ArpPacket], None], seconds: float) -> None:
        await asyncio.sleep(seconds)

    def close(self, *, soon: bool = False) -> None:
        self.closed = True


@pytest.fixture
def arp(monkeypatch: pytest.MonkeyPatch) -> list[FakeArp]:
    """Every ARP socket the probes open, in order."""
    opened: list[FakeArp] = []

    def open_fake(_ifname: str) -> FakeArp:
        opened.append(FakeArp())
        return opened[-1]

    monkeypatch.setattr(acd, "open_arp_socket", open_fake)
    monkeypatch.setattr(acd, "PROBE_INTERVAL_S", 0.005)
    monkeypatch.setattr(acd, "PROBE_LISTEN_S", 0.01)
    return opened


@pytest.mark.asyncio
async def test_the_probe_started_at_the_offer_is_the_one_taken(arp: list[FakeArp]) -> None:
    probes = acd.EarlyProbes("dcx")
    probes.offered(OFFERED)
    probes.offered(OFFERED)  # once per address
    claimed, rest = await probes.soon(OFFERED)
    assert claimed is None
    assert rest is not None
    assert len(arp) == 1
    assert await rest is None
    assert arp[0].probes == acd.PROBE_NUM
    assert arp[0].closed
    other = IPv4Address("10.0.0.51")
    _claimed, rest = await probes.soon(other)  # acknowledged without an offer: probed now
    assert len(arp) == 2
    assert rest is not None
    rest.cancel()
    await probes.close()


@pytest.mark.asyncio
async def test_probes_not_taken_are_cancelled_and_their_sockets_closed(
        arp: list[FakeArp]) -> None:
    probes = acd.EarlyProbes("dcx")
    probes.offered(OFFERED)  # NAKed, say
    probes.offered(IPv4Address("10.0.0.51"))
    await asyncio.sleep(0.02)  # both first intervals over: their rests are running
    probes.offered(IPv4Address("10.0.0.52"))  # still in its first interval
    await asyncio.sleep(0)
    await probes.close()
    await asyncio.sleep(0)  # the rests' done callbacks
    assert len(arp) == 3
    assert all(sock.closed for sock in arp)


@pytest.mark.asyncio
async def test_a_rest_cancelled_before_it_ran_still_closes_its_socket(
        arp: list[FakeArp]) -> None:
    _claimed, rest = await acd.in_use_soon("dcx", OFFERED)
    assert rest is not None
    rest.cancel()  # before its first step: the coroutine's own cleanup never runs
    with pytest.raises(asyncio.CancelledError):
        await rest
    await asyncio.sleep(0)
    assert arp[0].closed
    assert arp[0].probes == 1  # the second probe never went out
