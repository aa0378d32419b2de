"""What every lease keeper does, whatever the address family: sleep until T1, keep the
lease stored and applied (retrying what failed), back off after errors, never stop.

dhcp4/keeper.py and dhcp6/keeper.py say how their family renews, rebinds and starts
over; the state names are RFC 2131's (dhcp4/fsm.py), which a DHCPv6 client goes through
too (Solicit and Request for SELECTING and REQUESTING, Renew, Rebind).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable
from typing import ClassVar, Generic, Protocol, TypeVar

from . import metrics
from .dhcp4.fsm import Machine, State
from .errors import InterfaceGone

LOG = logging.getLogger(__name__)

HOSTNAME_UPDATE_WAIT_S = 5.0


class AnyLease(Protocol):
    """What the keeper needs of a lease of either family."""

    @property
    def address(self) -> object: ...
    @property
    def t1_at(self) -> float: ...
    @property
    def t2_at(self) -> float: ...
    @property
    def expires_at(self) -> float: ...
    @property
    def server_known(self) -> bool: ...
    @property
    def hostname_sent(self) -> str | None: ...


L = TypeVar("L", bound=AnyLease)


class Retry(Protocol):
    """The keeper's backoff after a failed step."""

    @property
    def keeper_retry_first_s(self) -> float: ...
    @property
    def keeper_retry_max_s(self) -> float: ...


class KeeperBase(Generic[L]):
    """Keeps one bound lease alive until cancelled, or InterfaceGone.

    Never stops by itself otherwise: a step that fails (netlink, the state file) is logged
    and retried with backoff; a lease that could not be stored or applied is retried
    until it is. Subclasses say how to `_extend` a lease, `_reacquire` one and whether a
    new one `_needs_apply`.

    One lives for every running container, asleep nearly all the time: no __dict__, and
    its sleep is one future and one timer (no Event, no timeout context).
    """

    __slots__ = ("_address_on", "_apply", "_applied", "_clock", "_on_lease", "_retry",
                 "_unapplied", "_unapply", "_unstored", "_waiter", "_woken", "failures",
                 "fsm", "hostname", "lease", "name", "renewals")

    family: ClassVar[str] = "4"
    """The address family, "4" or "6", as the metrics label it."""

    def __init__(
        self,
        name: str,
        lease: L,
        *,
        hostname: str | None,
        apply: Callable[[L | None, L], Awaitable[None]],
        unapply: Callable[[L], Awaitable[None]],
        on_lease: Callable[[L], None],
        retry: Retry,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.name = name
        self.lease = lease
        self.hostname = hostname
        # A recovered lease's server is unknown: only a broadcast (Rebind) can reach it.
        self.fsm = Machine(name, State.BOUND if lease.server_known else State.REBINDING)
        self.renewals = 0
        self.failures = 0
        self._apply = apply
        self._unapply = unapply
        self._on_lease = on_lease
        self._retry = retry
        self._clock = clock
        self._woken = False
        """set_hostname asked for an exchange now; the sleep consumes it."""
        self._waiter: asyncio.Future[None] | None = None
        """What the keeper sleeps on in BOUND (set_hostname ends the sleep early)."""
        self._applied = lease
        """The lease last configured on the interface (its address may be off now)."""
        self._address_on = True
        self._unstored: L | None = None
        self._unapplied: L | None = None
        if hostname and hostname != lease.hostname_sent:
            self._woken = True  # the server has not heard this name yet: tell it now

    @property
    def state(self) -> State:
        """The client's state."""
        return self.fsm.state

    def set_hostname(self, hostname: str) -> None:
        """Send `hostname` now and in every later request."""
        if hostname != self.hostname:
            self.hostname = hostname
            self._woken = True
            if self._waiter is not None and not self._waiter.done():
                self._waiter.set_result(None)

    async def run(self) -> None:
        """Run until cancelled, or InterfaceGone; never releases (the owner decides that)."""
        backoff = self._retry.keeper_retry_first_s
        try:
            while True:
                try:
                    if self.fsm.state is State.BOUND:
                        await self._bound()  # most of a keeper's life: a frame less
                    else:
                        await self._step()
                except (asyncio.CancelledError, KeyboardInterrupt, SystemExit, InterfaceGone):
                    raise
                except Exception:  # noqa: BLE001 - whatever failed, the lease must go on
                    self.failures += 1
                    metrics.keeper_restarted(self.family)
                    LOG.exception("%s: %s step failed; retrying in %gs", self.name,
                                  self.state.value, backoff)
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, self._retry.keeper_retry_max_s)
                else:
                    backoff = self._retry.keeper_retry_first_s
        finally:
            self.fsm.move(State.STOPPED)

    async def _step(self) -> None:
        """One move: BOUND sleeps until T1, RENEWING asks the lease's server until T2,
        REBINDING any server until the lease ends (then the address goes), INIT starts
        over."""
        state = self.state
        if state is State.BOUND:
            await self._bound()
        elif state is State.RENEWING:
            if not await self._extend(rebind=False, until=self.lease.t2_at):
                self.fsm.move(State.REBINDING)
        elif state is State.REBINDING:
            if not await self._extend(rebind=True, until=self.lease.expires_at):
                LOG.warning("%s: lease on %s expired with no answer from any server",
                            self.name, self.lease.address)
                await self._unconfigure()
                self.fsm.move(State.INIT)
        elif state is State.INIT:
            await self._reacquire()

    async def _extend(self, *, rebind: bool, until: float, retry: bool = True) -> bool:
        """Renew (the lease's server) or rebind (any) until wall time `until`; True once
        the state moved on (extended: BOUND; refused: INIT). Without `retry`, one try."""
        raise NotImplementedError

    async def _reacquire(self) -> None:
        """INIT: get a new lease from any server, apply it, and be BOUND."""
        raise NotImplementedError

    async def _hostname_update(self) -> None:
        """Tell the server the new host name now (one short exchange, no retries)."""
        self.fsm.move(State.RENEWING)
        if not await self._extend(rebind=False, until=self._clock() + HOSTNAME_UPDATE_WAIT_S,
                                  retry=False):
            self.fsm.move(State.BOUND)

    def _needs_apply(self, applied: L, new: L) -> bool:
        """Whether `new` changes what is configured in the container."""
        raise NotImplementedError

    async def _bound(self) -> None:
        """Sleep until T1 (sooner while a lease waits to be stored or applied), or until
        set_hostname wakes the keeper: then tell the server the name at once.

        The sleep is one future and one timer, awaited here rather than in a helper
        coroutine: a keeper spends nearly all its life in it, and every frame of the wait
        stays allocated for as long as the container runs.
        """
        if self._unstored is not None or self._unapplied is not None:
            await self._catch_up()
        when = self.lease.t1_at
        if self._unstored is not None or self._unapplied is not None:
            when = min(when, self._clock() + self._retry.keeper_retry_first_s)
        delay = when - self._clock()
        if not self._woken and delay > 0:
            loop = asyncio.get_running_loop()
            waiter = self._waiter = loop.create_future()
            timer = None if math.isinf(delay) else loop.call_later(delay, _wake, waiter)
            try:
                await waiter
            finally:
                self._waiter = None
                if timer is not None:
                    timer.cancel()
        woken, self._woken = self._woken, False
        if woken:
            LOG.info("%s: sending host name %r to the server", self.name, self.hostname)
            await self._hostname_update()
        elif self._clock() >= self.lease.t1_at:
            self.fsm.move(State.RENEWING)

    async def _catch_up(self) -> None:
        """Retry storing or applying a lease that failed before (logged, never raised)."""
        if self._unapplied is not None:
            await self._configure(self._unapplied)
        if self._unstored is not None:
            self._store(self._unstored)

    async def _commit(self, new: L) -> None:
        """Make `new` the lease: remember, store and configure it (failures retried later)."""
        self.lease = new
        self._store(new)
        if not self._address_on or self._needs_apply(self._applied, new):
            await self._configure(new)
        elif self._unapplied is None:
            # What is configured is `new` as far as the container can tell: remember it
            # as such, so the lease it replaces is not kept alive for this alone.
            self._applied = new

    def _renewal_level(self, old: L, new: L) -> int:
        """The log level of a renewal from `old` to `new`: INFO when it changed what the
        server grants (what `_needs_apply` compares, the server, the lifetimes), else
        DEBUG: a line per container per T1 at INFO would flood a busy host's log."""
        if self._needs_apply(old, new) or not self._same_terms(old, new):
            return logging.INFO
        return logging.DEBUG

    def _same_terms(self, old: L, new: L) -> bool:
        """Whether the server granted `new` on the same terms (server, lifetimes) as `old`."""
        raise NotImplementedError

    def _store(self, lease: L) -> None:
        try:
            self._on_lease(lease)
        except Exception as err:  # noqa: BLE001 - e.g. a full disk: keep the lease, retry
            if self._unstored is None:
                LOG.error("%s: could not store the lease on %s (%s); keeping it and "
                          "retrying", self.name, lease.address, err)
            self._unstored = lease
        else:
            self._unstored = None

    async def _configure(self, lease: L) -> None:
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
            LOG.warning("%s: could not remove %s (%s)", self.name, self._applied.address,
                        err)
        else:
            self._address_on = False


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)
