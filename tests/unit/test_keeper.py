"""LeaseKeeper against a scripted DHCP server: RFC 2131 4.4.5 behaviour, no network.

Time is real but shrunk: leases here last a few hundred milliseconds.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from ipaddress import IPv4Address, IPv4Interface

import pytest

from net_dhcp.dhcp4 import codec
from net_dhcp.dhcp4.fsm import State
from net_dhcp.dhcp4.keeper import LeaseKeeper
from net_dhcp.dhcp4.lease import Lease
from net_dhcp.dhcp4.sockets import BROADCAST_MAC
from net_dhcp.dhcp4.timing import Timing

MAC = bytes.fromhex("020000000001")
SERVER = IPv4Address("10.0.0.1")
SERVER_MAC = bytes.fromhex("02000000aaaa")
FAST = Timing(renew_retry_min_s=0.05, renew_retry_max_s=0.1, init_first_retry_s=0.05,
              init_max_retry_s=0.1, acquire_first_retry_s=0.05, acquire_max_retry_s=0.1)

Sent = tuple[codec.DhcpMessage, IPv4Address, IPv4Address, bytes]
Script = Callable[[codec.DhcpMessage], codec.DhcpMessage | None]


class FakeSock:
    """Stands in for DhcpSocket: records what is sent, answers through a script."""

    def __init__(self, script: Script) -> None:
        self.mac = MAC
        self.ifname = "fake0"
        self.sent: list[Sent] = []
        self.script = script
        self.queue: asyncio.Queue[tuple[codec.DhcpMessage, bytes]] = asyncio.Queue()

    def send(self, msg: codec.DhcpMessage, *, src: IPv4Address = IPv4Address(0),
             dst: IPv4Address = IPv4Address("255.255.255.255"),
             dst_mac: bytes = BROADCAST_MAC) -> None:
        self.sent.append((msg, src, dst, dst_mac))
        reply = self.script(msg)
        if reply is not None:
            self.queue.put_nowait((reply, SERVER_MAC))

    async def recv(self) -> tuple[codec.DhcpMessage, bytes]:
        return await self.queue.get()

    def drain(self) -> None:
        while not self.queue.empty():
            self.queue.get_nowait()


def reply(kind: codec.MessageType, req: codec.DhcpMessage, ip: str, *, t1: int = 1, t2: int = 2,
          lease: int = 4) -> codec.DhcpMessage:
    opts = {53: bytes([kind]), 54: SERVER.packed}
    if kind is not codec.MessageType.NAK:
        opts.update({51: lease.to_bytes(4, "big"), 58: t1.to_bytes(4, "big"),
                     59: t2.to_bytes(4, "big"), 1: IPv4Address("255.255.255.0").packed,
                     3: SERVER.packed})
    return codec.DhcpMessage(op=2, xid=req.xid, chaddr=req.chaddr,
                             yiaddr=IPv4Address(ip if kind is not codec.MessageType.NAK else 0),
                             options=opts)


def a_lease(ip: str = "10.0.0.50", *, t1: float = 0.2, t2: float = 0.35,
            lease: float = 0.6) -> Lease:
    return Lease(address=IPv4Interface(f"{ip}/24"), server_id=SERVER, server_mac=SERVER_MAC,
                 gateway=SERVER, routes=(), dns=(), domain=None, lease_time_s=lease, t1_s=t1,
                 t2_s=t2, obtained_at=time.time())


class Harness:
    def __init__(self, script: Script, lease: Lease, hostname: str | None = None) -> None:
        self.sock = FakeSock(script)
        self.applied: list[tuple[Lease | None, Lease]] = []
        self.unapplied: list[Lease] = []
        self.leases: list[Lease] = []
        self.changed = asyncio.Event()
        self.keeper = LeaseKeeper("t", self.sock, lease,  # type: ignore[arg-type]
                                  client_id=codec.client_id_for_mac(MAC), hostname=hostname,
                                  apply=self.apply, unapply=self.unapply,
                                  on_lease=self.on_lease, timing=FAST)

    async def apply(self, old: Lease | None, new: Lease) -> None:
        self.applied.append((old, new))

    async def unapply(self, old: Lease) -> None:
        self.unapplied.append(old)
        self.changed.set()

    def on_lease(self, lease: Lease) -> None:
        self.leases.append(lease)
        self.changed.set()

    async def run_until(self, cond: Callable[[], bool], bound: float = 5.0) -> None:
        task = asyncio.create_task(self.keeper.run())
        try:
            async with asyncio.timeout(bound):
                while not cond():
                    self.changed.clear()
                    await self.changed.wait()
        finally:
            task.cancel()
            done, _ = await asyncio.wait({task}, timeout=1.0)
            assert done, "the keeper did not stop when cancelled"


def requests(sent: list[Sent]) -> list[Sent]:
    return [s for s in sent if s[0].message_type is codec.MessageType.REQUEST]


@pytest.mark.asyncio
async def test_renewal_is_an_rfc_2131_renewing_request_unicast_to_the_server() -> None:
    def script(req: codec.DhcpMessage) -> codec.DhcpMessage | None:
        return reply(codec.MessageType.ACK, req, str(req.ciaddr))

    h = Harness(script, a_lease())
    await h.run_until(lambda: len(h.leases) >= 2)
    msg, src, dst, dst_mac = requests(h.sock.sent)[0]
    assert msg.ciaddr == IPv4Address("10.0.0.50")
    assert codec.Opt.SERVER_ID not in msg.options
    assert codec.Opt.REQUESTED_IP not in msg.options
    assert (src, dst, dst_mac) == (IPv4Address("10.0.0.50"), SERVER, SERVER_MAC)
    assert all(lease.address == IPv4Interface("10.0.0.50/24") for lease in h.leases)
    assert h.applied == []  # nothing changed, nothing re-applied
    assert h.keeper.renewals >= 2


@pytest.mark.asyncio
async def test_unanswered_renewal_rebinds_by_broadcast_after_t2() -> None:
    def script(req: codec.DhcpMessage) -> codec.DhcpMessage | None:
        return None

    h = Harness(script, a_lease())
    await h.run_until(lambda: bool(h.unapplied))
    reqs = requests(h.sock.sent)
    unicast = [r for r in reqs if r[2] == SERVER]
    broadcast = [r for r in reqs if r[2] == IPv4Address("255.255.255.255")]
    assert unicast
    assert broadcast
    assert reqs.index(broadcast[0]) > reqs.index(unicast[-1])
    assert all(r[0].ciaddr == IPv4Address("10.0.0.50") for r in reqs)
    # Retransmissions are bounded by Timing, not a tight loop: a 0.6 s lease sends few.
    assert len(reqs) < 20
    # Past expiry the address is removed and the keeper looks for a new lease.
    assert h.unapplied[0].address == IPv4Interface("10.0.0.50/24")


@pytest.mark.asyncio
async def test_nak_leads_to_a_new_address_applied_in_place() -> None:
    def script(req: codec.DhcpMessage) -> codec.DhcpMessage | None:
        if req.message_type is codec.MessageType.REQUEST and req.ciaddr != IPv4Address(0):
            return reply(codec.MessageType.NAK, req, "0.0.0.0")
        if req.message_type is codec.MessageType.DISCOVER:
            return reply(codec.MessageType.OFFER, req, "10.0.0.77", t1=60, t2=90, lease=120)
        return reply(codec.MessageType.ACK, req, "10.0.0.77", t1=60, t2=90, lease=120)

    h = Harness(script, a_lease())
    await h.run_until(lambda: bool(h.applied))
    old, new = h.applied[0]
    assert old is not None
    assert old.address == IPv4Interface("10.0.0.50/24")
    assert new.address == IPv4Interface("10.0.0.77/24")
    assert h.keeper.lease.address == new.address
    assert h.keeper.state is State.STOPPED


@pytest.mark.asyncio
async def test_known_hostname_is_sent_at_once() -> None:
    def script(req: codec.DhcpMessage) -> codec.DhcpMessage | None:
        return reply(codec.MessageType.ACK, req, str(req.ciaddr), t1=60, t2=90, lease=120)

    h = Harness(script, a_lease(t1=60, t2=90, lease=120), hostname="web1")
    await h.run_until(lambda: bool(h.leases), bound=2.0)
    msg = requests(h.sock.sent)[0][0]
    assert msg.host_name == "web1"
    assert h.leases[0].hostname_sent == "web1"


@pytest.mark.asyncio
async def test_cancel_racing_with_replies_always_stops_the_keeper() -> None:
    # Every REQUEST is answered at once by a reply for another xid: the keeper keeps
    # receiving. Cancellation must still win every time (asyncio.wait_for on 3.11 lost it).
    def script(req: codec.DhcpMessage) -> codec.DhcpMessage | None:
        other = reply(codec.MessageType.ACK, req, "10.0.0.9")
        other.xid ^= 1
        return other

    for steps in range(1, 40):  # cancel at every point of the loop's first iterations
        h = Harness(script, a_lease(t1=0, t2=5, lease=10))
        task = asyncio.create_task(h.keeper.run())
        for _ in range(steps):
            await asyncio.sleep(0)
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=1.0)
        assert done
