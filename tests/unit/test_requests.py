"""requests.py: every body a real dockerd sent parses; every malformed shape is refused by name."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from net_dhcp.errors import RequestError
from net_dhcp.requests import (
    MAX_DEPTH,
    CreateEndpointRequest,
    CreateNetworkRequest,
    EmptyRequest,
    EndpointRequest,
    IpamData,
    JoinRequest,
    NetworkRequest,
    OversizedInt,
    decode_body,
    parse_request,
    validate_mac,
)
from net_dhcp.text import printable, quote_for_log

_DATA = json.loads((Path(__file__).parent / "fixtures" / "docker-20.10-requests.json")
                   .read_text())
SAMPLES = _DATA["samples_legacy_plugin"] + _DATA["samples_managed_plugin"]

EXPECTED_TYPE: dict[str, type] = {
    "Plugin.Activate": EmptyRequest,
    "NetworkDriver.GetCapabilities": EmptyRequest,
    "NetworkDriver.CreateNetwork": CreateNetworkRequest,
    "NetworkDriver.DeleteNetwork": NetworkRequest,
    "NetworkDriver.CreateEndpoint": CreateEndpointRequest,
    "NetworkDriver.EndpointOperInfo": EndpointRequest,
    "NetworkDriver.DeleteEndpoint": EndpointRequest,
    "NetworkDriver.Join": JoinRequest,
    "NetworkDriver.Leave": EndpointRequest,
    "NetworkDriver.ProgramExternalConnectivity": EndpointRequest,
    "NetworkDriver.RevokeExternalConnectivity": EndpointRequest,
}

NET = "b9f8e3f608a84ca4d8a1097225afe8081bd45f2c21d60cb95967f45b6b6525a1"
EP = "63aa11abd8eec20daa2daca0bbea2985933cf3f78babf60d90683c6eea170fde"
NULL_V4 = [{"AddressSpace": "null", "Pool": "0.0.0.0/0"}]


def raw(sample: dict[str, Any]) -> bytes:
    req = sample["request"]
    if isinstance(req, str):
        return req.encode()
    return (json.dumps(req) + "\n").encode() if req is not None else b""


def ep_body(**fields: Any) -> dict[str, Any]:
    return {"NetworkID": NET, "EndpointID": EP, **fields}


# ---- what dockerd really sends ---------------------------------------------------------------
@pytest.mark.parametrize("sample", SAMPLES,
                         ids=[f"{i}{s['path']}" for i, s in enumerate(SAMPLES)])
def test_every_captured_body_parses(sample: dict[str, Any]) -> None:
    method = sample["path"].lstrip("/")
    req = parse_request(method, decode_body(raw(sample)))
    assert type(req) is EXPECTED_TYPE[method]
    body = sample["request"] or {}
    if "NetworkID" in body:
        assert req.network_id == body["NetworkID"]  # type: ignore[union-attr]
    if "EndpointID" in body:
        assert req.endpoint_id == body["EndpointID"]  # type: ignore[union-attr]


def test_captured_bodies_keep_their_values() -> None:
    ep = next(s for s in SAMPLES
              if s["path"] == "/NetworkDriver.CreateEndpoint" and "--mac-address" in s["scenario"])
    req = parse_request("NetworkDriver.CreateEndpoint", ep["request"])
    assert req == CreateEndpointRequest(
        network_id=NET, endpoint_id=EP, address=None, address_ipv6=None,
        mac="02:42:99:00:00:11", options={})
    bad_ipam = next(s for s in SAMPLES if "-o bridge=lab-br0 labcap-bad" in s["scenario"])
    net = parse_request("NetworkDriver.CreateNetwork", bad_ipam["request"])
    assert isinstance(net, CreateNetworkRequest)
    assert net.generic == {"bridge": "lab-br0"}
    assert (net.enable_ipv6, net.enable_ipv4) == (False, True)
    assert net.ipv4_data == (IpamData("LocalDefault", "172.19.0.0/16", "172.19.0.1/16"),)
    assert net.ipv6_data == ()
    join = next(s for s in SAMPLES if s["path"] == "/NetworkDriver.Join")
    assert parse_request("Join", join["request"]) == JoinRequest(
        NET, EP, "/var/run/docker/netns/44f28c433564")


def test_requests_are_frozen() -> None:
    req = parse_request("NetworkDriver.DeleteNetwork", {"NetworkID": NET})
    with pytest.raises(dataclasses.FrozenInstanceError):
        req.network_id = "x"  # type: ignore[misc, union-attr]


# ---- defaults, nulls, coercion -----------------------------------------------------------------
def test_missing_and_null_fields_are_empty() -> None:
    for body in ({"NetworkID": "n"},
                 {"NetworkID": "n", "Options": None, "IPv4Data": None, "IPv6Data": None},
                 {"NetworkID": "n", "Options": {"com.docker.network.generic": None}}):
        assert parse_request("CreateNetwork", body) == CreateNetworkRequest(
            network_id="n", generic={}, enable_ipv6=False, enable_ipv4=True,
            ipv4_data=(), ipv6_data=())
    for body in ({"NetworkID": "n", "EndpointID": "e"},
                 {"NetworkID": "n", "EndpointID": "e", "Interface": None, "Options": None},
                 {"NetworkID": "n", "EndpointID": "e",
                  "Interface": {"Address": "", "AddressIPv6": None, "MacAddress": ""}}):
        assert parse_request("CreateEndpoint", body) == CreateEndpointRequest(
            "n", "e", None, None, None, {})
    assert parse_request("Join", {"NetworkID": "n", "EndpointID": "e", "SandboxKey": ""}) \
        == JoinRequest("n", "e", None)
    assert parse_request("Plugin.Activate", None) == EmptyRequest()


def test_unknown_fields_are_ignored() -> None:
    body = ep_body(FutureField={"x": [1, {"y": None}]}, Interface={"Future": 5})
    assert parse_request("CreateEndpoint", body) == CreateEndpointRequest(
        NET, EP, None, None, None, {})


@pytest.mark.parametrize(("value", "expected"), [
    (True, True), (False, False), ("true", True), ("false", False), ("TRUE", True),
    (" False ", False), (None, False),
])
def test_enable_ipv6_accepts_bools_and_their_strings(value: object, expected: bool) -> None:
    req = parse_request("CreateNetwork", {
        "NetworkID": "n", "Options": {"com.docker.network.enable_ipv6": value}})
    assert isinstance(req, CreateNetworkRequest)
    assert req.enable_ipv6 is expected


def test_enable_ipv4_defaults_to_true_and_can_be_off() -> None:
    off = parse_request("CreateNetwork", {
        "NetworkID": "n", "Options": {"com.docker.network.enable_ipv4": False}})
    assert isinstance(off, CreateNetworkRequest)
    assert off.enable_ipv4 is False


def test_option_values_are_coerced_to_str() -> None:
    req = parse_request("CreateNetwork", {"NetworkID": "n", "Options": {
        "com.docker.network.generic": {"bridge": "br0", "ipv6": True, "n": 5, "f": 1.5},
        "com.docker.network.internal": True}})
    assert isinstance(req, CreateNetworkRequest)
    assert req.generic == {"bridge": "br0", "ipv6": "True", "n": "5", "f": "1.5"}


def test_endpoint_options_keep_only_undotted_keys() -> None:
    req = parse_request("CreateEndpoint", ep_body(Options={
        "hostname": "web", "flag": False,
        "com.docker.network.portmap": [{"Proto": 6}],
        "com.docker.network.endpoint.macaddress": "AkKZAAAR",
        "com.example.junk": {"deep": [[[]]]}}))
    assert isinstance(req, CreateEndpointRequest)
    assert req.options == {"hostname": "web", "flag": "False"}


def test_ipv6_pool_and_addresses() -> None:
    req = parse_request("CreateNetwork", {"NetworkID": "n", "IPv4Data": NULL_V4, "IPv6Data": [
        {"AddressSpace": "null", "Pool": "::/0"},
        {"AddressSpace": "x", "Pool": "2001:db8::/64", "Gateway": "2001:db8::1/64",
         "AuxAddresses": {"a": "2001:db8::2/64"}}]})
    assert isinstance(req, CreateNetworkRequest)
    assert req.ipv6_data == (IpamData("null", "::/0", None),
                             IpamData("x", "2001:db8::/64", "2001:db8::1/64"))
    ep = parse_request("CreateEndpoint", ep_body(Interface={
        "Address": "10.0.0.5/24", "AddressIPv6": "2001:db8::5/64"}))
    assert isinstance(ep, CreateEndpointRequest)
    assert (ep.address, ep.address_ipv6) == ("10.0.0.5/24", "2001:db8::5/64")


# ---- malformed shapes: each names the field and what was expected -----------------------------
MALFORMED: list[tuple[str, object, list[str]]] = [
    ("CreateNetwork", [1, 2], ["body must be a JSON object", "a list"]),
    ("CreateNetwork", "x", ["body must be a JSON object", "a string"]),
    ("CreateNetwork", {"NetworkID": "n", "Options": []},
     ["Options must be a JSON object", "a list"]),
    ("CreateNetwork", {"NetworkID": "n", "Options": "bridge=br0"},
     ["Options must be a JSON object", "a string"]),
    ("CreateNetwork", {"NetworkID": "n", "Options": {"com.docker.network.generic": 5}},
     ["Options['com.docker.network.generic'] must be a JSON object", "a number (5)"]),
    ("CreateNetwork", {"NetworkID": "n", "Options": {"com.docker.network.generic":
                                                     {"bridge": ["br0"]}}},
     ["Options['com.docker.network.generic']['bridge'] must be a string", "a list"]),
    ("CreateNetwork", {"NetworkID": "n", "Options": {"com.docker.network.generic":
                                                     {"bridge": None}}},
     ["['bridge'] must be a string", "null"]),
    ("CreateNetwork", {"NetworkID": "n", "Options": {"com.docker.network.generic":
                                                     {"bad\x1bkey": "v"}}},
     ["'bad\\x1bkey'", "printable"]),
    ("CreateNetwork", {"NetworkID": "n", "Options": {"com.docker.network.enable_ipv6": "yes"}},
     ["Options['com.docker.network.enable_ipv6'] must be true or false", "'yes'"]),
    ("CreateNetwork", {"NetworkID": "n", "Options": {"com.docker.network.enable_ipv4": 1}},
     ["Options['com.docker.network.enable_ipv4'] must be true or false", "a number (1)"]),
    ("CreateNetwork", {"NetworkID": "n", "IPv4Data": {}}, ["IPv4Data must be a JSON list"]),
    ("CreateNetwork", {"NetworkID": "n", "IPv6Data": "::/0"}, ["IPv6Data must be a JSON list"]),
    ("CreateNetwork", {"NetworkID": "n", "IPv4Data": [5]},
     ["IPv4Data[0] must be a JSON object", "a number (5)"]),
    ("CreateNetwork", {"NetworkID": "n", "IPv4Data": [*NULL_V4, "x"]},
     ["IPv4Data[1] must be a JSON object"]),
    ("CreateNetwork", {"NetworkID": "n", "IPv4Data": [{"AddressSpace": 1, "Pool": "0.0.0.0/0"}]},
     ["IPv4Data[0].AddressSpace must be a string"]),
    ("CreateNetwork", {"NetworkID": "n", "IPv4Data": [{"AddressSpace": "null"}]},
     ["IPv4Data[0].Pool must be an IPv4 network", "null"]),
    ("CreateNetwork", {"NetworkID": "n", "IPv4Data": [{"AddressSpace": "null", "Pool": "::/0"}]},
     ["IPv4Data[0].Pool '::/0' is invalid", "expected an IPv4 network"]),
    ("CreateNetwork", {"NetworkID": "n", "IPv4Data": [{"AddressSpace": "x", "Pool": "nope"}]},
     ["IPv4Data[0].Pool 'nope' is invalid"]),
    ("CreateNetwork", {"NetworkID": "n", "IPv4Data": [{"AddressSpace": "x",
                                                       "Pool": "10.0.0.0/8", "Gateway": 5}]},
     ["IPv4Data[0].Gateway must be a string"]),
    ("CreateNetwork", {"NetworkID": "n", "IPv6Data": [{"AddressSpace": "x", "Pool": "10.0.0.0/8"}]},
     ["IPv6Data[0].Pool '10.0.0.0/8' is invalid", "IPv6"]),
    ("CreateEndpoint", ep_body(Interface=5), ["Interface must be a JSON object", "a number (5)"]),
    ("CreateEndpoint", ep_body(Interface=[]), ["Interface must be a JSON object", "a list"]),
    ("CreateEndpoint", ep_body(Interface={"Address": 5}), ["Interface.Address must be a string"]),
    ("CreateEndpoint", ep_body(Interface={"Address": "300.1.1.1/24"}),
     ["Interface.Address '300.1.1.1/24' is invalid", "IPv4 address"]),
    ("CreateEndpoint", ep_body(Interface={"AddressIPv6": "10.0.0.1/8"}),
     ["Interface.AddressIPv6 '10.0.0.1/8' is invalid", "IPv6 address"]),
    ("CreateEndpoint", ep_body(Interface={"AddressIPv6": "fe80::1%\n/64"}),
     ["Interface.AddressIPv6 'fe80::1%\\n/64' is invalid"]),
    ("CreateEndpoint", ep_body(Interface={"MacAddress": 5}),
     ["Interface.MacAddress must be a string", "a number (5)"]),
    ("CreateEndpoint", ep_body(Interface={"MacAddress": "02:42"}),
     ["Interface.MacAddress '02:42' is invalid", "6 hex octets"]),
    ("CreateEndpoint", ep_body(Options=[]), ["Options must be a JSON object", "a list"]),
    ("CreateEndpoint", ep_body(Options={"hostname": {"a": 1}}),
     ["Options['hostname'] must be a string, number or boolean", "an object"]),
    ("Join", ep_body(SandboxKey=5), ["SandboxKey must be a string", "a number (5)"]),
    ("Join", ep_body(SandboxKey="var/run/docker/netns/x"),
     ["SandboxKey 'var/run/docker/netns/x' is invalid", "absolute path"]),
    ("Join", ep_body(SandboxKey="/var/run\x00/x"), ["SandboxKey '/var/run\\x00/x' is invalid"]),
    ("Leave", {"NetworkID": NET}, ["missing the string field 'EndpointID'"]),
    ("Leave", {"EndpointID": EP}, ["missing the string field 'NetworkID'"]),
    ("DeleteNetwork", {"NetworkID": None}, ["missing the string field 'NetworkID'"]),
    ("DeleteNetwork", {"NetworkID": 5}, ["missing the string field 'NetworkID'", "a number (5)"]),
    ("DeleteNetwork", {"NetworkID": ["a"]}, ["missing the string field 'NetworkID'", "a list"]),
    ("DeleteNetwork", {"NetworkID": OversizedInt(5000)},
     ["'NetworkID'", "<integer of 5000 digits>"]),
    ("DeleteNetwork", {"NetworkID": 10**5000}, ["'NetworkID'", "a number (<integer of about"]),
]


@pytest.mark.parametrize(("method", "body", "fragments"), MALFORMED,
                         ids=[f"{i}-{m}" for i, (m, _, _) in enumerate(MALFORMED)])
def test_malformed_shapes_are_refused_by_name(method: str, body: object,
                                              fragments: list[str]) -> None:
    with pytest.raises(RequestError) as info:
        parse_request(method, body)
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message
    assert message.isprintable()
    assert len(message) < 400


# ---- IDs ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("good", ["n", "net-1_a.B", "x" * 128, NET])
def test_valid_ids(good: str) -> None:
    assert parse_request("Leave", {"NetworkID": good, "EndpointID": good}) \
        == EndpointRequest(good, good)


@pytest.mark.parametrize("bad", ["", "a/b", "a b", "a\nb", "\x1b[2J", "x" * 129, "é", "a\x00",
                                 "../../etc", "a\u202eb"])
def test_invalid_ids_are_refused_by_name(bad: str) -> None:
    with pytest.raises(RequestError, match="EndpointID") as info:
        parse_request("Leave", {"NetworkID": NET, "EndpointID": bad})
    assert "A-Z a-z 0-9 _ . -" in str(info.value)
    assert str(info.value).isprintable()


# ---- MAC addresses -----------------------------------------------------------------------------
@pytest.mark.parametrize(("given", "normalised"), [
    ("02:42:ac:11:00:02", "02:42:ac:11:00:02"),
    ("02:42:AC:11:00:02", "02:42:ac:11:00:02"),
    ("02-42-Ac-11-00-02", "02:42:ac:11:00:02"),
    ("fe:ff:ff:ff:ff:ff", "fe:ff:ff:ff:ff:ff"),
    ("", None),
    (None, None),
])
def test_mac_is_normalised(given: str | None, normalised: str | None) -> None:
    assert validate_mac(given) == normalised
    req = parse_request("CreateEndpoint", ep_body(Interface={"MacAddress": given}))
    assert isinstance(req, CreateEndpointRequest)
    assert req.mac == normalised


@pytest.mark.parametrize(("bad", "why"), [
    ("02:42:ac:11:00", "6 hex octets"),
    ("02:42:ac:11:00:02:03", "6 hex octets"),
    ("0242ac110002", "6 hex octets"),
    ("02:42-ac:11:00:02", "6 hex octets"),
    ("02.42.ac.11.00.02", "6 hex octets"),
    ("g2:42:ac:11:00:02", "6 hex octets"),
    ("2:42:ac:11:00:02", "6 hex octets"),
    (" 02:42:ac:11:00:02", "6 hex octets"),
    ("02:42:ac:11:00:02\n", "6 hex octets"),
    ("02:42:ac:11:00:0\uff12", "6 hex octets"),
    ("01:00:5e:00:00:01", "multicast"),
    ("ff:ff:ff:ff:ff:ff", "multicast"),
    ("03:00:00:00:00:01", "multicast"),
    ("00:00:00:00:00:00", "all zeros"),
    ("00-00-00-00-00-00", "all zeros"),
])
def test_bad_macs_are_refused(bad: str, why: str) -> None:
    with pytest.raises(RequestError, match="Interface.MacAddress") as info:
        parse_request("CreateEndpoint", ep_body(Interface={"MacAddress": bad}))
    assert why in str(info.value)
    assert str(info.value).isprintable()


# ---- decoding ----------------------------------------------------------------------------------
@pytest.mark.parametrize("body", [b"", b"  \n", b"{}", b"{}\n", b"null"])
def test_empty_bodies(body: bytes) -> None:
    assert parse_request("Plugin.Activate", decode_body(body)) == EmptyRequest()


@pytest.mark.parametrize(("body", "fragment"), [
    (b"{not json", "malformed JSON"),
    (b'{"a": 1', "malformed JSON"),
    (b"\xff\xfe{}", "not UTF-8"),
    (b'{"a": "\xc3"}', "not UTF-8"),
    (b'{"a": NaN}', "NaN is not a JSON value"),
    (b'{"a": -Infinity}', "-Infinity is not a JSON value"),
    (b"[" * 100_000, f"nested more than {MAX_DEPTH} levels"),
    (b'{"a":' * 5000 + b"1" + b"}" * 5000, f"nested more than {MAX_DEPTH} levels"),
    (b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1), f"nested more than {MAX_DEPTH} levels"),
])
def test_bad_json_is_a_request_error(body: bytes, fragment: str) -> None:
    with pytest.raises(RequestError) as info:
        decode_body(body)
    assert fragment in str(info.value)
    assert str(info.value).isprintable()


def test_max_depth_is_accepted() -> None:
    assert decode_body(b"[" * MAX_DEPTH + b"]" * MAX_DEPTH) is not None


def test_huge_integers_decode_to_a_stand_in_and_are_refused_by_name() -> None:
    digits = b"9" * 100_000
    body = decode_body(b'{"NetworkID": ' + digits + b', "Future": -' + digits + b"}")
    assert body == {"NetworkID": OversizedInt(100_000), "Future": OversizedInt(100_000)}
    with pytest.raises(RequestError, match="'NetworkID'.*<integer of 100000 digits>"):
        parse_request("DeleteNetwork", body)
    # In an ignored field it is just ignored.
    assert parse_request("DeleteNetwork", decode_body(b'{"NetworkID": "n", "X": ' + digits
                                                      + b"}")) == NetworkRequest("n")


def test_huge_integer_option_value_is_refused() -> None:
    body = decode_body(b'{"NetworkID": "n", "Options": {"com.docker.network.generic": '
                       b'{"bridge": ' + b"1" * 5000 + b"}}}")
    with pytest.raises(RequestError, match=r"\['bridge'\] must be a string, number or boolean"):
        parse_request("CreateNetwork", body)


def test_method_names() -> None:
    assert parse_request("NetworkDriver.Leave", ep_body()) == parse_request("Leave", ep_body())
    with pytest.raises(RequestError, match="does not implement 'NetworkDriver.Nope\\\\n'"):
        parse_request("NetworkDriver.Nope\n", {})


# ---- quote_for_log -----------------------------------------------------------------------------
@pytest.mark.parametrize(("value", "expected"), [
    ("plain", "'plain'"),
    ("a\r\nb", "'a\\r\\nb'"),
    ("\x1b[31mred", "'\\x1b[31mred'"),
    ("it's \\", "'it\\'s \\\\'"),
    ("\u202e\u2028\ud800\x7f\x85", "'\\u202e\\u2028\\ud800\\x7f\\x85'"),
    ("\U000e0001", "'\\U000e0001'"),
    ("caf\u00e9 \u4e2d", "'caf\u00e9 \u4e2d'"),
    (None, "null"), (True, "true"), (5, "5"), (1.5, "1.5"),
    ([1, "a\n"], "[1, 'a\\n']"),
    ({"k\t": [[[1]]]}, "{'k\\t': [[...]]}"),
    (OversizedInt(5000), "<integer of 5000 digits>"),
])
def test_quote_for_log(value: object, expected: str) -> None:
    assert quote_for_log(value) == expected


def test_quote_for_log_is_bounded_and_never_raises() -> None:
    class Hostile:
        def __repr__(self) -> str:
            raise RuntimeError("no")

    long = quote_for_log("x" * 100_000)
    assert long.startswith("'" + "x" * 80 + "'")
    assert "100000 characters" in long
    assert len(long) < 120
    assert len(quote_for_log("\x00" * 1000)) < 120
    assert quote_for_log(10**100_000).startswith("<integer of about 10000")
    assert len(quote_for_log(list(range(100_000)))) < 200
    assert len(quote_for_log({str(i): "v" * 100 for i in range(1000)})) < 300
    deep: list[object] = []
    for _ in range(100_000):  # deeper than the recursion limit
        deep = [deep]
    assert quote_for_log(deep) == "[[[...]]]"
    assert quote_for_log(Hostile()) == "<Hostile>"
    assert quote_for_log("abcdef", limit=3) == "'abc'... (6 characters)"


def test_printable() -> None:
    assert printable("line\nnext\x1b") == "line\\nnext\\x1b"
    assert printable("x" * 100, limit=10) == "x" * 10
