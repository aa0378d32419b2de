"""`net-dhcp status`: a status document as a short report. Stdlib only."""

from __future__ import annotations

from typing import Any

from .cli_output import cell, duration, table, when
from .text import printable

NETWORK_HEADERS = ("NETWORK", "ID", "LAN", "IPV6", "ENDPOINTS")


def _by_state(by_state: dict[str, int]) -> str:
    return ", ".join(f"{state} {n}" for state, n in by_state.items())


def render(doc: dict[str, Any], socket: str) -> str:
    """The report of a running plugin (`doc` from the status route)."""
    plugin = doc.get("plugin") or {}
    totals = doc.get("totals") or {}
    endpoints = totals.get("endpoints", len(doc.get("endpoints") or []))
    detail = _by_state(totals.get("by_state") or {})
    if totals.get("being_created"):
        detail = ", ".join(filter(None, [detail, f"{totals['being_created']} being created"]))
    lines = [
        f"plugin     running: pid {cell(plugin.get('pid'))}, net-dhcp "
        f"{cell(plugin.get('version'))}, up {duration(plugin.get('uptime_s'))} "
        f"(since {when(plugin.get('started_at'))})",
        f"socket     {printable(socket)}",
        f"state db   {printable(str(plugin.get('state_db') or '-'))}",
        f"networks   {totals.get('networks', len(doc.get('networks') or []))}",
        f"endpoints  {endpoints}" + (f" ({detail})" if detail else ""),
        f"renewals   {totals.get('renewals', 0)}",
        f"failures   {totals.get('failures', 0)}",
    ]
    nets = doc.get("networks") or []
    if nets:
        rows = [[n.get("name"), str(n.get("id") or "")[:12], n.get("bridge"),
                 "yes" if n.get("ipv6") else "no", n.get("endpoints", 0)] for n in nets]
        lines += ["", table(NETWORK_HEADERS, rows)]
    return "\n".join(lines)
