"""Fuzzing the REAL plugin over its REAL unix socket: whatever is posted, the reply is JSON,
no task dies, memory, state file and kernel agree afterwards, and a container still starts.

tests/unit/test_api_fuzz.py fuzzes the HTTP layer in process against a FakeDriver. This is
the same mix (its strategies, imported, not copied) sent to the real driver of an
in-process plugin (tests/inprocess.py: store, driver, reconciler, aiohttp on a unix socket)
on a real lab LAN (bridge + dnsmasq), plus what only a live plugin has:

* a real network and one live played container on it (tests/dockerplay.py), and bodies
  naming their REAL ids with junk around them: Join/Leave/DeleteEndpoint/EndpointOperInfo/
  DeleteNetwork out of order, CreateEndpoint with the live endpoint's id (a duplicate) or an
  id sharing its interface name, CreateNetwork on the live id or on the same bridge. A
  request that is VALID and would tear the live container down (DeleteNetwork, Leave or
  DeleteEndpoint on its ids, Join elsewhere, CreateNetwork changing its options) is never
  sent: `guard` turns it into an invalid one. A valid CreateEndpoint on a network that may
  exist is pointed at an unknown network (404), so the generated requests run no DHCP;
* other verbs than POST, chunked bodies, bodies at and over MAX_BODY (1 MiB), malformed HTTP;
* half the batches sent concurrently (asyncio.gather over an aiohttp UnixConnector client
  on the test's loop, the plugin serving on its own loop thread);
* lifecycle scripts, the only real DHCP exchanges: every SCRIPT_EVERY batches one runs
  alongside its batch, one new endpoint (on the live network) or one new network and
  endpoint (on the same bridge, with ignore_conflicts); after its first call, its other
  calls (CreateEndpoint twice, Join, Leave, DeleteEndpoint, EndpointOperInfo, CreateNetwork,
  DeleteNetwork) in a generated order, grouped in concurrent waves. Then the RACES, fixed
  scripts for the concurrent pairs that matter most. The state is checked after every wave;
  then the script's endpoint and network are deleted and the state must be clean.

Every reply: JSON of the plugin's content type; 200 with a result of the method's shape, or
{"Err": <printable non-empty text>} with 400/404/405/413. A wrong reply fails at once; a 500
(the plugin failed) and a wrong state after a script are recorded, the run goes on, and the
test fails at the end listing them all (a keeper task left for an endpoint that is gone
cannot be removed through the API: later checks set it aside). Afterwards: the reconciler's
tasks still run, keepers run only for joined endpoints (the live one's included), nothing
was logged at ERROR or with a traceback (but aiohttp's own lines for the malformed HTTP),
memory and the state file hold the same networks and endpoints (options, lease, MAC,
sandbox), the bridge's plugin veths are exactly the endpoints', the live container still
has its address and lease, and a new played container starts, gets a lease and stops.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import json
import logging
import re
import time
import traceback
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import quote

import aiohttp
from aiohttp.http_exceptions import HttpProcessingError
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from net_dhcp.api import CONTENT_TYPE, MAX_BODY
from net_dhcp.attach import veth
from net_dhcp.config import NetworkOptions
from net_dhcp.errors import OptionError, RequestError
from net_dhcp.requests import (
    ENABLE_IPV6,
    GENERIC,
    PARSERS,
    CreateEndpointRequest,
    CreateNetworkRequest,
    EndpointRequest,
    JoinRequest,
    NetworkRequest,
    decode_body,
)
from tests.conftest import LanFactory, require_root
from tests.dockerplay import NULL_IPAM, PlayedDocker, new_id
from tests.inprocess import InProcessPlugin
from tests.lab import sh, wait_until
from tests.unit.test_api_fuzz import (
    SHAPES,
    Case,
    cases,
    encode,
    good_ids,
    junk,
)

BATCH = 20
EXAMPLES = 500
GENERATED = BATCH * EXAMPLES
"""Requests the hypothesis part sends; the scripts and the extras come on top."""
SCRIPT_EVERY = 25
"""Every SCRIPT_EVERY-th batch also runs a lifecycle script (real DHCP): 20 per run."""
HANG_LIMIT_S = 300.0
"""A hang guard, not a speed target (speed is the bench's job): the fuzz takes 50-95 s on
the 2-core CI machine depending on its load, and a plugin that stalls takes far longer."""
REPLY_TIMEOUT_S = 60.0
NOWHERE = "net-dhcp-fuzz-nowhere"
"""A valid network ID that is never created: valid CreateEndpoints are sent to it."""
OTHER_VERBS = ["GET", "PUT", "DELETE", "PATCH", "OPTIONS"]
HEADERS = {"Accept": CONTENT_TYPE, "Host": "plugin.moby.localhost"}
ERROR_STATUSES = {400, 404, 405, 413}
"""What a refused request gets. A 500 (the plugin failed) is recorded with its input and
fails the test at the end, after the rest of the run."""
MAC_RE = re.compile(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}")

P = "NetworkDriver."
ENDPOINT_METHODS = [f"{P}{m}" for m in ("CreateEndpoint", "EndpointOperInfo", "DeleteEndpoint",
                                         "Join", "Leave", "ProgramExternalConnectivity",
                                         "RevokeExternalConnectivity")]
NETWORK_METHODS = [f"{P}{m}" for m in ("CreateNetwork", "DeleteNetwork", "AllocateNetwork",
                                        "FreeNetwork")]
EMPTY_RESULT = {f"{P}{m}" for m in ("CreateNetwork", "DeleteNetwork", "FreeNetwork",
                                    "DeleteEndpoint", "Leave", "DiscoverNew", "DiscoverDelete",
                                    "ProgramExternalConnectivity",
                                    "RevokeExternalConnectivity")}
CONSTANT_RESULT: dict[str, Any] = {
    "Plugin.Activate": {"Implements": ["NetworkDriver"]},
    f"{P}GetCapabilities": {"Scope": "local", "ConnectivityScope": "local"},
    f"{P}AllocateNetwork": {"Options": {}},
}


# ---- what is sent ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Live:
    """The real network and the live played container's endpoint on it."""

    network_id: str
    endpoint_id: str
    bridge: str
    sandbox: str
    mac: str
    address: str
    options: NetworkOptions

    @property
    def host_if(self) -> str:
        return veth.names(self.endpoint_id)[0]

    @property
    def cont_if(self) -> str:
        return veth.names(self.endpoint_id)[1]


@dataclass(frozen=True)
class Wire:
    """One HTTP request: a Case (method and body) and how it goes on the wire. `typed` is
    the request the plugin parses it into (None: refused before the driver sees it)."""

    case: Case
    verb: str = "POST"
    chunked: bool = False
    typed: object = None

    def show(self) -> str:
        return (f"{self.verb}{' chunked' if self.chunked else ''} /{self.case.method!r} "
                f"{encode(self.case.body)[:300]!r}")


def near_ids(real: str) -> st.SearchStrategy[Any]:
    """The real ID (often), or the real ID mangled into an invalid or another valid one."""
    return st.one_of(
        st.just(real), st.just(real),
        st.sampled_from([real + "/", " " + real, real + "\x00", real * 3, real.upper(),
                         real[:12], real[:12] + "-other", real[:-1], "é" + real[1:],
                         real + "\n", real[:veth.IF_ID_LEN - 1]]),
        st.sampled_from([[real], {"ID": real}, None, 0]),
        junk)


def live_cases(live: Live) -> st.SearchStrategy[Case]:
    """Bodies naming the live network and endpoint, with the method's other fields present
    or not, right or wrong, and unknown ones."""
    net_ids = near_ids(live.network_id)
    ep_ids = near_ids(live.endpoint_id)
    sandbox_keys = st.one_of(
        st.just(live.sandbox), st.just(live.sandbox),
        st.sampled_from(["", live.sandbox + "x", "/run/netns/nd-fuzz-absent", "relative",
                         live.sandbox + "\x00"]),
        junk)
    generic = st.fixed_dictionaries(
        {"bridge": st.sampled_from([live.bridge, live.bridge, f" {live.bridge} ", "lo",
                                    "nd-no-such-bridge", ""])},
        optional={"ignore_conflicts": st.sampled_from(["true", "false", "maybe", "1"]),
                  "lease_timeout": st.sampled_from(["10s", "5s", "0s", "x", "601s"]),
                  "skip_routes": st.sampled_from(["true", "no", "?"]),
                  "ipv6": st.sampled_from(["false", "true", "2"]),
                  "unknown": st.just("x")})
    create_network = st.fixed_dictionaries(
        {"NetworkID": st.one_of(net_ids, good_ids),
         "Options": st.one_of(
             st.fixed_dictionaries({GENERIC: generic},
                                   optional={ENABLE_IPV6: st.booleans() | junk}),
             SHAPES[f"{P}CreateNetwork"]["Options"])},
        optional={"IPv4Data": st.just(NULL_IPAM) | SHAPES[f"{P}CreateNetwork"]["IPv4Data"],
                  "IPv6Data": st.just([]) | junk, "Future": junk})

    def endpoint_body(method: str) -> st.SearchStrategy[Any]:
        optional: dict[str, st.SearchStrategy[Any]] = {
            k: v for k, v in SHAPES.get(method, {}).items() if not k.endswith("ID")}
        optional["Future"] = junk
        if method == f"{P}Join":
            optional["SandboxKey"] = sandbox_keys
        if method == f"{P}CreateEndpoint":
            optional["Interface"] = st.one_of(
                st.just({}), st.just({"MacAddress": live.mac}),
                st.just({"Address": live.address}), SHAPES[method]["Interface"])
        return st.fixed_dictionaries({"NetworkID": net_ids, "EndpointID": ep_ids},
                                     optional=optional)

    by_method = [st.builds(Case, st.just(m), endpoint_body(m)) for m in ENDPOINT_METHODS]
    by_method += [st.builds(Case, st.just(m),
                            st.fixed_dictionaries({"NetworkID": net_ids},
                                                  optional={"Future": junk}))
                  for m in NETWORK_METHODS[1:]]
    by_method.append(st.builds(Case, st.just(f"{P}CreateNetwork"), create_network))
    return st.one_of(by_method)


def wires(live: Live) -> st.SearchStrategy[Wire]:
    """The unit fuzz's whole mix, the live-id bodies, other verbs and chunked bodies."""
    unit = cases.map(Wire)
    ours = live_cases(live).map(Wire)
    return st.one_of(
        unit, unit, unit, ours, ours, ours,
        st.builds(Wire, cases | live_cases(live), st.sampled_from(OTHER_VERBS)),
        st.builds(Wire, cases | live_cases(live), st.just("POST"), st.just(True)),
    ).map(functools.partial(guard, live))


def guard(live: Live, wire: Wire) -> Wire:
    """`wire` with `typed` filled in, unless it is valid and would tear the live container
    down or run a DHCP exchange: then a refused (or 404) variant of it."""
    typed = _parse(wire)
    fix = _defusal(live, wire.case.method, typed)
    if fix is None:
        return replace(wire, typed=typed)
    body = wire.case.body
    if not isinstance(body, dict):
        return replace(wire, case=Case(wire.case.method, b"[defused]"), typed=None)
    defused = replace(wire, case=Case(wire.case.method, {**body, fix[0]: fix[1]}))
    return replace(defused, typed=_parse(defused))


def _parse(wire: Wire) -> object:
    """The typed request the plugin makes of `wire`, or None if it refuses it unread."""
    parser = PARSERS.get(wire.case.method)
    if wire.verb != "POST" or parser is None:
        return None
    try:
        return parser(decode_body(encode(wire.case.body)))
    except RequestError:
        return None


def _defusal(live: Live, method: str, typed: object) -> tuple[str, str] | None:
    """(field, value) that makes a dangerous valid request harmless; None if it is not."""
    if isinstance(typed, NetworkRequest) and method == f"{P}DeleteNetwork" \
            and typed.network_id == live.network_id:
        return "NetworkID", live.network_id + "/"
    if isinstance(typed, EndpointRequest | JoinRequest) \
            and typed.endpoint_id == live.endpoint_id \
            and (method in (f"{P}DeleteEndpoint", f"{P}Leave")
                 or isinstance(typed, JoinRequest) and typed.sandbox_key != live.sandbox):
        return "EndpointID", live.endpoint_id + "/"
    if isinstance(typed, CreateEndpointRequest) and typed.endpoint_id != live.endpoint_id \
            and veth.names(typed.endpoint_id)[0] != live.host_if:
        return "NetworkID", NOWHERE  # a new endpoint: 404 instead of a DHCP exchange
    if isinstance(typed, CreateNetworkRequest) and (
            typed.network_id == NOWHERE
            or typed.network_id == live.network_id and _changes(live, typed)):
        return "NetworkID", typed.network_id + "/"
    return None


def _changes(live: Live, req: CreateNetworkRequest) -> bool:
    """Whether a CreateNetwork of the live ID with `req` would succeed with other options."""
    if any(d.address_space != "null" or d.pool != "0.0.0.0/0" for d in req.ipv4_data):
        return False
    try:
        opts = NetworkOptions.from_generic(req.generic, enable_ipv6=req.enable_ipv6)
    except OptionError:
        return False
    return opts != live.options


# ---- sending and judging ------------------------------------------------------------------
@dataclass
class Tally:
    """What was sent and what came back."""

    statuses: Counter[int] = field(default_factory=Counter)
    by_method: Counter[tuple[str, int]] = field(default_factory=Counter)
    raw: Counter[str] = field(default_factory=Counter)
    oversize: int = 0
    scripts: int = 0
    framing_errors: list[str] = field(default_factory=list)
    script_runs: list[str] = field(default_factory=list)
    script_problems: list[str] = field(default_factory=list)
    server_errors: list[str] = field(default_factory=list)
    orphan_keepers: set[str] = field(default_factory=set)
    """Keeper tasks a script left for an endpoint that is gone (reported, cannot be
    removed through the API: the final checks set them aside)."""
    send_s: float = 0.0
    fuzz_s: float = float("nan")


async def _chunks(data: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(data), 65536):
        yield data[start:start + 65536]
    if not data:
        yield b""


async def send(session: aiohttp.ClientSession, wire: Wire) -> tuple[int, str, bytes]:
    """POST (or another verb) the wire's body; (status, content type, body)."""
    raw = encode(wire.case.body)
    url = "http://plugin.moby.localhost/" + quote(wire.case.method, safe="")
    data: Any = _chunks(raw) if wire.chunked else raw
    async with session.request(wire.verb, url, data=data, headers=HEADERS) as resp:
        return resp.status, resp.content_type, await resp.read()


def check_reply(live: Live, wire: Wire, status: int, ctype: str, data: bytes) -> dict[str, Any]:
    """The reply is JSON: a result of the method's shape, or a printable Err with a 4xx."""
    where = f"{wire.show()} -> {status} {ctype} {data[:300]!r}"
    assert ctype == CONTENT_TYPE, where
    reply = json.loads(data)
    assert isinstance(reply, dict), where
    if status != 200:
        assert set(reply) == {"Err"}, where
        err = reply["Err"]
        assert isinstance(err, str), where
        assert err, where
        assert err.isprintable(), where
        assert status in ERROR_STATUSES | {500}, where
        assert wire.typed is None or status in (400, 404, 500), where
        return reply
    assert "Err" not in reply, where
    method = wire.case.method
    assert wire.verb == "POST", where
    if method in CONSTANT_RESULT:
        assert reply == CONSTANT_RESULT[method], where
    elif method in EMPTY_RESULT:
        assert reply == {}, where
    elif method == f"{P}CreateEndpoint":
        iface = reply.get("Interface")
        assert set(reply) == {"Interface"}, where
        assert isinstance(iface, dict), where
        assert set(iface) <= {"Address", "MacAddress"}, where
        if "Address" in iface:
            assert ipaddress.IPv4Interface(iface["Address"]), where
        if "MacAddress" in iface:
            assert MAC_RE.fullmatch(iface["MacAddress"]), where
    elif method == f"{P}EndpointOperInfo":
        assert set(reply) == {"Value"}, where
        value = reply["Value"]
        assert isinstance(value, dict), where
        assert value == {} or set(value) == {"ip", "mac", "server"}, where
        if isinstance(wire.typed, EndpointRequest) \
                and wire.typed.endpoint_id == live.endpoint_id:
            assert (value.get("ip"), value.get("mac")) == (live.address, live.mac), where
    elif method == f"{P}Join":
        assert set(reply) <= {"InterfaceName", "DisableGatewayService", "Gateway",
                              "StaticRoutes"}, where
        name = reply["InterfaceName"]
        assert name["DstPrefix"] == "eth", where
        assert name["SrcName"].startswith(veth.CONT_IF_PREFIX), where
        assert reply["DisableGatewayService"] is True, where
        if "Gateway" in reply:
            assert ipaddress.IPv4Address(reply["Gateway"]), where
        for route in reply.get("StaticRoutes", []):
            assert ipaddress.IPv4Network(route["Destination"]), where
            assert route["RouteType"] in (0, 1), where
        if isinstance(wire.typed, JoinRequest) and wire.typed.endpoint_id == live.endpoint_id:
            assert name["SrcName"] == live.cont_if, where
    else:
        raise AssertionError(f"200 for a method the plugin does not implement: {where}")
    return reply


async def exchange(session: aiohttp.ClientSession, live: Live, tally: Tally,
                   wire: Wire) -> tuple[int, dict[str, Any]]:
    """Send, judge and count one request."""
    status, ctype, data = await send(session, wire)
    if status == 500:
        tally.server_errors.append(f"{wire.show()} -> 500 {data[:400]!r}")
    tally.statuses[status] += 1
    tally.by_method[(wire.case.method if wire.case.method in PARSERS else "<other>",
                     status)] += 1
    return status, check_reply(live, wire, status, ctype, data)


async def raw_http(path: str, data: bytes) -> str:
    """Write `data` to the socket as it is; the reply's status line and content type."""
    reader, writer = await asyncio.open_unix_connection(path)
    try:
        writer.write(data)
        await writer.drain()
        reply = await asyncio.wait_for(reader.read(65536), 10)
    finally:
        writer.close()
    head = reply.split(b"\r\n\r\n", 1)[0].decode(errors="replace").splitlines()
    ctype = next((h.split(":", 1)[1].strip() for h in head[1:]
                  if h.lower().startswith("content-type:")), "-")
    return f"{head[0] if head else '<closed>'} [{ctype}]"


MALFORMED_HTTP = [
    b"GARBAGE\r\n\r\n",
    b"POST /Plugin.Activate HTTP/1.1\r\nHost: x\r\nContent-Length: zz\r\n\r\n",
    b"POST /Plugin.Activate HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    b"POST /Plugin.Activate HTTP/1.1\r\nX-Big: " + b"a" * 70000 + b"\r\n\r\n",
    b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + bytes(32) + b"\r\n\r\n",
]


def oversize(live: Live) -> list[tuple[Wire, int]]:
    """Bodies at and over MAX_BODY, some naming the live ids (a 413 must not act on them)."""
    ids = json.dumps({"NetworkID": live.network_id, "EndpointID": live.endpoint_id})
    padded = (ids[:-1] + ', "Pad": "' + "x" * MAX_BODY + '"}').encode()
    exact = b"{}" + b" " * (MAX_BODY - 2)
    return [
        (Wire(Case(f"{P}DeleteEndpoint", padded)), 413),
        (Wire(Case(f"{P}Leave", padded), chunked=True), 413),
        (Wire(Case(f"{P}DeleteNetwork", padded)), 413),
        (Wire(Case(f"{P}CreateNetwork", b"[" * (MAX_BODY + 1)), chunked=True), 413),
        (Wire(Case("Plugin.Activate", exact), typed=object()), 200),
        (Wire(Case(f"{P}DeleteNetwork", padded), verb="PUT"), 405),
    ]


# ---- lifecycle scripts (the only real DHCP exchanges) ----------------------------------------
PRELUDE = {False: ("create",), True: ("create-net",)}
"""A script's first wave, alone: the endpoint (or network) exists before the races."""
ENDPOINT_SCRIPT = ("create", "join", "oper", "leave", "delete", "oper")
NETWORK_SCRIPT = ("create-net", "create", "create", "join", "oper", "delete", "delete-net")
"""The calls after the prelude, in a generated order and generated concurrent waves."""
SCRIPT_STATUSES = {"create": {200, 400, 404}, "join": {200, 404}, "oper": {200},
                   "leave": {200}, "delete": {200}, "create-net": {200}, "delete-net": {200}}


@dataclass(frozen=True)
class Script:
    """One endpoint's (and maybe network's) calls, in concurrent waves."""

    network_id: str
    endpoint_id: str
    own_network: bool
    waves: tuple[tuple[str, ...], ...]

    def wire(self, op: str, live: Live) -> Wire:
        ids = {"NetworkID": self.network_id, "EndpointID": self.endpoint_id}
        fake_sandbox = f"/run/netns/nd-fuzz-absent-{self.endpoint_id[:8]}"
        bodies: dict[str, dict[str, Any]] = {
            "create": {**ids, "Interface": {}, "Options": {}},
            "join": {**ids, "SandboxKey": fake_sandbox, "Options": {}},
            "oper": ids, "leave": ids, "delete": ids,
            "create-net": {"NetworkID": self.network_id, "IPv4Data": NULL_IPAM,
                           "IPv6Data": [], "Options": {
                               ENABLE_IPV6: False,
                               GENERIC: {"bridge": live.bridge, "ignore_conflicts": "true"}}},
            "delete-net": {"NetworkID": self.network_id},
        }
        method = {"create": "CreateEndpoint", "join": "Join", "oper": "EndpointOperInfo",
                  "leave": "Leave", "delete": "DeleteEndpoint", "create-net": "CreateNetwork",
                  "delete-net": "DeleteNetwork"}[op]
        return Wire(Case(f"{P}{method}", bodies[op]), typed=object())


RACES: list[tuple[bool, tuple[tuple[str, ...], ...]]] = [
    (False, (("create",), ("join", "delete"))),
    (True, (("create-net",), ("create",), ("join", "delete-net"))),
    (True, (("create-net",), ("create", "delete-net"))),
    (False, (("create@2", *(f"delete@{ms}" for ms in range(8))),)),
]
"""Scripts run once each after the generated ones, whatever hypothesis drew: (own network,
waves). `op@N`: sent N ms after the wave starts."""
MAX_OPS = max(len(ENDPOINT_SCRIPT), len(NETWORK_SCRIPT))
Plan = tuple[list[int], list[int]]
"""An order of a script's calls (indices into its ops) and the wave of each position."""
plans = st.tuples(st.permutations(range(MAX_OPS)),
                  st.lists(st.integers(0, 2), min_size=MAX_OPS, max_size=MAX_OPS))


def make_script(live: Live, own_network: bool, plan: Plan) -> Script:
    ops = NETWORK_SCRIPT if own_network else ENDPOINT_SCRIPT
    order, wave_of = plan
    placed = [(wave_of[pos], ops[i]) for pos, i in enumerate(order) if i < len(ops)]
    waves = (PRELUDE[own_network],) + tuple(tuple(op for w, op in placed if w == n)
                                            for n in sorted({w for w, _ in placed}))
    return Script(new_id() if own_network else live.network_id, new_id(), own_network, waves)


async def run_script(plugin: InProcessPlugin, session: aiohttp.ClientSession, live: Live,
                     tally: Tally, script: Script) -> str:
    """Send the script's waves, each wave's calls at once, and check the state after each
    (recording what is wrong, to go on); what happened, as text."""
    shown: list[str] = []
    unexpected: list[str] = []
    async def call(op: str) -> tuple[int, dict[str, Any]]:
        name, _, ms = op.partition("@")
        await asyncio.sleep(int(ms or 0) / 1000)
        return await exchange(session, live, tally, script.wire(name, live))

    for n, wave in enumerate(script.waves, 1):
        results = await asyncio.gather(*map(call, wave))
        shown.append(" + ".join(f"{op} {status}" for op, (status, _) in
                                zip(wave, results, strict=True)))
        for op, (status, _) in zip(wave, results, strict=True):
            name = op.partition("@")[0]
            allowed = SCRIPT_STATUSES[name]
            if name == "create" and not script.own_network:
                allowed = allowed - {404}  # the live network is there
            if status not in allowed:
                unexpected.append(f"{op} answered {status}")
        snap = await asyncio.to_thread(snapshot, plugin, live.bridge)
        problems = state_problems(snap, live, tally.orphan_keepers)
        if problems:
            unexpected.append(f"after wave {n}: " + "; ".join(problems))
            tally.orphan_keepers |= snap.keepers - snap.joined
    kind = "network+endpoint" if script.own_network else "endpoint"
    text = (f"{kind} script (endpoint {script.endpoint_id[:12]}, network "
            f"{script.network_id[:12]}): " + " | ".join(shown))
    if unexpected:
        tally.script_problems.append(f"{text}\n    -> " + "\n    -> ".join(unexpected))
    return text


# ---- the plugin's state, the state file's and the kernel's ---------------------------------
EpView = tuple[str, str, str, str, Any, str | None]
"""network ID, host and container interface, MAC, lease (JSON form), sandbox if joined."""


@dataclass(frozen=True)
class Snapshot:
    networks: dict[str, NetworkOptions]
    db_networks: dict[str, NetworkOptions]
    endpoints: dict[str, EpView]
    db_endpoints: dict[str, EpView]
    joined: set[str]
    keepers: set[str]
    tasks: list[str]
    bridge_ports: set[str]


def snapshot(plugin: InProcessPlugin, bridge: str) -> Snapshot:
    """Memory, state file and tasks read in one go on the plugin's loop; then the bridge."""
    async def read() -> Snapshot:
        assert plugin.running is not None
        # Leave and DeleteEndpoint answer before their work is done (teardown.py): compare
        # once the work owed to the replies so far is done.
        await plugin.driver.teardowns.wait(plugin.driver.teardowns.pending())
        reg = plugin.driver.registry
        store = plugin.running.store
        me = asyncio.current_task()
        tasks = sorted(t.get_name() for t in asyncio.all_tasks() if t is not me)
        return Snapshot(
            networks={n.id: n.options for n in reg.networks.values()},
            db_networks={r.id: NetworkOptions.from_json(r.options) for r in store.networks()},
            endpoints={e.id: (e.network_id, e.host_if, e.cont_if, e.mac,
                              json.loads(json.dumps(e.lease.to_dict())) if e.lease else None,
                              e.sandbox) for e in reg.endpoints.values()},
            db_endpoints={r.id: (r.network_id, r.host_if, r.cont_if, r.mac, r.lease,
                                 r.sandbox if r.joined else None) for r in store.endpoints()},
            joined={e.id[:veth.IF_ID_LEN] for e in reg.endpoints.values() if e.sandbox},
            keepers={t[len("keeper:"):] for t in tasks if t.startswith("keeper:")},
            tasks=tasks, bridge_ports=set())
    snap = plugin.run(read(), 30)
    ports = json.loads(sh("ip", "-j", "link", "show", "master", bridge).stdout or "[]")
    return replace(snap, bridge_ports={str(p["ifname"]) for p in ports
                                       if str(p["ifname"]).startswith(veth.HOST_IF_PREFIX)})


def state_problems(snap: Snapshot, live: Live | None,
                   known_orphans: set[str] | None = None) -> list[str]:
    """Where memory, the state file, the tasks and the bridge disagree (keeper tasks in
    `known_orphans`, already reported, aside)."""
    problems: list[str] = []
    if snap.networks != snap.db_networks:
        problems.append(f"networks: memory {snap.networks} != state file {snap.db_networks}")
    if snap.endpoints != snap.db_endpoints:
        problems.append(f"endpoints: memory {snap.endpoints} != state file "
                        f"{snap.db_endpoints}")
    orphans = {e for e, view in snap.endpoints.items() if view[0] not in snap.networks}
    if orphans:
        problems.append(f"endpoints on no known network: "
                        f"{ {e[:12]: snap.endpoints[e][0][:12] for e in orphans} }")
    stray_keepers = snap.keepers - snap.joined - (known_orphans or set())
    if stray_keepers:
        problems.append(f"keeper tasks for endpoints not joined (or gone): "
                        f"{sorted(stray_keepers)}; joined: {sorted(snap.joined)}")
    for name in ("docker-events", "sweep"):
        if name not in snap.tasks:
            problems.append(f"reconciler task {name!r} is gone; tasks: {snap.tasks}")
    host_ifs = {view[1] for view in snap.endpoints.values()}
    if snap.bridge_ports != host_ifs:
        problems.append(f"plugin veths on the bridge {sorted(snap.bridge_ports)} != the "
                        f"endpoints' {sorted(host_ifs)}")
    if live is not None:
        if snap.networks.get(live.network_id) != live.options:
            problems.append(f"live network {live.network_id[:12]} changed: "
                            f"{snap.networks.get(live.network_id)}")
        view = snap.endpoints.get(live.endpoint_id)
        if view is None or (view[0], view[3], view[4]["address"] if view[4] else None,
                            view[5]) != (live.network_id, live.mac, live.address, live.sandbox):
            problems.append(f"live endpoint {live.endpoint_id[:12]} changed: {view}")
        if live.endpoint_id[:veth.IF_ID_LEN] not in snap.keepers:
            problems.append(f"the live endpoint's keeper is gone; tasks: {snap.tasks}")
    return problems


def link_exists(name: str) -> bool:
    """Whether the host namespace has a link of that name."""
    return sh("ip", "link", "show", "dev", name, check=False).returncode == 0


class Records(logging.Handler):
    """Keeps the ERROR records and those with a traceback; counts the rest by level."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.bad: list[logging.LogRecord] = []
        self.levels: Counter[str] = Counter()

    def emit(self, record: logging.LogRecord) -> None:
        self.levels[record.levelname] += 1
        if record.levelno >= logging.ERROR or record.exc_info:
            self.bad.append(record)

    def take_framing_errors(self) -> list[logging.LogRecord]:
        """Remove and return aiohttp's own ERROR records for unparsable HTTP (it logs a
        traceback for each before answering 400 text/plain; the plugin never sees them)."""
        framing = [r for r in self.bad if r.name == "aiohttp.server" and r.exc_info
                   and isinstance(r.exc_info[1], HttpProcessingError)]
        self.bad = [r for r in self.bad if r not in framing]
        return framing


@contextmanager
def recording(*names: str) -> Iterator[Records]:
    handler = Records()
    loggers = [logging.getLogger(n) for n in names]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.addHandler(handler)
        lg.setLevel(logging.WARNING)
    try:
        yield handler
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.removeHandler(handler)
            lg.setLevel(level)


# ---- the test ----------------------------------------------------------------------------------
def test_fuzzed_requests_over_the_socket_leave_the_real_plugin_sound(lan: LanFactory) -> None:
    require_root()
    lab = lan()
    tally = Tally()
    used_ids: list[str] = []
    with recording("net_dhcp", "asyncio", "aiohttp") as logs:
        plugin = InProcessPlugin()
        docker: PlayedDocker | None = None
        try:
            plugin.start()
            docker = PlayedDocker(plugin)
            net_id = docker.create_network(lab.bridge)
            c = docker.start(net_id)
            used_ids.append(c.endpoint_id)
            assert lab.wait_for_lease(mac=c.mac).ip == c.address.split("/")[0]
            live = Live(net_id, c.endpoint_id, lab.bridge, c.sandbox, c.mac, c.address,
                        plugin.driver.registry.networks[net_id].options)
            assert state_problems(snapshot(plugin, lab.bridge), live) == []

            started = time.monotonic()
            _fuzz(plugin, live, tally, used_ids, logs)
            tally.fuzz_s = time.monotonic() - started

            orphans = tally.orphan_keepers
            snap = snapshot(plugin, lab.bridge)
            assert state_problems(snap, live, orphans) == []
            # What the fuzz created on purpose: networks on the same bridge (CreateNetwork
            # with ignore_conflicts). Nothing else may be left.
            assert set(snap.endpoints) == {live.endpoint_id}, snap.endpoints
            for extra in set(snap.networks) - {live.network_id}:
                assert snap.networks[extra].bridge == live.bridge, snap.networks[extra]
                assert plugin.call(f"{P}DeleteNetwork", {"NetworkID": extra}) == (200, {})
            snap = snapshot(plugin, lab.bridge)
            assert state_problems(snap, live, orphans) == []
            assert set(snap.networks) == {live.network_id}
            assert snap.keepers - orphans == {live.endpoint_id[:veth.IF_ID_LEN]}, snap.tasks
            assert not [i for i in used_ids[1:] for n in veth.names(i) if link_exists(n)]

            # The live container is untouched, and a new one starts and stops.
            assert docker.eth0_addresses(c) == [c.address]
            assert lab.wait_for_lease(mac=c.mac).ip == c.address.split("/")[0]
            c2 = docker.start(net_id)
            used_ids.append(c2.endpoint_id)
            assert lab.in_range(c2.address.split("/")[0]), c2.address
            assert lab.wait_for_lease(mac=c2.mac).ip == c2.address.split("/")[0]
            assert docker.eth0_addresses(c2) == [c2.address]
            assert state_problems(snapshot(plugin, lab.bridge), live, orphans) == []
            docker.stop(c2)
            # DeleteEndpoint deletes the veth right after its reply (teardown.py).
            wait_until(lambda: not link_exists(veth.names(c2.endpoint_id)[0]), 10,
                       "the stopped container's veth to be deleted")
            docker.stop(c)
            snap = snapshot(plugin, lab.bridge)
            assert state_problems(snap, None, orphans) == []
            assert snap.endpoints == {}
            assert snap.keepers - orphans == set()
            assert docker.close() == []
        finally:
            _cleanup(plugin, docker, used_ids)
            _report(tally, logs)
    failures = []
    if tally.script_problems:
        failures.append("the state after these lifecycle scripts was wrong:\n"
                        + "\n".join(tally.script_problems))
    if tally.server_errors:
        failures.append("500 replies:\n" + "\n".join(tally.server_errors))
    if logs.bad:
        failures.append("ERROR or traceback logged:\n" + "\n".join(map(_shown, logs.bad)))
    assert not failures, "\n\n".join(failures)
    assert tally.statuses.total() >= GENERATED
    assert tally.fuzz_s < HANG_LIMIT_S
    # Both sides were exercised.
    assert tally.statuses[200] >= GENERATED // 10
    assert tally.statuses[400] >= GENERATED // 10
    assert tally.statuses[404] > 0
    assert tally.statuses[405] > 0
    assert tally.statuses[413] > 0


def _shown(record: logging.LogRecord) -> str:
    return f"{record.name} {record.levelname}: {record.getMessage()}" + (
        "\n" + "".join(traceback.format_exception(*record.exc_info))
        if record.exc_info and record.exc_info[1] else "")


def _report(tally: Tally, logs: Records) -> None:
    """Print what was sent and seen (also when the test fails half-way)."""
    print(f"\nfuzz over the socket: {tally.statuses.total()} requests in {tally.fuzz_s:.1f} s "
          f"(generated {GENERATED}, {tally.scripts} lifecycle scripts, {tally.oversize} "
          f"over/at MAX_BODY, {len(MALFORMED_HTTP)} malformed HTTP)")
    print(f"  by status: {dict(sorted(tally.statuses.items()))}")
    print(f"  by method: {dict(sorted(tally.by_method.items()))}")
    print(f"  malformed HTTP: {dict(tally.raw)}; aiohttp.server logged ERROR with a traceback "
          f"for {len(tally.framing_errors)}: {tally.framing_errors}")
    print(f"  log records (net_dhcp, asyncio, aiohttp): {dict(logs.levels)}")
    print(f"  sending took {tally.send_s:.1f} s, generating the rest")
    print("  lifecycle scripts:\n    " + "\n    ".join(tally.script_runs))
    for error in tally.server_errors:
        print(f"  500: {error}")
    for record in logs.bad:
        print(f"  logged: {_shown(record)}")


def _fuzz(plugin: InProcessPlugin, live: Live, tally: Tally, used_ids: list[str],
          logs: Records) -> None:
    """The hypothesis part, the scripts, the oversize bodies and the malformed HTTP."""
    with asyncio.Runner() as runner:
        async def open_session() -> aiohttp.ClientSession:
            return aiohttp.ClientSession(
                connector=aiohttp.UnixConnector(path=str(plugin.socket_path)),
                timeout=aiohttp.ClientTimeout(total=REPLY_TIMEOUT_S))

        session = runner.run(open_session())
        examples = [0]
        try:
            for wire, expected in oversize(live):
                status, _ = runner.run(exchange(session, live, tally, wire))
                assert status == expected, wire.show()
                tally.oversize += 1
            for data in MALFORMED_HTTP:
                tally.raw[runner.run(raw_http(str(plugin.socket_path), data))] += 1
            framing = logs.take_framing_errors()
            assert len(framing) <= len(MALFORMED_HTTP)
            tally.framing_errors = [f"{r.exc_info[1]!r}"[:80] for r in framing if r.exc_info]

            # Generation only (no shrinking: the plugin's state moves on). The plan is drawn
            # first: drawn last, it could overrun hypothesis's buffer and drop the example.
            @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                      phases=[Phase.generate], suppress_health_check=list(HealthCheck))
            @given(plan=plans, batch=st.lists(wires(live), min_size=BATCH, max_size=BATCH),
                   concurrent=st.booleans())
            def run(plan: Plan, batch: list[Wire], concurrent: bool) -> None:
                n = examples[0]
                examples[0] += 1
                script: Script | None = None
                if n % SCRIPT_EVERY == SCRIPT_EVERY // 2:
                    script = make_script(live, bool(n // SCRIPT_EVERY % 2), plan)
                    used_ids.append(script.endpoint_id)

                async def go() -> None:
                    if concurrent or script is not None:
                        jobs: list[Awaitable[object]] = [
                            exchange(session, live, tally, w) for w in batch]
                        if script is not None:
                            jobs.append(_script_job(plugin, session, live, tally, script))
                        await asyncio.gather(*jobs)
                    else:
                        for w in batch:
                            await exchange(session, live, tally, w)

                sent = time.monotonic()
                runner.run(go())
                tally.send_s += time.monotonic() - sent
                if script is not None:
                    tally.scripts += 1
                    _after_script(plugin, live, tally, script, runner, session)

            run()
            for own_network, waves in RACES:
                script = Script(new_id() if own_network else live.network_id, new_id(),
                                own_network, waves)
                used_ids.append(script.endpoint_id)
                runner.run(_script_job(plugin, session, live, tally, script))
                tally.scripts += 1
                _after_script(plugin, live, tally, script, runner, session)
        finally:
            runner.run(session.close())


async def _script_job(plugin: InProcessPlugin, session: aiohttp.ClientSession, live: Live,
                      tally: Tally, script: Script) -> None:
    tally.script_runs.append(await run_script(plugin, session, live, tally, script))


def _after_script(plugin: InProcessPlugin, live: Live, tally: Tally, script: Script,
                  runner: asyncio.Runner, session: aiohttp.ClientSession) -> None:
    """Delete the script's endpoint (and network): after that the state must be clean."""
    ids = {"NetworkID": script.network_id, "EndpointID": script.endpoint_id}
    calls = [Wire(Case(f"{P}DeleteEndpoint", ids), typed=object())]
    if script.own_network:
        calls.append(Wire(Case(f"{P}DeleteNetwork", {"NetworkID": script.network_id}),
                          typed=object()))
    for wire in calls:
        status, _ = runner.run(exchange(session, live, tally, wire))
        assert status == 200, (script, wire.show())
    snap = snapshot(plugin, live.bridge)
    assert state_problems(snap, live, tally.orphan_keepers) == [], tally.script_runs[-1]
    assert script.endpoint_id not in snap.endpoints
    assert not any(link_exists(n) for n in veth.names(script.endpoint_id)), script


def _cleanup(plugin: InProcessPlugin, docker: PlayedDocker | None, used_ids: list[str]) -> None:
    """Best effort: every endpoint and network through the plugin, then its veths."""
    try:
        if plugin.running is not None:
            reg = plugin.driver.registry
            live_eps = {c.endpoint_id for c in docker.containers} if docker else set()
            for ep in list(reg.endpoints.values()):
                if ep.id not in live_eps:
                    plugin.call(f"{P}DeleteEndpoint",
                                {"NetworkID": ep.network_id, "EndpointID": ep.id}, 30)
            if docker is not None:
                docker.close()
            for net in list(reg.networks):
                plugin.call(f"{P}DeleteNetwork", {"NetworkID": net}, 30)
    except Exception as err:  # noqa: BLE001 - teardown goes on
        print(f"cleanup through the plugin failed: {err}")
    finally:
        plugin.close()
        for endpoint_id in used_ids:
            for name in veth.names(endpoint_id):
                if link_exists(name):
                    sh("ip", "link", "del", name, check=False)
        if docker is not None:
            for c in list(docker.containers):
                docker.forget(c)
