"""The plugin's HTTP side, fed the request bodies a live dockerd 20.10 sent (byte fixtures).

Only calls that need no bridge of ours are replayed here; the rest run against a real
dockerd in tests/e2e.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer

from net_dhcp.api import make_app
from net_dhcp.driver import Driver
from net_dhcp.store import Store

FIXTURES = json.loads((Path(__file__).parent / "fixtures" / "docker-20.10-requests.json")
                      .read_text())["samples_legacy_plugin"]


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


@pytest_asyncio.fixture
async def client(tmp_path: Path) -> AsyncIterator[TestClient[Any, Any]]:
    store = Store(tmp_path)
    driver = Driver(store)
    async with TestClient(TestServer(make_app(driver))) as c:
        yield c
    store.close()


HEADERS = {"Accept": "application/vnd.docker.plugins.v1.2+json"}


async def post(c: TestClient[Any, Any], path: str, body: bytes) -> tuple[int, dict[str, Any]]:
    resp = await c.post(path, data=body, headers=HEADERS)
    return resp.status, json.loads(await resp.read())


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
    assert status == 500
    assert "--ipam-driver null" in body["Err"]
    pool = json.loads(raw_body(s))["IPv4Data"][0]["Pool"]
    assert f"own pool ({pool})" in body["Err"]


@pytest.mark.asyncio
async def test_missing_bridge_option(client: TestClient[Any, Any]) -> None:
    s = sample("/NetworkDriver.CreateNetwork", "no bridge option")
    status, body = await post(client, "/NetworkDriver.CreateNetwork", raw_body(s))
    assert status == 500
    assert "option bridge is required" in body["Err"]


@pytest.mark.asyncio
async def test_bridge_that_does_not_exist(client: TestClient[Any, Any]) -> None:
    s = sample("/NetworkDriver.CreateNetwork", "-o bridge=lab-br0 labcap")
    req = json.loads(raw_body(s))
    req["Options"]["com.docker.network.generic"]["bridge"] = "nd-no-such0"
    status, body = await post(client, "/NetworkDriver.CreateNetwork", json.dumps(req).encode())
    assert status == 500
    assert "bridge 'nd-no-such0' does not exist" in body["Err"]


@pytest.mark.asyncio
async def test_endpoint_on_unknown_network(client: TestClient[Any, Any]) -> None:
    s = sample("/NetworkDriver.CreateEndpoint")
    status, body = await post(client, "/NetworkDriver.CreateEndpoint", raw_body(s))
    assert status == 500
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
    assert status in (400, 500)
    assert fragment in body["Err"]


@pytest.mark.asyncio
async def test_unknown_method_is_404_with_json(client: TestClient[Any, Any]) -> None:
    status, body = await post(client, "/NetworkDriver.NoSuchThing", b"{}")
    assert status == 404
    assert "does not implement" in body["Err"]
