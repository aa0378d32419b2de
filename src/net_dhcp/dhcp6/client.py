"""The DHCPv6 exchanges (RFC 8415, IA_NA): acquire (Solicit, Advertise, Request, Reply, or
Solicit and a Rapid Commit Reply), renew and rebind, release.

Every reply is judged before it is believed: it must carry our transaction ID and DUID
(the socket checks the DUID), a Server Identifier, and an IA_NA for our IAID that grants a
usable address; while renewing only the lease's server may answer. Anything else is
dropped with a log line, and the exchange goes on waiting.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from ipaddress import IPv6Address
from typing import TypeVar

from ..errors import DhcpReplyError, LeaseError
from . import codec
from .lease import Lease6, check_host_address6
from .sockets import Dhcp6Socket
from .timing import Retrans, Timing6, timeouts

LOG = logging.getLogger(__name__)
T = TypeVar("T")
MAX_PREFERENCE = 255


@dataclass
class Acquire6Stats:
    """What one acquisition saw; feeds the no-lease message and the log."""

    solicits: int = 0
    advertises: int = 0
    requests: int = 0
    no_addrs: int = 0
    last_status: str | None = None
    dropped: int = 0
    last_drop_reason: str | None = None
    declined: list[IPv6Address] = field(default_factory=list)

    def drop(self, reason: str) -> None:
        """Count a reply that was ignored, and why."""
        self.dropped += 1
        self.last_drop_reason = reason

    def summary(self) -> str:
        """One line saying what really happened."""
        parts = [f"{self.solicits} Solicit(s), {self.advertises} usable Advertise(s), "
                 f"{self.requests} Request(s)"]
        if self.declined:
            parts.append("declined " + ", ".join(str(a) for a in self.declined)
                         + " (in use on the LAN)")
        if self.no_addrs:
            parts.append(f"{self.no_addrs} server answer(s) with no address "
                         f"({self.last_status})")
        if self.dropped:
            parts.append(f"ignored {self.dropped} unusable repl(ies) "
                         f"(last: {self.last_drop_reason})")
        return "; ".join(parts)


@dataclass(frozen=True)
class Refused:
    """The server said the address is not ours (any more): NotOnLink, NoBinding,
    NoAddrsAvail, or a valid lifetime of 0. The client must start over."""

    reason: str


Judge = Callable[[codec.Message6], T | None]


def guarded(judge: Judge[T], ifname: str, stats: Acquire6Stats) -> Judge[T]:
    """`judge`, with a message whose options turn out malformed dropped (logged), never
    raised: the codec decodes option values only when they are asked for."""
    def safe(msg: codec.Message6) -> T | None:
        try:
            return judge(msg)
        except codec.CodecError as err:
            stats.drop(f"malformed: {err}")
            LOG.info("%s: ignoring a malformed DHCPv6 message: %s", ifname, err)
            return None
    return safe


def new_xid(rng: random.Random) -> int:
    """A fresh 24-bit transaction ID."""
    return rng.getrandbits(24)


class Exchange:
    """One message's transmissions and the wait for its answer (RFC 8415 15)."""

    def __init__(self, sock: Dhcp6Socket, params: Retrans, rng: random.Random,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.sock = sock
        self.params = params
        self.rng = rng
        self.clock = clock

    async def run(self, build: Callable[[int, int], codec.Message6], judge: Judge[T], *,
                  until: float, first_positive: bool = False,
                  after_wait: Callable[[], T | None] | None = None) -> T | None:
        """Send `build(xid, elapsed_cs)` until `judge` accepts an answer, or `until`
        (time.monotonic), the count or the duration runs out; one transaction ID for all
        transmissions. `after_wait`, asked each time a wait ends without an accepted
        answer, may end the exchange with a result of its own (Solicit: the best
        Advertise collected during the first RT)."""
        xid = new_xid(self.rng)
        started = self.clock()
        self.sock.drain()
        for rt in timeouts(self.params, self.rng, first_positive=first_positive):
            now = self.clock()
            if now >= until or (self.params.mrd and now - started >= self.params.mrd):
                return None
            elapsed_cs = min(int((now - started) * 100), 0xFFFF)
            await self.sock.send(build(xid, elapsed_cs))
            wait = min(rt, until - now)
            if self.params.mrd:
                wait = min(wait, self.params.mrd - (now - started))
            found = await _wait(self.sock, xid, wait, judge)
            if found is None and after_wait is not None:
                found = after_wait()
            if found is not None:
                return found
        return None


async def _wait(sock: Dhcp6Socket, xid: int, timeout: float, judge: Judge[T]) -> T | None:
    """The first message with `xid` that `judge` accepts within `timeout`, else None."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + max(0.0, timeout)
    while True:
        remaining = deadline - loop.time()
        if remaining <= 0:
            return None
        try:
            async with asyncio.timeout(remaining):
                msg = await sock.recv()
        except TimeoutError:
            return None
        if msg.xid != xid:
            continue
        verdict = judge(msg)
        if verdict is not None:
            return verdict


def _status_name(code: int) -> str:
    try:
        return codec.Status(code).name
    except ValueError:
        return str(code)


def refusal(msg: codec.Message6, iaid: int) -> Refused | None:
    """The server's "not yours" in a Reply, if it says so (RFC 8415 18.2.10.1)."""
    status = msg.status
    if status is not None and status.code in (codec.Status.NO_ADDRS_AVAIL,
                                              codec.Status.NOT_ON_LINK):
        return Refused(f"{_status_name(status.code)}: {status.message}")
    try:
        ia = msg.ia_na(iaid)
    except codec.CodecError:
        return None
    if ia is None:
        return None
    if ia.status is not None and ia.status.code in (codec.Status.NO_ADDRS_AVAIL,
                                                    codec.Status.NOT_ON_LINK,
                                                    codec.Status.NO_BINDING):
        return Refused(f"{_status_name(ia.status.code)}: {ia.status.message}")
    for addr in ia.addresses:
        if addr.status is not None and addr.status.code == codec.Status.NOT_ON_LINK:
            return Refused(f"NotOnLink for {addr.address}")
    if ia.addresses and all(a.valid_s == 0 for a in ia.addresses):
        return Refused("the server set the valid lifetime to 0")
    return None


def judge_reply(*, ifname: str, iaid: int, server: bytes | None, sent_at: float,
                hostname: str | None, previous: Lease6 | None,
                stats: Acquire6Stats) -> Judge[Lease6 | Refused]:
    """Accept a Reply from `server` (any server if None) that grants a usable address,
    or that refuses ours; drop the rest with a log line."""
    def judge(msg: codec.Message6) -> Lease6 | Refused | None:
        reason: str
        if msg.msg_type != codec.MessageType.REPLY:
            return None
        if server is not None and msg.server_id != server:
            reason = "from a server other than the lease's"
        else:
            refused = refusal(msg, iaid)
            if refused is not None:
                return refused
            try:
                return Lease6.from_reply(msg, iaid=iaid, sent_at=sent_at, hostname=hostname,
                                         previous=previous)
            except DhcpReplyError as err:
                reason = str(err)
        stats.drop(reason)
        LOG.info("%s: ignoring a DHCPv6 reply: %s", ifname, reason)
        return None
    return guarded(judge, ifname, stats)


Probe6 = Callable[[IPv6Address], Awaitable[bool]]
"""Duplicate address detection: True if another host on the link has the address."""


async def acquire6(sock: Dhcp6Socket, *, iaid: int, hostname: str | None, timeout_s: float,
                   timing: Timing6 = Timing6(), rng: random.Random | None = None,
                   stats: Acquire6Stats | None = None, rapid_commit: bool = True,
                   probe: Probe6 | None = None) -> Lease6:
    """Solicit until a server grants an address that `probe` finds free (one in use is
    declined, RFC 8415 18.2.8, and the client starts over); LeaseError after `timeout_s`."""
    rng = rng or random.SystemRandom()
    stats = stats or Acquire6Stats()
    until = time.monotonic() + timeout_s
    while time.monotonic() < until:
        got = await _solicit(sock, iaid=iaid, hostname=hostname, until=until, timing=timing,
                             rng=rng, stats=stats, rapid_commit=rapid_commit)
        if got is None:
            break
        lease = got if isinstance(got, Lease6) else await _request(
            sock, got, iaid=iaid, hostname=hostname, until=until, timing=timing, rng=rng,
            stats=stats)
        if lease is None:
            continue
        if probe is not None and await probe(lease.address):
            stats.declined.append(lease.address)
            LOG.warning("%s: %s is already in use on the LAN: declining it", sock.ifname,
                        lease.address)
            await sock.send(codec.decline(xid=new_xid(rng), client_id=sock.client_id,
                                          server_id=lease.server_duid,
                                          ia=lease.ia(lifetimes=False)))
            if len(stats.declined) > 1:  # the first is retried at once, as for IPv4
                wait = min(timing.decline_retry_s, max(0.0, until - time.monotonic()))
                LOG.info("%s: waiting %.3gs after a decline before soliciting again",
                         sock.ifname, wait)
                await asyncio.sleep(wait)
            continue
        return lease
    raise LeaseError(f"no DHCPv6 lease within {timeout_s:g}s: {stats.summary()}")


async def _solicit(sock: Dhcp6Socket, *, iaid: int, hostname: str | None, until: float,
                   timing: Timing6, rng: random.Random, stats: Acquire6Stats,
                   rapid_commit: bool) -> codec.Message6 | Lease6 | None:
    """RFC 8415 18.2.1, 18.2.9: collect Advertises for the first RT (done at once on
    preference 255) and take the most preferred; after the first RT, take the first that
    comes. A Reply with Rapid Commit is the lease itself."""
    collected: list[codec.Message6] = []
    collecting = True
    sent_at = time.time()
    # RFC 8415 18.2.1 asks for a random delay of up to SOL_MAX_DELAY before the first
    # Solicit, against storms after a power cut; a container start is not one: none here.

    def build(xid: int, elapsed_cs: int) -> codec.Message6:
        stats.solicits += 1
        return codec.solicit(xid=xid, client_id=sock.client_id, iaid=iaid,
                             rapid_commit=rapid_commit, hostname=hostname,
                             elapsed_cs=elapsed_cs)

    def judge(msg: codec.Message6) -> codec.Message6 | Lease6 | None:
        if msg.msg_type == codec.MessageType.REPLY:
            if not (rapid_commit and msg.rapid_commit):
                return None
            verdict = judge_reply(ifname=sock.ifname, iaid=iaid, server=None,
                                  sent_at=sent_at, hostname=hostname, previous=None,
                                  stats=stats)(msg)
            if isinstance(verdict, Refused):
                stats.no_addrs += 1
                stats.last_status = verdict.reason
                return None
            return verdict
        reason = _advertise_problem(msg, iaid)
        if reason is not None:
            if reason.startswith("NO_ADDRS_AVAIL"):
                stats.no_addrs += 1
                stats.last_status = reason
            stats.drop(reason)
            LOG.info("%s: ignoring an Advertise: %s", sock.ifname, reason)
            return None
        stats.advertises += 1
        if msg.preference >= MAX_PREFERENCE or not collecting:
            return msg
        collected.append(msg)
        return None

    def after_wait() -> codec.Message6 | None:
        nonlocal collecting
        collecting = False  # the first RT is over
        return max(collected, key=lambda m: m.preference) if collected else None

    return await Exchange(sock, timing.solicit, rng).run(
        build, guarded(judge, sock.ifname, stats), until=until, first_positive=True,
        after_wait=after_wait)


def _advertise_problem(msg: codec.Message6, iaid: int) -> str | None:
    """Why an Advertise is unusable (RFC 8415 18.2.9), or None."""
    if not msg.server_id:
        return "no Server Identifier"
    status = msg.status
    if status is not None and status.code != codec.Status.SUCCESS:
        return f"{_status_name(status.code)}: {status.message}"
    try:
        ia = msg.ia_na(iaid)
    except codec.CodecError as err:
        return f"malformed IA_NA: {err}"
    if ia is None:
        return f"no IA_NA for IAID {iaid:#x}"
    if ia.status is not None and ia.status.code != codec.Status.SUCCESS:
        return f"{_status_name(ia.status.code)}: {ia.status.message}"
    usable = [a for a in ia.addresses if a.valid_s > 0]
    if not usable:
        return "no address offered"
    try:
        check_host_address6(usable[0].address, "offered address")
    except DhcpReplyError as err:
        return str(err)
    return None


async def _request(sock: Dhcp6Socket, advertise: codec.Message6, *, iaid: int,
                   hostname: str | None, until: float, timing: Timing6, rng: random.Random,
                   stats: Acquire6Stats) -> Lease6 | None:
    """RFC 8415 18.2.2: Request what the chosen server advertised; None to start over."""
    server = advertise.server_id
    ia = advertise.ia_na(iaid)
    assert server is not None  # _advertise_problem checked both
    assert ia is not None
    sent_at = time.time()

    def build(xid: int, elapsed_cs: int) -> codec.Message6:
        stats.requests += 1
        return codec.request(xid=xid, client_id=sock.client_id, server_id=server, ia=ia,
                             hostname=hostname, elapsed_cs=elapsed_cs)

    judge = judge_reply(ifname=sock.ifname, iaid=iaid, server=server, sent_at=sent_at,
                        hostname=hostname, previous=None, stats=stats)
    got: Lease6 | Refused | None = await Exchange(sock, timing.request, rng).run(
        build, judge, until=until)
    if isinstance(got, Refused):
        stats.no_addrs += 1
        stats.last_status = got.reason
        LOG.info("%s: the server refused the Request (%s); soliciting again", sock.ifname,
                 got.reason)
        return None
    return got


async def extend(sock: Dhcp6Socket, lease: Lease6, *, rebind: bool, until: float,
                 hostname: str | None, timing: Timing6 = Timing6(),
                 rng: random.Random | None = None) -> Lease6 | Refused | None:
    """Renew (to the lease's server) or Rebind (to any) until `until` (time.monotonic);
    the new lease, a refusal, or None when no server answered."""
    rng = rng or random.SystemRandom()
    sent_at = time.time()
    ia = lease.ia(lifetimes=False)

    def build(xid: int, elapsed_cs: int) -> codec.Message6:
        if rebind:
            return codec.rebind(xid=xid, client_id=sock.client_id, ia=ia, hostname=hostname,
                                elapsed_cs=elapsed_cs)
        return codec.renew(xid=xid, client_id=sock.client_id, server_id=lease.server_duid,
                           ia=ia, hostname=hostname, elapsed_cs=elapsed_cs)

    judge = judge_reply(ifname=sock.ifname, iaid=lease.iaid,
                        server=None if rebind else lease.server_duid, sent_at=sent_at,
                        hostname=hostname, previous=lease, stats=Acquire6Stats())
    params = timing.rebind if rebind else timing.renew
    return await Exchange(sock, params, rng).run(build, judge, until=until)


async def send_release6(sock: Dhcp6Socket, lease: Lease6, *,
                        rng: random.Random | None = None) -> None:
    """One Release for the lease (RFC 8415 18.2.7), not retransmitted and not waited for:
    it goes out while the container stops, and the server's Reply changes nothing."""
    if not lease.server_known:
        return
    rng = rng or random.SystemRandom()
    await sock.send(codec.release(xid=new_xid(rng), client_id=sock.client_id,
                                  server_id=lease.server_duid, ia=lease.ia(lifetimes=False)))
