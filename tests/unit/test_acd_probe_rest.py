"""acd.probe.in_use_soon's remaining probe (the task Join waits for) closes its ARP socket
however it ends: run to the end, or cancelled, even before its first step (a DeleteEndpoint
without a Join). A fake ARP socket stands in for the packet socket, on which nobody answers;
the same against a real LAN and host is in tests/integration/test_conflict_probe.py."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from ipaddress import IPv4Address

import pytest

from net_dhcp.acd import arp_codec
from net_dhcp.acd import probe as acd

IP = IPv4Address("10.0.0.50")


class FakeArp:
    """An ARP socket nobody answers on; counts the probes sent and records the close."""

    def __init__(self) -> None:
        self.mac = b"\x02\x00\x00\x00\x00\x01"
        self.probes = 0
        self.closed = 0

    def send(self, _pkt: arp_codec.ArpPacket) -> None:
        self.probes += 1

    async def watch(self, _seen: Callable[[arp_codec.ArpPacket], None],
                    seconds: float) -> None:
        await asyncio.sleep(seconds)

    def close(self, *, soon: bool = False) -> None:
        self.closed += 1


@pytest.fixture
def arp(monkeypatch: pytest.MonkeyPatch) -> list[FakeArp]:
    """Every ARP socket the probes open, in order."""
    opened: list[FakeArp] = []

    def open_fake(_ifname: str) -> FakeArp:
        opened.append(FakeArp())
        return opened[-1]

    monkeypatch.setattr(acd, "open_arp_socket", open_fake)
    monkeypatch.setattr(acd, "PROBE_INTERVAL_S", 0.001)
    monkeypatch.setattr(acd, "PROBE_LISTEN_S", 0.002)
    return opened


@pytest.mark.asyncio
async def test_the_rest_run_to_its_end_closes_the_socket_once(arp: list[FakeArp]) -> None:
    claimed, rest = await acd.in_use_soon("dcx", IP)
    assert claimed is None
    assert rest is not None
    assert arp[0].closed == 0  # still probing
    assert await rest is None
    await asyncio.sleep(0)  # the done callback
    assert arp[0].probes == acd.PROBE_NUM
    assert arp[0].closed == 1


@pytest.mark.asyncio
async def test_a_rest_cancelled_before_its_first_step_closes_the_socket(
        arp: list[FakeArp]) -> None:
    _claimed, rest = await acd.in_use_soon("dcx", IP)
    assert rest is not None
    rest.cancel()  # before the loop has run it at all
    with pytest.raises(asyncio.CancelledError):
        await rest
    await asyncio.sleep(0)
    assert arp[0].probes == 1  # the second probe never went out
    assert arp[0].closed == 1


@pytest.mark.asyncio
async def test_a_rest_cancelled_while_listening_closes_the_socket(arp: list[FakeArp]) -> None:
    _claimed, rest = await acd.in_use_soon("dcx", IP)
    assert rest is not None
    while arp[0].probes < acd.PROBE_NUM:  # the second probe is out: it is listening
        await asyncio.sleep(0)
    rest.cancel()
    with pytest.raises(asyncio.CancelledError):
        await rest
    await asyncio.sleep(0)
    assert arp[0].closed == 1
