"""DHCPv4 client logic: acquire a lease (INIT), keep it (RFC 2131 4.4.5), release it.

All of it runs on the plugin's one event loop; sockets come from sockets.py and were
opened inside the right namespace. Time and randomness are injected (Timing, rng).
"""

from __future__ import annotations

import asyncio
import enum
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from ipaddress import IPv4Address

from ..errors import LeaseError
from . import codec
from .lease import Lease
from .sockets import BROADCAST_MAC, DhcpSocket

LOG = logging.getLogger(__name__)

# RFC 2131 4.1: first retransmission after about 4 s, doubling up to 64 s. At start-up
# we have only lease_timeout (10 s by default), so the acquire path starts at 1 s.
ACQUIRE_FIRST_RETRY_S = 1.0
ACQUIRE_MAX_RETRY_S = 8.0
INIT_FIRST_RETRY_S = 4.0
INIT_MAX_RETRY_S = 64.0
# RFC 2131 4.4.5: in RENEWING/REBINDING wait half the remaining time, at least 60 s.
RENEW_RETRY_MIN_S = 60.0
# How many addresses to decline (RFC 5227 conflicts) before giving up an attempt.
MAX_DECLINES = 4


@dataclass(frozen=True)
class Timing:
    """Retransmission constants; tests shrink them."""

    acquire_first_retry_s: float = ACQUIRE_FIRST_RETRY_S
    acquire_max_retry_s: float = ACQUIRE_MAX_RETRY_S
    init_first_retry_s: float = INIT_FIRST_RETRY_S
    init_max_retry_s: float = INIT_MAX_RETRY_S
    renew_retry_min_s: float = RENEW_RETRY_MIN_S
    renew_retry_max_s: float = float("inf")


@dataclass
class AcquireStats:
    """What one acquire attempt saw; feeds the no-lease diagnosis."""

    discovers: int = 0
    offers: int = 0
    requests: int = 0
    naks: int = 0
    declined: list[IPv4Address] = field(default_factory=list)
    last_nak_message: str | None = None


Probe = Callable[[IPv4Address], Awaitable[bool]]
"""Returns True if another host already uses the address (RFC 5227 conflict)."""


class State(enum.Enum):
    """RFC 2131 figure 5 client states that this client uses."""

    INIT = "INIT"
    SELECTING = "SELECTING"
    REQUESTING = "REQUESTING"
    BOUND = "BOUND"
    RENEWING = "RENEWING"
    REBINDING = "REBINDING"
    STOPPED = "STOPPED"


async def _wait_reply(
    sock: DhcpSocket, xid: int, timeout: float, kinds: tuple[codec.MessageType, ...]
) -> tuple[codec.DhcpMessage, bytes] | None:
    """The first reply with this xid and one of `kinds` within `timeout`, else None."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + max(timeout, 0.0)
    while True:
        remaining = deadline - loop.time()
        if remaining <= 0:
            return None
        # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a
        # cancellation that races with the reply, and a keeper would then never stop.
        try:
            async with asyncio.timeout(remaining):
                msg, mac = await sock.recv()
        except TimeoutError:
            return None
        if msg.xid == xid and msg.message_type in kinds:
            return msg, mac


def _backoff(first: float, maximum: float, rng: random.Random) -> list[float]:
    """RFC 2131 4.1 style exponential delays with +-0.5 s jitter, positive."""
    out: list[float] = []
    delay = first
    while delay < maximum * 2 and len(out) < 32:
        out.append(max(0.2, min(delay, maximum) + rng.uniform(-0.5, 0.5) * min(1.0, delay / 4)))
        delay *= 2
    return out


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
) -> Lease:
    """DISCOVER..ACK within `timeout_s`, probing and declining conflicting addresses."""
    rng = rng or random.Random()
    stats = stats if stats is not None else AcquireStats()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    first = first_retry_s if first_retry_s is not None else timing.acquire_first_retry_s
    maximum = max_retry_s if max_retry_s is not None else timing.acquire_max_retry_s
    started = loop.time()
    sock.drain()
    while loop.time() < deadline:
        xid = rng.getrandbits(32)
        secs = min(int(loop.time() - started), 0xFFFF)
        discover = codec.discover(xid=xid, chaddr=sock.mac, client_id=client_id,
                                  host_name=hostname, secs=secs)
        offer: tuple[codec.DhcpMessage, bytes] | None = None
        for delay in _backoff(first, maximum, rng):
            sock.send(discover)
            stats.discovers += 1
            offer = await _wait_reply(sock, xid, min(delay, deadline - loop.time()),
                                      (codec.MessageType.OFFER,))
            if offer or loop.time() >= deadline:
                break
        if offer is None:
            break
        stats.offers += 1
        request = codec.request_selecting(offer=offer[0], xid=xid, chaddr=sock.mac,
                                          client_id=client_id, host_name=hostname, secs=secs)
        sent_at = time.time()
        reply: tuple[codec.DhcpMessage, bytes] | None = None
        for delay in _backoff(first, maximum, rng):
            sock.send(request)
            stats.requests += 1
            reply = await _wait_reply(sock, xid, min(delay, deadline - loop.time()),
                                      (codec.MessageType.ACK, codec.MessageType.NAK))
            if reply or loop.time() >= deadline:
                break
        if reply is None:
            continue
        msg, server_mac = reply
        if msg.message_type is codec.MessageType.NAK:
            stats.naks += 1
            stats.last_nak_message = msg.error_message
            LOG.info("%s: server NAKed %s (%s); starting over", sock.ifname,
                     offer[0].yiaddr, msg.error_message or "no reason given")
            continue
        lease = Lease.from_ack(msg, server_mac=server_mac, sent_at=sent_at, hostname=hostname)
        if probe is not None and await probe(lease.address.ip):
            LOG.warning("%s: %s is already in use on the LAN (ARP reply): declining it",
                        sock.ifname, lease.address.ip)
            stats.declined.append(lease.address.ip)
            sock.send(codec.decline(xid=xid, chaddr=sock.mac, client_id=client_id,
                                    requested=lease.address.ip, server_id=lease.server_id,
                                    message="address in use (RFC 5227 probe)"))
            if len(stats.declined) >= MAX_DECLINES:
                break
            continue
        return lease
    raise LeaseError(f"no DHCP lease on {sock.ifname} within {timeout_s:g}s")


def send_release(sock: DhcpSocket, lease: Lease, client_id: bytes) -> None:
    """RFC 2131 4.4.6: DHCPRELEASE unicast from the leased address to the server."""
    msg = codec.release(xid=random.getrandbits(32), chaddr=sock.mac, client_id=client_id,
                        ciaddr=lease.address.ip, server_id=lease.server_id)
    sock.send(msg, src=lease.address.ip, dst=lease.server_id,
              dst_mac=lease.server_mac or BROADCAST_MAC)


Applier = Callable[[Lease | None, Lease], Awaitable[None]]
"""Configure a new lease in place of the old one (None: nothing configured)."""
Unapplier = Callable[[Lease], Awaitable[None]]
"""Remove an expired lease's address from the interface."""


class LeaseKeeper:
    """Keeps one bound lease alive: RENEWING at T1, REBINDING at T2, INIT on NAK or expiry."""

    def __init__(
        self,
        name: str,
        sock: DhcpSocket,
        lease: Lease,
        *,
        client_id: bytes,
        hostname: str | None,
        apply: Applier,
        unapply: Unapplier,
        on_lease: Callable[[Lease], None],
        probe: Probe | None = None,
        timing: Timing = Timing(),
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.name = name
        self.sock = sock
        self.lease = lease
        self.client_id = client_id
        self.hostname = hostname
        self.state = State.BOUND
        self.renewals = 0
        self._apply = apply
        self._unapply = unapply
        self._on_lease = on_lease
        self._probe = probe
        self._timing = timing
        self._rng = rng or random.Random()
        self._clock = clock
        self._wake = asyncio.Event()
        if hostname and hostname != lease.hostname_sent:
            self._wake.set()  # the server has not heard this name yet: tell it now

    def _set_state(self, state: State) -> None:
        if state is not self.state:
            LOG.debug("%s: %s -> %s", self.name, self.state.value, state.value)
            self.state = state

    def set_hostname(self, hostname: str) -> None:
        """Send `hostname` (option 12) now and in every later REQUEST."""
        if hostname != self.hostname:
            self.hostname = hostname
            self._wake.set()

    async def _sleep_until(self, when: float) -> bool:
        """Sleep until wall time `when`; True if woken early by set_hostname."""
        if self._wake.is_set():
            self._wake.clear()
            return True
        delay = when - self._clock()
        if delay <= 0:
            return False
        try:
            async with asyncio.timeout(delay):
                await self._wake.wait()
        except TimeoutError:
            return False
        self._wake.clear()
        return True

    async def run(self) -> None:
        """Run until cancelled; never releases (the owner decides that)."""
        try:
            while True:
                if self.state is State.BOUND:
                    woke = await self._sleep_until(self.lease.t1_at)
                    if woke:
                        LOG.info("%s: sending host name %r to the server", self.name,
                                 self.hostname)
                        await self._request(unicast=True, until=self._clock() + 5.0,
                                            retry=False)
                        continue
                    self._set_state(State.RENEWING)
                elif self.state is State.RENEWING:
                    if not await self._request(unicast=True, until=self.lease.t2_at):
                        self._set_state(State.REBINDING)
                elif self.state is State.REBINDING:
                    if not await self._request(unicast=False, until=self.lease.expires_at):
                        LOG.warning("%s: lease on %s expired with no answer from any server",
                                    self.name, self.lease.address)
                        await self._unapply(self.lease)
                        self._set_state(State.INIT)
                elif self.state is State.INIT:
                    await self._reacquire()
        finally:
            self._set_state(State.STOPPED)

    async def _request(self, *, unicast: bool, until: float, retry: bool = True) -> bool:
        """REQUEST in RENEWING/REBINDING until `until`; True once the state moved on."""
        xid = self._rng.getrandbits(32)
        build = codec.request_renewing if unicast else codec.request_rebinding
        msg = build(xid=xid, chaddr=self.sock.mac, client_id=self.client_id,
                    ciaddr=self.lease.address.ip, host_name=self.hostname)
        self.sock.drain()
        while True:
            remaining = until - self._clock()
            if remaining <= 0:
                return False
            sent_at = self._clock()
            try:
                if unicast:
                    self.sock.send(msg, src=self.lease.address.ip, dst=self.lease.server_id,
                                   dst_mac=self.lease.server_mac or BROADCAST_MAC)
                else:
                    self.sock.send(msg, src=self.lease.address.ip)
            except OSError as err:
                LOG.warning("%s: could not send REQUEST: %s", self.name, err)
            wait = max(remaining / 2, min(self._timing.renew_retry_min_s, remaining))
            wait = min(wait, self._timing.renew_retry_max_s)
            reply = await _wait_reply(self.sock, xid, wait,
                                      (codec.MessageType.ACK, codec.MessageType.NAK))
            if reply is None:
                if not retry:
                    return False
                LOG.info("%s: no answer to %s REQUEST for %s", self.name,
                         "unicast" if unicast else "broadcast", self.lease.address.ip)
                continue
            ack, server_mac = reply
            if ack.message_type is codec.MessageType.NAK:
                LOG.warning("%s: server NAKed %s (%s): getting a new address", self.name,
                            self.lease.address.ip, ack.error_message or "no reason given")
                self._set_state(State.INIT)
                return True
            new = Lease.from_ack(ack, server_mac=server_mac, sent_at=sent_at,
                                 hostname=self.hostname)
            if new.address != self.lease.address:
                # A server may answer a renewal with another address; treat it as new.
                await self._adopt(new)
            else:
                if (new.gateway, new.routes) != (self.lease.gateway, self.lease.routes):
                    await self._apply(self.lease, new)
                self.lease = new
                self._on_lease(new)
            self.renewals += 1
            LOG.info("%s: lease on %s renewed for %ss (T1 %ss, T2 %ss)", self.name,
                     new.address, f"{new.lease_time_s:g}", f"{new.t1_s:g}", f"{new.t2_s:g}")
            self._set_state(State.BOUND)
            return True

    async def _adopt(self, new: Lease) -> None:
        old = self.lease
        await self._apply(old, new)
        self.lease = new
        self._on_lease(new)
        LOG.info("%s: address changed from %s to %s and applied in the container; "
                 "docker inspect still shows the old address (Docker is never told)",
                 self.name, old.address, new.address)

    async def _reacquire(self) -> None:
        """INIT: DISCOVER with RFC 2131 backoff until a lease comes, then apply it."""
        attempt = 0
        while True:
            try:
                new = await acquire(
                    self.sock, client_id=self.client_id, hostname=self.hostname,
                    timeout_s=self._timing.init_max_retry_s * 2, probe=self._probe,
                    timing=self._timing, rng=self._rng,
                    first_retry_s=self._timing.init_first_retry_s,
                    max_retry_s=self._timing.init_max_retry_s,
                )
            except LeaseError:
                attempt += 1
                if attempt == 1 or attempt % 10 == 0:
                    LOG.warning("%s: still no DHCP server answering (attempt %d)", self.name,
                                attempt)
                continue
            await self._adopt(new)
            self._set_state(State.BOUND)
            return
