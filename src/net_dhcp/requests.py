"""Docker's request bodies -> typed, validated, frozen requests; pure (no I/O, no aiohttp).

`decode_body` turns the raw bytes into JSON values (refusing what would crash later:
invalid UTF-8, deep nesting; integers too long to convert become `OversizedInt`), and
`parse_request` turns a decoded body into one of the request dataclasses below, or raises
`RequestError` naming the field and what was expected. Rules for every method:

* unknown top-level fields are ignored (new engines add fields);
* a missing or `null` object/list field counts as empty, a wrong type is an error;
* NetworkID/EndpointID are 1..128 characters of [A-Za-z0-9_.-] (Docker's are 64 hex);
* addresses, pools, the MAC and SandboxKey are checked here, before anything is created;
* NaN/Infinity and nesting deeper than MAX_DEPTH are refused (no JSON encoder sends them);
* every value quoted in an error message goes through `quote_for_log`, so messages are
  printable and bounded whatever was sent.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from .errors import RequestError
from .text import MAX_INT_DIGITS, printable, quote_for_log

GENERIC = "com.docker.network.generic"
ENABLE_IPV6 = "com.docker.network.enable_ipv6"
ENABLE_IPV4 = "com.docker.network.enable_ipv4"

MAX_DEPTH = 32
"""Deepest JSON nesting accepted; Docker's bodies are at most 4 levels deep."""
MAX_ID_LEN = 128
MAX_PATH_LEN = 4096
MAX_ADDRESS_LEN = 64

_ID = re.compile(rf"[A-Za-z0-9_.-]{{1,{MAX_ID_LEN}}}")
_MAC = re.compile(r"[0-9A-Fa-f]{2}([:-])[0-9A-Fa-f]{2}(?:\1[0-9A-Fa-f]{2}){4}")


# ---- values as they come out of the decoder ----------------------------------------------
@dataclass(frozen=True)
class OversizedInt:
    """Stand-in for a JSON integer of more than MAX_INT_DIGITS digits (never converted)."""

    digits: int

    def __repr__(self) -> str:
        return f"<integer of {self.digits} digits>"


def decode_body(raw: bytes) -> object:
    """Decode a request body (empty -> {}); RequestError for anything that is not sane JSON."""
    if not raw.strip():
        return {}
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise RequestError(
            f"malformed request body: not UTF-8 (byte {err.start} is invalid)") from None
    try:
        value = json.loads(text, parse_int=_decode_int, parse_constant=_refuse_constant)
    except json.JSONDecodeError as err:
        raise RequestError(f"malformed JSON request body: {err}") from None
    except RecursionError:
        raise RequestError(
            f"malformed request body: JSON nested more than {MAX_DEPTH} levels deep") from None
    except ValueError as err:
        raise RequestError(
            f"malformed JSON request body: {printable(_safe_str(err))}") from None
    if _depth_exceeds(value, MAX_DEPTH):
        raise RequestError(f"malformed request body: JSON nested more than {MAX_DEPTH} levels "
                           "deep")
    return value


def _decode_int(text: str) -> int | OversizedInt:
    digits = len(text.lstrip("-"))
    if digits > MAX_INT_DIGITS:
        return OversizedInt(digits)
    return int(text)


def _refuse_constant(name: str) -> object:
    raise ValueError(f"{name} is not a JSON value")


def _depth_exceeds(value: object, limit: int) -> bool:
    # Iterative on purpose: the point is to protect code that recurses.
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: list[object] = list(item.values())
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def _safe_str(value: object) -> str:
    try:
        return str(value)
    except Exception:  # noqa: BLE001 - only used to build error messages
        return f"<{type(value).__name__}>"


def _kind(value: object) -> str:
    """How a JSON value is named in error messages: 'a number (5)', 'a list ([1])'."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return quote_for_log(value)
    if isinstance(value, str):
        return f"a string ({quote_for_log(value)})"
    if isinstance(value, int | float | OversizedInt):
        return f"a number ({quote_for_log(value)})"
    if isinstance(value, list | tuple):
        return f"a list ({quote_for_log(value)})"
    if isinstance(value, Mapping):
        return f"an object ({quote_for_log(value)})"
    return f"a {type(value).__name__}"


def _wrong(where: str, expected: str, value: object) -> RequestError:
    """The field has the wrong JSON type."""
    return RequestError(f"invalid request: {where} must be {expected}, not {_kind(value)}")


def _invalid(where: str, expected: str, text: str) -> RequestError:
    """The field has the right type but a value we refuse."""
    return RequestError(f"invalid request: {where} {quote_for_log(text)} is invalid: "
                        f"expected {expected}")


def _key(parent: str, key: str) -> str:
    return f"{parent}[{quote_for_log(key)}]"


# ---- the request shapes ------------------------------------------------------------------
@dataclass(frozen=True)
class IpamData:
    """One entry of IPv4Data / IPv6Data: the pool Docker's IPAM driver chose."""

    address_space: str
    pool: str
    gateway: str | None


@dataclass(frozen=True)
class CreateNetworkRequest:
    """CreateNetwork: the network's `-o` options, address families and IPAM pools."""

    network_id: str
    generic: dict[str, str]
    enable_ipv6: bool
    enable_ipv4: bool
    ipv4_data: tuple[IpamData, ...]
    ipv6_data: tuple[IpamData, ...]


@dataclass(frozen=True)
class NetworkRequest:
    """A call naming only a network: DeleteNetwork, AllocateNetwork, FreeNetwork."""

    network_id: str


@dataclass(frozen=True)
class CreateEndpointRequest:
    """CreateEndpoint: addresses and MAC Docker already fixed (None = ours to pick), our options."""

    network_id: str
    endpoint_id: str
    address: str | None
    address_ipv6: str | None
    mac: str | None
    options: dict[str, str]


@dataclass(frozen=True)
class EndpointRequest:
    """A call naming an endpoint: EndpointOperInfo, DeleteEndpoint, Leave, Program/Revoke."""

    network_id: str
    endpoint_id: str


@dataclass(frozen=True)
class JoinRequest:
    """Join: the endpoint and the sandbox (netns path) it joins, if Docker gave one."""

    network_id: str
    endpoint_id: str
    sandbox_key: str | None


@dataclass(frozen=True)
class EmptyRequest:
    """A call whose body the plugin does not read (Activate, GetCapabilities, Discover*)."""


Request = (CreateNetworkRequest | NetworkRequest | CreateEndpointRequest | EndpointRequest
           | JoinRequest | EmptyRequest)


# ---- field readers -----------------------------------------------------------------------
def _object(value: object, where: str) -> Mapping[str, object]:
    """A JSON object field; missing or null is {}."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise _wrong(where, "a JSON object", value)
    return value


def _list(value: object, where: str) -> list[object]:
    """A JSON list field; missing or null is []."""
    if value is None:
        return []
    if not isinstance(value, list | tuple):
        raise _wrong(where, "a JSON list", value)
    return list(value)


def _optional_str(value: object, where: str) -> str | None:
    """A string field where missing, null and "" all mean 'not set'."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise _wrong(where, "a string", value)
    return value


def _id(body: Mapping[str, object], name: str) -> str:
    value = body.get(name)
    expected = f"a string of 1 to {MAX_ID_LEN} characters from A-Z a-z 0-9 _ . -"
    if value is None:
        raise RequestError(f"invalid request: request is missing the string field {name!r} "
                           f"({expected})")
    if not isinstance(value, str):
        raise RequestError(f"invalid request: request is missing the string field {name!r}: "
                           f"it is {_kind(value)}, expected {expected}")
    if not _ID.fullmatch(value):
        raise _invalid(name, expected, value)
    return value


def _bool(value: object, where: str, default: bool) -> bool:
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise _wrong(where, 'true or false (or the string "true" or "false")', value)


def _option_value(value: object, where: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool | int | float):
        try:
            return str(value)
        except ValueError:  # an int with more digits than CPython converts
            pass
    raise _wrong(where, "a string, number or boolean of reasonable size", value)


def _options_map(source: Mapping[str, object], where: str,
                 keep: Callable[[str], bool]) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in source.items():
        if isinstance(key, str) and not keep(key):
            continue
        if not isinstance(key, str) or not key.isprintable() or not key:
            raise RequestError(f"invalid request: {where} has the key {quote_for_log(key)}: "
                               "option names must be non-empty and printable")
        out[key] = _option_value(value, _key(where, key))
    return out


def _address(value: object, where: str, version: int) -> str | None:
    """An 'ip' or 'ip/prefix' of the given family, returned as sent."""
    text = _optional_str(value, where)
    if text is None:
        return None
    expected = f"an IPv{version} address with a prefix length, e.g. " + (
        "192.168.1.50/24" if version == 4 else "2001:db8::50/64")
    # '%' would let a scope ID (free text) through ipaddress.
    if len(text) > MAX_ADDRESS_LEN or not text.isascii() or "%" in text:
        raise _invalid(where, expected, text)
    try:
        parsed = ipaddress.ip_interface(text)
    except ValueError:
        raise _invalid(where, expected, text) from None
    if parsed.version != version:
        raise _invalid(where, expected, text)
    return text


def _pool(value: object, where: str, version: int) -> str:
    expected = f"an IPv{version} network, e.g. " + ("0.0.0.0/0" if version == 4 else "::/0")
    text = _optional_str(value, where)
    if text is None:
        raise _wrong(where, expected, value)
    if len(text) > MAX_ADDRESS_LEN or not text.isascii() or "%" in text:
        raise _invalid(where, expected, text)
    try:
        parsed = ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise _invalid(where, expected, text) from None
    if parsed.version != version:
        raise _invalid(where, expected, text)
    return text


def _ipam_list(value: object, where: str, version: int) -> tuple[IpamData, ...]:
    out: list[IpamData] = []
    for index, entry in enumerate(_list(value, where)):
        here = f"{where}[{index}]"
        if not isinstance(entry, Mapping):
            raise _wrong(here, "a JSON object (AddressSpace, Pool, Gateway)", entry)
        space = entry.get("AddressSpace")
        if space is None:
            space = ""
        if not isinstance(space, str):
            raise _wrong(f"{here}.AddressSpace", "a string", space)
        if not space.isprintable() or len(space) > MAX_ID_LEN:
            raise _invalid(f"{here}.AddressSpace",
                           f"printable text of at most {MAX_ID_LEN} characters", space)
        out.append(IpamData(address_space=space,
                            pool=_pool(entry.get("Pool"), f"{here}.Pool", version),
                            gateway=_address(entry.get("Gateway"), f"{here}.Gateway", version)))
    return tuple(out)


def validate_mac(value: object, where: str = "Interface.MacAddress") -> str | None:
    """A unicast, non-zero MAC as 'aa:bb:cc:dd:ee:ff' ('-' accepted); "" or null -> None."""
    text = _optional_str(value, where)
    if text is None:
        return None
    if not _MAC.fullmatch(text):
        raise _invalid(where, "a MAC address of 6 hex octets, e.g. 02:42:ac:11:00:02", text)
    mac = text.lower().replace("-", ":")
    octets = bytes.fromhex(mac.replace(":", ""))
    if octets == bytes(6):
        raise RequestError(f"invalid request: {where} {quote_for_log(text)} is all zeros: "
                           "use a unicast MAC address such as 02:42:ac:11:00:02")
    if octets[0] & 1:
        raise RequestError(f"invalid request: {where} {quote_for_log(text)} is a multicast "
                           "address (lowest bit of the first octet set): use a unicast MAC "
                           "such as 02:42:ac:11:00:02")
    return mac


def _sandbox_key(value: object) -> str | None:
    text = _optional_str(value, "SandboxKey")
    if text is None:
        return None
    if not text.startswith("/") or "\0" in text or len(text) > MAX_PATH_LEN:
        raise _invalid("SandboxKey", f"an absolute path of at most {MAX_PATH_LEN} characters "
                     "without NUL, e.g. /var/run/docker/netns/0123456789ab", text)
    return text


# ---- parsers -----------------------------------------------------------------------------
def _top(body: object) -> Mapping[str, object]:
    if body is None:
        return {}
    if not isinstance(body, Mapping):
        raise RequestError(f"invalid request: the request body must be a JSON object, not "
                           f"{_kind(body)}")
    return body


def parse_create_network(body: object) -> CreateNetworkRequest:
    """CreateNetwork's body -> CreateNetworkRequest, or RequestError."""
    top = _top(body)
    network_id = _id(top, "NetworkID")
    options = _object(top.get("Options"), "Options")
    generic_where = _key("Options", GENERIC)
    generic = _options_map(_object(options.get(GENERIC), generic_where), generic_where,
                           lambda _key: True)
    return CreateNetworkRequest(
        network_id=network_id,
        generic=generic,
        enable_ipv6=_bool(options.get(ENABLE_IPV6), _key("Options", ENABLE_IPV6), False),
        enable_ipv4=_bool(options.get(ENABLE_IPV4), _key("Options", ENABLE_IPV4), True),
        ipv4_data=_ipam_list(top.get("IPv4Data"), "IPv4Data", 4),
        ipv6_data=_ipam_list(top.get("IPv6Data"), "IPv6Data", 6),
    )


def parse_network(body: object) -> NetworkRequest:
    """A body naming a network (DeleteNetwork, AllocateNetwork, FreeNetwork)."""
    return NetworkRequest(network_id=_id(_top(body), "NetworkID"))


def parse_create_endpoint(body: object) -> CreateEndpointRequest:
    """CreateEndpoint's body -> CreateEndpointRequest (our undotted options only)."""
    top = _top(body)
    network_id = _id(top, "NetworkID")
    endpoint_id = _id(top, "EndpointID")
    iface = _object(top.get("Interface"), "Interface")
    options = _options_map(_object(top.get("Options"), "Options"), "Options",
                           lambda key: "." not in key)
    return CreateEndpointRequest(
        network_id=network_id,
        endpoint_id=endpoint_id,
        address=_address(iface.get("Address"), "Interface.Address", 4),
        address_ipv6=_address(iface.get("AddressIPv6"), "Interface.AddressIPv6", 6),
        mac=validate_mac(iface.get("MacAddress")),
        options=options,
    )


def parse_endpoint(body: object) -> EndpointRequest:
    """A body naming an endpoint (EndpointOperInfo, DeleteEndpoint, Leave, Program/Revoke)."""
    top = _top(body)
    return EndpointRequest(network_id=_id(top, "NetworkID"), endpoint_id=_id(top, "EndpointID"))


def parse_join(body: object) -> JoinRequest:
    """Join's body -> JoinRequest; its Options (sandbox labels) are not read."""
    top = _top(body)
    network_id = _id(top, "NetworkID")
    endpoint_id = _id(top, "EndpointID")
    return JoinRequest(network_id=network_id, endpoint_id=endpoint_id,
                       sandbox_key=_sandbox_key(top.get("SandboxKey")))


def parse_empty(body: object) -> EmptyRequest:
    """A body the plugin does not read; it must still be a JSON object (or empty)."""
    _top(body)
    return EmptyRequest()


PARSERS: dict[str, Callable[[object], Request]] = {
    "Plugin.Activate": parse_empty,
    "NetworkDriver.GetCapabilities": parse_empty,
    "NetworkDriver.CreateNetwork": parse_create_network,
    "NetworkDriver.DeleteNetwork": parse_network,
    "NetworkDriver.AllocateNetwork": parse_network,
    "NetworkDriver.FreeNetwork": parse_network,
    "NetworkDriver.CreateEndpoint": parse_create_endpoint,
    "NetworkDriver.EndpointOperInfo": parse_endpoint,
    "NetworkDriver.DeleteEndpoint": parse_endpoint,
    "NetworkDriver.Join": parse_join,
    "NetworkDriver.Leave": parse_endpoint,
    "NetworkDriver.ProgramExternalConnectivity": parse_endpoint,
    "NetworkDriver.RevokeExternalConnectivity": parse_endpoint,
    "NetworkDriver.DiscoverNew": parse_empty,
    "NetworkDriver.DiscoverDelete": parse_empty,
}
"""Method (URL path without '/') -> the parser for its body."""


def parse_request(method: str, body: object) -> Request:
    """Parse a decoded body for `method` ('NetworkDriver.Join' or 'Join'); RequestError if bad."""
    parser = PARSERS.get(method) or PARSERS.get(f"NetworkDriver.{method}")
    if parser is None:
        raise RequestError(f"net-dhcp does not implement {quote_for_log(method)}")
    return parser(body)
