"""The DHCPv4 client's states (RFC 2131 figure 5) and the moves allowed between them."""

from __future__ import annotations

import enum
import logging

LOG = logging.getLogger(__name__)


class State(enum.Enum):
    """RFC 2131 figure 5 client states (INIT-REBOOT/REBOOTING unused), plus STOPPED."""

    INIT = "INIT"
    SELECTING = "SELECTING"
    REQUESTING = "REQUESTING"
    BOUND = "BOUND"
    RENEWING = "RENEWING"
    REBINDING = "REBINDING"
    STOPPED = "STOPPED"


TRANSITIONS: dict[State, frozenset[State]] = {
    State.INIT: frozenset({State.SELECTING}),
    # No offer within the attempt, or every offer unusable: back to INIT.
    State.SELECTING: frozenset({State.REQUESTING, State.INIT}),
    # NAK, decline or no answer: INIT; ACK: BOUND.
    State.REQUESTING: frozenset({State.BOUND, State.INIT}),
    State.BOUND: frozenset({State.RENEWING}),
    # ACK: BOUND; T2: REBINDING; NAK: INIT.
    State.RENEWING: frozenset({State.BOUND, State.REBINDING, State.INIT}),
    # ACK: BOUND; NAK or expiry: INIT.
    State.REBINDING: frozenset({State.BOUND, State.INIT}),
    State.STOPPED: frozenset(),
}
"""Allowed moves; any state may also move to STOPPED, and none leaves it."""


class IllegalTransition(RuntimeError):
    """A move the RFC 2131 state diagram does not allow: a bug in the client."""


class Machine:
    """One client's current state; `move` is the only way to change it."""

    def __init__(self, name: str, initial: State = State.INIT) -> None:
        self.name = name
        self._state = initial

    @property
    def state(self) -> State:
        """The current state."""
        return self._state

    def move(self, to: State) -> None:
        """Change state, or raise IllegalTransition; staying put is allowed."""
        now = self._state
        if to is now:
            return
        if to is not State.STOPPED and to not in TRANSITIONS[now]:
            raise IllegalTransition(f"{self.name}: {now.value} -> {to.value} is not allowed")
        if now is State.STOPPED:
            raise IllegalTransition(f"{self.name}: a stopped client cannot move to {to.value}")
        LOG.debug("%s: %s -> %s", self.name, now.value, to.value)
        self._state = to
