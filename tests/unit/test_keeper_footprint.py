"""What one running container costs the plugin while its lease is kept, and that the lean
forms keep their behaviour: the keeper's sleep (woken by set_hostname), the reply queue of
the sockets (Replies), renewals that share what did not change, and their log level.

bench/inprocess_scale.py measures the whole plugin; these pin the parts that every
container pays for as long as it runs.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import socket
import tracemalloc
from ipaddress import IPv4Interface

import pytest

from net_dhcp.dhcp4 import codec
from net_dhcp.dhcp4.keeper import LeaseKeeper
from net_dhcp.dhcp4.lease import Lease
from net_dhcp.dhcp4.sockets import DhcpSocket, Replies
from net_dhcp.dhcp4.timing import Timing
from tests.unit.test_keeper import MAC, FakeSock, Harness, a_lease, reply, requests

KEEPERS = 100
SLEEPING_KEEPER_MAX_BYTES = 3 * 1024
"""A keeper asleep in BOUND, its task and the frames of its wait: about 2 KiB (Python
3.11). It was 6.8 KiB with a SystemRandom (a 2.5 KiB Mersenne Twister state) and an
asyncio.Event per keeper and a timeout context in a helper coroutine."""
EMPTY_QUEUE_MAX_BYTES = 256
"""A started socket's queue with nothing in it (an asyncio.Queue is about 3 KiB)."""


def _ack(req: codec.DhcpMessage) -> codec.DhcpMessage:
    return reply(codec.MessageType.ACK, req, str(req.ciaddr), t1=60, t2=90, lease=120)


def _keeper(sock: FakeSock, lease: Lease) -> LeaseKeeper:
    async def apply(_old: Lease | None, _new: Lease) -> None:
        return None

    async def unapply(_old: Lease) -> None:
        return None

    return LeaseKeeper("endpoint 0123456789ab", sock, lease,  # type: ignore[arg-type]
                       client_id=codec.client_id_for_mac(MAC), hostname=None, apply=apply,
                       unapply=unapply, on_lease=lambda _lease: None, timing=Timing())


@pytest.mark.asyncio
async def test_a_sleeping_keeper_is_small() -> None:
    sock = FakeSock(lambda _req: None)
    leases = [a_lease(t1=60, t2=90, lease=120) for _ in range(KEEPERS)]
    gc.collect()
    tracemalloc.start()
    try:
        keepers = [_keeper(sock, lease) for lease in leases]
        tasks = [asyncio.create_task(k.run()) for k in keepers]
        for _ in range(5):
            await asyncio.sleep(0)  # every keeper reaches its sleep until T1
        gc.collect()
        per_keeper = tracemalloc.get_traced_memory()[0] / KEEPERS
    finally:
        tracemalloc.stop()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    assert not sock.sent, "a keeper asked before T1"
    assert per_keeper <= SLEEPING_KEEPER_MAX_BYTES, \
        f"a sleeping keeper costs {per_keeper:.0f} bytes (at most {SLEEPING_KEEPER_MAX_BYTES})"


@pytest.mark.asyncio
async def test_set_hostname_wakes_a_sleeping_keeper_at_once() -> None:
    h = Harness(_ack, a_lease(t1=60, t2=90, lease=120))
    task = asyncio.create_task(h.keeper.run())
    try:
        await asyncio.sleep(0.05)
        assert requests(h.sock.sent) == []  # asleep until T1, a minute away
        h.keeper.set_hostname("web2")
        async with asyncio.timeout(2):
            while not h.leases:
                await asyncio.sleep(0.01)
        assert requests(h.sock.sent)[0][0].host_name == "web2"
        assert h.leases[0].hostname_sent == "web2"
        # Back asleep, and a second new name wakes it again.
        h.keeper.set_hostname("web3")
        async with asyncio.timeout(2):
            while len(h.leases) < 2:
                await asyncio.sleep(0.01)
        assert requests(h.sock.sent)[-1][0].host_name == "web3"
    finally:
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=1.0)
    assert done, "the keeper did not stop when cancelled"


@pytest.mark.asyncio
async def test_routine_renewals_share_the_lease_and_log_at_debug(
        caplog: pytest.LogCaptureFixture) -> None:
    def script(req: codec.DhcpMessage) -> codec.DhcpMessage:
        return reply(codec.MessageType.ACK, req, str(req.ciaddr))  # T1 1 s, lease 4 s

    first = a_lease(t1=0.05, t2=2, lease=4)
    h = Harness(script, first)
    caplog.set_level(logging.DEBUG, logger="net_dhcp.dhcp4.keeper")
    await h.run_until(lambda: len(h.leases) >= 1, bound=3.0)
    lease = h.keeper.lease
    assert lease.address is first.address  # the same address objects, not copies
    assert lease.server_id is first.server_id
    assert lease.gateway is first.gateway
    assert h.applied == []
    assert h.keeper._applied is lease, "the lease it replaced is still referenced"
    renewed = [r for r in caplog.records if "renewed for" in r.getMessage()]
    assert renewed
    # Its T1 changed (0.05 s to 1 s): worth INFO. The same terms again would be DEBUG.
    assert renewed[0].levelno == logging.INFO
    assert h.keeper._renewal_level(lease, lease) == logging.DEBUG
    moved = Lease(**{**lease.__dict__, "address": IPv4Interface("10.0.0.77/24")})
    assert h.keeper._renewal_level(lease, moved) == logging.INFO


# -- Replies: the sockets' queue ---------------------------------------------------------------


@pytest.mark.asyncio
async def test_replies_is_a_bounded_fifo_that_frees_its_list_when_empty() -> None:
    q: Replies[int] = Replies(3)
    assert q.empty()
    assert q.qsize() == 0
    assert not q.full()
    for i in range(3):
        q.put_nowait(i)
    assert q.full()
    with pytest.raises(asyncio.QueueFull):
        q.put_nowait(3)
    q.get_nowait()  # the oldest goes, as DhcpSocket._on_packet makes room
    q.put_nowait(3)
    assert [await q.get() for _ in range(3)] == [1, 2, 3]
    assert q._items is None
    with pytest.raises(asyncio.QueueEmpty):
        q.get_nowait()


@pytest.mark.asyncio
async def test_replies_wakes_waiting_readers_and_survives_a_cancelled_one() -> None:
    q: Replies[str] = Replies(8)
    first = asyncio.create_task(q.get())
    second = asyncio.create_task(q.get())
    cancelled = asyncio.create_task(q.get())
    await asyncio.sleep(0)
    cancelled.cancel()
    await asyncio.sleep(0)
    assert cancelled.cancelled()
    q.put_nowait("a")
    q.put_nowait("b")
    assert sorted(await asyncio.wait_for(asyncio.gather(first, second), 1)) == ["a", "b"]
    assert q._waiters is None
    assert q.empty()
    # A reply that comes while nobody waits is kept for the next reader.
    q.put_nowait("c")
    assert await asyncio.wait_for(q.get(), 1) == "c"


def test_a_reply_queue_is_small() -> None:
    gc.collect()
    tracemalloc.start()
    try:
        queues = [Replies[int](64) for _ in range(KEEPERS)]
        per_queue = tracemalloc.get_traced_memory()[0] / len(queues)
    finally:
        tracemalloc.stop()
    assert per_queue <= EMPTY_QUEUE_MAX_BYTES, f"{per_queue:.0f} bytes"


@pytest.mark.asyncio
async def test_a_started_socket_queues_in_replies() -> None:
    a, b = socket.socketpair()
    a.setblocking(False)
    sock = object.__new__(DhcpSocket)
    sock.ifname, sock.ifindex, sock.mac = "t0", 1, MAC
    sock._pkt, sock._sink, sock._queue, sock._loop = a, None, None, None
    try:
        sock.start()
        queue = sock._queue
        assert isinstance(queue, Replies)
        b.send(b"not a DHCP packet")  # read, dropped, nothing queued
        await asyncio.sleep(0.05)
        assert queue.empty()
    finally:
        sock.close()
        b.close()
