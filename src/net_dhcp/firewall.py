"""Would the host's firewall drop DHCP crossing a bridge? Read-only, for `net-dhcp doctor`.

A container's DISCOVER enters the bridge through its veth and leaves through the LAN port:
the frame is *bridged*, not routed. Netfilter still sees it in two cases:

* bridge netfilter (`net.bridge.bridge-nf-call-iptables=1`, module br_netfilter) passes
  bridged IPv4 through the IPv4 forward hook, with the bridge as in- and out-interface:
  iptables' FORWARD chain (Docker sets its policy to DROP) and nftables `ip`/`inet`
  chains on the forward hook;
* nftables `bridge` chains on the forward hook see every bridged frame, whatever
  br_netfilter says.

The rules are read from the kernel: nftables (which holds iptables-nft's rules too) over
netlink with pyroute2, and iptables-legacy's (only when its filter table is loaded) with
`iptables-legacy -S`. Then each base chain on the forward hook is walked for such a
frame (`judge`): rules whose matches are all known (in/out interface, bridge name,
`physdev --physdev-is-bridged`) decide; jumps are followed; a rule with any other match
is skipped as "cannot tell". Nothing is ever changed.
"""

from __future__ import annotations

import contextlib
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PROC = Path("/proc")
NFPROTO = {1: "inet", 2: "ip", 3: "arp", 5: "netdev", 7: "bridge", 10: "ip6"}
HOOK_FORWARD = 2
NF_DROP, NF_ACCEPT = 0, 1
LISTING_TIMEOUT_S = 10.0
IFNAMSIZ = 16
MAX_DEPTH = 16
"""Nested jumps followed (nftables allows 16)."""
XT_PHYSDEV_OP_BRIDGED = 0x04


@dataclass(frozen=True)
class Match:
    """One condition of a rule: `kind` is iifname, oifname, iif, oif, ibrname, obrname,
    physdev-bridged, or "other" (anything this module does not evaluate)."""

    kind: str
    value: str | int | None = None
    negate: bool = False
    prefix: bool = False
    """An interface name pattern ending in a wildcard (iptables "br+", nft "br*")."""


@dataclass(frozen=True)
class Rule:
    """A rule: all `matches` must hold; then `verdict` (accept, drop, jump, goto, return,
    or continue for none) with `target` the chain of a jump or goto."""

    matches: tuple[Match, ...]
    verdict: str
    target: str | None = None
    text: str = ""


@dataclass(frozen=True)
class Chain:
    """A chain of one table; base chains have a hook and a policy (accept or drop)."""

    source: str
    """"nftables" or "iptables-legacy"."""
    family: str
    table: str
    name: str
    hook: int | None = None
    policy: str | None = None
    rules: tuple[Rule, ...] = ()

    @property
    def label(self) -> str:
        """How a user finds this chain: iptables' name for iptables' own chains."""
        if self.source == "iptables-legacy":
            return f"iptables-legacy chain {self.name}"
        if (self.family, self.table) == ("ip", "filter") and self.name.isupper():
            return f"iptables (nf_tables) chain {self.name}"
        return f"nftables chain {self.family} {self.table} {self.name}"


@dataclass
class Verdict:
    """What a base chain does with a bridged DHCP frame."""

    chain: Chain
    verdict: str
    """accept or drop."""
    by: Rule | None = None
    """The rule that decided (None: the chain's policy)."""
    unsure: list[Rule] = field(default_factory=list)
    """Rules skipped because some of their matches cannot be evaluated."""

    def fix(self, bridge: str) -> str:
        """The command that lets DHCP across `bridge` through this chain."""
        chain = self.chain
        if chain.source == "iptables-legacy":
            return f"iptables-legacy -I {chain.name} -i {bridge} -o {bridge} -j ACCEPT"
        if (chain.family, chain.table) == ("ip", "filter") and chain.name.isupper():
            return f"iptables -I {chain.name} -i {bridge} -o {bridge} -j ACCEPT"
        match = (f'meta ibrname "{bridge}"' if chain.family == "bridge"
                 else f'iifname "{bridge}" oifname "{bridge}"')
        return f"nft insert rule {chain.family} {chain.table} {chain.name} {match} accept"


# ---- evaluation ---------------------------------------------------------------------------


def _holds(m: Match, family: str, bridge: str, index: int | None) -> bool | None:
    """Whether `m` holds for a frame bridged across `bridge` (None: cannot tell)."""
    result: bool | None
    if family == "bridge":
        # Seen by the bridge family: in/out are the ports (unknown here), the bridge is
        # the frame's bridge.
        names = {"ibrname": bridge, "obrname": bridge}
        indexes: dict[str, int | None] = {}
    else:
        names = {"iifname": bridge, "oifname": bridge}
        indexes = {"iif": index, "oif": index}
    if m.kind in names:
        value = str(m.value)
        result = names[m.kind].startswith(value) if m.prefix else names[m.kind] == value
    elif m.kind in indexes:
        result = None if indexes[m.kind] is None else indexes[m.kind] == m.value
    elif m.kind == "physdev-bridged" and family != "bridge":
        result = True
    else:
        return None
    return result != m.negate


def _rule_holds(rule: Rule, family: str, bridge: str, index: int | None) -> bool | None:
    known = True
    for m in rule.matches:
        held = _holds(m, family, bridge, index)
        if held is False:
            return False
        if held is None:
            known = False
    return True if known else None


def _walk(chain: Chain, chains: Mapping[tuple[str, str, str], Chain], bridge: str,
          index: int | None, unsure: list[Rule], depth: int) -> tuple[str, Rule | None] | None:
    """accept/drop and the deciding rule, or None when the chain returns (or ends)."""
    for rule in chain.rules:
        held = _rule_holds(rule, chain.family, bridge, index)
        if held is None:
            if rule.verdict in ("accept", "jump", "goto"):
                unsure.append(rule)
            continue
        if not held:
            continue
        if rule.verdict in ("accept", "drop"):
            return rule.verdict, rule
        if rule.verdict == "return":
            return None
        if rule.verdict in ("jump", "goto") and rule.target and depth < MAX_DEPTH:
            sub = chains.get((chain.family, chain.table, rule.target))
            if sub is not None:
                decided = _walk(sub, chains, bridge, index, unsure, depth + 1)
                if decided is not None or rule.verdict == "goto":
                    return decided
    return None


def judge(base: Chain, chains: Iterable[Chain], bridge: str,
          index: int | None = None) -> Verdict:
    """What base chain `base` does with a DHCP frame bridged across `bridge` (ifindex
    `index`, for iif/oif matches), following jumps into `chains` of its table."""
    by_name = {(c.family, c.table, c.name): c for c in chains}
    unsure: list[Rule] = []
    decided = _walk(base, by_name, bridge, index, unsure, 0)
    if decided is not None:
        return Verdict(base, decided[0], decided[1], unsure)
    return Verdict(base, base.policy or "accept", None, unsure)


def forward_chains(chains: Iterable[Chain], *, bridge_netfilter: bool) -> list[Chain]:
    """The base chains on the forward hook that see bridged IPv4 frames."""
    seen = ("bridge", "ip", "inet") if bridge_netfilter else ("bridge",)
    return [c for c in chains if c.hook == HOOK_FORWARD and c.family in seen]


def blocking(chains: Sequence[Chain], bridge: str, *, bridge_netfilter: bool,
             index: int | None = None) -> list[Verdict]:
    """Every base chain's verdict on a DHCP frame bridged across `bridge`."""
    return [judge(c, chains, bridge, index)
            for c in forward_chains(chains, bridge_netfilter=bridge_netfilter)]


# ---- nftables, read over netlink ------------------------------------------------------------


def _get(msg: Any, name: str) -> Any:
    """Attribute `name` of a pyroute2 message, or of its {"attrs": [...]} dict form."""
    if msg is None:
        return None
    if hasattr(msg, "get_attr"):
        return msg.get_attr(name)
    for key, value in msg.get("attrs", ()):
        if key == name:
            return value
    return None


def _name_of(raw: bytes) -> tuple[str, bool]:
    """(interface name, is a prefix) from a cmp's data: a name with its NUL is exact."""
    if b"\0" in raw:
        return raw.split(b"\0", 1)[0].decode(errors="replace"), False
    return raw.decode(errors="replace"), True


_META = {"NFT_META_IIFNAME": "iifname", "NFT_META_OIFNAME": "oifname",
         "NFT_META_IIF": "iif", "NFT_META_OIF": "oif",
         "NFT_META_BRI_IIFNAME": "ibrname", "NFT_META_BRI_OIFNAME": "obrname"}
_VERDICTS = {"NF_ACCEPT": "accept", "NF_DROP": "drop", "NFT_JUMP": "jump",
             "NFT_GOTO": "goto", "NFT_RETURN": "return", "NFT_CONTINUE": "continue"}
_NEUTRAL = {"counter", "log", "quota"}
"""Expressions that never stop a rule from matching (quota can, but rarely matters)."""


def _physdev(info: object) -> Match:
    """`-m physdev`: only a plain --physdev-is-bridged is evaluated."""
    try:
        raw = bytes.fromhex(str(info).replace(":", ""))
        invert, bitmask = raw[4 * IFNAMSIZ], raw[4 * IFNAMSIZ + 1]
    except (ValueError, IndexError):
        return Match("other", "physdev")
    if bitmask == XT_PHYSDEV_OP_BRIDGED:
        return Match("physdev-bridged", None, negate=bool(invert & XT_PHYSDEV_OP_BRIDGED))
    return Match("other", "physdev")


def _attr_names(data: Any) -> list[str]:
    """The attribute names of a pyroute2 message (or of its dict form)."""
    return [str(a[0]) for a in data.get("attrs", ())] if data is not None else []


def _loads_register(data: Any, regs: dict[str, str]) -> bool:
    """Mark the registers an expression writes (its *_DREG) as holding something this
    module does not evaluate; True if it wrote any."""
    wrote = False
    for attr in _attr_names(data):
        if attr.endswith("_DREG"):
            regs[str(_get(data, attr))] = "other"
            wrote = True
    return wrote


def _nft_rule(msg: Any) -> Rule:
    """A rule from its netlink expressions (register loads, compares, verdicts)."""
    regs: dict[str, str] = {}
    matches: list[Match] = []
    verdict, target = "continue", None
    words: list[str] = []
    for expr in _get(msg, "NFTA_RULE_EXPRESSIONS") or ():
        name = _get(expr, "NFTA_EXPR_NAME")
        data = _get(expr, "NFTA_EXPR_DATA")
        if name == "meta" and _get(data, "NFTA_META_DREG") is not None:
            regs[str(_get(data, "NFTA_META_DREG"))] = _META.get(
                str(_get(data, "NFTA_META_KEY")), "other")
        elif name not in ("cmp", "immediate") and _loads_register(data, regs):
            continue  # payload, ct, bitwise...: what the next cmp compares is unknown
        elif name == "cmp":
            kind = regs.get(str(_get(data, "NFTA_CMP_SREG")), "other")
            op = _get(data, "NFTA_CMP_OP")
            raw = _get(_get(data, "NFTA_CMP_DATA"), "NFTA_DATA_VALUE") or b""
            if kind == "other" or op not in ("NFT_CMP_EQ", "NFT_CMP_NEQ"):
                matches.append(Match("other", "cmp"))
                words.append("<match>")
                continue
            negate = op == "NFT_CMP_NEQ"
            if kind in ("iif", "oif"):
                value: str | int = int.from_bytes(bytes(raw)[:4], sys.byteorder)
                prefix = False
            else:
                value, prefix = _name_of(bytes(raw))
            matches.append(Match(kind, value, negate=negate, prefix=prefix))
            words.append(f'{kind} {"!= " if negate else ""}"{value}{"*" if prefix else ""}"')
        elif name == "immediate" and _get(data, "NFTA_IMMEDIATE_DREG") != "NFT_REG_VERDICT":
            regs[str(_get(data, "NFTA_IMMEDIATE_DREG"))] = "other"
        elif name == "immediate":
            v = _get(_get(_get(data, "NFTA_IMMEDIATE_DATA"), "NFTA_DATA_VERDICT"),
                     "NFTA_VERDICT_CODE")
            verdict = _VERDICTS.get(str(v), "other")
            target = _get(_get(_get(data, "NFTA_IMMEDIATE_DATA"), "NFTA_DATA_VERDICT"),
                          "NFTA_VERDICT_CHAIN")
            words.append(f"{verdict} {target}" if target else verdict)
        elif name == "match" and _get(data, "NFTA_MATCH_NAME") == "physdev":
            matches.append(_physdev(_get(data, "NFTA_MATCH_INFO")))
            words.append("-m physdev")
        elif name in ("reject",) or (name == "target"
                                     and _get(data, "NFTA_TARGET_NAME") == "REJECT"):
            verdict = "drop"
            words.append("reject")
        elif name in _NEUTRAL or name == "target":
            continue
        else:
            matches.append(Match("other", str(name)))
            words.append(f"<{name}>")
    return Rule(tuple(matches), verdict, target, " ".join(words))


def nft_chains(chain_msgs: Iterable[Any], rule_msgs: Iterable[Any]) -> list[Chain]:
    """Chains, with their rules in order, from nftables netlink dumps."""
    rules: dict[tuple[str, str, str], list[Rule]] = {}
    for msg in rule_msgs:
        family = NFPROTO.get(int(msg["nfgen_family"]), str(msg["nfgen_family"]))
        key = (family, str(_get(msg, "NFTA_RULE_TABLE")), str(_get(msg, "NFTA_RULE_CHAIN")))
        rules.setdefault(key, []).append(_nft_rule(msg))
    out = []
    for msg in chain_msgs:
        family = NFPROTO.get(int(msg["nfgen_family"]), str(msg["nfgen_family"]))
        table, name = str(_get(msg, "NFTA_CHAIN_TABLE")), str(_get(msg, "NFTA_CHAIN_NAME"))
        hook = _get(msg, "NFTA_CHAIN_HOOK")
        hooknum = _get(hook, "NFTA_HOOK_HOOKNUM") if hook is not None else None
        policy = _get(msg, "NFTA_CHAIN_POLICY")
        out.append(Chain("nftables", family, table, name,
                         hook=int(hooknum) if hooknum is not None else None,
                         policy=None if policy is None else
                         ("drop" if int(policy) == NF_DROP else "accept"),
                         rules=tuple(rules.get((family, table, name), ()))))
    return out


def read_nftables() -> list[Chain]:
    """Every nftables chain of every family, with rules (blocking; needs CAP_NET_ADMIN).
    OSError if the kernel refuses (not root)."""
    from pyroute2.netlink.exceptions import NetlinkError
    from pyroute2.nftables.main import NFTables

    try:
        nft = NFTables(nfgen_family=0)  # NFPROTO_UNSPEC: all families
    except NetlinkError as err:
        raise OSError(err.code, f"nftables: {err}") from err
    try:
        return nft_chains(nft.get_chains(), nft.get_rules())
    except NetlinkError as err:
        raise OSError(err.code, f"nftables: {err}") from err
    finally:
        with contextlib.suppress(Exception):
            nft.close()


# ---- iptables-legacy ------------------------------------------------------------------------


def _iptables_rule(chain: str, words: list[str]) -> Rule:
    """A rule from `iptables -S`'s words after "-A CHAIN"."""
    matches: list[Match] = []
    verdict, target = "continue", None
    negate = False
    i = 0
    while i < len(words):
        word = words[i]
        arg = words[i + 1] if i + 1 < len(words) else ""
        step = 2
        if word == "!":
            negate, step = True, 1
        elif word in ("-i", "--in-interface", "-o", "--out-interface"):
            kind = "iifname" if word in ("-i", "--in-interface") else "oifname"
            matches.append(Match(kind, arg.rstrip("+"), negate=negate, prefix=arg.endswith("+")))
            negate = False
        elif word == "-m" and arg == "comment" and words[i + 2:i + 3] == ["--comment"]:
            step = 4
        elif word == "-m" and arg == "physdev" and words[i + 2:i + 3] in (
                ["--physdev-is-bridged"], ["!"]):
            inverted = words[i + 2] == "!"
            if inverted and words[i + 3:i + 4] != ["--physdev-is-bridged"]:
                word = "-m physdev"  # any other physdev option: not evaluated
                matches.append(Match("other", word))
                step = 3
            else:
                matches.append(Match("physdev-bridged", negate=inverted))
                step = 4 if inverted else 3
        elif word in ("-j", "--jump", "-g", "--goto"):
            target = arg
            if arg in ("ACCEPT", "DROP", "RETURN", "REJECT"):
                verdict = {"ACCEPT": "accept", "DROP": "drop", "RETURN": "return",
                           "REJECT": "drop"}[arg]
                target = None
            elif arg in ("LOG", "NFLOG", "MARK", "CONNMARK", "TRACE"):
                verdict, target = "continue", None
            else:
                verdict = "goto" if word in ("-g", "--goto") else "jump"
            break
        else:
            # A match this module does not evaluate: its options run up to the target.
            matches.append(Match("other", word))
            targets = [j for j in range(i + 1, len(words))
                       if words[j] in ("-j", "--jump", "-g", "--goto")]
            if not targets:
                break
            step = targets[0] - i
        i += step
    return Rule(tuple(matches), verdict, target, shlex.join(["-A", chain, *words]))


def iptables_chains(listing: str, source: str = "iptables-legacy") -> list[Chain]:
    """The filter table's chains from `iptables -S` output."""
    policies: dict[str, str | None] = {}
    rules: dict[str, list[Rule]] = {}
    for line in listing.splitlines():
        try:
            words = shlex.split(line)
        except ValueError:
            continue
        if len(words) >= 3 and words[0] == "-P":
            policies[words[1]] = "drop" if words[2] == "DROP" else "accept"
        elif len(words) >= 2 and words[0] == "-N":
            policies.setdefault(words[1], None)
        elif len(words) >= 2 and words[0] == "-A":
            policies.setdefault(words[1], None)
            rules.setdefault(words[1], []).append(_iptables_rule(words[1], words[2:]))
    hooks = {"FORWARD": HOOK_FORWARD}
    return [Chain(source, "ip", "filter", name, hook=hooks.get(name), policy=policy,
                  rules=tuple(rules.get(name, ()))) for name, policy in policies.items()]


def legacy_in_use(proc: Path = PROC) -> bool:
    """Whether iptables-legacy's filter table is loaded (its rules are not nftables')."""
    try:
        return "filter" in (proc / "net/ip_tables_names").read_text().split()
    except OSError:
        return False


def read_iptables_legacy() -> list[Chain] | None:
    """iptables-legacy's filter chains (blocking), or None if there is no such binary.
    OSError if listing fails."""
    exe = shutil.which("iptables-legacy")
    if exe is None:
        return None
    try:
        out = subprocess.run(  # noqa: S603 - a fixed, read-only listing
            [exe, "-w", "2", "-t", "filter", "-S"], capture_output=True, text=True,
            timeout=LISTING_TIMEOUT_S, check=True)
    except subprocess.CalledProcessError as err:
        raise OSError(f"iptables-legacy -S failed: {err.stderr.strip()}") from err
    except subprocess.TimeoutExpired as err:
        raise OSError("iptables-legacy -S did not answer") from err
    return iptables_chains(out.stdout)


def bridge_netfilter_on(proc: Path = PROC) -> bool:
    """net.bridge.bridge-nf-call-iptables is 1 (br_netfilter loaded and on)."""
    try:
        return (proc / "sys/net/bridge/bridge-nf-call-iptables").read_text().strip() == "1"
    except OSError:
        return False
