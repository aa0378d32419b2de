"""`-o validate_dhcp=true`: refuse a network at create when no DHCP server answers on its bridge.

CreateNetwork runs the `doctor` probe (dhcp_probe.py): a throwaway veth pair of unique names
(`ndp<hex>h` on the bridge, `ndp<hex>c` the client), DISCOVERs from the client end through
the product's own DHCP socket, and the pair deleted in every case (finally, shielded from
cancellation). No REQUEST is sent, so an OFFER leaves no lease on the server. The client
end's MAC begins with 06: (see dhcp_probe.CLIENT_OCTET), which neither generated container
MACs (02:) nor Docker's (02:42:) use; the bridge end's with fe:, so an unpinned bridge MAC
does not move.

It waits as long as a container would for its lease (`lease_timeout`), at most MAX_WAIT_S so
that the answer reaches Docker before a managed plugin's HTTP timeout (30 s by default).
With no OFFER the network is refused with the lease-timeout diagnosis (diagnose.py). Only
DHCPv4 is checked, also with -o ipv6=true. Networks re-adopted after a plugin restart
(Driver.recover_network) are not probed again: they passed at their create, and a LAN
whose server is down for a moment must not lose its networks.
"""

from __future__ import annotations

import logging

from . import dhcp_probe
from .config import NetworkOptions
from .dhcp4.client import AcquireStats
from .diagnose import explain_no_lease
from .errors import LeaseError, NetlinkError

LOG = logging.getLogger(__name__)

MAX_WAIT_S = 20.0
"""Longest wait for an OFFER: below the 30 s a managed plugin's Docker client waits."""
HINT = "or create the network without -o validate_dhcp=true"


def wait_s(opts: NetworkOptions) -> float:
    """How long the probe waits for an OFFER on this network."""
    return min(opts.lease_timeout_s, MAX_WAIT_S)


def stuck_message(bridge: str, timeout_s: float) -> str:
    """The refusal when the probe port never passed frames (bridge down, or STP)."""
    return (f"validate_dhcp: the probe port on bridge {bridge} did not start passing frames "
            f"within {timeout_s:g}s, so no DISCOVER could be sent. Bring the bridge up (ip "
            f"link set {bridge} up); if STP holds new ports back, turn it off (ip link set "
            f"{bridge} type bridge stp_state 0) or raise -o lease_timeout; {HINT}")


def offers_text(result: dhcp_probe.ProbeResult) -> str:
    """Who answered, for the log."""
    return ", ".join(f"{o.server} ({o.server_mac}) offered {o.address} after {o.after_s:g}s"
                     for o in result.offers)


async def refusal(bridge: str, timeout_s: float, result: dhcp_probe.ProbeResult, *,
                  kind: str = "bridge") -> str | None:
    """Why the network must be refused, or None when a server answered."""
    if result.offers:
        return None
    if not result.forwarding:
        return stuck_message(bridge, timeout_s)
    why = await explain_no_lease(bridge, timeout_s, AcquireStats(discovers=result.discovers),
                                 kind=kind)
    return f"validate_dhcp: {why}; {HINT}"


async def validate(opts: NetworkOptions) -> None:
    """Probe the network's bridge (see the module docstring); raise LeaseError when no DHCP
    server answers, NetlinkError when the probe port cannot be made."""
    timeout_s = wait_s(opts)
    where = (f"bridge {opts.bridge}" if opts.mode == "bridge"
             else f"parent {opts.parent} ({opts.mode})")
    try:
        if opts.mode == "bridge":
            result = await dhcp_probe.probe(opts.bridge, timeout_s)
        else:
            result = await dhcp_probe.probe(opts.lan, timeout_s, kind=opts.mode)
    except OSError as err:
        raise NetlinkError(f"validate_dhcp: could not make a probe port on {where}: "
                           f"{err}") from err
    LOG.info("validate_dhcp: probe port %s on %s sent %d DISCOVER(s) in %gs: %s",
             result.port, where, result.discovers, result.waited_s,
             offers_text(result) or "no offer")
    why = await refusal(opts.lan, timeout_s, result, kind=opts.mode)
    if why is not None:
        LOG.warning("network refused: %s", why)
        raise LeaseError(why)
    if len(result.offers) > 1:
        LOG.warning("validate_dhcp: %d DHCP servers answer on %s (%s): containers get "
                    "their address from whichever answers first", len(result.offers),
                    where, offers_text(result))
