"""The lease keeper: one bound lease kept alive for as long as its container runs.

RENEWING at T1 (unicast to the lease's server), REBINDING at T2 (broadcast), INIT on NAK
or expiry (RFC 2131 4.4.5). Nothing a host on the LAN sends, and no failing netlink call or
state write, ends a keeper: only its owner cancelling it does, or its interface vanishing
(InterfaceGone: there is nothing left to keep the lease on; the owner decides what next).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable

from ..errors import InterfaceGone, LeaseError
from . import codec
from .client import AcquireStats, ConflictLimiter, Nak, Probe, acquire, judge_reply, wait_reply
from .fsm import Machine, State
from .lease import Lease
from .sockets import BROADCAST_MAC, DhcpSocket
from .timing import Timing

LOG = logging.getLogger(__name__)

HOSTNAME_UPDATE_WAIT_S = 5.0


Applier = Callable[[Lease | None, Lease], Awaitable[None]]
"""Configure a new lease in place of the old one (None: nothing configured)."""
Unapplier = Callable[[Lease], Awaitable[None]]
"""Remove a lease's address from the interface (expired or refused)."""


class LeaseKeeper:
    """Keeps one bound lease alive: RENEWING at T1, REBINDING at T2, INIT on NAK or expiry.

    Never stops by itself while it is not cancelled: a step that fails (netlink, the state
    file) is logged and retried with backoff; a lease that could not be stored or applied
    is retried until it is.
    """

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
        # A recovered lease's server is unknown: only a broadcast REQUEST can reach it.
        self.fsm = Machine(name, State.BOUND if lease.server_known else State.REBINDING)
        self.renewals = 0
        self.failures = 0
        self._apply = apply
        self._unapply = unapply
        self._on_lease = on_lease
        self._probe = probe
        self._timing = timing
        self._rng = rng or random.SystemRandom()  # unpredictable xids
        self._clock = clock
        self._wake = asyncio.Event()
        self._applied = lease
        """The lease last configured on the interface (its address may be off now)."""
        self._address_on = True
        self._unstored: Lease | None = None
        self._unapplied: Lease | None = None
        self._conflicts = ConflictLimiter(timing)
        if hostname and hostname != lease.hostname_sent:
            self._wake.set()  # the server has not heard this name yet: tell it now

    @property
    def state(self) -> State:
        """The client's RFC 2131 state."""
        return self.fsm.state

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
        """Run until cancelled, or InterfaceGone; never releases (the owner decides that)."""
        backoff = self._timing.keeper_retry_first_s
        try:
            while True:
                try:
                    await self._step()
                except (asyncio.CancelledError, KeyboardInterrupt, SystemExit, InterfaceGone):
                    raise
                except Exception:  # noqa: BLE001 - whatever failed, the lease must go on
                    self.failures += 1
                    LOG.exception("%s: %s step failed; retrying in %gs", self.name,
                                  self.state.value, backoff)
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, self._timing.keeper_retry_max_s)
                else:
                    backoff = self._timing.keeper_retry_first_s
        finally:
            self.fsm.move(State.STOPPED)

    async def _step(self) -> None:
        state = self.state
        if state is State.BOUND:
            await self._bound()
        elif state is State.RENEWING:
            if not await self._request(unicast=True, until=self.lease.t2_at):
                self.fsm.move(State.REBINDING)
        elif state is State.REBINDING:
            if not await self._request(unicast=False, until=self.lease.expires_at):
                LOG.warning("%s: lease on %s expired with no answer from any server",
                            self.name, self.lease.address)
                await self._unconfigure()
                self.fsm.move(State.INIT)
        elif state is State.INIT:
            await self._reacquire()

    async def _bound(self) -> None:
        """Sleep until T1 (sooner while a lease waits to be stored or applied)."""
        await self._catch_up()
        when = self.lease.t1_at
        if self._unstored is not None or self._unapplied is not None:
            when = min(when, self._clock() + self._timing.keeper_retry_first_s)
        if await self._sleep_until(when):
            LOG.info("%s: sending host name %r to the server", self.name, self.hostname)
            self.fsm.move(State.RENEWING)
            if not await self._request(unicast=True,
                                       until=self._clock() + HOSTNAME_UPDATE_WAIT_S,
                                       retry=False):
                self.fsm.move(State.BOUND)
        elif self._clock() >= self.lease.t1_at:
            self.fsm.move(State.RENEWING)

    async def _catch_up(self) -> None:
        """Retry storing or applying a lease that failed before (logged, never raised)."""
        if self._unapplied is not None:
            await self._configure(self._unapplied)
        if self._unstored is not None:
            self._store(self._unstored)

    async def _request(self, *, unicast: bool, until: float, retry: bool = True) -> bool:
        """REQUEST in RENEWING/REBINDING until `until`; True once the state moved on."""
        xid = self._rng.getrandbits(32)
        build = codec.request_renewing if unicast else codec.request_rebinding
        msg = build(xid=xid, chaddr=self.sock.mac, client_id=self.client_id,
                    ciaddr=self.lease.address.ip, host_name=self.hostname)
        stats = AcquireStats()
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
            # RFC 2131 4.4.5: only the lease's server answers a unicast renewal.
            judge = judge_reply(ifname=self.name,
                                server=self.lease.server_id if unicast else None,
                                sent_at=sent_at, hostname=self.hostname,
                                previous=self.lease, stats=stats)
            reply: Lease | Nak | None = await wait_reply(self.sock, xid, wait, judge)
            if reply is None:
                if not retry:
                    return False
                LOG.info("%s: no answer to %s REQUEST for %s", self.name,
                         "unicast" if unicast else "broadcast", self.lease.address.ip)
                continue
            if isinstance(reply, Nak):
                LOG.warning("%s: server %s NAKed %s (%s): removing it and getting a new "
                            "address", self.name, reply.server_id, self.lease.address.ip,
                            reply.message or "no reason given")
                # RFC 2131 4.4.5: on DHCPNAK the client stops using the address at once.
                await self._unconfigure()
                self.fsm.move(State.INIT)
                return True
            await self._commit(reply)
            self.renewals += 1
            LOG.info("%s: lease on %s renewed for %ss (T1 %ss, T2 %ss)", self.name,
                     reply.address, f"{reply.lease_time_s:g}", f"{reply.t1_s:g}",
                     f"{reply.t2_s:g}")
            self.fsm.move(State.BOUND)
            return True

    async def _commit(self, new: Lease) -> None:
        """Make `new` the lease: remember, store and configure it (failures retried later)."""
        old = self.lease
        self.lease = new
        self._store(new)
        applied = self._applied
        if (not self._address_on or applied.address != new.address
                or (applied.gateway, applied.routes) != (new.gateway, new.routes)):
            await self._configure(new)
        if old.address != new.address:
            LOG.info("%s: address changed from %s to %s and applied in the container; "
                     "docker inspect still shows the old address (Docker is never told)",
                     self.name, old.address, new.address)

    def _store(self, lease: Lease) -> None:
        try:
            self._on_lease(lease)
        except Exception as err:  # noqa: BLE001 - e.g. a full disk: keep the lease, retry
            if self._unstored is None:
                LOG.error("%s: could not store the lease on %s (%s); keeping it and "
                          "retrying", self.name, lease.address, err)
            self._unstored = lease
        else:
            self._unstored = None

    async def _configure(self, lease: Lease) -> None:
        try:
            # In place of the last lease applied: its address goes if it is still there.
            await self._apply(self._applied, lease)
        except Exception as err:  # noqa: BLE001 - retried from BOUND until it works
            if self._unapplied is None:
                LOG.error("%s: could not configure %s in the container (%s); retrying",
                          self.name, lease.address, err)
            self._unapplied = lease
        else:
            self._applied = lease
            self._address_on = True
            self._unapplied = None

    async def _unconfigure(self) -> None:
        """Take the address off the interface (best effort: a later apply replaces it)."""
        if not self._address_on:
            return
        try:
            await self._unapply(self._applied)
        except Exception as err:  # noqa: BLE001 - the next apply deletes it instead
            LOG.warning("%s: could not remove %s (%s)", self.name, self._applied.address, err)
        else:
            self._address_on = False

    async def _reacquire(self) -> None:
        """INIT: DISCOVER with RFC 2131 backoff until a lease comes, then apply it."""
        attempt = 0
        while True:
            # A decline's wait holds even when the last attempt gave up early.
            await asyncio.sleep(self._conflicts.wait_s())
            stats = AcquireStats()
            try:
                new = await acquire(
                    self.sock, client_id=self.client_id, hostname=self.hostname,
                    timeout_s=self._timing.init_max_retry_s * 2, probe=self._probe,
                    timing=self._timing, rng=self._rng, stats=stats,
                    first_retry_s=self._timing.init_first_retry_s,
                    max_retry_s=self._timing.init_max_retry_s, fsm=self.fsm,
                    conflicts=self._conflicts,
                )
            except LeaseError:
                attempt += 1
                if attempt == 1 or attempt % 10 == 0:
                    LOG.warning("%s: no lease yet (attempt %d): %s", self.name, attempt,
                                stats.summary())
                continue
            self.fsm.move(State.BOUND)
            await self._commit(new)
            return
