"""Issue 7 defects 1, 3, 4, 5: what a hostile or buggy server sends never costs a lease.

Each test failed on the client before the fix (noted per test); the scripted server and
FakeSock come from test_keeper.py.
"""

from __future__ import annotations

import asyncio
import time
from ipaddress import IPv4Address, IPv4Interface

import pytest

from net_dhcp.dhcp4 import codec
from net_dhcp.dhcp4.client import AcquireStats, acquire, judge_reply
from net_dhcp.dhcp4.fsm import IllegalTransition, Machine, State
from net_dhcp.dhcp4.lease import Lease
from net_dhcp.dhcp4.timing import Timing
from net_dhcp.errors import DhcpReplyError, LeaseError
from tests.unit.test_keeper import FAST, MAC, SERVER, FakeSock, Harness, a_lease, reply

ROGUE = IPv4Address("10.0.0.66")
CID = codec.client_id_for_mac(MAC)


def broken(req: codec.DhcpMessage, kind: codec.MessageType, **changes: object) -> codec.DhcpMessage:
    """A reply to `req` from the good server's template, with options removed or changed."""
    msg = reply(kind, req, "10.0.0.50")
    for key, value in changes.items():
        if key == "drop":
            for opt in value:  # type: ignore[attr-defined]
                msg.options.pop(opt, None)
        elif key == "opts":
            msg.options.update(value)  # type: ignore[call-overload]
        else:
            setattr(msg, key, value)
    return msg


class TwoServers(FakeSock):
    """Every request is answered first by `rogue` replies, then by the good server."""

    def __init__(self, rogue: list[codec.DhcpMessage | None], good: FakeSock) -> None:
        super().__init__(lambda _req: None)
        self.rogue_for = rogue
        self.good = good

    def send(self, msg: codec.DhcpMessage, *, src: IPv4Address = IPv4Address(0),
             dst: IPv4Address = IPv4Address("255.255.255.255"),
             dst_mac: bytes = b"\xff" * 6) -> None:
        super().send(msg, src=src, dst=dst, dst_mac=dst_mac)
        for bad in self.rogue_list(msg):
            self.queue.put_nowait((bad, b"\x02" * 6))
        answer = self.good.script(msg)
        if answer is not None:
            self.queue.put_nowait((answer, b"\x02\x00\x00\x00\xaa\xaa"))

    def rogue_list(self, msg: codec.DhcpMessage) -> list[codec.DhcpMessage]:
        raise NotImplementedError


def good_server(req: codec.DhcpMessage) -> codec.DhcpMessage | None:
    if req.message_type is codec.MessageType.DISCOVER:
        return reply(codec.MessageType.OFFER, req, "10.0.0.50", t1=60, t2=90, lease=120)
    if req.message_type is codec.MessageType.REQUEST:
        ip = str(req.ciaddr) if req.ciaddr != IPv4Address(0) else "10.0.0.50"
        return reply(codec.MessageType.ACK, req, ip, t1=60, t2=90, lease=120)
    return None


def hostile_sock(make: list[tuple[codec.MessageType, dict[str, object]]]) -> FakeSock:
    """A socket on which every request first gets each broken reply in `make`."""
    class Sock(TwoServers):
        def rogue_list(self, msg: codec.DhcpMessage) -> list[codec.DhcpMessage]:
            return [broken(msg, kind, **changes) for kind, changes in make]

    return Sock([], FakeSock(good_server))


Broken = list[tuple[codec.MessageType, dict[str, object]]]

BROKEN_OFFERS: Broken = [
    (codec.MessageType.OFFER, {"drop": [54]}),
    (codec.MessageType.OFFER, {"yiaddr": IPv4Address(0)}),
    (codec.MessageType.OFFER, {"yiaddr": IPv4Address("127.0.0.5")}),
]
BROKEN_ACKS: Broken = [
    (codec.MessageType.ACK, {"drop": [54]}),
    (codec.MessageType.ACK, {"opts": {54: ROGUE.packed}}),
    (codec.MessageType.ACK, {"drop": [51]}),
    (codec.MessageType.ACK, {"opts": {51: (0).to_bytes(4, "big")}}),
    (codec.MessageType.ACK, {"opts": {1: IPv4Address("255.0.255.0").packed}}),
    (codec.MessageType.ACK, {"opts": {1: IPv4Address("0.0.0.0").packed}}),
    (codec.MessageType.ACK, {"yiaddr": IPv4Address("224.0.0.5")}),
    (codec.MessageType.ACK, {"yiaddr": IPv4Address("255.255.255.255")}),
    (codec.MessageType.NAK, {"drop": [54]}),
    (codec.MessageType.NAK, {"opts": {54: ROGUE.packed}}),
]


@pytest.mark.asyncio
async def test_acquire_ignores_broken_offers_and_acks_and_gets_the_good_lease() -> None:
    # Before: CodecError out of acquire() ("internal error" at CreateEndpoint).
    sock = hostile_sock([*BROKEN_OFFERS, *BROKEN_ACKS])
    stats = AcquireStats()
    lease = await acquire(sock, client_id=CID, hostname=None, timeout_s=5,  # type: ignore[arg-type]
                          timing=FAST, stats=stats)
    assert lease.address == IPv4Interface("10.0.0.50/24")
    assert lease.server_id == SERVER
    assert stats.dropped >= len(BROKEN_OFFERS) + len(BROKEN_ACKS)
    assert stats.naks == 0


@pytest.mark.asyncio
async def test_renewal_only_believes_the_lease_server_and_keeps_the_address() -> None:
    # Before: a NAK from any server (or none named) sent the keeper to INIT, and an ACK
    # without option 54 killed it.
    sock = hostile_sock(BROKEN_ACKS)
    h = Harness(good_server, a_lease(t1=0.05, t2=2, lease=3))
    h.sock = sock
    h.keeper.sock = sock  # type: ignore[assignment]
    await h.run_until(lambda: h.keeper.renewals >= 1)
    assert h.keeper.lease.address == IPv4Interface("10.0.0.50/24")
    assert h.keeper.lease.server_id == SERVER
    assert h.unapplied == []
    assert h.keeper.failures == 0


@pytest.mark.asyncio
async def test_renewal_without_a_mask_keeps_the_prefix_and_is_no_address_change() -> None:
    # Before: the missing option 1 made /24 a classful /8 and counted as a new address.
    def script(req: codec.DhcpMessage) -> codec.DhcpMessage | None:
        msg = reply(codec.MessageType.ACK, req, str(req.ciaddr), t1=60, t2=90, lease=120)
        msg.options.pop(1)
        return msg

    h = Harness(script, a_lease(t1=0.05, t2=2, lease=3))
    await h.run_until(lambda: bool(h.leases))
    assert h.leases[0].address == IPv4Interface("10.0.0.50/24")
    assert h.applied == []


@pytest.mark.asyncio
async def test_nak_removes_the_refused_address_before_asking_again() -> None:
    # Before: the refused address stayed on the interface through INIT (RFC 2131 4.4.5).
    order: list[str] = []

    def script(req: codec.DhcpMessage) -> codec.DhcpMessage | None:
        if req.message_type is codec.MessageType.REQUEST and req.ciaddr != IPv4Address(0):
            return reply(codec.MessageType.NAK, req, "0.0.0.0")
        if req.message_type is codec.MessageType.DISCOVER:
            order.append("discover")
            return reply(codec.MessageType.OFFER, req, "10.0.0.77", t1=60, t2=90, lease=120)
        return reply(codec.MessageType.ACK, req, "10.0.0.77", t1=60, t2=90, lease=120)

    h = Harness(script, a_lease(t1=0.05))
    real_unapply = h.unapply

    async def unapply(old: Lease) -> None:
        order.append("unapply")
        await real_unapply(old)

    h.keeper._unapply = unapply
    await h.run_until(lambda: bool(h.applied))
    assert order[:2] == ["unapply", "discover"]
    assert h.unapplied[0].address == IPv4Interface("10.0.0.50/24")


@pytest.mark.asyncio
async def test_a_failing_store_or_apply_never_ends_the_keeper() -> None:
    # Before: "database or disk is full" in on_lease ended the keeper for good.
    h = Harness(good_server, a_lease(t1=0.05, t2=2, lease=3))
    calls: list[Lease] = []

    def full_disk(lease: Lease) -> None:
        calls.append(lease)
        h.changed.set()
        if len(calls) < 3:
            raise OSError(28, "database or disk is full")

    h.keeper._on_lease = full_disk
    await h.run_until(lambda: len(calls) >= 3)
    assert h.keeper._unstored is None  # stored at last, by the retry from BOUND
    assert h.keeper.lease.address == IPv4Interface("10.0.0.50/24")


@pytest.mark.asyncio
async def test_every_address_in_use_is_declined_at_a_bounded_rate() -> None:
    # Before: ~30 DECLINEs a second with a proxy-ARP router, logged as "no server answering".
    async def always_in_use(_ip: IPv4Address) -> bool:
        return True

    sock = FakeSock(good_server)
    timing = Timing(acquire_first_retry_s=0.05, acquire_max_retry_s=0.1, decline_retry_s=0.4,
                    conflict_rate_limit_s=5.0)
    stats = AcquireStats()
    started = time.monotonic()
    with pytest.raises(LeaseError, match="declined"):
        await acquire(sock, client_id=CID, hostname=None, timeout_s=1.5,  # type: ignore[arg-type]
                      probe=always_in_use, timing=timing, stats=stats)
    elapsed = time.monotonic() - started
    declines = [m for m, *_ in sock.sent if m.message_type is codec.MessageType.DECLINE]
    # One decline retried at once, then one per decline_retry_s: 3 or 4 in 1.5 s, not 45.
    assert 2 <= len(declines) <= 1 + elapsed / 0.4 + 1
    assert stats.declined


@pytest.mark.asyncio
async def test_keeper_waits_after_declines_in_init() -> None:
    async def always_in_use(_ip: IPv4Address) -> bool:
        return True

    def script(req: codec.DhcpMessage) -> codec.DhcpMessage | None:
        if req.message_type is codec.MessageType.REQUEST and req.ciaddr != IPv4Address(0):
            return reply(codec.MessageType.NAK, req, "0.0.0.0")
        return good_server(req)

    timing = Timing(renew_retry_min_s=0.05, renew_retry_max_s=0.1, init_first_retry_s=0.05,
                    init_max_retry_s=0.1, decline_retry_s=0.5, conflict_rate_limit_s=5.0)
    h = Harness(script, a_lease(t1=0.01))
    h.keeper._probe = always_in_use
    h.keeper._timing = timing
    h.keeper._conflicts._timing = timing
    task = asyncio.create_task(h.keeper.run())
    await asyncio.sleep(1.2)  # a rate is measured over a fixed window
    task.cancel()
    await asyncio.wait({task}, timeout=1.0)
    declines = [m for m, *_ in h.sock.sent if m.message_type is codec.MessageType.DECLINE]
    assert 1 <= len(declines) <= 4


@pytest.mark.parametrize(("change", "why"), [
    ({"yiaddr": IPv4Address(0)}, "not a usable host address"),
    ({"yiaddr": IPv4Address("127.1.2.3")}, "not a usable host address"),
    ({"yiaddr": IPv4Address("239.1.1.1")}, "not a usable host address"),
    ({"yiaddr": IPv4Address("255.255.255.255")}, "not a usable host address"),
    ({"yiaddr": IPv4Address("10.0.0.255")}, "broadcast"),
    ({"opts": {1: IPv4Address("255.0.255.0").packed}}, "not contiguous"),
    ({"opts": {1: IPv4Address("0.0.0.0").packed}}, "0.0.0.0"),
    ({"opts": {1: b"\xff\xff"}}, "not 4"),
    ({"drop": [51]}, "no lease time"),
    ({"opts": {51: (0).to_bytes(4, "big")}}, "lease time of 0"),
    ({"drop": [54]}, "server identifier"),
    ({"yiaddr": SERVER}, "the server's own address"),
])
def test_unusable_acks_are_rejected_with_a_reason(change: dict[str, object], why: str) -> None:
    # Before: each of these was applied (or became an infinite or /0 lease).
    req = codec.discover(xid=1, chaddr=MAC, client_id=CID)
    ack = broken(req, codec.MessageType.ACK, **change)
    with pytest.raises(DhcpReplyError, match=why):
        Lease.from_ack(ack, server_mac=b"\x02" * 6, sent_at=0.0)


def test_off_link_router_and_routes_are_dropped_from_a_lease() -> None:
    # Before: a renewal could bring an off-link next hop, and applying it failed ENETUNREACH.
    req = codec.discover(xid=1, chaddr=MAC, client_id=CID)
    ack = broken(req, codec.MessageType.ACK, opts={
        3: IPv4Address("192.168.9.1").packed,
        33: IPv4Address("10.9.0.1").packed + IPv4Address("172.16.0.1").packed})
    lease = Lease.from_ack(ack, server_mac=b"\x02" * 6, sent_at=0.0)
    assert lease.gateway is None
    assert lease.routes == ()


def test_unusable_router_and_dns_servers_are_dropped_from_a_lease() -> None:
    # Found by the decoder fuzz: the subnet's broadcast address as the router, and
    # 0.0.0.0 / 255.255.255.255 as DNS servers, were kept.
    req = codec.discover(xid=1, chaddr=MAC, client_id=CID)
    ack = broken(req, codec.MessageType.ACK, opts={
        3: IPv4Address("10.0.0.255").packed,
        6: IPv4Address(0).packed + IPv4Address("255.255.255.255").packed
        + IPv4Address("10.0.0.53").packed})
    lease = Lease.from_ack(ack, server_mac=b"\x02" * 6, sent_at=0.0)
    assert lease.gateway is None
    assert lease.dns == (IPv4Address("10.0.0.53"),)


@pytest.mark.parametrize("named", ["0.0.0.0", "127.0.0.1", "255.255.255.255", "224.0.0.1"])
def test_a_nak_naming_no_host_as_its_server_is_ignored(named: str) -> None:
    # Found by the decoder fuzz: while rebinding (any server), such a NAK was believed.
    req = codec.discover(xid=1, chaddr=MAC, client_id=CID)
    nak = broken(req, codec.MessageType.NAK, opts={54: IPv4Address(named).packed})
    stats = AcquireStats()
    judge = judge_reply(ifname="t0", server=None, sent_at=0.0, hostname=None, previous=None,
                        stats=stats)
    assert judge(nak, b"\x02" * 6) is None
    assert stats.dropped == 1
    assert "not a host address" in (stats.last_drop_reason or "")


def test_infinite_lease_stays_infinite() -> None:
    req = codec.discover(xid=1, chaddr=MAC, client_id=CID)
    ack = broken(req, codec.MessageType.ACK, opts={51: (0xFFFFFFFF).to_bytes(4, "big")})
    lease = Lease.from_ack(ack, server_mac=b"\x02" * 6, sent_at=0.0)
    assert lease.lease_time_s == 0xFFFFFFFF


def test_state_machine_refuses_illegal_moves() -> None:
    fsm = Machine("t", State.BOUND)
    with pytest.raises(IllegalTransition):
        fsm.move(State.SELECTING)
    fsm.move(State.RENEWING)
    fsm.move(State.STOPPED)
    with pytest.raises(IllegalTransition):
        fsm.move(State.INIT)


def test_recovered_lease_starts_in_rebinding() -> None:
    lease = a_lease()
    recovered = Lease(**{**lease.__dict__, "server_id": IPv4Address(0)})
    h = Harness(good_server, recovered)
    assert h.keeper.state is State.REBINDING
