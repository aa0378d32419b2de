"""Network and endpoint options: parse, validate, explain."""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from .errors import OptionError

DEFAULT_LEASE_TIMEOUT_S = 10.0
MAX_LEASE_TIMEOUT_S = 600.0

_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off", ""}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}

NETWORK_OPTIONS = {
    "bridge": "name of an existing Linux bridge on the LAN (required)",
    "ipv6": "also get an IPv6 address by DHCPv6, and the default route from the router's "
            "advertisements (true/false; Docker 28+: --ipv6 does the same)",
    "lease_timeout": "how long to wait for a lease, e.g. 10s, 1m (default 10s)",
    "ignore_conflicts": "allow a bridge shared with another network (true/false)",
    "skip_routes": "do not copy the bridge's static routes into containers (true/false)",
    "validate_dhcp": "at network create, send one DISCOVER on the bridge and refuse the "
                     "network if no DHCP server answers (true/false, default false)",
}
ENDPOINT_OPTIONS = {
    "hostname": "host name sent to the DHCP server (option 12)",
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


def _valid_list(known: dict[str, str]) -> str:
    return "; ".join(f"{k}: {v}" for k, v in known.items())


@dataclass(frozen=True)
class NetworkOptions:
    """The options of one net-dhcp network, as given to `docker network create -o`."""

    bridge: str
    ipv6: bool = False
    lease_timeout_s: float = DEFAULT_LEASE_TIMEOUT_S
    ignore_conflicts: bool = False
    skip_routes: bool = False
    validate_dhcp: bool = False

    @classmethod
    def from_generic(cls, generic: dict[str, Any], *, enable_ipv6: bool = False) -> NetworkOptions:
        """Validate Docker's `com.docker.network.generic` map; raise OptionError with a fix."""
        unknown = sorted(set(generic) - set(NETWORK_OPTIONS))
        if unknown:
            raise OptionError(
                f"unknown option(s) {', '.join(unknown)}; valid options are: "
                f"{_valid_list(NETWORK_OPTIONS)}"
            )
        bridge = str(generic.get("bridge", "")).strip()
        if not bridge:
            raise OptionError(
                "option bridge is required: create the network with -o bridge=<name of an "
                "existing Linux bridge on your LAN>"
            )
        return cls(
            bridge=bridge,
            ipv6=parse_bool("ipv6", generic.get("ipv6", enable_ipv6)),
            lease_timeout_s=parse_duration(
                "lease_timeout", generic.get("lease_timeout", f"{DEFAULT_LEASE_TIMEOUT_S}s")
            ),
            ignore_conflicts=parse_bool("ignore_conflicts", generic.get("ignore_conflicts", False)),
            skip_routes=parse_bool("skip_routes", generic.get("skip_routes", False)),
            validate_dhcp=parse_bool("validate_dhcp", generic.get("validate_dhcp", False)),
        )

    def to_json(self) -> str:
        """Serialise for the state store."""
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> NetworkOptions:
        """Inverse of to_json."""
        return cls(**json.loads(text))


_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOSTNAME = re.compile(rf"^(?=.{{1,253}}\Z){_LABEL}(\.{_LABEL})*$")


def valid_hostname(name: str) -> bool:
    """True for an RFC 1123 host name or FQDN (no control characters, no spaces)."""
    return bool(_HOSTNAME.fullmatch(name))


@dataclass(frozen=True)
class EndpointOptions:
    """Per-endpoint driver options (`docker run --network name=N,driver-opt=k=v`)."""

    hostname: str | None = None
    extra: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_request(cls, options: dict[str, Any]) -> EndpointOptions:
        """Pick our options out of CreateEndpoint's Options; Docker's own keys are ignored."""
        ours = {k: v for k, v in options.items() if "." not in k}
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
        return cls(hostname=hostname or None)
