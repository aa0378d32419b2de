"""The status document: what the plugin knows right now, as JSON, for `net-dhcp status`
and `net-dhcp leases`.

The running plugin answers it on its own socket (`GET /net-dhcp/status`, api.py), built
from memory: the registry's networks and endpoints, the keepers' states and counters.
`state_file.py` builds the same shape from the state database when the plugin is down
(then `plugin` is null and every state is "unknown").

Shape (`schema` 1; times are Unix seconds, durations seconds, null when not known)::

    {"schema": 1,
     "plugin": {"pid", "version", "started_at", "uptime_s", "state_db"} | null,
     "now": <when this was built>,
     "networks": [{"id", "name", "bridge", "ipv6", "options": {...}, "endpoints"}],
     ("bridge": the LAN interface, the bridge or, with mode=macvlan/ipvlan, the parent)
     "endpoints": [{"id", "network_id", "network", "bridge", "mac", "container_id",
                    "container_name", "hostname", "joined", "sandbox",
                    "state", "state6", "renewals", "failures",
                    "ipv4": {"address", "server", "gateway", "dns", "obtained_at",
                             "lease_time_s", "t1_at", "t2_at", "expires_at",
                             "expires_in_s"} | null,
                    "ipv6": {"address", "server_duid", "router", "obtained_at",
                             "preferred_s", "valid_s", "t1_at", "t2_at", "expires_at",
                             "expires_in_s"} | null}],
     "totals": {"networks", "endpoints", "being_created", "by_state": {state: n},
                "renewals", "failures"}}

`state` is the IPv4 keeper's RFC 2131 state (BOUND, RENEWING, REBINDING, INIT,
SELECTING, REQUESTING), or: "not joined" (created, no container joined yet), "starting"
(joined, the keeper waits for the container's interface), "stopped" (joined, but the
keeper ended: the container's interface is gone), "unknown" (read from the state file).
`state6` is the IPv6 keeper's, null without an IPv6 lease. `renewals` and `failures`
count since the endpoint joined (or was re-adopted at start); the totals count every
keeper this plugin process ran, so they survive keepers stopping and starting.

Importing this module is cheap (stdlib only at run time): the CLI uses its constants.
"""

from __future__ import annotations

import functools
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from .dhcp4.lease import Lease
    from .dhcp6.lease import Lease6
    from .leases import LeaseSupervisor
    from .registry import Endpoint, Network, Registry

SCHEMA = 1
STATUS_PATH = "/net-dhcp/status"
"""The one non-Docker route of the plugin socket (Docker only POSTs /Plugin.* and
/NetworkDriver.*)."""

NOT_JOINED = "not joined"
STARTING = "starting"
STOPPED = "stopped"
UNKNOWN = "unknown"

Doc = dict[str, Any]


@functools.cache
def version() -> str:
    """The installed net-dhcp's version ("unknown" when run from a bare source tree)."""
    from importlib import metadata

    try:
        return metadata.version("net-dhcp")
    except metadata.PackageNotFoundError:
        return "unknown"


def _time(value: float | None) -> float | None:
    """A JSON-safe number of seconds: None for an unknown or infinite one."""
    if value is None or not math.isfinite(value):
        return None
    return round(value, 3)


def lease4_doc(lease: Lease, now: float) -> Doc:
    """An IPv4 lease as the status document shows it."""
    return {
        "address": str(lease.address),
        "server": str(lease.server_id) if lease.server_known else None,
        "gateway": str(lease.gateway) if lease.gateway else None,
        "dns": [str(d) for d in lease.dns],
        "obtained_at": _time(lease.obtained_at),
        "lease_time_s": _time(lease.lease_time_s),
        "t1_at": _time(lease.t1_at),
        "t2_at": _time(lease.t2_at),
        "expires_at": _time(lease.expires_at),
        "expires_in_s": _time(lease.expires_at - now),
    }


def lease6_doc(lease: Lease6, now: float) -> Doc:
    """An IPv6 lease as the status document shows it."""
    return {
        "address": str(lease.interface),
        "server_duid": lease.server_duid.hex() or None,
        "router": str(lease.router) if lease.router else None,
        "obtained_at": _time(lease.obtained_at),
        "preferred_s": _time(lease.preferred_s),
        "valid_s": _time(lease.valid_s),
        "t1_at": _time(lease.t1_at),
        "t2_at": _time(lease.t2_at),
        "expires_at": _time(lease.expires_at),
        "expires_in_s": _time(lease.expires_at - now),
    }


def network_doc(net: Network, endpoints: int) -> Doc:
    """A network as the status document shows it."""
    return {"id": net.id, "name": net.name, "bridge": net.options.lan,
            "ipv6": net.options.ipv6, "options": asdict(net.options), "endpoints": endpoints}


def endpoint_doc(ep: Endpoint, net: Network | None, now: float, *, state: str,
                 state6: str | None, renewals: int, failures: int,
                 lease: Lease | None = None, lease6: Lease6 | None = None) -> Doc:
    """An endpoint as the status document shows it; `lease`/`lease6` override the
    endpoint's (a keeper's lease is newer while storing it keeps failing)."""
    lease = lease or ep.lease
    lease6 = lease6 or ep.lease6
    return {
        "id": ep.id,
        "network_id": ep.network_id,
        "network": net.name if net is not None else None,
        "bridge": net.options.lan if net is not None else None,
        "mac": ep.mac,
        "container_id": ep.container_id,
        "container_name": ep.container_name,
        "hostname": ep.wanted_hostname,
        "joined": ep.sandbox is not None,
        "sandbox": ep.sandbox,
        "state": state,
        "state6": state6,
        "renewals": renewals,
        "failures": failures,
        "ipv4": lease4_doc(lease, now) if lease is not None else None,
        "ipv6": lease6_doc(lease6, now) if lease6 is not None else None,
    }


def totals_doc(networks: list[Doc], endpoints: list[Doc], *, being_created: int = 0,
               renewals: int = 0, failures: int = 0) -> Doc:
    """The counts at the end of the document."""
    by_state: dict[str, int] = {}
    for ep in endpoints:
        by_state[ep["state"]] = by_state.get(ep["state"], 0) + 1
    return {"networks": len(networks), "endpoints": len(endpoints),
            "being_created": being_created, "by_state": dict(sorted(by_state.items())),
            "renewals": renewals, "failures": failures}


def _states(ep: Endpoint, leases: LeaseSupervisor) -> tuple[str, str | None]:
    """(IPv4 state, IPv6 state or None) of an endpoint; see the module docstring."""
    has6 = ep.lease6 is not None
    if ep.sandbox is None:
        return NOT_JOINED, NOT_JOINED if has6 else None
    keeper = leases.keeper(ep)
    if keeper is not None and leases.keeping(ep):
        keeper6 = next((k for k in leases.keepers(ep) if k is not keeper), None)
        state6 = keeper6.state.value if keeper6 is not None else (STARTING if has6 else None)
        return keeper.state.value, state6
    if leases.keeping(ep):
        return STARTING, STARTING if has6 else None
    return STOPPED, STOPPED if has6 else None


def snapshot(registry: Registry, leases: LeaseSupervisor, *, started_at: float,
             now: float | None = None) -> Doc:
    """The running plugin's status document (synchronous: one consistent moment)."""
    now = time.time() if now is None else now
    endpoints: list[Doc] = []
    per_net: dict[str, int] = {}
    for ep in registry.endpoints.values():
        per_net[ep.network_id] = per_net.get(ep.network_id, 0) + 1
        state, state6 = _states(ep, leases)
        counts = leases.counts(ep)
        keeper = leases.keeper(ep)
        keeper6 = next((k for k in leases.keepers(ep) if k is not keeper), None)
        endpoints.append(endpoint_doc(
            ep, registry.networks.get(ep.network_id), now, state=state, state6=state6,
            renewals=counts.renewals, failures=counts.failures,
            lease=keeper.lease if keeper is not None else None,
            lease6=cast("Lease6", keeper6.lease) if keeper6 is not None else None))
    networks = [network_doc(net, per_net.get(net.id, 0)) for net in registry.networks.values()]
    totals = leases.totals()
    return {
        "schema": SCHEMA,
        "plugin": {"pid": os.getpid(), "version": version(), "started_at": _time(started_at),
                   "uptime_s": _time(max(0.0, now - started_at)),
                   "state_db": str(registry.store.path)},
        "now": _time(now),
        "networks": networks,
        "endpoints": endpoints,
        "totals": totals_doc(networks, endpoints,
                             being_created=len(registry.being_created()),
                             renewals=totals.renewals, failures=totals.failures),
    }


GAUGE_STATES = ("bound", "renewing", "rebinding", "init", "selecting", "requesting",
                "not_joined", "starting", "stopped")
"""The `state` label values of the metrics' lease gauge: the states above, lower case."""


@dataclass(frozen=True)
class Gauges:
    """What the metrics' gauges show at a scrape (metrics.Snapshot)."""

    leases: dict[tuple[str, str], int]
    """(family "4" or "6", state) -> leases; every GAUGE_STATES state is there, 0 or not."""
    networks: int
    endpoints: int


def gauge_state(state: str) -> str:
    """A status state as the metrics label it: "not joined" -> "not_joined", "BOUND" ->
    "bound"."""
    return state.lower().replace(" ", "_")


def gauges(registry: Registry, leases: LeaseSupervisor) -> Gauges:
    """The leases by family and state, from memory (cheap: no lease documents built)."""
    counts = {(family, state): 0 for family in ("4", "6") for state in GAUGE_STATES}
    for ep in registry.endpoints.values():
        state, state6 = _states(ep, leases)
        if ep.lease is not None:
            key = ("4", gauge_state(state))
            counts[key] = counts.get(key, 0) + 1
        if state6 is not None:
            key = ("6", gauge_state(state6))
            counts[key] = counts.get(key, 0) + 1
    return Gauges(counts, len(registry.networks), len(registry.endpoints))


def gauges_for(driver: object) -> Callable[[], Gauges] | None:
    """A zero-argument callable answering `gauges` for a real driver, else None."""
    registry = getattr(driver, "registry", None)
    leases = getattr(driver, "leases", None)
    if registry is None or leases is None:
        return None
    return functools.partial(gauges, registry, leases)


def source_for(driver: object, started_at: float) -> Callable[[], Doc] | None:
    """A zero-argument callable answering the status document for a real driver (one
    with a registry and a lease supervisor), else None."""
    registry = getattr(driver, "registry", None)
    leases = getattr(driver, "leases", None)
    if registry is None or leases is None:
        return None
    return functools.partial(snapshot, registry, leases, started_at=started_at)
