"""The DHCPv6 lease keeper: one IA_NA address kept alive for as long as its container runs.

Renew at T1 (with the lease's Server Identifier), Rebind at T2 (any server), start over
with Solicit when the server refuses the address (NotOnLink, NoBinding, lifetime 0) or the
valid lifetime ends (RFC 8415 18.2.4, 18.2.5, 18.2.10.1). What is not DHCPv6-specific is
keeping.py's.
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Awaitable, Callable

from .. import metrics
from ..dhcp4.fsm import State
from ..errors import LeaseError
from ..keeping import KeeperBase
from .client import Acquire6Stats, Probe6, Refused, acquire6, extend
from .lease import Lease6
from .sockets import Dhcp6Socket
from .timing import Timing6

LOG = logging.getLogger(__name__)

_XIDS = random.SystemRandom()
"""Unpredictable transaction IDs for every keeper (one SystemRandom: each instance would
carry a Mersenne Twister's unused 2.5 KiB)."""

class Lease6Keeper(KeeperBase[Lease6]):
    """Keeps one DHCPv6 lease alive; see KeeperBase for what never stops it."""

    __slots__ = ("_probe", "_rng", "_timing", "sock")

    family = "6"

    def __init__(
        self,
        name: str,
        sock: Dhcp6Socket,
        lease: Lease6,
        *,
        hostname: str | None,
        apply: Callable[[Lease6 | None, Lease6], Awaitable[None]],
        unapply: Callable[[Lease6], Awaitable[None]],
        on_lease: Callable[[Lease6], None],
        probe: Probe6 | None = None,
        timing: Timing6 = Timing6(),
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(name, lease, hostname=hostname, apply=apply, unapply=unapply,
                         on_lease=on_lease, retry=timing, clock=clock)
        self.sock = sock
        self._probe = probe
        self._timing = timing
        self._rng = rng or _XIDS

    def _monotonic(self, wall: float) -> float:
        """A wall-clock deadline on the monotonic clock the exchanges use."""
        return math.inf if math.isinf(wall) else time.monotonic() + (wall - self._clock())

    async def _extend(self, *, rebind: bool, until: float, retry: bool = True) -> bool:
        """Renew or Rebind until `until` (wall clock); True once the state moved on."""
        got = await extend(self.sock, self.lease, rebind=rebind, hostname=self.hostname,
                           until=self._monotonic(until), timing=self._timing, rng=self._rng)
        if got is None:
            if retry:
                LOG.info("%s: no answer to %s for %s", self.name,
                         "Rebind" if rebind else "Renew", self.lease.address)
            return False
        if isinstance(got, Refused):
            LOG.warning("%s: the server refused %s (%s): removing it and soliciting again",
                        self.name, self.lease.address, got.reason)
            metrics.refused("6")
            await self._unconfigure()
            self.fsm.move(State.INIT)
            return True
        old = self.lease
        await self._commit(got)
        self.renewals += 1
        metrics.extended("6", rebind=rebind)
        LOG.log(self._renewal_level(old, self.lease),
                "%s: IPv6 lease on %s extended (valid %gs, T1 %gs, T2 %gs)", self.name,
                got.address, got.valid_s, got.t1_s, got.t2_s)
        self.fsm.move(State.BOUND)
        return True

    def _needs_apply(self, applied: Lease6, new: Lease6) -> bool:
        # applied.interface != new.interface, without making two IPv6Interfaces.
        return ((applied.address, applied.prefixlen, applied.router)
                != (new.address, new.prefixlen, new.router))

    def _same_terms(self, old: Lease6, new: Lease6) -> bool:
        return ((old.server_duid, old.preferred_s, old.valid_s, old.t1_s, old.t2_s)
                == (new.server_duid, new.preferred_s, new.valid_s, new.t1_s, new.t2_s))

    async def _commit(self, new: Lease6) -> None:
        old = self.lease
        if new.router is None and old.router is not None or new.prefixlen != old.prefixlen:
            # What the router advertised is about the link, not the lease: keep it.
            same_link = new.address in old.interface.network
            new = new.on_link(old.prefixlen if same_link else None, old.router)
        await super()._commit(new)
        if old.address != new.address:
            LOG.info("%s: IPv6 address changed from %s to %s and applied in the container; "
                     "docker inspect still shows the old address", self.name, old.address,
                     new.address)

    async def _reacquire(self) -> None:
        """Solicit until a server grants an address, then apply it."""
        attempt = 0
        while True:
            stats = Acquire6Stats()
            self.fsm.move(State.SELECTING)
            started = time.perf_counter()
            try:
                new = await acquire6(self.sock, iaid=self.lease.iaid, hostname=self.hostname,
                                     timeout_s=self._timing.init_retry_s, timing=self._timing,
                                     rng=self._rng, stats=stats, probe=self._probe)
            except LeaseError:
                metrics.exchanged("6", stats)
                metrics.failed("6", stats, metrics.KEEPER)
                self.fsm.move(State.INIT)
                attempt += 1
                if attempt == 1 or attempt % 10 == 0:
                    LOG.warning("%s: no IPv6 lease yet (attempt %d): %s", self.name, attempt,
                                stats.summary())
                continue
            metrics.exchanged("6", stats)
            metrics.acquired("6", time.perf_counter() - started, metrics.KEEPER)
            self.fsm.move(State.REQUESTING)
            self.fsm.move(State.BOUND)
            await self._commit(new)
            return
