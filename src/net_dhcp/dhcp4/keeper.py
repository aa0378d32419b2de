"""The DHCPv4 lease keeper: one bound lease kept alive for as long as its container runs.

RENEWING at T1 (unicast to the lease's server), REBINDING at T2 (broadcast), INIT on NAK
or expiry (RFC 2131 4.4.5). What is not DHCPv4-specific (sleeping, storing, applying,
retrying, never stopping) is keeping.py's.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable

from .. import metrics
from ..errors import LeaseError
from ..keeping import KeeperBase
from . import codec
from .client import AcquireStats, ConflictLimiter, Nak, Probe, acquire, judge_reply, wait_reply
from .fsm import State
from .lease import Lease
from .sockets import BROADCAST_MAC, DhcpSocket
from .timing import Timing

LOG = logging.getLogger(__name__)

_XIDS = random.SystemRandom()
"""Unpredictable xids for every keeper: a SystemRandom reads the kernel's generator and
keeps no state of its own, yet each instance carries a Mersenne Twister's 2.5 KiB."""

Applier = Callable[[Lease | None, Lease], Awaitable[None]]
"""Configure a new lease in place of the old one (None: nothing configured)."""
Unapplier = Callable[[Lease], Awaitable[None]]
"""Remove a lease's address from the interface (expired or refused)."""


class LeaseKeeper(KeeperBase[Lease]):
    """Keeps one bound DHCPv4 lease alive: RENEWING at T1, REBINDING at T2, INIT on NAK or
    expiry. See KeeperBase for what never stops it."""

    __slots__ = ("_limiter", "_probe", "_rng", "_timing", "client_id", "sock")

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
        super().__init__(name, lease, hostname=hostname, apply=apply, unapply=unapply,
                         on_lease=on_lease, retry=timing, clock=clock)
        self.sock = sock
        self.client_id = client_id
        self._probe = probe
        self._timing = timing
        self._rng = rng or _XIDS
        self._limiter: ConflictLimiter | None = None

    @property
    def _conflicts(self) -> ConflictLimiter:
        """RFC 2131 3.1 / RFC 5227 pacing of DISCOVERs after declines; made on first use
        (INIT only: most keepers never need one)."""
        if self._limiter is None:
            self._limiter = ConflictLimiter(self._timing)
        return self._limiter

    def _needs_apply(self, applied: Lease, new: Lease) -> bool:
        return (applied.address != new.address
                or (applied.gateway, applied.routes) != (new.gateway, new.routes))

    def _same_terms(self, old: Lease, new: Lease) -> bool:
        return ((old.server_id, old.lease_time_s, old.t1_s, old.t2_s)
                == (new.server_id, new.lease_time_s, new.t1_s, new.t2_s))

    async def _commit(self, new: Lease) -> None:
        old = self.lease
        await super()._commit(new)
        if old.address != new.address:
            LOG.info("%s: address changed from %s to %s and applied in the container; "
                     "docker inspect still shows the old address (Docker is never told)",
                     self.name, old.address, new.address)

    async def _extend(self, *, rebind: bool, until: float, retry: bool = True) -> bool:
        """REQUEST in RENEWING (unicast) or REBINDING (broadcast) until `until`."""
        unicast = not rebind
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
                metrics.refused("4")
                # RFC 2131 4.4.5: on DHCPNAK the client stops using the address at once.
                await self._unconfigure()
                self.fsm.move(State.INIT)
                return True
            old = self.lease
            await self._commit(reply)
            self.renewals += 1
            metrics.extended("4", rebind=rebind)
            LOG.log(self._renewal_level(old, reply),
                    "%s: lease on %s renewed for %gs (T1 %gs, T2 %gs)", self.name,
                    reply.address, reply.lease_time_s, reply.t1_s, reply.t2_s)
            self.fsm.move(State.BOUND)
            return True

    async def _reacquire(self) -> None:
        """INIT: DISCOVER with RFC 2131 backoff until a lease comes, then apply it."""
        attempt = 0
        while True:
            # A decline's wait holds even when the last attempt gave up early.
            await asyncio.sleep(self._conflicts.wait_s())
            stats = AcquireStats()
            started = time.perf_counter()
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
                metrics.exchanged("4", stats)
                metrics.failed("4", stats, metrics.KEEPER)
                attempt += 1
                if attempt == 1 or attempt % 10 == 0:
                    LOG.warning("%s: no lease yet (attempt %d): %s", self.name, attempt,
                                stats.summary())
                continue
            metrics.exchanged("4", stats)
            metrics.acquired("4", time.perf_counter() - started, metrics.KEEPER)
            self.fsm.move(State.BOUND)
            await self._commit(new)
            return
