"""DHCPv4 exchanges: acquire a lease (INIT..REQUESTING), judge replies, release.

Acquiring asks for Rapid Commit (RFC 4039): a server that supports it answers the DISCOVER
with a DHCPACK at once (two messages instead of four); any other server just offers.

All of it runs on the plugin's one event loop; sockets come from sockets.py and were
opened inside the right namespace. Time and randomness are injected (Timing, rng).

Every reply is judged before it is believed: a malformed or unusable one, or one from a
server that may not answer in the current state, is dropped with a log line and the client
goes on waiting for a valid reply.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from ipaddress import IPv4Address
from typing import TypeVar

from ..errors import DhcpReplyError, LeaseError
from ..text import printable
from . import codec
from .fsm import Machine, State
from .lease import Lease, check_host_address, is_host_address
from .sockets import BROADCAST_MAC, DhcpSocket
from .timing import MAX_CONFLICTS, Timing

LOG = logging.getLogger(__name__)
T = TypeVar("T")

# How many addresses one container start may decline before it gives up.
MAX_DECLINES = 4
# Declines a container start retries at once: the server will not offer a declined
# address again, and the container is not using anything yet. Later ones wait.
QUICK_DECLINES_AT_START = 1
NAK_MESSAGE_LIMIT = 200
# Option 56 of a DHCPDECLINE for an address the conflict probe found taken.
PROBE_DECLINE_MESSAGE = "address in use (RFC 5227 probe)"


@dataclass
class AcquireStats:
    """What one acquire attempt saw; feeds the no-lease diagnosis and the log."""

    discovers: int = 0
    offers: int = 0
    requests: int = 0
    naks: int = 0
    declined: list[IPv4Address] = field(default_factory=list)
    last_nak_message: str | None = None
    dropped: int = 0
    last_drop_reason: str | None = None
    rapid_acks: int = 0
    """Usable DHCPACKs with Rapid Commit (RFC 4039) taken in answer to a DISCOVER."""
    rapid_commit: bool = False
    """The lease acquire() returned came in a Rapid Commit ACK: two messages, not four."""

    def drop(self, reason: str) -> None:
        """Count a reply that was ignored, and why."""
        self.dropped += 1
        self.last_drop_reason = reason

    def summary(self) -> str:
        """One line saying what really happened, for a log."""
        parts = [f"{self.discovers} DISCOVER(s), {self.offers} usable offer(s)"]
        if self.rapid_acks:
            parts.append(f"{self.rapid_acks} Rapid Commit ACK(s)")
        if self.naks:
            parts.append(f"{self.naks} NAK(s) ({self.last_nak_message or 'no reason given'})")
        if self.declined:
            parts.append("declined " + ", ".join(str(a) for a in self.declined)
                         + " (in use on the LAN)")
        if self.dropped:
            parts.append(f"ignored {self.dropped} unusable repl(ies) "
                         f"(last: {self.last_drop_reason})")
        return "; ".join(parts)


@dataclass(frozen=True)
class Nak:
    """A DHCPNAK from a server allowed to send it; `message` is already made printable."""

    server_id: IPv4Address
    message: str | None


Probe = Callable[[IPv4Address], Awaitable[bool]]
"""Returns True if another host already uses the address (RFC 5227 conflict)."""
Judge = Callable[[codec.DhcpMessage, bytes], T | None]
"""Turns a reply into what the caller wants, or None (dropped); never raises."""


class ConflictLimiter:
    """RFC 2131 3.1 and RFC 5227 2.1.1: when the next DISCOVER may go after a decline.

    `quick` declines are retried at once; then DECLINE_RETRY_S between attempts, and after
    MAX_CONFLICTS conflicts in a row, one attempt per CONFLICT_RATE_LIMIT_S.
    """

    def __init__(self, timing: Timing, quick: int = 0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._timing = timing
        self._quick = quick
        self._clock = clock
        self._not_before = 0.0
        self.conflicts = 0

    def declined(self) -> float:
        """Record one more conflict; returns the wait it imposes before the next DISCOVER."""
        self.conflicts += 1
        if self.conflicts <= self._quick:
            delay = 0.0
        elif self.conflicts >= MAX_CONFLICTS:
            delay = self._timing.conflict_rate_limit_s
        else:
            delay = self._timing.decline_retry_s
        self._not_before = self._clock() + delay
        return delay

    def wait_s(self) -> float:
        """How long from now until the next DISCOVER may go."""
        return max(0.0, self._not_before - self._clock())

    def reset(self) -> None:
        """A lease was bound: the conflicts are over."""
        self.conflicts = 0
        self._not_before = 0.0


async def _queued_reply(sock: DhcpSocket, xid: int, judge: Judge[T]) -> T | None:
    """The first reply with this xid already received that `judge` accepts; never waits."""
    return await wait_reply(sock, xid, 0.0, judge)


async def wait_reply(sock: DhcpSocket, xid: int, timeout: float, judge: Judge[T]) -> T | None:
    """The first reply with this xid that `judge` accepts within `timeout`, else None.
    With no time left, only replies already received count (none is waited for)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + max(timeout, 0.0)
    while True:
        # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a
        # cancellation that races with the reply, and a keeper would then never stop.
        # A deadline already passed still hands over a queued reply: recv() returns it
        # without suspending, and times out at the loop's next turn when none is queued.
        try:
            async with asyncio.timeout(max(deadline - loop.time(), 0.0)):
                msg, mac = await sock.recv()
        except TimeoutError:
            return None
        if msg.xid != xid:
            continue
        accepted = judge(msg, mac)
        if accepted is not None:
            return accepted


def _backoff(first: float, maximum: float, rng: random.Random) -> list[float]:
    """RFC 2131 4.1 style exponential delays with +-0.5 s jitter, positive."""
    out: list[float] = []
    delay = first
    while delay < maximum * 2 and len(out) < 32:
        out.append(max(0.2, min(delay, maximum) + rng.uniform(-0.5, 0.5) * min(1.0, delay / 4)))
        delay *= 2
    return out


def _judge_offer(stats: AcquireStats, ifname: str) -> Judge[codec.DhcpMessage]:
    def judge(msg: codec.DhcpMessage, _mac: bytes) -> codec.DhcpMessage | None:
        if msg.message_type is not codec.MessageType.OFFER:
            return None
        try:
            if msg.server_id is None:
                raise DhcpReplyError("OFFER carries no server identifier (option 54)")
            check_host_address(msg.server_id, "server identifier")
            check_host_address(msg.yiaddr)
        except DhcpReplyError as err:
            stats.drop(str(err))
            LOG.debug("%s: ignoring an OFFER: %s", ifname, err)
            return None
        return msg
    return judge


def _judge_rapid_ack(stats: AcquireStats, ifname: str, *, asked: bool, sent_at: float,
                     hostname: str | None) -> Judge[Lease]:
    """RFC 4039: a DHCPACK to a DISCOVER is the lease only if the DISCOVER asked for Rapid
    Commit and the ACK carries option 80; it must then pass every check of an ACK to a
    REQUEST (judge_reply), from any server, since no offer was chosen."""
    as_ack = judge_reply(ifname=ifname, server=None, sent_at=sent_at, hostname=hostname,
                         previous=None, stats=stats)

    def judge(msg: codec.DhcpMessage, mac: bytes) -> Lease | None:
        if msg.message_type is not codec.MessageType.ACK:
            return None
        value = msg.options.get(codec.Opt.RAPID_COMMIT)
        reason: str | None = None
        if not asked:
            reason = "ACK to a DISCOVER that did not ask for Rapid Commit"
        elif value is None:
            reason = "ACK to a DISCOVER without Rapid Commit (option 80, RFC 4039)"
        elif not msg.rapid_commit:
            reason = f"ACK whose Rapid Commit option has {len(value)} octets, 0 expected"
        if reason is not None:
            stats.drop(reason)
            LOG.info("%s: ignoring a reply: %s", ifname, reason)
            return None
        lease = as_ack(msg, mac)
        if not isinstance(lease, Lease):
            return None
        stats.rapid_acks += 1
        return lease
    return judge


def judge_reply(*, ifname: str, server: IPv4Address | None, sent_at: float,
                hostname: str | None, previous: Lease | None,
                stats: AcquireStats) -> Judge[Lease | Nak]:
    """Accept an ACK that makes a usable lease, or a NAK, from `server` (None: any server).

    A NAK must name its server (RFC 2131 table 3): an anonymous one could come from
    anyone and must not cost a container its address.
    """
    def judge(msg: codec.DhcpMessage, mac: bytes) -> Lease | Nak | None:
        kind = msg.message_type
        if kind not in (codec.MessageType.ACK, codec.MessageType.NAK):
            return None
        reason: str | None = None
        if msg.server_id is None:
            reason = f"{kind.name} carries no server identifier (option 54)"
        elif not is_host_address(msg.server_id):
            reason = f"{kind.name} names {msg.server_id} as its server, not a host address"
        elif server is not None and msg.server_id != server:
            reason = f"{kind.name} from {msg.server_id}, not from our server {server}"
        if reason is None and kind is codec.MessageType.NAK:
            assert msg.server_id is not None
            text = msg.error_message  # option 56: the server's words, shown to the user
            return Nak(msg.server_id, printable(text, NAK_MESSAGE_LIMIT) if text else None)
        if reason is None:
            try:
                return Lease.from_ack(msg, server_mac=mac, sent_at=sent_at,
                                      hostname=hostname, previous=previous)
            except DhcpReplyError as err:
                reason = f"unusable ACK from {msg.server_id}: {err}"
        stats.drop(reason)
        LOG.info("%s: ignoring a reply: %s", ifname, reason)
        return None
    return judge


@dataclass(frozen=True)
class _Retries:
    """One acquire's retransmission schedule (RFC 2131 4.1) and its deadline (loop time)."""

    first: float
    maximum: float
    deadline: float
    rng: random.Random

    async def send_until(self, sock: DhcpSocket, msg: codec.DhcpMessage, judge: Judge[T],
                         count: Callable[[], None]) -> T | None:
        """Send `msg` with backoff until `judge` accepts a reply, the backoff runs out or
        the deadline passes; `count` is called for each transmission."""
        loop = asyncio.get_running_loop()
        for delay in _backoff(self.first, self.maximum, self.rng):
            sock.send(msg)
            count()
            got = await wait_reply(sock, msg.xid, min(delay, self.deadline - loop.time()),
                                   judge)
            if got is not None:
                return got
            if loop.time() >= self.deadline:
                break
        return None


async def acquire(
    sock: DhcpSocket,
    *,
    client_id: bytes,
    hostname: str | None,
    timeout_s: float,
    probe: Probe | None = None,
    timing: Timing = Timing(),
    rng: random.Random | None = None,
    stats: AcquireStats | None = None,
    first_retry_s: float | None = None,
    max_retry_s: float | None = None,
    fsm: Machine | None = None,
    conflicts: ConflictLimiter | None = None,
    max_declines: int = MAX_DECLINES,
    rapid_commit: bool = True,
    requested_ip: IPv4Address | None = None,
) -> Lease:
    """DISCOVER..ACK within `timeout_s`, probing and declining conflicting addresses.

    `requested_ip` goes into every DISCOVER as option 50 (RFC 2131 4.4.1: the client may
    suggest an address); the server decides, and what it offers is taken.

    With `rapid_commit` each DISCOVER carries option 80 (RFC 4039), and a DHCPACK to it
    that carries option 80 too is the lease, judged, probed and declined like any other
    ACK; a server that only offers gets the usual REQUEST. `stats.rapid_commit` tells
    which way the lease came. Leaves `fsm` (default: a fresh one) in REQUESTING on
    success; the caller binds.
    """
    rng = rng or random.SystemRandom()  # unpredictable xids: harder to spoof a reply
    stats = stats if stats is not None else AcquireStats()
    fsm = fsm or Machine(sock.ifname)
    conflicts = conflicts or ConflictLimiter(timing, QUICK_DECLINES_AT_START)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    retries = _Retries(first_retry_s if first_retry_s is not None
                       else timing.acquire_first_retry_s,
                       max_retry_s if max_retry_s is not None else timing.acquire_max_retry_s,
                       deadline, rng)
    started = loop.time()
    sock.drain()
    while loop.time() < deadline:
        fsm.move(State.INIT)
        wait = conflicts.wait_s()
        if wait > 0:
            if loop.time() + wait >= deadline:
                break
            LOG.info("%s: waiting %.3gs after a decline before asking again (RFC 2131 3.1)",
                     sock.ifname, wait)
            await asyncio.sleep(wait)
        xid = rng.getrandbits(32)
        secs = min(int(loop.time() - started), 0xFFFF)
        discover = codec.discover(xid=xid, chaddr=sock.mac, client_id=client_id,
                                  host_name=hostname, secs=secs, rapid_commit=rapid_commit,
                                  requested_ip=requested_ip)
        fsm.move(State.SELECTING)
        got = await _select(sock, discover, hostname=hostname, rapid_commit=rapid_commit,
                            retries=retries, stats=stats)
        if got is None:
            break
        # RFC 4039 goes from SELECTING to BOUND; the state machine binds from REQUESTING,
        # which the caller does, so a Rapid Commit lease passes through it too.
        fsm.move(State.REQUESTING)
        if isinstance(got, Lease):
            lease: Lease | None = got
        else:
            stats.offers += 1
            request = codec.request_selecting(offer=got, xid=xid, chaddr=sock.mac,
                                              client_id=client_id, host_name=hostname,
                                              secs=secs)
            lease = await _request(sock, request, got, hostname=hostname, retries=retries,
                                   stats=stats)
        if lease is None:
            continue
        if probe is not None and await probe(lease.address.ip):
            LOG.warning("%s: %s is already in use on the LAN (ARP reply): declining it",
                        sock.ifname, lease.address.ip)
            stats.declined.append(lease.address.ip)
            send_decline(sock, lease, client_id, PROBE_DECLINE_MESSAGE, xid=xid)
            conflicts.declined()
            if len(stats.declined) >= max_declines:
                break
            continue
        conflicts.reset()
        stats.rapid_commit = isinstance(got, Lease)
        if stats.rapid_commit:
            LOG.debug("%s: %s acknowledged in answer to the DISCOVER (Rapid Commit)",
                      sock.ifname, lease.address.ip)
        return lease
    fsm.move(State.INIT)
    raise LeaseError(f"no DHCP lease on {sock.ifname} within {timeout_s:g}s: "
                     f"{stats.summary()}")


async def _select(sock: DhcpSocket, discover: codec.DhcpMessage, *, hostname: str | None,
                  rapid_commit: bool, retries: _Retries,
                  stats: AcquireStats) -> codec.DhcpMessage | Lease | None:
    """SELECTING: the first usable OFFER, or Rapid Commit lease, that answers `discover`.

    RFC 4039 lets a client that gets both take either: a Rapid Commit ACK already received
    when an OFFER is taken wins, as it saves the REQUEST and its ACK.
    """
    sent_at = time.time()  # RFC 2131 4.4.1: a lease counts from its first request
    rapid = _judge_rapid_ack(stats, sock.ifname, asked=rapid_commit, sent_at=sent_at,
                             hostname=hostname)
    offer = _judge_offer(stats, sock.ifname)

    def judge(msg: codec.DhcpMessage, mac: bytes) -> codec.DhcpMessage | Lease | None:
        if msg.message_type is codec.MessageType.ACK:
            return rapid(msg, mac)
        return offer(msg, mac)

    def sent() -> None:
        stats.discovers += 1

    got: codec.DhcpMessage | Lease | None
    got = await retries.send_until(sock, discover, judge, sent)
    if isinstance(got, codec.DhcpMessage) and rapid_commit:
        committed = await _queued_reply(sock, discover.xid, rapid)
        if committed is not None:
            LOG.debug("%s: taking a Rapid Commit ACK received with the OFFER", sock.ifname)
            return committed
    return got


async def _request(sock: DhcpSocket, request: codec.DhcpMessage, offer: codec.DhcpMessage, *,
                   hostname: str | None, retries: _Retries,
                   stats: AcquireStats) -> Lease | None:
    """REQUESTING: the lease `offer`'s server acknowledges; None (start over) on its NAK or
    its silence."""
    judge = judge_reply(ifname=sock.ifname, server=offer.server_id, sent_at=time.time(),
                        hostname=hostname, previous=None, stats=stats)

    def sent() -> None:
        stats.requests += 1

    reply: Lease | Nak | None = await retries.send_until(sock, request, judge, sent)
    if isinstance(reply, Nak):
        stats.naks += 1
        stats.last_nak_message = reply.message
        LOG.info("%s: server %s NAKed %s (%s); starting over", sock.ifname,
                 reply.server_id, offer.yiaddr, reply.message or "no reason given")
        return None
    return reply


def send_release(sock: DhcpSocket, lease: Lease, client_id: bytes) -> None:
    """RFC 2131 4.4.6: DHCPRELEASE unicast from the leased address to the server."""
    msg = codec.release(xid=random.getrandbits(32), chaddr=sock.mac, client_id=client_id,
                        ciaddr=lease.address.ip, server_id=lease.server_id)
    sock.send(msg, src=lease.address.ip, dst=lease.server_id,
              dst_mac=lease.server_mac or BROADCAST_MAC)


def send_decline(sock: DhcpSocket, lease: Lease, client_id: bytes, message: str, *,
                 xid: int | None = None) -> None:
    """RFC 2131 4.4.1: DHCPDECLINE, broadcast from 0.0.0.0, for an address in use; `xid`:
    the exchange's that got the lease (None: a new one)."""
    sock.send(codec.decline(xid=random.getrandbits(32) if xid is None else xid,
                            chaddr=sock.mac, client_id=client_id,
                            requested=lease.address.ip, server_id=lease.server_id,
                            message=message))
