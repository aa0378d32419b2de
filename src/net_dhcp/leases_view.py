"""`net-dhcp leases`: the endpoints of a status document as lease rows, filtered.

Stdlib only. The rows are the document's endpoint entries (status.py); the table shows
container, network, MAC, IPv4, IPv6, host name, state and time to expiry of each.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .cli_output import address, duration, table

HEADERS = ("CONTAINER", "NETWORK", "MAC", "IPV4", "IPV6", "HOSTNAME", "STATE", "EXPIRES IN")
ID_SHOWN = 12


def _short(ident: object) -> str | None:
    return str(ident)[:ID_SHOWN] if ident else None


def container_label(ep: dict[str, Any]) -> str | None:
    """The container's name, else its short ID, else None (not known to the plugin)."""
    return ep.get("container_name") or _short(ep.get("container_id"))


def network_label(ep: dict[str, Any]) -> str | None:
    """The network's Docker name, else its short ID."""
    return ep.get("network") or _short(ep.get("network_id"))


def _is_prefix(wanted: str, ident: object) -> bool:
    return bool(ident) and str(ident).startswith(wanted)


def matches_network(ep: dict[str, Any], wanted: str) -> bool:
    """A network given by name, bridge or ID (a prefix of it will do)."""
    return wanted in (ep.get("network"), ep.get("bridge")) or _is_prefix(wanted,
                                                                         ep.get("network_id"))


def matches_container(ep: dict[str, Any], wanted: str) -> bool:
    """A container given by name (a leading "/" as Docker shows it is fine), host name,
    container ID or endpoint ID (a prefix of either will do)."""
    name = wanted.lstrip("/") or wanted
    return (name in (ep.get("container_name"), ep.get("hostname"))
            or _is_prefix(wanted, ep.get("container_id")) or _is_prefix(wanted, ep.get("id")))


def select(endpoints: Sequence[dict[str, Any]], *, networks: Sequence[str] = (),
           containers: Sequence[str] = ()) -> list[dict[str, Any]]:
    """The endpoints on any of `networks` and of any of `containers` (empty: all), sorted
    by network, container and MAC."""
    rows = [ep for ep in endpoints
            if (not networks or any(matches_network(ep, n) for n in networks))
            and (not containers or any(matches_container(ep, c) for c in containers))]
    return sorted(rows, key=lambda ep: (network_label(ep) or "", container_label(ep) or "",
                                        ep.get("mac") or ""))


def state_label(ep: dict[str, Any]) -> str:
    """The IPv4 state, with the IPv6 one after it when they differ."""
    state = str(ep.get("state") or "")
    state6 = ep.get("state6")
    if state6 and state6 != state:
        return f"{state} (v6 {state6})"
    return state


def expires_in(ep: dict[str, Any]) -> float | None:
    """Seconds until the IPv4 lease ends (the IPv6 one's without IPv4)."""
    for family in ("ipv4", "ipv6"):
        lease = ep.get(family)
        if lease:
            value = lease.get("expires_in_s")
            return float(value) if value is not None else float("inf")
    return None


def row(ep: dict[str, Any]) -> list[object]:
    """One table row (see HEADERS)."""
    v4, v6 = ep.get("ipv4") or {}, ep.get("ipv6") or {}
    return [container_label(ep), network_label(ep), ep.get("mac"), address(v4.get("address")),
            address(v6.get("address")), ep.get("hostname"), state_label(ep),
            duration(expires_in(ep))]


def render(endpoints: Sequence[dict[str, Any]]) -> str:
    """The lease table, or a line saying there is none."""
    if not endpoints:
        return "no leases"
    return table(HEADERS, [row(ep) for ep in endpoints])
