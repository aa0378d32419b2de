"""The plugin's HTTP side, fed the request bodies a live dockerd 20.10 sent (byte fixtures).

Only calls that need no bridge of ours are replayed against the real Driver here; the rest
run against a real dockerd in tests/e2e. The HTTP contract itself (sizes, decoding, status
codes, typed requests reaching the driver) is tested against `FakeDriver`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer

from net_dhcp.api import MAX_BODY, make_app, status_for
from net_dhcp.errors import (
    LeaseError,
    NetDhcpError,
    NotFoundError,
    OptionError,
    RequestError,
)
from net_dhcp.logs import TRACE
from net_dhcp.requests import (
    CreateEndpointRequest,
    CreateNetworkRequest,
    EndpointRequest,
    JoinRequest,
    NetworkRequest,
)

FIXTURES: list[dict[str, Any]] = json.loads(
    (Path(__file__).parent / "fixtures" / "docker-20.10-requests.json").read_text()
)["samples_legacy_plugin"]


def sample(path: str, scenario_part: str = "") -> dict[str, Any]:
    for s in FIXTURES:
        if s["path"] == path and scenario_part in s["scenario"]:
            return s
    raise LookupError(path)


def raw_body(s: dict[str, Any]) -> bytes:
    req = s["request"]
    if isinstance(req, str):
        return req.encode()
    return (json.dumps(req) + "\n").encode() if req is not None else b""


class FakeDriver:
    """Records every request it gets; answers like the real driver on success, or raises."""

    def __init__(self, raises: BaseException | None = None, reply: Any = None) -> None:
        self.calls: list[tuple[str, object]] = []
        self.raises = raises
        self.reply = reply

    async def _call(self, name: str, req: object, default: dict[str, Any]) -> dict[str, Any]:
        self.calls.append((name, req))
        if self.raises is not None:
            raise self.raises
        return default if self.reply is None else self.reply

    async def create_network(self, req: CreateNetworkRequest) -> dict[str, Any]:
        return await self._call("create_network", req, {})

    async def delete_network(self, req: NetworkRequest) -> dict[str, Any]:
        return await self._call("delete_network", req, {})

    async def create_endpoint(self, req: CreateEndpointRequest) -> dict[str, Any]:
        return await self._call("create_endpoint", req,
                                {"Interface": {"Address": "10.0.0.2/24"}})

    async def endpoint_oper_info(self, req: EndpointRequest) -> dict[str, Any]:
        return await self._call("endpoint_oper_info", req, {"Value": {}})

    async def delete_endpoint(self, req: EndpointRequest) -> dict[str, Any]:
        return await self._call("delete_endpoint", req, {})

    async def join(self, req: JoinRequest) -> dict[str, Any]:
        return await self._call("join", req,
                                {"InterfaceName": {"SrcName": "dc0", "DstPrefix": "eth"}})

    async def leave(self, req: EndpointRequest) -> dict[str, Any]:
        return await self._call("leave", req, {})

    async def program_external_connectivity(self, req: EndpointRequest) -> dict[str, Any]:
        return await self._call("program_external_connectivity", req, {})


@pytest_asyncio.fixture
async def client(tmp_path: Path) -> AsyncIterator[TestClient[Any, Any]]:
    # Imported here so the FakeDriver tests do not depend on the driver's imports.
    from net_dhcp.driver import Driver
    from net_dhcp.store import Store

    store = Store(tmp_path)
    driver = Driver(store)
    async with TestClient(TestServer(make_app(driver))) as c:
        yield c
    store.close()


@pytest.fixture
def fake() -> FakeDriver:
    return FakeDriver()


@pytest_asyncio.fixture
async def fake_client(fake: FakeDriver) -> AsyncIterator[TestClient[Any, Any]]:
    async with TestClient(TestServer(make_app(fake))) as c:
        yield c


HEADERS = {"Accept": "application/vnd.docker.plugins.v1.2+json"}


async def post(c: TestClient[Any, Any], path: str, body: Any) -> tuple[int, dict[str, Any]]:
    resp = await c.post(path, data=body, headers=HEADERS)
    assert resp.content_type == "application/vnd.docker.plugins.v1.2+json"
    return resp.status, json.loads(await resp.read())


# ---- replayed against the real driver ----------------------------------------------------------
@pytest.mark.asyncio
async def test_activate_and_capabilities(client: TestClient[Any, Any]) -> None:
    status, body = await post(client, "/Plugin.Activate", raw_body(sample("/Plugin.Activate")))
    assert (status, body) == (200, {"Implements": ["NetworkDriver"]})
    status, body = await post(client, "/NetworkDriver.GetCapabilities", b"")
    assert status == 200
    assert body["Scope"] == "local"


@pytest.mark.asyncio
async def test_default_ipam_is_refused_with_the_fix(client: TestClient[Any, Any]) -> None:
    s = sample("/NetworkDriver.CreateNetwork", "default IPAM")
    status, body = await post(client, "/NetworkDriver.CreateNetwork", raw_body(s))
    assert status == 400  # OptionError
    assert "--ipam-driver null" in body["Err"]
    pool = json.loads(raw_body(s))["IPv4Data"][0]["Pool"]
    assert f"own pool ({pool})" in body["Err"]


@pytest.mark.asyncio
async def test_missing_bridge_option(client: TestClient[Any, Any]) -> None:
    s = sample("/NetworkDriver.CreateNetwork", "no bridge option")
    status, body = await post(client, "/NetworkDriver.CreateNetwork", raw_body(s))
    assert status == 400  # OptionError
    assert "option bridge is required" in body["Err"]


@pytest.mark.asyncio
async def test_bridge_that_does_not_exist(client: TestClient[Any, Any]) -> None:
    s = sample("/NetworkDriver.CreateNetwork", "-o bridge=lab-br0 labcap")
    req = json.loads(raw_body(s))
    req["Options"]["com.docker.network.generic"]["bridge"] = "nd-no-such0"
    status, body = await post(client, "/NetworkDriver.CreateNetwork", json.dumps(req).encode())
    assert status == 400  # OptionError
    assert "bridge 'nd-no-such0' does not exist" in body["Err"]


@pytest.mark.asyncio
async def test_endpoint_on_unknown_network(client: TestClient[Any, Any]) -> None:
    s = sample("/NetworkDriver.CreateEndpoint")
    status, body = await post(client, "/NetworkDriver.CreateEndpoint", raw_body(s))
    assert status == 404  # NotFoundError: still a failure for Docker on CreateEndpoint
    assert "is not known to net-dhcp" in body["Err"]
    assert "docker network rm" in body["Err"]
    assert "try again" in body["Err"]


@pytest.mark.asyncio
@pytest.mark.parametrize("path", [
    "/NetworkDriver.EndpointOperInfo", "/NetworkDriver.ProgramExternalConnectivity",
    "/NetworkDriver.RevokeExternalConnectivity", "/NetworkDriver.Leave",
    "/NetworkDriver.DeleteEndpoint", "/NetworkDriver.DeleteNetwork",
])
async def test_teardown_and_info_calls_succeed_twice(client: TestClient[Any, Any],
                                                      path: str) -> None:
    body_bytes = raw_body(sample(path))
    for _ in range(2):
        status, body = await post(client, path, body_bytes)
        assert status == 200, body
        assert "Err" not in body


@pytest.mark.asyncio
async def test_unknown_fields_are_accepted(client: TestClient[Any, Any]) -> None:
    status, body = await post(client, "/NetworkDriver.Leave",
                              b'{"NetworkID":"n","EndpointID":"e","FutureField":{"x":1}}\n')
    assert (status, body) == (200, {})


@pytest.mark.asyncio
@pytest.mark.parametrize(("data", "fragment"), [
    (b"{not json", "malformed JSON"),
    (b"[1, 2]", "must be a JSON object"),
    (b'{"NetworkID": 5}', "missing the string field 'NetworkID'"),
])
async def test_malformed_requests_get_a_clear_error(client: TestClient[Any, Any], data: bytes,
                                                    fragment: str) -> None:
    status, body = await post(client, "/NetworkDriver.CreateNetwork", data)
    assert status == 400
    assert fragment in body["Err"]


@pytest.mark.asyncio
async def test_unknown_method_is_404_with_json(client: TestClient[Any, Any]) -> None:
    status, body = await post(client, "/NetworkDriver.NoSuchThing", b"{}")
    assert status == 404
    assert "does not implement" in body["Err"]


# ---- the HTTP contract, against FakeDriver -----------------------------------------------------
@pytest.mark.asyncio
async def test_typed_requests_reach_the_driver(fake_client: TestClient[Any, Any],
                                               fake: FakeDriver) -> None:
    for s in FIXTURES:
        status, body = await post(fake_client, s["path"], raw_body(s))
        assert status == 200, body
    by_name: dict[str, list[object]] = {}
    for name, req in fake.calls:
        by_name.setdefault(name, []).append(req)
    assert {name: type(reqs[0]) for name, reqs in by_name.items()} == {
        "create_network": CreateNetworkRequest, "create_endpoint": CreateEndpointRequest,
        "join": JoinRequest, "endpoint_oper_info": EndpointRequest, "leave": EndpointRequest,
        "delete_endpoint": EndpointRequest, "delete_network": NetworkRequest,
        "program_external_connectivity": EndpointRequest,
    }
    assert by_name["create_endpoint"][0] == CreateEndpointRequest(
        network_id="b9f8e3f608a84ca4d8a1097225afe8081bd45f2c21d60cb95967f45b6b6525a1",
        endpoint_id="63aa11abd8eec20daa2daca0bbea2985933cf3f78babf60d90683c6eea170fde",
        address=None, address_ipv6=None, mac="02:42:99:00:00:11", options={})


@pytest.mark.asyncio
async def test_body_over_the_cap_is_413_json(fake_client: TestClient[Any, Any],
                                             fake: FakeDriver) -> None:
    body = b'{"NetworkID": "n", "Pad": "' + b"x" * MAX_BODY + b'"}'
    status, reply = await post(fake_client, "/NetworkDriver.CreateNetwork", body)
    assert status == 413
    assert f"request body is {len(body)} bytes, more than the 1 MiB limit" in reply["Err"]
    assert fake.calls == []


@pytest.mark.asyncio
async def test_chunked_body_over_the_cap_is_413_json(fake_client: TestClient[Any, Any],
                                                     fake: FakeDriver) -> None:
    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: chunked encoding
        yield b'{"NetworkID": "n", "Pad": "'
        for _ in range(40):
            yield b"x" * 65536
        yield b'"}'

    status, reply = await post(fake_client, "/NetworkDriver.CreateNetwork", chunks())
    assert status == 413
    assert "more than the 1 MiB limit" in reply["Err"]
    assert fake.calls == []


@pytest.mark.asyncio
async def test_body_of_exactly_the_cap_is_read(fake_client: TestClient[Any, Any],
                                               fake: FakeDriver) -> None:
    head = b'{"NetworkID": "n"}'
    status, reply = await post(fake_client, "/NetworkDriver.DeleteNetwork",
                               head + b" " * (MAX_BODY - len(head)))
    assert (status, reply) == (200, {})
    assert fake.calls == [("delete_network", NetworkRequest("n"))]


@pytest.mark.asyncio
@pytest.mark.parametrize("body", [b"[" * 100_000, b'{"a":' * 100_000])
async def test_deep_nesting_is_400_json(fake_client: TestClient[Any, Any], fake: FakeDriver,
                                        body: bytes) -> None:
    status, reply = await post(fake_client, "/NetworkDriver.CreateNetwork", body)
    assert status == 400
    assert "nested more than" in reply["Err"]
    assert fake.calls == []


@pytest.mark.asyncio
async def test_huge_integer_in_network_id_is_400_json(fake_client: TestClient[Any, Any],
                                                      fake: FakeDriver) -> None:
    body = b'{"NetworkID": ' + b"7" * 10_000 + b"}"
    status, reply = await post(fake_client, "/NetworkDriver.DeleteNetwork", body)
    assert status == 400
    assert "'NetworkID'" in reply["Err"]
    assert "<integer of 10000 digits>" in reply["Err"]
    assert fake.calls == []


@pytest.mark.asyncio
@pytest.mark.parametrize(("path", "body", "fragment"), [
    ("/NetworkDriver.CreateNetwork", {"NetworkID": "n", "Options": []},
     "Options must be a JSON object"),
    ("/NetworkDriver.CreateNetwork", {"NetworkID": "n", "IPv4Data": {}},
     "IPv4Data must be a JSON list"),
    ("/NetworkDriver.CreateNetwork", {"NetworkID": "n", "IPv4Data": ["0.0.0.0/0"]},
     "IPv4Data[0] must be a JSON object"),
    ("/NetworkDriver.CreateNetwork",
     {"NetworkID": "n", "Options": {"com.docker.network.generic": {"bridge": {}}}},
     "Options['com.docker.network.generic']['bridge'] must be a string"),
    ("/NetworkDriver.CreateEndpoint", {"NetworkID": "n", "EndpointID": "e", "Interface": 5},
     "Interface must be a JSON object"),
    ("/NetworkDriver.CreateEndpoint", {"NetworkID": "n", "EndpointID": "e", "Options": []},
     "Options must be a JSON object"),
    ("/NetworkDriver.CreateEndpoint",
     {"NetworkID": "n", "EndpointID": "e", "Interface": {"Address": ["10.0.0.1/24"]}},
     "Interface.Address must be a string"),
    ("/NetworkDriver.Join", {"NetworkID": "n", "EndpointID": "e", "SandboxKey": {}},
     "SandboxKey must be a string"),
    ("/NetworkDriver.Leave", {"NetworkID": "n", "EndpointID": ["e"]},
     "missing the string field 'EndpointID'"),
    ("/NetworkDriver.DeleteEndpoint", {"NetworkID": "n", "EndpointID": "a/../b"},
     "EndpointID 'a/../b' is invalid"),
])
async def test_wrong_types_are_400_naming_the_field(fake_client: TestClient[Any, Any],
                                                    fake: FakeDriver, path: str,
                                                    body: dict[str, Any], fragment: str) -> None:
    status, reply = await post(fake_client, path, json.dumps(body).encode())
    assert status == 400
    assert fragment in reply["Err"]
    assert fake.calls == []


@pytest.mark.asyncio
@pytest.mark.parametrize("mac", ["02:42:99:00:00", "zz:42:99:00:00:11", "01:00:5e:00:00:01",
                                 "00:00:00:00:00:00", "02:42:99:00:00:11\r\n"])
async def test_malformed_mac_is_400_before_anything_is_created(
        fake_client: TestClient[Any, Any], fake: FakeDriver, mac: str) -> None:
    body = {"NetworkID": "n", "EndpointID": "e", "Interface": {"MacAddress": mac}}
    status, reply = await post(fake_client, "/NetworkDriver.CreateEndpoint",
                               json.dumps(body).encode())
    assert status == 400
    assert "Interface.MacAddress" in reply["Err"]
    assert reply["Err"].isprintable()
    assert fake.calls == []


@pytest.mark.asyncio
async def test_unknown_method_is_404_json_and_printable(fake_client: TestClient[Any, Any],
                                                        fake: FakeDriver) -> None:
    status, reply = await post(fake_client, "/NetworkDriver.Nope%1B%5B2J%0A", b"{}")
    assert status == 404
    assert "does not implement NetworkDriver.Nope\\x1b[2J\\n" in reply["Err"]
    status, reply = await post(fake_client, "/a/b", b"{}")
    assert status == 404
    assert "does not implement" in reply["Err"]
    assert fake.calls == []


@pytest.mark.asyncio
async def test_other_verbs_get_405_json(fake_client: TestClient[Any, Any]) -> None:
    resp = await fake_client.get("/NetworkDriver.GetCapabilities")
    assert resp.status == 405
    assert "POST" in json.loads(await resp.read())["Err"]


@pytest.mark.asyncio
@pytest.mark.parametrize(("body", "fragment"), [
    (b"\xff{}", "not UTF-8"),
    (b'{"NetworkID": NaN}', "NaN"),
])
async def test_undecodable_bodies_are_400_json(fake_client: TestClient[Any, Any], body: bytes,
                                               fragment: str) -> None:
    status, reply = await post(fake_client, "/NetworkDriver.DeleteNetwork", body)
    assert status == 400
    assert fragment in reply["Err"]


@pytest.mark.parametrize(("err", "status"), [
    (RequestError("x"), 400), (OptionError("x"), 400), (NotFoundError("x"), 404),
    (LeaseError("x"), 500), (NetDhcpError("x"), 500), (RuntimeError("x"), 500),
    (KeyError("x"), 500),
])
def test_status_for(err: BaseException, status: int) -> None:
    assert status_for(err) == status


@pytest.mark.asyncio
@pytest.mark.parametrize(("err", "status", "fragment"), [
    (NotFoundError("network abc is not known"), 404, "network abc is not known"),
    (OptionError("option bridge is required"), 400, "option bridge is required"),
    (LeaseError("no DHCP server answered"), 500, "no DHCP server answered"),
    (LeaseError("two\nlines\x1b"), 500, "two\\nlines\\x1b"),
])
async def test_driver_errors_map_to_statuses(err: NetDhcpError, status: int,
                                             fragment: str) -> None:
    fake = FakeDriver(raises=err)
    async with TestClient(TestServer(make_app(fake))) as c:
        got, reply = await post(c, "/NetworkDriver.CreateNetwork", b'{"NetworkID": "n"}')
    assert (got, reply) == (status, {"Err": fragment})
    assert len(fake.calls) == 1


@pytest.mark.asyncio
async def test_unexpected_error_is_500_json_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    # str() of this exception raises ValueError (more than 4300 digits).
    fake = FakeDriver(raises=RuntimeError(10**5000))
    async with TestClient(TestServer(make_app(fake))) as c:
        with caplog.at_level(logging.ERROR, logger="net_dhcp.api"):
            status, reply = await post(c, "/NetworkDriver.Leave",
                                       b'{"NetworkID": "n", "EndpointID": "e"}')
    assert status == 500
    assert "internal error" in reply["Err"]
    assert "RuntimeError" in reply["Err"]
    assert "see the plugin log" in reply["Err"]
    assert any(r.exc_info for r in caplog.records)


@pytest.mark.asyncio
@pytest.mark.parametrize("bad_reply", [[1], {"n": 10**5000}, {"f": float("nan")}])
async def test_unencodable_driver_reply_is_500_json(bad_reply: Any) -> None:
    fake = FakeDriver(reply=bad_reply)
    async with TestClient(TestServer(make_app(fake))) as c:
        status, reply = await post(c, "/NetworkDriver.Leave",
                                   b'{"NetworkID": "n", "EndpointID": "e"}')
    assert status == 500
    assert "internal error" in reply["Err"]


@pytest.mark.asyncio
async def test_trace_log_escapes_and_truncates_the_body(fake_client: TestClient[Any, Any],
                                                        caplog: pytest.LogCaptureFixture) -> None:
    body = b'{"NetworkID": "\x1b[2J\r\n' + b"y" * 50_000 + b'"}'
    with caplog.at_level(TRACE, logger="net_dhcp.api"):
        status, _ = await post(fake_client, "/NetworkDriver.DeleteNetwork", body)
    assert status == 400
    lines = [r.getMessage() for r in caplog.records if r.levelno == TRACE]
    assert len(lines) == 2  # request and reply
    for line in lines:
        assert line.isprintable()
        assert len(line) < 3000
    assert "\\x1b[2J\\r\\n" in lines[0]
