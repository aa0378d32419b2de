"""`net-dhcp doctor`: check a bridge for every known cause of lease timeouts.

Each check gives one finding: ok, problem (exit 1), warning, or skipped, with the fix
for anything that is not ok. In order:

* bridge     the bridge exists, is a Linux bridge, and is up;
* ports      it has a port besides net-dhcp's own (the LAN interface), and one is up;
* stp        STP off, or its forwarding delay shorter than a lease timeout (a new port
             passes nothing for 2 x forward_delay);
* vlan       (only when VLAN filtering is on) a container's port may be in another VLAN;
* mac        the bridge's MAC is pinned (else it follows its ports as containers come
             and go, and the host loses its own lease and ARP entries);
* netfilter  no iptables (legacy or nf_tables) or nftables chain on the forward hook
             drops DHCP bridged across it (firewall.py);
* dhcp       a DHCP server answers a DISCOVER sent from a throwaway port on the bridge
             (dhcp_probe.py).

Everything is read-only except the probe's veth pair, which is deleted when it is done.
Reading the firewall and probing need root; without it those checks are skipped.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import textwrap
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from . import dhcp_probe, firewall
from .attach.veth import HOST_IF_PREFIX
from .config import DEFAULT_LEASE_TIMEOUT_S
from .rtnl import IFF_UP

OK, PROBLEM, WARNING, SKIPPED = "ok", "problem", "warning", "skipped"
NET_ADDR_SET = 3
"""addr_assign_type of an interface whose MAC was set explicitly."""
USER_HZ = 100
"""sysfs shows bridge timers in clock ticks of USER_HZ."""
DEFAULT_PROBE_S = 8.0


@dataclass
class Finding:
    """One check's outcome."""

    check: str
    status: str
    message: str
    fix: str | None = None


@dataclass
class BridgeReport:
    """Every finding for one bridge."""

    bridge: str
    findings: list[Finding] = field(default_factory=list)

    @property
    def problems(self) -> int:
        """How many findings are problems."""
        return sum(f.status == PROBLEM for f in self.findings)

    def finding(self, check: str) -> Finding | None:
        """The finding of `check`, if that check ran."""
        return next((f for f in self.findings if f.check == check), None)


@dataclass(frozen=True)
class Port:
    """A port of the bridge: whose it is, and whether it passes traffic."""

    name: str
    owner: str
    """"lan" (anything not net-dhcp's), "container" (a net-dhcp veth), "probe"."""
    up: bool
    mac: str | None


@dataclass
class BridgeFacts:
    """What sysfs says about a bridge."""

    name: str
    exists: bool = False
    is_bridge: bool = False
    index: int | None = None
    up: bool = False
    mac: str | None = None
    mac_pinned: bool | None = None
    ports: list[Port] = field(default_factory=list)
    stp: bool = False
    forward_delay_s: float = 0.0
    vlan_filtering: bool = False
    default_pvid: int | None = None

    def lan_ports(self) -> list[Port]:
        """Ports that are not net-dhcp's."""
        return [p for p in self.ports if p.owner == "lan"]


@dataclass(frozen=True)
class Host:
    """Where the system is read (tests give a fake tree) and whether we are root."""

    sys: Path = Path("/sys")
    proc: Path = Path("/proc")
    root: bool = field(default_factory=lambda: os.geteuid() == 0)


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def _int(text: str | None, base: int = 10) -> int | None:
    try:
        return int(text, base) if text is not None else None
    except ValueError:
        return None


def _owner(name: str) -> str:
    if name.startswith(dhcp_probe.PREFIX) and len(name) == len(dhcp_probe.PREFIX) + 7:
        return "probe"
    return "container" if name.startswith(HOST_IF_PREFIX) else "lan"


def _is_up(net: Path) -> bool:
    state = _read(net / "operstate")
    flags = _int(_read(net / "flags"), 16) or 0
    return state == "up" or (state == "unknown" and bool(flags & IFF_UP))


def read_facts(bridge: str, host: Host | None = None) -> BridgeFacts:
    """The bridge as sysfs shows it (host namespace)."""
    host = host or Host()
    facts = BridgeFacts(bridge)
    net = host.sys / "class/net" / bridge
    if "/" in bridge or bridge in ("", ".", "..") or not net.exists():
        return facts
    facts.exists = True
    facts.is_bridge = (net / "bridge").is_dir()
    facts.index = _int(_read(net / "ifindex"))
    facts.up = bool((_int(_read(net / "flags"), 16) or 0) & IFF_UP)
    facts.mac = _read(net / "address")
    assign = _int(_read(net / "addr_assign_type"))
    facts.mac_pinned = None if assign is None else assign == NET_ADDR_SET
    if not facts.is_bridge:
        return facts
    facts.stp = (_int(_read(net / "bridge/stp_state")) or 0) != 0
    facts.forward_delay_s = (_int(_read(net / "bridge/forward_delay")) or 0) / USER_HZ
    facts.vlan_filtering = _read(net / "bridge/vlan_filtering") == "1"
    facts.default_pvid = _int(_read(net / "bridge/default_pvid"))
    try:
        names = sorted(p.name for p in (net / "brif").iterdir())
    except OSError:
        names = []
    for name in names:
        port = host.sys / "class/net" / name
        facts.ports.append(Port(name, _owner(name), _is_up(port), _read(port / "address")))
    return facts


# ---- the checks -------------------------------------------------------------------------------


def check_bridge(f: BridgeFacts) -> Finding:
    """The bridge exists, is a bridge, is up."""
    b = f.name
    if not f.exists:
        return Finding("bridge", PROBLEM, f"there is no interface {b}",
                       f"create the bridge and put your LAN interface in it: ip link add {b} "
                       f"type bridge; ip link set <LAN interface> master {b}; ip link set "
                       f"{b} up (and move the host's address to {b}); or name the bridge "
                       "that holds your LAN interface")
    if not f.is_bridge:
        return Finding("bridge", PROBLEM, f"{b} is not a Linux bridge",
                       "give -o bridge= (and doctor) the name of a Linux bridge that holds "
                       "your LAN interface")
    if not f.up:
        return Finding("bridge", PROBLEM, f"{b} is down", f"ip link set {b} up")
    return Finding("bridge", OK, f"{b} exists and is up (MAC {f.mac})")


def check_ports(f: BridgeFacts) -> Finding:
    """A LAN port besides net-dhcp's veths, and up."""
    b = f.name
    lan = f.lan_ports()
    ours = sum(p.owner == "container" for p in f.ports)
    probes = [p.name for p in f.ports if p.owner == "probe"]
    extra = f"; net-dhcp container veths: {ours}" + (
        f"; probe ports of another doctor run: {', '.join(probes)}" if probes else "")
    if not lan:
        return Finding("ports", PROBLEM,
                       f"{b} has no port besides net-dhcp's own ({ours} container veth(s)): "
                       "nothing connects it to the LAN, so no DHCP server hears a container",
                       f"put your LAN interface in the bridge: ip link set <LAN interface> "
                       f"master {b} (ip link show master {b} lists its ports)")
    down = [p.name for p in lan if not p.up]
    if len(down) == len(lan):
        return Finding("ports", PROBLEM,
                       f"every LAN port of {b} is down: {', '.join(down)}" + extra,
                       f"ip link set {down[0]} up, and check its link (cable, switch, the "
                       "VM's network card)")
    shown = ", ".join(f"{p.name} ({'up' if p.up else 'down'})" for p in lan)
    return Finding("ports", OK, f"LAN port(s): {shown}{extra}")


def check_stp(f: BridgeFacts) -> Finding:
    """STP holds a new port back for 2 x forward_delay."""
    if not f.stp:
        return Finding("stp", OK, "STP is off: a container's port passes frames at once")
    wait = 2 * f.forward_delay_s
    fix = (f"ip link set {f.name} type bridge stp_state 0 (a bridge with one LAN port "
           f"needs no STP), or forward_delay 2; or give the network -o lease_timeout above "
           f"{wait:g}s")
    status = PROBLEM if wait >= DEFAULT_LEASE_TIMEOUT_S else WARNING
    return Finding("stp", status,
                   f"STP is on: a new container's port passes nothing for {wait:g}s (2 x "
                   "forward_delay), and its DISCOVERs are lost meanwhile", fix)


def check_vlan(f: BridgeFacts) -> Finding | None:
    """VLAN filtering may put a container's port in another VLAN than the LAN's."""
    if not f.vlan_filtering:
        return None
    return Finding("vlan", WARNING,
                   f"VLAN filtering is on: a container's port gets VLAN {f.default_pvid} "
                   "untagged (default_pvid); if the LAN reaches the bridge in another VLAN, "
                   "DHCP never gets there",
                   f"bridge vlan show: give the LAN port and new ports the same untagged "
                   f"VLAN (ip link set {f.name} type bridge default_pvid <VLAN>)")


def check_mac(f: BridgeFacts) -> Finding:
    """The bridge's MAC is set explicitly."""
    if f.mac_pinned:
        return Finding("mac", OK, f"the MAC {f.mac} is pinned (set explicitly)")
    lan = f.lan_ports()
    mac = lan[0].mac if lan and lan[0].mac else "<the MAC of your LAN interface>"
    fix = f"ip link set {f.name} address {mac}"
    if f.mac_pinned is None:
        return Finding("mac", WARNING, f"cannot tell whether the MAC of {f.name} is pinned",
                       fix)
    return Finding("mac", PROBLEM,
                   f"the MAC {f.mac} of {f.name} is not pinned: a bridge takes the lowest MAC "
                   "of its ports, so it changes as container veths come and go, and the host "
                   "loses its own DHCP lease and ARP entries", fix)


@dataclass
class Firewall:
    """The firewall as read once for every bridge (None: not read, and why)."""

    chains: list[firewall.Chain] | None
    bridge_netfilter: bool
    error: str | None = None


def read_firewall(host: Host) -> Firewall:
    """nftables (with iptables-nft's rules) and, if loaded, iptables-legacy (blocking)."""
    br_nf = firewall.bridge_netfilter_on(host.proc)
    if not host.root:
        return Firewall(None, br_nf, "reading the firewall needs root")
    chains: list[firewall.Chain] = []
    errors: list[str] = []
    try:
        chains += firewall.read_nftables()
    except (OSError, ImportError) as err:
        errors.append(f"nftables: {err}")
    if firewall.legacy_in_use(host.proc):
        try:
            chains += firewall.read_iptables_legacy() or []
        except OSError as err:
            errors.append(f"iptables-legacy: {err}")
    return Firewall(chains if chains or not errors else None, br_nf,
                    "; ".join(errors) or None)


def check_netfilter(f: BridgeFacts, fw: Firewall) -> Finding:
    """No forward chain drops DHCP bridged across the bridge."""
    b = f.name
    if fw.chains is None:
        return Finding("netfilter", SKIPPED, f"not checked: {fw.error}")
    verdicts = firewall.blocking(fw.chains, b, bridge_netfilter=fw.bridge_netfilter,
                                 index=f.index)
    blocked = [v for v in verdicts if v.verdict == "drop"]
    brnf = ("bridge netfilter is on (net.bridge.bridge-nf-call-iptables=1), so iptables and "
            "nftables ip/inet forward chains see frames bridged across it"
            if fw.bridge_netfilter else
            "bridge netfilter is off, so iptables and nftables ip/inet chains do not see "
            "frames bridged across it")
    if blocked:
        why = "; ".join(
            f"{v.chain.label} drops it (" + (f"rule: {v.by.text}" if v.by is not None else
                                            "its policy is DROP and no rule accepts it")
            + ")" for v in blocked)
        unsure = sum(len(v.unsure) for v in blocked)
        more = (f"; {unsure} rule(s) on the way match on things doctor cannot evaluate"
                if unsure else "")
        return Finding("netfilter", PROBLEM if not unsure else WARNING,
                       f"DHCP bridged across {b} is dropped: {why}; {brnf}{more}",
                       "; ".join(dict.fromkeys(v.fix(b) for v in blocked))
                       + " (make it permanent the way your distribution saves rules)")
    passed = [f"{v.chain.label}: " + (f"accepted by {v.by.text}" if v.by is not None
                                       else f"policy {str(v.chain.policy).upper()}")
              for v in verdicts]
    seen = "; ".join(passed) if passed else "no forward chain sees it"
    return Finding("netfilter", OK, f"the firewall lets DHCP across {b} ({seen}); {brnf}")


def _probe_finding(f: BridgeFacts, result: dhcp_probe.ProbeResult, timeout_s: float) -> Finding:
    b = f.name
    if not result.forwarding:
        return Finding("dhcp", PROBLEM,
                       f"the probe port on {b} did not start passing frames within "
                       f"{timeout_s:g}s (STP holds new ports back)",
                       f"ip link set {b} type bridge stp_state 0")
    if not result.offers:
        return Finding("dhcp", PROBLEM,
                       f"no DHCP server answered {result.discovers} DISCOVER(s) sent from a "
                       f"probe port on {b} within {timeout_s:g}s",
                       "check that the bridge holds your LAN "
                       f"interface (ip link show master {b}) and that the LAN's DHCP server "
                       "runs and serves it. A server that ping-checks an address before "
                       "offering it (dnsmasq does, about 3 s) needs longer: try doctor "
                       "--timeout 20, and give the network -o lease_timeout=30s")
    first = result.offers[0]
    text = ", ".join(f"{o.server} ({o.server_mac}) offered {o.address} after {o.after_s:g}s"
                     for o in result.offers)
    if len(result.offers) > 1:
        return Finding("dhcp", WARNING,
                       f"{len(result.offers)} DHCP servers answer on {b}: {text}; containers "
                       "get their address from whichever answers first",
                       "stop the servers that should not serve this LAN")
    return Finding("dhcp", OK, f"a DHCP server answers on {b}: {first.server} "
                               f"({first.server_mac}) offered {first.address} after "
                               f"{first.after_s:g}s")


async def check_dhcp(f: BridgeFacts, host: Host, timeout_s: float) -> Finding:
    """A DISCOVER from a throwaway port on the bridge gets an OFFER."""
    if not host.root:
        return Finding("dhcp", SKIPPED, "not probed: sending a DISCOVER needs root")
    if not f.up:
        return Finding("dhcp", SKIPPED, f"not probed: {f.name} is down")
    if not f.mac_pinned and not f.lan_ports():
        return Finding("dhcp", SKIPPED,
                       f"not probed: {f.name} has no other port and no pinned MAC, so a probe "
                       "port would change its MAC")
    try:
        result = await dhcp_probe.probe(f.name, timeout_s)
    except OSError as err:
        return Finding("dhcp", WARNING, f"could not probe {f.name}: {err}")
    return _probe_finding(f, result, timeout_s)


def _reconcile(report: BridgeReport) -> None:
    """Let the probe's answer overrule what the static checks could only infer; with
    no answer, point at the other problems first."""
    dhcp = report.finding("dhcp")
    if dhcp is not None and dhcp.status == PROBLEM and dhcp.fix and report.problems > 1:
        dhcp.fix = "fix the problems above first; then " + dhcp.fix
    if dhcp is None or dhcp.status not in (OK, WARNING) or "answer" not in dhcp.message:
        return
    ports = report.finding("ports")
    if ports is not None and ports.status == PROBLEM and "no port besides" in ports.message:
        ports.status = OK
        ports.message += ("; but a DHCP server answers on the bridge itself (it runs on this "
                          "host), so that is fine")
        ports.fix = None
    net = report.finding("netfilter")
    if net is not None and net.status == PROBLEM:
        net.status = WARNING
        net.message += ("; yet the probe's DISCOVER got an answer, so something lets it "
                        "through (a rule doctor cannot evaluate, or a server on this host)")


async def diagnose(bridge: str, *, host: Host | None = None, probe: bool = True,
                   timeout_s: float = DEFAULT_PROBE_S,
                   fw: Firewall | None = None) -> BridgeReport:
    """Every check for one bridge (see the module docstring)."""
    host = host or Host()
    report = BridgeReport(bridge)
    facts = await asyncio.to_thread(read_facts, bridge, host)
    report.findings.append(check_bridge(facts))
    if not (facts.exists and facts.is_bridge):
        return report
    report.findings += [check_ports(facts), check_stp(facts)]
    vlan = check_vlan(facts)
    if vlan is not None:
        report.findings.append(vlan)
    report.findings.append(check_mac(facts))
    if fw is None:
        fw = await asyncio.to_thread(read_firewall, host)
    report.findings.append(check_netfilter(facts, fw))
    if probe:
        report.findings.append(await check_dhcp(facts, host, timeout_s))
    else:
        report.findings.append(Finding("dhcp", SKIPPED, "not probed (--no-probe)"))
    _reconcile(report)
    return report


async def diagnose_all(bridges: Sequence[str], *, host: Host | None = None,
                       probe: bool = True,
                       timeout_s: float = DEFAULT_PROBE_S) -> list[BridgeReport]:
    """Every check for each bridge, one after the other; the firewall is read once."""
    host = host or Host()
    fw = await asyncio.to_thread(read_firewall, host)
    return [await diagnose(b, host=host, probe=probe, timeout_s=timeout_s, fw=fw)
            for b in bridges]


# ---- output -----------------------------------------------------------------------------------

LABELS = {OK: "ok", PROBLEM: "PROBLEM", WARNING: "warning", SKIPPED: "skipped"}


def to_json(reports: Sequence[BridgeReport]) -> dict[str, Any]:
    """What `doctor --json` prints."""
    problems = sum(r.problems for r in reports)
    return {"ok": problems == 0, "problems": problems,
            "warnings": sum(f.status == WARNING for r in reports for f in r.findings),
            "bridges": [{"bridge": r.bridge, "problems": r.problems,
                         "findings": [asdict(f) for f in r.findings]} for r in reports]}


def render(reports: Sequence[BridgeReport], width: int | None = None) -> str:
    """Each bridge's findings, a fix under each one that is not ok, then a summary."""
    width = width or shutil.get_terminal_size((100, 24)).columns
    width = max(width, 60)
    lines: list[str] = []
    label_w = max(len(v) for v in LABELS.values())
    check_w = max((len(f.check) for r in reports for f in r.findings), default=5)
    indent = " " * (2 + label_w + 2 + check_w + 2)
    for r in reports:
        lines.append(f"bridge {r.bridge}")
        for f in r.findings:
            head = f"  {LABELS[f.status].ljust(label_w)}  {f.check.ljust(check_w)}  "
            lines += textwrap.wrap(f.message, width, initial_indent=head,
                                   subsequent_indent=indent, break_on_hyphens=False)
            if f.fix and f.status != OK:
                lines += textwrap.wrap(f"fix: {f.fix}", width, initial_indent=indent,
                                       subsequent_indent=indent + "     ",
                                       break_on_hyphens=False, break_long_words=False)
        lines.append("")
    problems = sum(r.problems for r in reports)
    warnings = sum(f.status == WARNING for r in reports for f in r.findings)
    checked = f"{len(reports)} bridge{'s' if len(reports) != 1 else ''} checked"
    summary = (f"{problems} problem{'s' if problems != 1 else ''} found" if problems
               else "no problem found")
    if warnings:
        summary += f", {warnings} warning{'s' if warnings != 1 else ''}"
    lines.append(f"{summary} ({checked}).")
    return "\n".join(lines)
