"""DHCPv4 client timing: RFC constants and the Timing knobs that tests shrink.

Kept free of heavy imports: the CLI reads the defaults from here.
"""

from __future__ import annotations

from dataclasses import dataclass

# RFC 2131 4.1: first retransmission after about 4 s, doubling up to 64 s. At start-up
# we have only lease_timeout (10 s by default), so the acquire path starts at 1 s.
ACQUIRE_FIRST_RETRY_S = 1.0
ACQUIRE_MAX_RETRY_S = 8.0
INIT_FIRST_RETRY_S = 4.0
INIT_MAX_RETRY_S = 64.0
# RFC 2131 4.4.5: in RENEWING/REBINDING wait half the remaining time, at least 60 s.
RENEW_RETRY_MIN_S = 60.0
# RFC 2131 3.1 step 5: after a DHCPDECLINE wait at least 10 s before starting over.
DECLINE_RETRY_S = 10.0
# RFC 5227 2.1.1: after MAX_CONFLICTS conflicts, at most one attempt per RATE_LIMIT_INTERVAL.
MAX_CONFLICTS = 10
CONFLICT_RATE_LIMIT_S = 60.0
# A keeper step that failed (netlink, state file) is retried with this backoff, forever.
KEEPER_RETRY_FIRST_S = 1.0
KEEPER_RETRY_MAX_S = 60.0


@dataclass(frozen=True)
class Timing:
    """Retransmission and retry constants; tests shrink them."""

    acquire_first_retry_s: float = ACQUIRE_FIRST_RETRY_S
    acquire_max_retry_s: float = ACQUIRE_MAX_RETRY_S
    init_first_retry_s: float = INIT_FIRST_RETRY_S
    init_max_retry_s: float = INIT_MAX_RETRY_S
    renew_retry_min_s: float = RENEW_RETRY_MIN_S
    renew_retry_max_s: float = float("inf")
    decline_retry_s: float = DECLINE_RETRY_S
    conflict_rate_limit_s: float = CONFLICT_RATE_LIMIT_S
    keeper_retry_first_s: float = KEEPER_RETRY_FIRST_S
    keeper_retry_max_s: float = KEEPER_RETRY_MAX_S
