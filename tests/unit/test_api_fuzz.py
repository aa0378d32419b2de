"""Fuzzing the HTTP side: whatever is posted, the reply is JSON, and the driver sees only
correctly typed, validated requests.

At least REQUESTS requests per run (hypothesis, derandomized: the same ones every run) go
through the in-process aiohttp app to a FakeDriver that records its calls: well-formed
bodies (whose typed request is known in advance), bodies with fields missing, null, of the
wrong type or unknown, nested junk, raw bytes, and random method names.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import re
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from net_dhcp.api import make_app
from net_dhcp.requests import (
    ENABLE_IPV4,
    ENABLE_IPV6,
    GENERIC,
    CreateEndpointRequest,
    CreateNetworkRequest,
    EndpointRequest,
    IpamData,
    JoinRequest,
    NetworkRequest,
)
from tests.unit.test_api import FakeDriver

BATCH = 5
EXAMPLES = 2000
REQUESTS = BATCH * EXAMPLES
HANG_LIMIT_S = 300.0
"""A hang guard, not a speed target (speed is the bench's job): a slow or loaded CI
machine must not fail this test; a decoder or handler that loops does."""
CONTENT_TYPE = "application/vnd.docker.plugins.v1.2+json"
HUGE = "\x00huge-int\x00"
"""Placeholder in a generated body, replaced by a 5000-digit integer once encoded
(json.dumps itself cannot write one)."""

DRIVER_CALL = {  # method -> (FakeDriver method, request type)
    "NetworkDriver.CreateNetwork": ("create_network", CreateNetworkRequest),
    "NetworkDriver.DeleteNetwork": ("delete_network", NetworkRequest),
    "NetworkDriver.CreateEndpoint": ("create_endpoint", CreateEndpointRequest),
    "NetworkDriver.EndpointOperInfo": ("endpoint_oper_info", EndpointRequest),
    "NetworkDriver.DeleteEndpoint": ("delete_endpoint", EndpointRequest),
    "NetworkDriver.Join": ("join", JoinRequest),
    "NetworkDriver.Leave": ("leave", EndpointRequest),
    "NetworkDriver.ProgramExternalConnectivity": ("program_external_connectivity",
                                                  EndpointRequest),
}
CONSTANT_METHODS = [
    "Plugin.Activate", "NetworkDriver.GetCapabilities", "NetworkDriver.AllocateNetwork",
    "NetworkDriver.FreeNetwork", "NetworkDriver.DiscoverNew", "NetworkDriver.DiscoverDelete",
    "NetworkDriver.RevokeExternalConnectivity",
]
METHODS = [*DRIVER_CALL, *CONSTANT_METHODS]

ID_RE = re.compile(r"[A-Za-z0-9_.-]{1,128}")
MAC_RE = re.compile(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}")


# ---- strategies --------------------------------------------------------------------------------
text = st.text(st.characters(exclude_categories=["Cs"]), max_size=12)
scalars = (st.none() | st.booleans() | st.integers() | st.floats() | text
           | st.just(HUGE))
junk = st.recursive(scalars, lambda kids: st.lists(kids, max_size=3)
                    | st.dictionaries(text, kids, max_size=3), max_leaves=8)
json_junk = st.recursive(  # what a real JSON encoder can write: no NaN or Infinity
    scalars.filter(lambda v: not isinstance(v, float) or v - v == 0),
    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(text, kids, max_size=3),
    max_leaves=8)

good_ids = st.from_regex(r"[A-Za-z0-9_.-]{1,20}", fullmatch=True) | st.just("a" * 128)
bad_ids = st.sampled_from(["", "a/b", "a b", "\x1b[2J", "x" * 129, "é", "a\nb"])
ids = good_ids | bad_ids | junk

good_macs = st.builds(
    lambda first, rest, sep, upper: sep.join(
        f"{b:02X}" if upper else f"{b:02x}" for b in [first & 0xFE | 0x02, *rest]),
    st.integers(0, 255), st.lists(st.integers(0, 255), min_size=5, max_size=5),
    st.sampled_from([":", "-"]), st.booleans())
macs = (good_macs | st.sampled_from(["", "01:00:5e:00:00:01", "00:00:00:00:00:00", "02:42",
                                     "02:42:ac:11:00:02:03", "02:42-ac:11:00:02"])
        | st.from_regex(r"[0-9a-fA-F:\-]{0,20}", fullmatch=True) | junk)
v4_addresses = st.sampled_from(["10.0.0.5/24", "192.168.1.50/24", "10.1.2.3"])
v6_addresses = st.sampled_from(["2001:db8::5/64", "fe80::1/64"])
addresses = (v4_addresses | v6_addresses
             | st.sampled_from(["", "300.1.1.1/24", "fe80::1%eth0/64", "x"]) | junk)
pools = st.sampled_from(["0.0.0.0/0", "::/0", "172.18.0.0/16", "10.0.0.0/8", "nope"]) | junk
bools = st.booleans() | st.sampled_from(["true", "false", "TRUE", "yes", ""]) | junk
option_values = text | st.booleans() | st.integers(-10**6, 10**6) | junk

ipam_entries = st.fixed_dictionaries({}, optional={
    "AddressSpace": st.sampled_from(["null", "LocalDefault"]) | junk,
    "Pool": pools, "Gateway": addresses, "AuxAddresses": junk}) | junk
ipam_lists = st.lists(ipam_entries, max_size=3) | junk
network_options = st.fixed_dictionaries({}, optional={
    GENERIC: st.dictionaries(text, option_values, max_size=3) | junk,
    ENABLE_IPV6: bools, ENABLE_IPV4: bools, "com.docker.network.internal": junk}) | junk
endpoint_options = st.dictionaries(
    st.sampled_from(["hostname", "com.docker.network.portmap",
                     "com.docker.network.endpoint.macaddress"]) | text,
    option_values, max_size=3) | junk
interfaces = st.fixed_dictionaries({}, optional={
    "Address": addresses, "AddressIPv6": addresses, "MacAddress": macs, "Future": junk}) | junk
sandbox_keys = st.sampled_from(["", "/var/run/docker/netns/0123456789ab", "relative",
                                "/a\x00b"]) | junk

ID_FIELDS = {"NetworkID": ids, "EndpointID": ids}
SHAPES: dict[str, dict[str, st.SearchStrategy[Any]]] = {
    "NetworkDriver.CreateNetwork": {"NetworkID": ids, "Options": network_options,
                                    "IPv4Data": ipam_lists, "IPv6Data": ipam_lists},
    "NetworkDriver.CreateEndpoint": {**ID_FIELDS, "Interface": interfaces,
                                     "Options": endpoint_options},
    "NetworkDriver.Join": {**ID_FIELDS, "SandboxKey": sandbox_keys, "Options": junk},
}


def shaped_body(method: str) -> st.SearchStrategy[Any]:
    """The method's fields, each present or not, of the right type or not, plus unknowns."""
    fields = SHAPES.get(method, ID_FIELDS)
    return st.fixed_dictionaries({}, optional={**fields, "Future": junk})


@st.composite
def valid_create_network(draw: st.DrawFn) -> tuple[Any, object]:
    net = draw(good_ids)
    generic = draw(st.dictionaries(text.filter(lambda k: k != "" and k.isprintable()),
                                   text, max_size=3))
    ipv6 = draw(st.booleans())
    pool = draw(st.sampled_from(["0.0.0.0/0", "172.18.0.0/16"]))
    gateway = draw(st.sampled_from([None, "172.18.0.1/16"]))
    entry: dict[str, Any] = {"AddressSpace": "null", "Pool": pool}
    if gateway is not None:
        entry["Gateway"] = gateway
    body = {"NetworkID": net, "Options": {GENERIC: generic, ENABLE_IPV6: ipv6},
            "IPv4Data": [entry], "IPv6Data": [], "Future": draw(json_junk)}
    return body, CreateNetworkRequest(net, generic, ipv6, True,
                                      (IpamData("null", pool, gateway),), ())


@st.composite
def valid_create_endpoint(draw: st.DrawFn) -> tuple[Any, object]:
    net, ep = draw(good_ids), draw(good_ids)
    mac = draw(st.none() | good_macs)
    address = draw(st.none() | v4_addresses)
    hostname = draw(st.none() | st.from_regex(r"[a-z][a-z0-9-]{0,10}", fullmatch=True))
    options: dict[str, Any] = {"com.docker.network.portmap": draw(json_junk)}
    if hostname is not None:
        options["hostname"] = hostname
    body = {"NetworkID": net, "EndpointID": ep, "Options": options,
            "Interface": {"Address": address or "", "AddressIPv6": "", "MacAddress": mac or ""}}
    expected_mac = mac.lower().replace("-", ":") if mac else None
    return body, CreateEndpointRequest(net, ep, address, None, expected_mac,
                                       {"hostname": hostname} if hostname else {})


@st.composite
def valid_endpoint_call(draw: st.DrawFn) -> tuple[str, Any, object]:
    method = draw(st.sampled_from(["NetworkDriver.Join", "NetworkDriver.Leave",
                                   "NetworkDriver.DeleteEndpoint",
                                   "NetworkDriver.EndpointOperInfo"]))
    net, ep = draw(good_ids), draw(good_ids)
    body: dict[str, Any] = {"NetworkID": net, "EndpointID": ep, "Options": draw(json_junk)}
    if method == "NetworkDriver.Join":
        key = draw(st.sampled_from(["", "/var/run/docker/netns/0123456789ab"]))
        body["SandboxKey"] = key
        return method, body, JoinRequest(net, ep, key or None)
    return method, body, EndpointRequest(net, ep)


@dataclass(frozen=True)
class Case:
    """One request to send; `expected` is the driver's typed request when it must succeed."""

    method: str
    body: Any  # a JSON value, or bytes sent as they are
    expected: object = None


def _valid_cases() -> st.SearchStrategy[Case]:
    return (
        valid_create_network().map(lambda bx: Case("NetworkDriver.CreateNetwork", *bx))
        | valid_create_endpoint().map(lambda bx: Case("NetworkDriver.CreateEndpoint", *bx))
        | valid_endpoint_call().map(lambda mbx: Case(*mbx))
    ).map(lambda case: case)  # one branch of `cases`, not three (`|` flattens)


methods = st.sampled_from(METHODS)
odd_methods = (st.sampled_from(["", "NetworkDriver.", "networkdriver.join", "Plugin.Activate/x",
                                ".", "..", "NetworkDriver.GwAllocCheck"])
               | st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=30))
raw_bodies = (st.binary(max_size=40)
              | st.sampled_from([b"[" * 5000, b'{"a":' * 40 + b"1" + b"}" * 40, b"\xff",
                                 b'{"NetworkID": NaN}', b"{", b"null", b"[]", b'"x"'])
              | st.builds(lambda n, d: (json.dumps({"NetworkID": "n", "EndpointID": "e"})
                                        .encode()[:n] + d), st.integers(0, 40),
                          st.binary(max_size=4)))

cases = (
    methods.flatmap(lambda m: shaped_body(m).map(lambda b: Case(m, b)))
    | st.builds(Case, methods, junk)
    | st.builds(Case, methods, raw_bodies)
    | st.builds(Case, odd_methods, junk | raw_bodies)
    | _valid_cases()
)


# ---- checks ------------------------------------------------------------------------------------
def encode(body: Any) -> bytes:
    if isinstance(body, bytes):
        return body
    return json.dumps(body).replace(json.dumps(HUGE), "9" * 5000).encode()


def check_typed(name: str, req: object) -> None:
    """The request the driver got has exactly the types and invariants requests.py promises."""
    expected = {name_: kind for name_, kind in DRIVER_CALL.values()}[name]
    assert type(req) is expected, (name, req)
    assert isinstance(req, CreateNetworkRequest | NetworkRequest | CreateEndpointRequest
                      | EndpointRequest | JoinRequest)
    assert isinstance(req.network_id, str)
    assert ID_RE.fullmatch(req.network_id)
    if isinstance(req, CreateEndpointRequest | EndpointRequest | JoinRequest):
        assert isinstance(req.endpoint_id, str)
        assert ID_RE.fullmatch(req.endpoint_id)
    if isinstance(req, CreateNetworkRequest):
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in req.generic.items())
        assert type(req.enable_ipv6) is bool
        assert type(req.enable_ipv4) is bool
        for data, version in [*((d, 4) for d in req.ipv4_data), *((d, 6) for d in req.ipv6_data)]:
            assert type(data) is IpamData
            assert isinstance(data.address_space, str)
            assert ipaddress.ip_network(data.pool, strict=False).version == version
            if data.gateway is not None:
                assert ipaddress.ip_interface(data.gateway).version == version
        assert isinstance(req.ipv4_data, tuple)
        assert isinstance(req.ipv6_data, tuple)
    if isinstance(req, CreateEndpointRequest):
        if req.address is not None:
            assert ipaddress.ip_interface(req.address).version == 4
        if req.address_ipv6 is not None:
            assert ipaddress.ip_interface(req.address_ipv6).version == 6
        if req.mac is not None:
            assert MAC_RE.fullmatch(req.mac)
            first = int(req.mac[:2], 16)
            assert not first & 1
            assert req.mac != "00:00:00:00:00:00"
        assert all(isinstance(k, str) and "." not in k and isinstance(v, str)
                   for k, v in req.options.items())
    if isinstance(req, JoinRequest) and req.sandbox_key is not None:
        assert req.sandbox_key.startswith("/")
        assert "\x00" not in req.sandbox_key


async def send_and_check(client: TestClient[Any, Any], fake: FakeDriver, case: Case) -> int:
    """Send one case, check the reply and what the driver got; return the status."""
    before = len(fake.calls)
    resp = await client.post("/" + quote(case.method, safe=""), data=encode(case.body))
    data = await resp.read()
    assert resp.content_type == CONTENT_TYPE, (resp.status, data[:200])
    reply = json.loads(data)
    assert isinstance(reply, dict)
    new_calls = fake.calls[before:]
    if resp.status == 200:
        assert "Err" not in reply
    else:
        assert set(reply) == {"Err"}, reply
        assert isinstance(reply["Err"], str)
        assert reply["Err"]
        assert reply["Err"].isprintable()
        # The fake never fails: an error can only come from refusing the request itself.
        assert resp.status in (400, 404, 405, 413), (resp.status, reply)
        assert new_calls == []
    for name, req in new_calls:
        check_typed(name, req)
    if resp.status == 200 and case.method in DRIVER_CALL:
        assert [name for name, _ in new_calls] == [DRIVER_CALL[case.method][0]]
    if case.expected is not None:
        assert (resp.status, new_calls) == (
            200, [(DRIVER_CALL[case.method][0], case.expected)]), reply
    return resp.status


def test_fuzzed_requests_always_get_json_and_typed_driver_calls() -> None:
    fake = FakeDriver()
    statuses: Counter[int] = Counter()
    started = time.monotonic()

    async def start() -> TestClient[Any, Any]:
        client = TestClient(TestServer(make_app(fake)))
        await client.start_server()
        return client

    with asyncio.Runner() as runner:
        client = runner.run(start())
        try:
            @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                      suppress_health_check=list(HealthCheck))
            @given(batch=st.lists(cases, min_size=BATCH, max_size=BATCH))
            def run(batch: list[Case]) -> None:
                for case in batch:
                    statuses[runner.run(send_and_check(client, fake, case))] += 1

            run()
        finally:
            runner.run(client.close())
    assert statuses.total() >= REQUESTS
    assert time.monotonic() - started < HANG_LIMIT_S
    # Both sides were exercised: accepted requests and refused ones of every kind.
    assert statuses[200] >= REQUESTS // 10
    assert statuses[400] >= REQUESTS // 10
    assert statuses[404] > 0
    kinds = {name for name, _ in fake.calls}
    assert kinds == {name for name, _ in DRIVER_CALL.values()}  # every driver call was reached
