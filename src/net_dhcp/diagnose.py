"""Explain a missing lease: read-only checks of what usually eats DHCP on a bridge."""

from __future__ import annotations

import asyncio
import logging
import shutil
from pathlib import Path

from .dhcp4.client import AcquireStats
from .dhcp6.client import Acquire6Stats

LOG = logging.getLogger(__name__)

BR_NF_CALL_IPTABLES = Path("/proc/sys/net/bridge/bridge-nf-call-iptables")


async def forward_policy() -> tuple[str | None, list[str]]:
    """(policy, rules) of the iptables FORWARD chain, read-only; (None, []) if unknown."""
    exe = shutil.which("iptables")
    if exe is None:
        return None, []
    try:
        proc = await asyncio.create_subprocess_exec(
            exe, "-w", "2", "-S", "FORWARD",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
        )
        async with asyncio.timeout(5.0):
            out, _ = await proc.communicate()
    except (OSError, TimeoutError) as err:
        LOG.debug("could not read the FORWARD chain: %s", err)
        return None, []
    policy: str | None = None
    rules: list[str] = []
    for line in out.decode(errors="replace").splitlines():
        if line.startswith("-P FORWARD "):
            policy = line.split()[2]
        elif line.startswith("-A FORWARD "):
            rules.append(line)
    return policy, rules


def _bridge_netfilter_on() -> bool:
    try:
        return BR_NF_CALL_IPTABLES.read_text().strip() == "1"
    except OSError:
        return False


def _bridge_accepted(bridge: str, rules: list[str]) -> bool:
    for rule in rules:
        words = rule.split()
        if words[-2:] == ["-j", "ACCEPT"] and f"-i {bridge}" in rule and "-m" not in words:
            return True
    return False


def _where(lan: str, kind: str) -> str:
    return f"bridge {lan}" if kind == "bridge" else f"parent {lan} ({kind})"


async def explain_no_lease(bridge: str, timeout_s: float, stats: AcquireStats, *,
                           kind: str = "bridge") -> str:
    """A message naming the likely causes of a missing lease and how to fix each; `bridge`
    is the network's LAN interface, a parent when `kind` is macvlan or ipvlan."""
    head = f"no DHCP lease within {timeout_s:g}s on {_where(bridge, kind)}"
    if stats.declined:
        addrs = ", ".join(str(a) for a in stats.declined)
        return (f"{head}: every address offered ({addrs}) is already used by another host on "
                "the LAN (it answered ARP). Find that host or remove the address from the "
                "DHCP server's pool.")
    if stats.naks:
        return (f"{head}: the DHCP server refused the request (DHCPNAK: "
                f"{stats.last_nak_message or 'no reason given'}). Check the server's "
                "configuration for this LAN and client.")
    if stats.offers:
        return (f"{head}: an offer came ({stats.offers}) but no acknowledgement, after "
                f"{stats.requests} REQUEST(s). The server stopped answering after its offer "
                "(is it still running?), or it ping-checks the address before it answers: "
                "then raise the network's -o lease_timeout (e.g. lease_timeout=30s).")
    causes: list[str] = []
    if kind != "bridge":
        causes += _parent_causes(bridge, kind)
    elif _bridge_netfilter_on():
        policy, rules = await forward_policy()
        if policy == "DROP" and not _bridge_accepted(bridge, rules):
            causes.append(
                "the host's firewall drops it: bridge netfilter is on "
                "(net.bridge.bridge-nf-call-iptables=1) and the iptables FORWARD policy is DROP "
                "(Docker sets it), so DHCP across the bridge is discarded. Fix: "
                f"iptables -I FORWARD -i {bridge} -o {bridge} -j ACCEPT"
            )
    if kind == "bridge":
        causes.append(
            f"no DHCP server answered on {bridge}: check that the bridge holds your LAN "
            f"interface (ip link show master {bridge}) and that a DHCP server serves that LAN"
        )
    causes.append(
        "a server that ping-checks new addresses (dnsmasq does by default, about 3s) may need "
        f"a longer lease_timeout than {timeout_s:g}s: recreate the network with e.g. "
        "-o lease_timeout=30s"
    )
    return f"{head}; sent {stats.discovers} DISCOVER(s), no offer came. Likely causes: " + \
        "; ".join(f"({i}) {c}" for i, c in enumerate(causes, 1))


def _parent_causes(parent: str, kind: str) -> list[str]:
    """What usually eats DHCP for macvlan/ipvlan links on a parent."""
    causes = [f"no DHCP server answered through {parent}: check that {parent} is the "
              "interface on your LAN (ip -br addr) and that a DHCP server serves that LAN"]
    if kind == "macvlan":
        causes.append(
            f"the LAN drops frames from MACs other than {parent}'s own: a Wi-Fi parent (an "
            "access point takes only its client's MAC) or a switch port with MAC limits "
            "(port security). Fix: use -o mode=ipvlan (one MAC for all containers), or allow "
            "more MACs on that port")
    else:
        causes.append(
            "the DHCP server does not answer ipvlan containers: they all share the parent's "
            "MAC and are told apart by their client identifier (option 61) only, and the "
            "answer must be broadcast (they ask for it). A server that keys leases by MAC "
            "alone gives them one address. Fix: use -o mode=macvlan, or a server that keys "
            "by client identifier (dnsmasq, Kea)")
    return causes


def explain_no_lease6(bridge: str, timeout_s: float, stats: Acquire6Stats, *,
                      kind: str = "bridge") -> str:
    """The message for a network with -o ipv6=true whose DHCPv6 server did not answer."""
    head = (f"no DHCPv6 lease within {timeout_s:g}s on {_where(bridge, kind)} (the network "
            "asks for "
            f"IPv6 with ipv6=true): {stats.summary()}")
    if stats.declined:
        return (f"{head}. Every address offered is already used by another host on the LAN "
                "(it answered duplicate address detection): find that host, or remove the "
                "address from the DHCPv6 server's range.")
    if stats.no_addrs:
        return (f"{head}. The server has no address for this client ({stats.last_status}): "
                "check the size of its IPv6 range and that it serves this link.")
    return (f"{head}. Check that a DHCPv6 server serves this LAN (dnsmasq: "
            "--dhcp-range=<prefix>::100,<prefix>::1ff,64 with --enable-ra; Kea: a subnet6 "
            "with a pool) and that ip6tables lets UDP 546/547 "
            f"{'across the bridge' if kind == 'bridge' else 'through'}, or create "
            "the network without -o ipv6=true for IPv4 only.")
