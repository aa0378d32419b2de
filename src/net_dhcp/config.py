"""Network and endpoint options: parse, validate, explain."""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field, fields
from ipaddress import IPv4Address
from typing import Any

from .dhcp4.codec import CodecError, client_id_from_text
from .errors import OptionError

DEFAULT_LEASE_TIMEOUT_S = 10.0
MAX_LEASE_TIMEOUT_S = 600.0

_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off", ""}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}

MODES = ("bridge", "macvlan", "ipvlan")
"""How containers reach the LAN: a veth on a host bridge, or a macvlan (bridge submode) or
ipvlan (L2) link on a parent interface (attach/)."""
PARENT_MODES = ("macvlan", "ipvlan")

NETWORK_OPTIONS = {
    "mode": "how containers attach to the LAN: bridge (default: a veth on -o bridge), "
            "macvlan or ipvlan (a link on -o parent; no host bridge needed)",
    "bridge": "name of an existing Linux bridge on the LAN (required in bridge mode)",
    "parent": "the LAN interface (e.g. eth0) that macvlan/ipvlan links are made on "
              "(required with mode=macvlan or mode=ipvlan)",
    "ipv6": "also get an IPv6 address by DHCPv6, and the default route from the router's "
            "advertisements (true/false; Docker 28+: --ipv6 does the same)",
    "lease_timeout": "how long to wait for a lease, e.g. 10s, 1m (default 10s)",
    "ignore_conflicts": "allow a bridge shared with another network (true/false)",
    "skip_routes": "do not copy the bridge's static routes into containers (true/false)",
    "validate_dhcp": "at network create, send one DISCOVER on the bridge and refuse the "
                     "network if no DHCP server answers (true/false, default false)",
    "client_id": "DHCPv4 client identifier (option 61) instead of the MAC: colon-separated "
                 "hex octets (e.g. 01:{mac} or ff:00:00:00:01) are sent as raw octets, other "
                 "text as type 0 + the text; {mac} becomes the container's MAC. Without "
                 "{mac} only one container at a time can use the network",
    "vendor_class": "DHCPv4 vendor class identifier (option 60), text of 1-255 characters",
    "register_dns": "ask the DHCP server to put the host name in DNS: DHCPv4 Client FQDN "
                    "option 81 and DHCPv6 option 39 with S=1 (true/false, default false)",
    "gateway": "IPv4 address to use as the containers' default gateway instead of the "
               "lease's router (option 3); must lie in the leased subnet",
    "propagate_mtu": "set the container's interface MTU from the lease's option 26, clamped "
                     "to 576-65535 (true/false, default false)",
    "propagate_dns": "write the lease's DNS servers (option 6) and search domains (119, else "
                     "15) into the container's /etc/resolv.conf, again when a renewal "
                     "changes them (true/false, default false)",
    "stable_mac": "give a container created without --mac-address the MAC (and so the "
                  "lease) of its name, or of its Compose project, service and replica "
                  "number, so a re-created container gets its address back (true/false, "
                  "default true; false: a new MAC per endpoint)",
}
ENDPOINT_OPTIONS = {
    "hostname": "host name sent to the DHCP server (option 12)",
    "ip": "IPv4 address to ask the DHCP server for (option 50 in DISCOVER); the server "
          "decides, and the container gets what it leases",
}


def parse_bool(name: str, value: object) -> bool:
    """Accept true/false/1/0/yes/no/on/off (case-insensitive) or a JSON bool."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise OptionError(f"option {name}={value!r} is not a boolean: use true or false")


def parse_duration(name: str, value: object) -> float:
    """Parse '10s', '1m', '500ms', '1.5m' or a bare number of seconds into seconds."""
    match = _DURATION.match(str(value))
    if not match:
        raise OptionError(
            f"option {name}={value!r} is not a duration: use a number with a unit, e.g. 10s or 1m"
        )
    seconds = float(match.group(1)) * _UNIT_S[match.group(2)]
    if seconds <= 0 or seconds > MAX_LEASE_TIMEOUT_S:
        raise OptionError(
            f"option {name}={value!r} is out of range: use more than 0s and at most "
            f"{MAX_LEASE_TIMEOUT_S:.0f}s"
        )
    return seconds


MIN_MTU = 576
"""The smallest MTU propagate_mtu applies (RFC 791: every host must take 576-octet
datagrams; a smaller option 26 is raised to it)."""
MAX_MTU = 65535
_MAX_TEXT_OPTION = 255


def clamp_mtu(mtu: int) -> int:
    """An option 26 value as propagate_mtu applies it: clamped to MIN_MTU..MAX_MTU."""
    return max(MIN_MTU, min(MAX_MTU, mtu))


def _printable_text(name: str, value: object) -> str | None:
    """An optional text option: None if absent or empty; OptionError unless 1-255
    printable ASCII characters."""
    if value is None:
        return None
    text = str(value)
    if not text:
        return None
    if len(text) > _MAX_TEXT_OPTION or any(ord(c) < 0x20 or ord(c) > 0x7E for c in text):
        raise OptionError(
            f"option {name}={text[:80]!r} is not valid: use 1 to {_MAX_TEXT_OPTION} "
            "printable ASCII characters (letters, digits, punctuation, spaces)")
    return text


_CLIENT_ID_FIX = ("use colon-separated hex octets such as 01:{mac} or ff:00:00:00:2a (sent "
                  "as raw octets, the first being the type), or text such as web-{mac} (sent "
                  "as type 0 + the text), 2 to 255 octets; {mac} is the container's MAC")
_BRACE = re.compile(r"\{[^}]*\}")


def parse_client_id(value: object) -> str | None:
    """The `client_id` option: None if absent or empty; OptionError unless every container
    of the network can send it (2-255 octets, printable, no placeholder but {mac})."""
    text = _printable_text("client_id", value)
    if text is None:
        return None
    others = [m for m in _BRACE.findall(text) if m != "{mac}"]
    if others:
        raise OptionError(f"option client_id={text[:80]!r} has an unknown placeholder "
                          f"{others[0]}: {_CLIENT_ID_FIX}")
    try:
        client_id_from_text(text, b"\x02\x00\x00\x00\x00\x01")
    except CodecError as err:
        raise OptionError(f"option client_id={text[:80]!r} is not valid ({err}): "
                          f"{_CLIENT_ID_FIX}") from err
    return text


def parse_gateway(value: object) -> str | None:
    """The `gateway` option: None if absent or empty; OptionError unless a unicast IPv4
    host address."""
    if value is None or not str(value).strip():
        return None
    text = str(value).strip()
    try:
        ip = IPv4Address(text)
    except ValueError as err:
        raise OptionError(f"option gateway={text[:80]!r} is not an IPv4 address: use the "
                          "router's address on the LAN, e.g. -o gateway=192.168.1.1") from err
    if (ip.is_unspecified or ip.is_loopback or ip.is_multicast or ip.is_reserved
            or ip.is_link_local or ip == IPv4Address("255.255.255.255")):
        raise OptionError(f"option gateway={text!r} is not a usable router address: use the "
                          "unicast address of a router on the LAN, e.g. 192.168.1.1")
    return str(ip)


_IFNAME_MAX = 15  # IFNAMSIZ - 1


def parse_mode(value: object) -> str:
    """The `mode` option: bridge (default), macvlan or ipvlan (any case)."""
    text = str(value if value is not None else "").strip().lower() or "bridge"
    if text not in MODES:
        raise OptionError(
            f"option mode={str(value)[:80]!r} is not valid: use mode=bridge (a veth on a host "
            "bridge, the default), mode=macvlan or mode=ipvlan (a link on -o parent=<your LAN "
            "interface>)")
    return text


def check_ifname(option: str, name: str) -> str:
    """An interface name the kernel could have; OptionError otherwise."""
    if (len(name) > _IFNAME_MAX or name in (".", "..")
            or any(c in "/:" or c.isspace() or ord(c) < 0x21 or ord(c) > 0x7E for c in name)):
        raise OptionError(
            f"option {option}={name[:80]!r} is not an interface name: use the name shown by "
            f"ip link (at most {_IFNAME_MAX} characters, no spaces, '/' or ':')")
    return name


def parse_requested_ip(value: object) -> str | None:
    """The endpoint option `ip`: an IPv4 unicast address, or None when not given."""
    if value is None or not str(value).strip():
        return None
    text = str(value).strip()
    try:
        ip = IPv4Address(text)
    except ValueError:
        ip = None
    if ip is None or ip.is_multicast or ip.is_unspecified or ip.is_loopback or (
            ip == IPv4Address("255.255.255.255")):
        raise OptionError(
            f"driver-opt ip={text[:80]!r} is not an IPv4 unicast address: give the address "
            "to ask the DHCP server for, e.g. ip=192.168.1.50 (or reserve one for the "
            "container's --mac-address in the server)")
    return str(ip)


def _lower_keys(options: dict[str, Any]) -> dict[str, Any]:
    """`options` with its keys in lower case; OptionError if two keys become one."""
    out: dict[str, Any] = {}
    for key, value in options.items():
        low = key.strip().lower()
        if low in out:
            raise OptionError(
                f"option {low} is given twice (as {key!r} and in another case): keys are "
                "case-insensitive, keep one of them")
        out[low] = value
    return out


def _valid_list(known: dict[str, str]) -> str:
    return "; ".join(f"{k}: {v}" for k, v in known.items())


@dataclass(frozen=True)
class NetworkOptions:
    """The options of one net-dhcp network, as given to `docker network create -o`."""

    bridge: str = ""
    """The LAN bridge (bridge mode); empty in the other modes."""
    ipv6: bool = False
    lease_timeout_s: float = DEFAULT_LEASE_TIMEOUT_S
    ignore_conflicts: bool = False
    skip_routes: bool = False
    validate_dhcp: bool = False
    client_id: str | None = None
    """The `client_id` option as given ({mac} not yet replaced); None: the MAC (type 1)."""
    vendor_class: str | None = None
    register_dns: bool = False
    gateway: str | None = None
    """The `gateway` option (a checked IPv4 address), or None: the lease's router."""
    propagate_mtu: bool = False
    propagate_dns: bool = False
    stable_mac: bool = True
    """Default MACs from the container's identity (stable_mac.py), not the endpoint ID."""
    mode: str = "bridge"
    """bridge, macvlan or ipvlan (MODES); state written before modes existed is bridge."""
    parent: str = ""
    """The parent interface (macvlan and ipvlan modes); empty in bridge mode."""

    @property
    def lan(self) -> str:
        """The host interface the network reaches its LAN through: the bridge or the parent."""
        return self.parent if self.mode in PARENT_MODES else self.bridge

    @property
    def gateway_ip(self) -> IPv4Address | None:
        """The `gateway` option as an address."""
        return IPv4Address(self.gateway) if self.gateway else None

    @classmethod
    def from_generic(cls, generic: dict[str, Any], *, enable_ipv6: bool = False) -> NetworkOptions:
        """Validate Docker's `com.docker.network.generic` map; raise OptionError with a fix.
        Keys are case-insensitive (as the Go fork's, whose Compose files must work here)."""
        generic = _lower_keys(generic)
        unknown = sorted(set(generic) - set(NETWORK_OPTIONS))
        if unknown:
            raise OptionError(
                f"unknown option(s) {', '.join(unknown)}; valid options are: "
                f"{_valid_list(NETWORK_OPTIONS)}"
            )
        mode = parse_mode(generic.get("mode"))
        bridge = str(generic.get("bridge", "")).strip()
        parent = str(generic.get("parent", "")).strip()
        if mode in PARENT_MODES:
            if bridge:
                raise OptionError(
                    f"option bridge is for mode=bridge: with mode={mode} the containers' "
                    f"links are made on -o parent=<your LAN interface> and no host bridge is "
                    f"needed. Drop -o bridge={bridge[:80]}, or drop -o mode={mode}")
            if not parent:
                raise OptionError(
                    f"option parent is required with mode={mode}: create the network with "
                    f"-o parent=<your LAN interface, e.g. eth0> (see ip link)")
            check_ifname("parent", parent)
        else:
            if parent:
                raise OptionError(
                    "option parent is for mode=macvlan or mode=ipvlan: in bridge mode the "
                    "containers join -o bridge=<bridge>. Drop -o parent, or add -o "
                    "mode=macvlan (or ipvlan) to attach the containers to "
                    f"{parent[:80]} directly")
            if not bridge:
                raise OptionError(
                    "option bridge is required: create the network with -o bridge=<name of "
                    "an existing Linux bridge on your LAN> (or -o mode=macvlan -o "
                    "parent=<your LAN interface> for no bridge at all)"
                )
        return cls(
            bridge=bridge,
            mode=mode,
            parent=parent,
            ipv6=parse_bool("ipv6", generic.get("ipv6", enable_ipv6)),
            lease_timeout_s=parse_duration(
                "lease_timeout", generic.get("lease_timeout", f"{DEFAULT_LEASE_TIMEOUT_S}s")
            ),
            ignore_conflicts=parse_bool("ignore_conflicts", generic.get("ignore_conflicts", False)),
            skip_routes=parse_bool("skip_routes", generic.get("skip_routes", False)),
            validate_dhcp=parse_bool("validate_dhcp", generic.get("validate_dhcp", False)),
            client_id=parse_client_id(generic.get("client_id")),
            vendor_class=_printable_text("vendor_class", generic.get("vendor_class")),
            register_dns=parse_bool("register_dns", generic.get("register_dns", False)),
            gateway=parse_gateway(generic.get("gateway")),
            propagate_mtu=parse_bool("propagate_mtu", generic.get("propagate_mtu", False)),
            propagate_dns=parse_bool("propagate_dns", generic.get("propagate_dns", False)),
            stable_mac=parse_bool("stable_mac", generic.get("stable_mac", True)),
        )

    def to_json(self) -> str:
        """Serialise for the state store."""
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> NetworkOptions:
        """Inverse of to_json. State written by an older version lacks the newer fields
        (their defaults apply); fields this version does not know are left out."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in json.loads(text).items() if k in known})


_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOSTNAME = re.compile(rf"^(?=.{{1,253}}\Z){_LABEL}(\.{_LABEL})*$")


def valid_hostname(name: str) -> bool:
    """True for an RFC 1123 host name or FQDN (no control characters, no spaces)."""
    return bool(_HOSTNAME.fullmatch(name))


@dataclass(frozen=True)
class EndpointOptions:
    """Per-endpoint driver options (`docker run --network name=N,driver-opt=k=v`)."""

    hostname: str | None = None
    ip: str | None = None
    """The `ip` option: the IPv4 address to ask for (checked), or None."""
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def requested_ip(self) -> IPv4Address | None:
        return IPv4Address(self.ip) if self.ip else None

    @classmethod
    def from_request(cls, options: dict[str, Any]) -> EndpointOptions:
        """Pick our options out of CreateEndpoint's Options; Docker's own keys are ignored."""
        ours = _lower_keys({k: v for k, v in options.items() if "." not in k})
        unknown = sorted(set(ours) - set(ENDPOINT_OPTIONS))
        if unknown:
            raise OptionError(
                f"unknown endpoint driver option(s) {', '.join(unknown)}; valid ones are: "
                f"{_valid_list(ENDPOINT_OPTIONS)}"
            )
        hostname = ours.get("hostname")
        if hostname is not None:
            hostname = str(hostname).strip()
            if not valid_hostname(hostname):
                raise OptionError(
                    f"driver-opt hostname={hostname!r} is not a valid host name: use letters, "
                    "digits and hyphens, dot-separated labels of at most 63 characters"
                )
        return cls(hostname=hostname or None, ip=parse_requested_ip(ours.get("ip")))
