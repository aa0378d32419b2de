"""Prometheus metrics: counters bumped where lease events happen, gauges read at scrape time.

Off by default. `net-dhcp serve --metrics ADDR` (metrics_server.py) calls `enable`, which
imports prometheus_client (~90 ms, so only then) and makes a `Metrics` with a registry of
its own (never the library's global one: tests make several). The lease paths call the
module functions below (the hooks); with metrics off each is one global look-up and a
return. A hook never raises: whatever fails in it is logged once and the lease path goes
on, a lease being worth more than a count.

The hooks feed one Metrics per process (the daemon's). Families are "4" (DHCPv4) and "6"
(DHCPv6). Every name and label is documented in the README's "Metrics" section; keep the
two in step.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry, Counter, Histogram
    from prometheus_client.metrics_core import Metric

LOG = logging.getLogger(__name__)

PREFIX = "net_dhcp"
CREATE = "create"
"""An acquisition at CreateEndpoint (the container waits for it)."""
KEEPER = "keeper"
"""An acquisition by a running container's keeper, after its lease was refused or ran out."""
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
"""Seconds: a Rapid Commit exchange on the LAN takes milliseconds, the conflict probe adds
30 ms, lease_timeout is 10 s by default (at most 600 s)."""

LeaseCounts = Callable[[], "Snapshot"]


class Snapshot(Protocol):
    """What the lease gauges are computed from at every scrape (status.gauges)."""

    @property
    def leases(self) -> dict[tuple[str, str], int]:
        """(family, state) -> number of leases."""
    @property
    def networks(self) -> int: ...
    @property
    def endpoints(self) -> int: ...


class Metrics:
    """The plugin's metrics in a registry of their own; `registry` is what is exposed."""

    def __init__(self, source: LeaseCounts | None = None) -> None:
        from prometheus_client import CollectorRegistry, Counter, Histogram

        self.registry: CollectorRegistry = CollectorRegistry(auto_describe=True)
        r = self.registry

        def counter(name: str, doc: str, labels: tuple[str, ...] = ("family",)) -> Counter:
            return Counter(f"{PREFIX}_{name}", doc, labels, registry=r)

        self.acquisitions = counter(
            "acquisitions", "Leases obtained by a full exchange (DISCOVER or Solicit): at "
            "CreateEndpoint (origin=create) or by a keeper starting over (origin=keeper)",
            ("family", "origin"))
        self.acquisition_seconds: Histogram = Histogram(
            f"{PREFIX}_acquisition_seconds", "Time from the first DISCOVER or Solicit to a "
            "usable lease (conflict probe included), for the acquisitions counted in "
            f"{PREFIX}_acquisitions_total", ("family", "origin"), registry=r,
            buckets=LATENCY_BUCKETS)
        self.failures = counter(
            "failures", "Acquisitions that ended without a lease: CreateEndpoint gave up "
            "after lease_timeout (origin=create), or one attempt of a keeper that starts "
            "over (origin=keeper; it tries again)", ("family", "origin"))
        self.renewals = counter(
            "renewals", "Leases extended by their own server (RENEWING; DHCPv6 Renew)")
        self.rebinds = counter(
            "rebinds", "Leases extended by any server after T2 (REBINDING; DHCPv6 Rebind)")
        self.naks = counter(
            "naks", "Refusals from a server: DHCPNAK (IPv4), a Reply saying NoBinding, "
            "NotOnLink or a valid lifetime of 0 to a Renew or Rebind (IPv6)")
        self.declines = counter(
            "declines", "Addresses declined (DHCPDECLINE, DHCPv6 Decline) because the "
            "conflict probe (ARP, DAD) found them in use on the LAN")
        self.conflicts = counter(
            "conflicts", "Acquisitions that ended without a lease after declining addresses "
            "in use on the LAN (also counted in failures): the pool is taken by other hosts")
        self.releases = counter(
            "releases", "Leases given back (DHCPRELEASE, DHCPv6 Release sent) when a "
            "container stopped or its endpoint was removed")
        self.keeper_restarts = counter(
            "keeper_restarts", "Keeper steps that failed (a netlink call, the state file, a "
            "socket) and were retried after a backoff: the keeper restarts its step, the "
            "failures of net-dhcp status")
        if source is not None:
            r.register(_Gauges(source))


class _Gauges:
    """The gauges, computed from the registry and the lease supervisor at every scrape."""

    def __init__(self, source: LeaseCounts) -> None:
        self._source = source

    def describe(self) -> Iterable[Metric]:
        return list(self._families(None))

    def collect(self) -> Iterable[Metric]:
        return list(self._families(self._source()))

    def _families(self, snap: Snapshot | None) -> Iterator[Metric]:
        from prometheus_client.core import GaugeMetricFamily

        leases = GaugeMetricFamily(f"{PREFIX}_leases", "Leases held now, by address family "
                                   "and keeper state", labels=("family", "state"))
        networks = GaugeMetricFamily(f"{PREFIX}_networks", "net-dhcp networks known now")
        endpoints = GaugeMetricFamily(f"{PREFIX}_endpoints", "Endpoints (containers' "
                                      "interfaces) known now")
        if snap is not None:
            for (family, state), n in sorted(snap.leases.items()):
                leases.add_metric((family, state), n)
            networks.add_metric((), snap.networks)
            endpoints.add_metric((), snap.endpoints)
        yield leases
        yield networks
        yield endpoints


_active: Metrics | None = None
_failed_once = False


def enable(source: LeaseCounts | None = None) -> Metrics:
    """Start counting (imports prometheus_client); the hooks feed the returned Metrics."""
    global _active
    _active = Metrics(source)
    return _active


def disable() -> None:
    """Stop counting: the hooks do nothing again."""
    global _active
    _active = None


def active() -> Metrics | None:
    """The Metrics the hooks feed, None when metrics are off."""
    return _active


def _broken(what: str) -> None:
    global _failed_once
    if not _failed_once:
        _failed_once = True
        LOG.exception("metrics: counting %s failed; leases are not affected (further "
                      "failures of the metrics are not logged)", what)


def _family(family: str) -> str:
    return "6" if family == "6" else "4"


# ---- the hooks: one global check when metrics are off, never raise ------------------------
def acquired(family: str, seconds: float, origin: str = CREATE) -> None:
    """A lease obtained by a full exchange in `seconds`."""
    m = _active
    if m is None:
        return
    try:
        fam = _family(family)
        m.acquisitions.labels(fam, origin).inc()
        m.acquisition_seconds.labels(fam, origin).observe(max(0.0, float(seconds)))
    except Exception:  # noqa: BLE001 - never let a count break a lease
        _broken("an acquisition")


def exchanged(family: str, stats: object) -> None:
    """What an acquisition's exchange saw, whatever its outcome: the NAKs (IPv4) and the
    addresses declined (`stats`: an AcquireStats or Acquire6Stats)."""
    m = _active
    if m is None:
        return
    try:
        fam = _family(family)
        naks = int(getattr(stats, "naks", 0) or 0)
        declined = len(getattr(stats, "declined", ()) or ())
        if naks:
            m.naks.labels(fam).inc(naks)
        if declined:
            m.declines.labels(fam).inc(declined)
    except Exception:  # noqa: BLE001 - never let a count break a lease
        _broken("an exchange")


def failed(family: str, stats: object | None = None, origin: str = CREATE) -> None:
    """An acquisition ended without a lease; a conflict too if it declined addresses."""
    m = _active
    if m is None:
        return
    try:
        fam = _family(family)
        m.failures.labels(fam, origin).inc()
        if getattr(stats, "declined", None):
            m.conflicts.labels(fam).inc()
    except Exception:  # noqa: BLE001 - never let a count break a lease
        _broken("a failure")


def _count(family: str, counter: Callable[[Metrics], Counter], what: str) -> None:
    """One more of a family-labelled counter (`counter` picks it), as the hooks do."""
    m = _active
    if m is None:
        return
    try:
        counter(m).labels(_family(family)).inc()
    except Exception:  # noqa: BLE001 - never let a count break a lease
        _broken(what)


def declined(family: str) -> None:
    """An address declined after the acquisition that got it had ended (the end of the
    conflict probe, at Join)."""
    _count(family, lambda m: m.declines, "a decline")


def extended(family: str, *, rebind: bool) -> None:
    """A lease extended: renewed by its server, or rebound by any."""
    _count(family, (lambda m: m.rebinds) if rebind else (lambda m: m.renewals),
           "a renewal")


def refused(family: str) -> None:
    """A server refused a running container's lease (DHCPNAK; DHCPv6 NoBinding...)."""
    _count(family, lambda m: m.naks, "a NAK")


def released(family: str) -> None:
    """A lease given back (DHCPRELEASE or DHCPv6 Release sent)."""
    _count(family, lambda m: m.releases, "a release")


def keeper_restarted(family: str) -> None:
    """A keeper step failed and is retried after a backoff."""
    _count(family, lambda m: m.keeper_restarts, "a keeper restart")


def exposition(m: Metrics) -> tuple[bytes, str]:
    """(body, content type) of a scrape: the Prometheus text format."""
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    return generate_latest(m.registry), CONTENT_TYPE_LATEST
