"""DHCPv6 client timing: RFC 8415 section 7.6's constants and section 15's retransmission.

Kept free of heavy imports. Tests shrink the knobs through `Timing6`.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass

INFINITY = 0xFFFFFFFF
"""A lifetime or T1/T2 of all ones means infinity (RFC 8415 7.7)."""


@dataclass(frozen=True)
class Retrans:
    """One message's retransmission parameters (RFC 8415 15): initial and maximum
    retransmission time, maximum count and duration (0: unbounded)."""

    irt: float
    mrt: float = 0.0
    mrc: int = 0
    mrd: float = 0.0


# RFC 8415 7.6.
SOLICIT = Retrans(irt=1.0, mrt=3600.0)
REQUEST = Retrans(irt=1.0, mrt=30.0, mrc=10)
CONFIRM = Retrans(irt=1.0, mrt=4.0, mrd=10.0)
RENEW = Retrans(irt=10.0, mrt=600.0)
REBIND = Retrans(irt=10.0, mrt=600.0)
RELEASE = Retrans(irt=1.0, mrc=4)
DECLINE = Retrans(irt=1.0, mrc=4)
# RFC 8415 21.4: T1/T2 the server leaves to the client: 0.5 and 0.8 of the preferred lifetime.
T1_FRACTION = 0.5
T2_FRACTION = 0.8
# A keeper that cannot get a lease starts over after this (a new Solicit exchange).
INIT_RETRY_S = 10.0
# After a second Decline in one acquisition, wait this long before soliciting again (as
# RFC 2131 3.1 / RFC 5227 ask of IPv4), so a link that claims every address is not
# drained of them.
DECLINE_RETRY_S = 10.0


@dataclass(frozen=True)
class Timing6:
    """What the DHCPv6 client waits; tests shrink it."""

    solicit: Retrans = SOLICIT
    request: Retrans = REQUEST
    confirm: Retrans = CONFIRM
    renew: Retrans = RENEW
    rebind: Retrans = REBIND
    release: Retrans = RELEASE
    init_retry_s: float = INIT_RETRY_S
    decline_retry_s: float = DECLINE_RETRY_S
    keeper_retry_first_s: float = 1.0
    keeper_retry_max_s: float = 60.0


def timeouts(p: Retrans, rng: random.Random, *, first_positive: bool = False) -> Iterator[float]:
    """Successive retransmission timeouts RT (RFC 8415 15): RT = IRT + RAND*IRT, then
    2*RTprev + RAND*RTprev, capped at MRT + RAND*MRT; RAND in [-0.1, 0.1] (strictly
    positive for the first Solicit, `first_positive`). Stops after MRC transmissions;
    MRD is the caller's (it knows when the exchange started)."""
    rand = rng.uniform(0.0, 0.1) if first_positive else rng.uniform(-0.1, 0.1)
    rt = p.irt + rand * p.irt
    count = 0
    while True:
        count += 1
        yield rt
        if p.mrc and count >= p.mrc:
            return
        rt = 2 * rt + rng.uniform(-0.1, 0.1) * rt
        if p.mrt and rt > p.mrt:
            rt = p.mrt + rng.uniform(-0.1, 0.1) * p.mrt
