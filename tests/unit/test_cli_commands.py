"""`net-dhcp status`, `leases` and `doctor` without a plugin process or root.

The status route's answer comes from a stand-in server on a unix socket (stdlib http.server:
the client must not care) or from the real aiohttp app; the state-file fallback reads a
real Store's database; doctor reads a fake /sys tree. Formatting, filters, the JSON shapes
and every exit status are checked here; tests/integration/test_cli_live.py runs the same
commands against a real plugin, LAN and bridge.
"""

from __future__ import annotations

import asyncio
import copy
import http.server
import json
import os
import socket
import socketserver
import threading
import time
from collections.abc import Iterator
from ipaddress import IPv4Address, IPv4Interface, IPv6Address
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from net_dhcp import (
    cli_output,
    dhcp_probe,
    doctor,
    exits,
    firewall,
    leases_view,
    reconcile,
    state_file,
    status,
    status_client,
)
from net_dhcp.api import make_app
from net_dhcp.cli import main
from net_dhcp.config import EndpointOptions, NetworkOptions
from net_dhcp.dhcp4.fsm import State
from net_dhcp.dhcp4.lease import Lease
from net_dhcp.dhcp4.timing import Timing
from net_dhcp.dhcp6.lease import Lease6
from net_dhcp.leases import LeaseSupervisor, _Running
from net_dhcp.registry import Endpoint, Registry
from net_dhcp.store import Store

NOW = 1_700_000_000.0
NET_A = "a1" * 32
NET_B = "b2" * 32


def lease4(ip: str, expires_in: float, now: float = NOW) -> Lease:
    return Lease(address=IPv4Interface(f"{ip}/24"), server_id=IPv4Address("10.9.0.1"),
                 server_mac=b"\x02" * 6, gateway=IPv4Address("10.9.0.1"), routes=(), dns=(),
                 domain=None, lease_time_s=120.0, t1_s=60.0, t2_s=105.0,
                 obtained_at=now - 120.0 + expires_in)


def lease6(ip: str, now: float = NOW) -> Lease6:
    return Lease6(address=IPv6Address(ip), iaid=1, server_duid=b"\x00\x01", preferred_s=60,
                  valid_s=120, t1_s=30, t2_s=48, obtained_at=now, prefixlen=64)


def endpoint_entry(**over: Any) -> dict[str, Any]:
    """An endpoint entry of the status document, with `over` replacing fields."""
    ep: dict[str, Any] = {
        "id": "e0" * 32, "network_id": NET_A, "network": "lan", "bridge": "br0",
        "mac": "02:00:00:00:00:01", "container_id": "c0" * 32, "container_name": "web",
        "hostname": "web", "joined": True, "sandbox": "/run/netns/x", "state": "BOUND",
        "state6": None, "renewals": 3, "failures": 0,
        "ipv4": status.lease4_doc(lease4("10.9.0.101", 95.0), NOW), "ipv6": None,
    }
    ep.update(over)
    return ep


def sample_doc() -> dict[str, Any]:
    """A status document as a running plugin answers it: three endpoints, two networks."""
    eps = [
        endpoint_entry(),
        endpoint_entry(id="e1" * 32, mac="02:00:00:00:00:02", container_id="c1" * 32,
                       container_name=None, hostname="db", state="RENEWING",
                       state6="BOUND", renewals=1,
                       ipv4=status.lease4_doc(lease4("10.9.0.102", 3700.0), NOW),
                       ipv6=status.lease6_doc(lease6("fd00::102"), NOW)),
        endpoint_entry(id="e2" * 32, network_id=NET_B, network=None, bridge="br1",
                       mac="02:00:00:00:00:03", container_id=None, container_name=None,
                       hostname=None, joined=False, sandbox=None, state="not joined",
                       renewals=0, ipv4=status.lease4_doc(lease4("10.8.0.5", -5.0), NOW)),
    ]
    nets: list[dict[str, Any]] = [{"id": NET_A, "name": "lan", "bridge": "br0", "ipv6": True,
             "options": {"bridge": "br0"}, "endpoints": 2},
            {"id": NET_B, "name": None, "bridge": "br1", "ipv6": False,
             "options": {"bridge": "br1"}, "endpoints": 1}]
    return {"schema": 1,
            "plugin": {"pid": 4242, "version": "0.1.0", "started_at": NOW - 7500,
                       "uptime_s": 7500.0, "state_db": "/var/lib/net-dhcp/net-dhcp.sqlite3"},
            "now": NOW, "networks": nets, "endpoints": eps,
            "totals": status.totals_doc(nets, eps, renewals=7, failures=1)}


# ---------------------------------------------------------------- a stand-in plugin socket


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    reply: tuple[int, bytes] = (200, b"{}")
    paths: list[str]


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self.server.paths.append(self.path)
        code, body = self.server.reply
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - base signature
        pass

    def address_string(self) -> str:
        return "unix"


@pytest.fixture
def fake_plugin(tmp_path: Path) -> Iterator[_Server]:
    """A unix socket answering GET with `server.reply` (status, body)."""
    path = tmp_path / "net-dhcp.sock"
    server = _Server(str(path), _Handler)
    server.paths = []
    server.reply = (200, json.dumps(sample_doc()).encode())
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


# ---------------------------------------------------------------- help and exit codes


@pytest.mark.parametrize("argv", [["--help"], ["status", "--help"], ["leases", "--help"],
                                  ["doctor", "--help"]])
def test_help_documents_the_exit_codes(argv: list[str],
                                       capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "exit status:" in out
    for code in ("0  success", "1  doctor", "2  usage error", "3  the plugin is not running"):
        assert code in out
    assert exits.OK == 0
    assert exits.PROBLEMS == 1
    assert exits.USAGE == 2
    assert exits.NOT_RUNNING == 3


def test_a_bad_argument_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["doctor", "--timeout", "0"])
    assert exc.value.code == exits.USAGE
    assert "out of range" in capsys.readouterr().err


# ---------------------------------------------------------------- status


def test_status_prints_a_report(fake_plugin: _Server,
                                capsys: pytest.CaptureFixture[str]) -> None:
    sock = str(fake_plugin.server_address)
    code, out, _ = run_cli(["status", "--socket", sock], capsys)
    assert code == exits.OK
    assert fake_plugin.paths == [status.STATUS_PATH]
    lines = out.splitlines()
    assert lines[0].startswith("plugin     running: pid 4242, net-dhcp 0.1.0, up 2h05m (since ")
    assert f"socket     {sock}" in lines
    assert "endpoints  3 (BOUND 1, RENEWING 1, not joined 1)" in lines
    assert "renewals   7" in lines
    assert "failures   1" in lines
    assert lines[-3].split() == ["NETWORK", "ID", "LAN", "IPV6", "ENDPOINTS"]
    assert lines[-2].split() == ["lan", NET_A[:12], "br0", "yes", "2"]
    assert lines[-1].split() == ["-", NET_B[:12], "br1", "no", "1"]


def test_status_json_is_the_document(fake_plugin: _Server,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    sock = str(fake_plugin.server_address)
    code, out, _ = run_cli(["status", "--socket", sock, "--json"], capsys)
    assert code == exits.OK
    doc = json.loads(out)
    assert doc == {"running": True, "socket": sock, **sample_doc()}


def test_status_of_a_plugin_not_running_exits_3(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    missing = str(tmp_path / "nope.sock")
    code, out, _ = run_cli(["status", "--socket", missing], capsys)
    assert code == exits.NOT_RUNNING
    assert out.startswith(f"not running: nothing listens on {missing} (")
    code, out, _ = run_cli(["status", "--socket", missing, "--json"], capsys)
    assert code == exits.NOT_RUNNING
    assert json.loads(out)["running"] is False


def test_a_stale_socket_file_is_not_running(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    # A plugin killed with SIGKILL leaves its socket file: connect() is refused.
    path = tmp_path / "stale.sock"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(path))
    s.close()
    code, _, _ = run_cli(["status", "--socket", str(path)], capsys)
    assert code == exits.NOT_RUNNING


@pytest.mark.parametrize(("reply", "says"), [
    ((404, b'{"Err": "net-dhcp does not implement net-dhcp/status"}'), "older net-dhcp"),
    ((500, b'{"Err": "boom"}'), "answered 500: boom"),
    ((200, b"not json"), "not a net-dhcp status document"),
    ((200, b'{"endpoints": 3}'), "not a net-dhcp status document"),
])
def test_a_bad_reply_exits_1(fake_plugin: _Server, capsys: pytest.CaptureFixture[str],
                             reply: tuple[int, bytes], says: str) -> None:
    fake_plugin.reply = reply
    code, out, err = run_cli(["status", "--socket", str(fake_plugin.server_address)], capsys)
    assert code == exits.ERROR
    assert says in err
    assert out == ""
    code, out, _ = run_cli(["status", "--socket", str(fake_plugin.server_address), "--json"],
                           capsys)
    assert code == exits.ERROR
    assert says in json.loads(out)["error"]


def test_the_socket_is_found_default_then_managed(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(status_client, "PLUGIN_DIR", tmp_path)
    assert status_client.find_socket(None) == tmp_path / "net-dhcp.sock"  # absent: default
    managed = tmp_path / "abc123" / "net-dhcp.sock"
    managed.parent.mkdir()
    managed.touch()
    assert status_client.find_socket(None) == managed
    assert status_client.find_socket("/x.sock") == Path("/x.sock")
    (tmp_path / "net-dhcp.sock").touch()
    assert status_client.find_socket(None) == tmp_path / "net-dhcp.sock"


def test_several_managed_plugins_need_socket(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(status_client, "PLUGIN_DIR", tmp_path)
    for plugin_id in ("p1", "p2"):
        (tmp_path / plugin_id).mkdir()
        (tmp_path / plugin_id / "net-dhcp.sock").touch()
    for cmd in ("status", "leases"):
        code, _, err = run_cli([cmd], capsys)
        assert code == exits.USAGE
        assert "several net-dhcp plugins" in err
        assert "--socket" in err


# ---------------------------------------------------------------- leases


def test_leases_table(fake_plugin: _Server, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(["leases", "--socket", str(fake_plugin.server_address)], capsys)
    assert code == exits.OK
    lines = out.splitlines()
    header = lines[0]
    assert header.split("  ")[0] == "CONTAINER"
    for name in leases_view.HEADERS:
        assert name in header
    # Columns line up: every row's MAC starts where the header's MAC does.
    col = header.index("MAC")
    assert [ln[col:col + 17] for ln in lines[1:]] == [
        "02:00:00:00:00:03", "02:00:00:00:00:02", "02:00:00:00:00:01"]
    rows = [ln.split() for ln in lines[1:]]
    # Sorted by network label: NET_B's short ID ("b2...") after "lan"? No: labels sort as
    # text, "b2b2..." < "lan".
    assert rows[0] == ["-", NET_B[:12], "02:00:00:00:00:03", "10.8.0.5", "-", "-", "not",
                       "joined", "expired"]
    assert rows[1] == ["c1" * 6, "lan", "02:00:00:00:00:02", "10.9.0.102", "fd00::102", "db",
                       "RENEWING", "(v6", "BOUND)", "1h01m"]
    assert rows[2] == ["web", "lan", "02:00:00:00:00:01", "10.9.0.101", "-", "web", "BOUND",
                       "1m35s"]


@pytest.mark.parametrize(("filters", "macs"), [
    ([], ["03", "02", "01"]),
    (["--network", "lan"], ["02", "01"]),
    (["--network", "br1"], ["03"]),
    (["--network", NET_B[:5]], ["03"]),
    (["--network", "lan", "--network", "br1"], ["03", "02", "01"]),
    (["--container", "web"], ["01"]),
    (["--container", "/web"], ["01"]),
    (["--container", "db"], ["02"]),
    (["--container", "c1c1"], ["02"]),
    (["--container", "e2e2"], ["03"]),
    (["--network", "br1", "--container", "web"], []),
    (["--network", "nope"], []),
])
def test_leases_filters(fake_plugin: _Server, capsys: pytest.CaptureFixture[str],
                        filters: list[str], macs: list[str]) -> None:
    code, out, _ = run_cli(["leases", "--socket", str(fake_plugin.server_address), "--json",
                            *filters], capsys)
    assert code == exits.OK
    doc = json.loads(out)
    assert [r["mac"][-2:] for r in doc["leases"]] == macs
    code, out, _ = run_cli(["leases", "--socket", str(fake_plugin.server_address),
                            *filters], capsys)
    assert code == exits.OK
    if not macs:
        assert out.strip() == "no leases"


def test_leases_json_shape(fake_plugin: _Server, capsys: pytest.CaptureFixture[str]) -> None:
    sock = str(fake_plugin.server_address)
    code, out, _ = run_cli(["leases", "--socket", sock, "--json", "--container", "web"],
                           capsys)
    assert code == exits.OK
    doc = json.loads(out)
    assert doc == {"source": "plugin", "socket": sock, "now": NOW,
                   "leases": [sample_doc()["endpoints"][0]]}
    row = doc["leases"][0]
    assert row["ipv4"]["address"] == "10.9.0.101/24"
    assert row["ipv4"]["expires_in_s"] == 95.0


def _stored(state_dir: Path) -> None:
    """A state database as a stopped plugin leaves it: a network, two endpoints."""
    store = Store(state_dir)
    try:
        store.add_network(NET_A, NetworkOptions(bridge="br0").to_json())
        now = time.time()
        store.add_endpoint(endpoint_id="e0" * 32, network_id=NET_A, host_if="dhe0e0",
                           cont_if="dce0e0", mac="02:00:00:00:00:01",
                           options={"hostname": "web"},
                           lease=lease4("10.9.0.101", 95.0, now).to_dict(), lease6=None)
        store.set_joined("e0" * 32, "/run/netns/x", True)
        store.add_endpoint(endpoint_id="e1" * 32, network_id=NET_A, host_if="dhe1e1",
                           cont_if="dce1e1", mac="02:00:00:00:00:02", options={},
                           lease=lease4("10.9.0.102", 30.0, now).to_dict(),
                           lease6=lease6("fd00::1", now).to_dict())
    finally:
        store.close()


def test_leases_fall_back_to_the_state_file(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    state = tmp_path / "state"
    _stored(state)
    files = sorted(os.listdir(state))
    argv = ["leases", "--socket", str(tmp_path / "gone.sock"), "--state-dir", str(state)]
    code, out, err = run_cli(argv, capsys)
    assert code == exits.OK
    assert "not running" in err
    assert "read-only" in err
    rows = [ln.split() for ln in out.splitlines()[1:]]
    assert [r[2] for r in rows] == ["02:00:00:00:00:01", "02:00:00:00:00:02"]
    assert rows[0][:7] == ["-", NET_A[:12], "02:00:00:00:00:01", "10.9.0.101", "-", "web",
                           "unknown"]
    assert rows[1][4] == "fd00::1"
    code, out, _ = run_cli([*argv, "--json"], capsys)
    doc = json.loads(out)
    assert doc["source"] == "state-file"
    assert doc["state_db"] == str(state / "net-dhcp.sqlite3")
    assert {r["state"] for r in doc["leases"]} == {"unknown"}
    assert doc["leases"][0]["joined"] is True
    assert doc["leases"][1]["joined"] is False
    # Read-only: nothing was written or created next to the database.
    assert sorted(os.listdir(state)) == files


def test_leases_with_no_plugin_and_no_state_exit_3(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(["leases", "--socket", str(tmp_path / "gone.sock"), "--state-dir",
                            str(tmp_path / "none")], capsys)
    assert code == exits.NOT_RUNNING
    assert "no state database" in err


def test_an_unreadable_state_file_exits_1(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "net-dhcp.sqlite3").write_bytes(b"this is not a database" * 100)
    code, _, err = run_cli(["leases", "--socket", str(tmp_path / "gone.sock"), "--state-dir",
                            str(tmp_path)], capsys)
    assert code == exits.ERROR
    assert "cannot read" in err


# ---------------------------------------------------------------- formatting


@pytest.mark.parametrize(("seconds", "text"), [
    (None, "-"), (-1, "expired"), (0, "expired"), (0.5, "0s"), (59, "59s"), (60, "1m00s"),
    (3599, "59m59s"), (3600, "1h00m"), (86399, "23h59m"), (90000, "1d01h"),
    (float("inf"), "never")])
def test_durations(seconds: float | None, text: str) -> None:
    assert cli_output.duration(seconds) == text


def test_cells_are_printable_and_bounded() -> None:
    assert cli_output.cell("a\x1b[31mb\nc") == "a\\x1b[31mb\\nc"
    long = cli_output.cell("x" * 500)
    assert len(long) == cli_output.CELL_LIMIT
    assert long.endswith("...")
    assert cli_output.cell(None) == cli_output.cell("") == "-"
    assert cli_output.table(["A", "BB"], [["xxx", "y"], [None, "zz"]]).splitlines() == [
        "A    BB", "xxx  y", "-    zz"]


def test_hostile_names_cannot_break_the_table() -> None:
    ep = endpoint_entry(container_name="evil\n\x1b[2Jname", hostname="h\tx")
    text = leases_view.render([ep])
    assert len(text.splitlines()) == 2
    assert "\x1b" not in text
    assert "\t" not in text


# ---------------------------------------------------------------- the route, in process


class _NoStatusDriver:
    """A driver without registry or leases (api's FakeDriver style)."""

    async def create_network(self, req: object) -> dict[str, Any]: return {}
    async def delete_network(self, req: object) -> dict[str, Any]: return {}
    async def create_endpoint(self, req: object) -> dict[str, Any]: return {}
    async def endpoint_oper_info(self, req: object) -> dict[str, Any]: return {}
    async def delete_endpoint(self, req: object) -> dict[str, Any]: return {}
    async def join(self, req: object) -> dict[str, Any]: return {}
    async def leave(self, req: object) -> dict[str, Any]: return {}
    async def program_external_connectivity(self, req: object) -> dict[str, Any]: return {}


class _StatusDriver(_NoStatusDriver):
    """The same, with what the status route reads: a registry and a lease supervisor."""

    def __init__(self, registry: Registry, leases: LeaseSupervisor) -> None:
        self.registry = registry
        self.leases = leases


async def _client(app: web.Application) -> TestClient[web.Request, web.Application]:
    client = TestClient(TestServer(app))
    await client.start_server()
    return client


def _registry(tmp_path: Path) -> Registry:
    registry = Registry(Store(tmp_path / "state"))
    registry.add_network(NET_A, NetworkOptions(bridge="br0", ipv6=True))
    registry.networks[NET_A].name = "lan"
    for i, (joined, v6) in enumerate([(False, False), (True, True), (True, False)]):
        ep = Endpoint(id=f"e{i}" * 32, network_id=NET_A, host_if=f"dhe{i}", cont_if=f"dce{i}",
                      mac=f"02:00:00:00:00:0{i}", options=EndpointOptions(),
                      lease=lease4(f"10.9.0.10{i}", 90.0, time.time()),
                      lease6=lease6(f"fd00::{i}", time.time()) if v6 else None,
                      sandbox="/run/netns/x" if joined else None)
        registry.add_endpoint(ep)
    ep1 = registry.endpoints["e1" * 32]
    ep1.container_id, ep1.container_name, ep1.hostname = "c1" * 32, "web", "webhost"
    return registry


@pytest.mark.asyncio
async def test_the_status_route_answers_the_document(tmp_path: Path) -> None:
    registry = _registry(tmp_path)
    supervisor = LeaseSupervisor(registry, Timing())
    driver = _StatusDriver(registry, supervisor)
    # Endpoint 1 has a running keeper (BOUND, its IPv6 one RENEWING); endpoint 2's ended.
    ep1, ep2 = registry.endpoints["e1" * 32], registry.endpoints["e2" * 32]
    alive = asyncio.get_running_loop().create_future()
    done = asyncio.get_running_loop().create_future()
    done.set_result(None)
    keeper = SimpleNamespace(state=State.BOUND, lease=ep1.lease, renewals=4, failures=1)
    keeper6 = SimpleNamespace(state=State.RENEWING, lease=ep1.lease6, renewals=2, failures=0)
    supervisor._running[ep1.id] = _Running(alive, "/run/netns/x", keeper, keeper6)  # type: ignore[arg-type]
    supervisor._running[ep2.id] = _Running(done, "/run/netns/x")  # type: ignore[arg-type]
    client = await _client(make_app(driver))
    try:
        resp = await client.get(status.STATUS_PATH)
        assert resp.status == 200, await resp.text()
        assert resp.content_type == "application/json"
        doc = await resp.json()
        head = await client.head(status.STATUS_PATH)
        assert head.status == 200
        post = await client.post(status.STATUS_PATH, data=b"{}")
        assert post.status == 405
        assert "GET only" in (await post.json())["Err"]
    finally:
        await client.close()
        alive.cancel()
        registry.store.close()
    assert doc["schema"] == 1
    assert doc["plugin"]["pid"] == os.getpid()
    assert doc["plugin"]["version"] == status.version()
    assert 0 <= doc["plugin"]["uptime_s"] < 60
    assert doc["plugin"]["state_db"] == str(tmp_path / "state" / "net-dhcp.sqlite3")
    assert doc["networks"] == [{"id": NET_A, "name": "lan", "bridge": "br0", "ipv6": True,
                                "options": {"bridge": "br0", "ipv6": True,
                                            "lease_timeout_s": 10.0,
                                            "ignore_conflicts": False, "skip_routes": False,
                                            "validate_dhcp": False, "client_id": None,
                                            "vendor_class": None, "register_dns": False,
                                            "gateway": None, "propagate_mtu": False,
                                            "propagate_dns": False, "mode": "bridge",
                                            "parent": "", "stable_mac": True},
                                "endpoints": 3}]
    by_id = {e["id"][:2]: e for e in doc["endpoints"]}
    assert {k: (e["state"], e["state6"]) for k, e in by_id.items()} == {
        "e0": ("not joined", None), "e1": ("BOUND", "RENEWING"), "e2": ("stopped", None)}
    e1 = by_id["e1"]
    assert (e1["renewals"], e1["failures"]) == (6, 1)
    assert (e1["container_name"], e1["container_id"], e1["hostname"]) == (
        "web", "c1" * 32, "webhost")
    assert e1["ipv4"]["address"] == "10.9.0.101/24"
    assert e1["ipv4"]["server"] == "10.9.0.1"
    assert 80 < e1["ipv4"]["expires_in_s"] <= 90
    assert e1["ipv6"]["address"] == "fd00::1/64"
    assert set(e1) == set(sample_doc()["endpoints"][0])  # the shape the CLI tests use
    assert set(e1["ipv4"]) == set(sample_doc()["endpoints"][0]["ipv4"])
    assert doc["totals"] == {"networks": 1, "endpoints": 3, "being_created": 0,
                             "by_state": {"BOUND": 1, "not joined": 1, "stopped": 1},
                             "renewals": 6, "failures": 1}
    assert set(doc) == set(sample_doc())


@pytest.mark.asyncio
async def test_totals_survive_keepers_stopping(tmp_path: Path) -> None:
    registry = _registry(tmp_path)
    supervisor = LeaseSupervisor(registry, Timing())
    ep1 = registry.endpoints["e1" * 32]

    async def forever() -> None:
        await asyncio.Event().wait()

    try:
        for renewals in (3, 5):  # two Join..Leave rounds
            keeper = SimpleNamespace(state=State.BOUND, lease=ep1.lease, renewals=renewals,
                                     failures=1, sock=None)
            run = _Running(asyncio.create_task(forever()), "/run/netns/x", keeper)  # type: ignore[arg-type]
            supervisor._running[ep1.id] = run
            assert supervisor.counts(ep1).renewals == renewals
            await supervisor.stop(ep1, release=False)
            assert supervisor.counts(ep1).renewals == 0
        assert (supervisor.totals().renewals, supervisor.totals().failures) == (8, 2)
    finally:
        registry.store.close()


@pytest.mark.asyncio
async def test_the_status_route_without_a_source_or_failing() -> None:
    client = await _client(make_app(_NoStatusDriver()))
    try:
        resp = await client.get(status.STATUS_PATH)
        assert resp.status == 404
        assert "no status" in (await resp.json())["Err"]
    finally:
        await client.close()

    def broken() -> dict[str, Any]:
        raise RuntimeError("kaput")

    client = await _client(make_app(_NoStatusDriver(), status=broken))
    try:
        resp = await client.get(status.STATUS_PATH)
        assert resp.status == 500
        assert "kaput" in (await resp.json())["Err"]
        # Docker's routes are untouched.
        act = await client.post("/Plugin.Activate")
        assert (await act.json()) == {"Implements": ["NetworkDriver"]}
    finally:
        await client.close()


@pytest.mark.asyncio
async def test_the_reconciler_records_container_and_network_names(tmp_path: Path) -> None:
    registry = _registry(tmp_path)
    eid = "e1" * 32

    async def inspect(_req: web.Request) -> web.Response:
        return web.json_response({
            "Id": "c9" * 32, "Name": "/shop-web-1", "Config": {"Hostname": "shop"},
            "NetworkSettings": {"Networks": {"shopnet": {"EndpointID": eid}}}})

    async def version(_req: web.Request) -> web.Response:
        return web.json_response({"ApiVersion": "1.41"})

    app = web.Application()
    app.router.add_get("/version", version)
    app.router.add_get("/v1.41/containers/{cid}/json", inspect)
    runner = web.AppRunner(app)
    await runner.setup()
    sock = str(tmp_path / "docker.sock")
    await web.UnixSite(runner, sock).start()
    driver = SimpleNamespace(registry=registry, leases=LeaseSupervisor(registry, Timing()))
    rec = reconcile.Reconciler(driver, driver_name="x", socket_name="x.sock",  # type: ignore[arg-type]
                               docker_socket=sock, sweep_interval_s=60)
    try:
        await rec.learn("c9" * 32)
    finally:
        await rec.close()
        await runner.cleanup()
        registry.store.close()
    ep = registry.endpoints[eid]
    assert (ep.container_name, ep.container_id, ep.hostname) == ("shop-web-1", "c9" * 32,
                                                                  "shop")
    assert registry.networks[NET_A].name == "shopnet"


# ---------------------------------------------------------------- doctor


def fake_sys(tmp_path: Path, bridge: str = "br0", *, ports: dict[str, str] | None = None,
             up: bool = True, pinned: bool = True, stp: int = 0, fd: int = 1500,
             vlan: bool = False, is_bridge: bool = True) -> doctor.Host:
    """A /sys/class/net tree: `bridge` with `ports` (name -> operstate)."""
    net = tmp_path / "sys/class/net"

    def iface(name: str, mac: str, operstate: str, flags: str) -> Path:
        d = net / name
        d.mkdir(parents=True)
        for key, value in {"address": mac, "operstate": operstate, "flags": flags,
                           "ifindex": "7", "addr_assign_type": "3" if pinned else "1"}.items():
            (d / key).write_text(value + "\n")
        return d

    d = iface(bridge, "52:54:00:00:00:aa", "up" if up else "down", "0x1003" if up else "0x1002")
    if is_bridge:
        (d / "bridge").mkdir()
        for key, value in {"stp_state": stp, "forward_delay": fd,
                           "vlan_filtering": int(vlan), "default_pvid": 1}.items():
            (d / "bridge" / key).write_text(f"{value}\n")
        (d / "brif").mkdir()
        for i, (name, state) in enumerate((ports or {}).items()):
            iface(name, f"52:54:00:00:00:0{i}", state, "0x1003")
            (d / "brif" / name).mkdir()
    (tmp_path / "proc").mkdir(exist_ok=True)
    return doctor.Host(sys=tmp_path / "sys", proc=tmp_path / "proc", root=False)


def _diagnose(host: doctor.Host, bridge: str = "br0") -> doctor.BridgeReport:
    return asyncio.run(doctor.diagnose(bridge, host=host, probe=True, timeout_s=1))


def _statuses(report: doctor.BridgeReport) -> dict[str, str]:
    return {f.check: f.status for f in report.findings}


def test_doctor_a_healthy_bridge_without_root(tmp_path: Path) -> None:
    report = _diagnose(fake_sys(tmp_path, ports={"eth0": "up", "dh0123456789ab": "up"}))
    assert _statuses(report) == {"bridge": "ok", "ports": "ok", "stp": "ok", "mac": "ok",
                                 "netfilter": "skipped", "dhcp": "skipped"}
    assert report.problems == 0
    ports = report.finding("ports")
    assert ports is not None
    assert "eth0 (up)" in ports.message
    assert "container veths: 1" in ports.message


def test_doctor_a_missing_bridge(tmp_path: Path) -> None:
    report = _diagnose(fake_sys(tmp_path), "br9")
    assert _statuses(report) == {"bridge": "problem"}
    f = report.findings[0]
    assert f.message == "there is no interface br9"
    assert f.fix is not None
    assert "ip link add br9 type bridge" in f.fix


@pytest.mark.parametrize(("kwargs", "check", "says", "fix"), [
    ({"is_bridge": False}, "bridge", "not a Linux bridge", "name of a Linux bridge"),
    ({"up": False, "ports": {"eth0": "up"}}, "bridge", "br0 is down", "ip link set br0 up"),
    ({"ports": {"dh0123456789ab": "up"}}, "ports", "no port besides net-dhcp's own",
     "ip link set <LAN interface> master br0"),
    ({"ports": {}}, "ports", "no port besides", "master br0"),
    ({"ports": {"eth0": "down"}}, "ports", "every LAN port of br0 is down: eth0",
     "ip link set eth0 up"),
    ({"ports": {"eth0": "up"}, "stp": 1}, "stp", "passes nothing for 30s",
     "stp_state 0"),
    ({"ports": {"eth0": "up"}, "pinned": False}, "mac", "is not pinned",
     "ip link set br0 address 52:54:00:00:00:00"),
])
def test_doctor_problems_come_with_their_fix(tmp_path: Path, kwargs: dict[str, Any],
                                             check: str, says: str, fix: str) -> None:
    report = _diagnose(fake_sys(tmp_path, **kwargs))
    f = report.finding(check)
    assert f is not None, report
    assert f.status == doctor.PROBLEM, report
    assert says in f.message
    assert f.fix is not None
    assert fix in f.fix
    assert report.problems >= 1


def test_doctor_warnings_do_not_count_as_problems(tmp_path: Path) -> None:
    report = _diagnose(fake_sys(tmp_path, ports={"eth0": "up"}, stp=1, fd=200, vlan=True))
    assert _statuses(report)["stp"] == "warning"
    assert _statuses(report)["vlan"] == "warning"
    assert report.problems == 0


def test_doctor_output_and_json(tmp_path: Path) -> None:
    host = fake_sys(tmp_path, ports={"eth0": "up"}, pinned=False)
    reports = asyncio.run(doctor.diagnose_all(["br0", "br7"], host=host, timeout_s=1))
    text = doctor.render(reports, width=100)
    lines = text.splitlines()
    assert lines[0] == "bridge br0"
    assert any(ln.startswith("  PROBLEM  mac ") for ln in lines)
    assert any(ln.strip() == "fix: ip link set br0 address 52:54:00:00:00:00" for ln in lines)
    assert "  ok       bridge     br0 exists and is up (MAC 52:54:00:00:00:aa)" in lines
    assert lines[-1] == "2 problems found (2 bridges checked)."
    assert max(len(ln) for ln in lines) <= 100
    doc = doctor.to_json(reports)
    assert doc["ok"] is False
    assert doc["problems"] == 2
    assert [b["bridge"] for b in doc["bridges"]] == ["br0", "br7"]
    assert doc["bridges"][1]["findings"] == [
        {"check": "bridge", "status": "problem", "message": "there is no interface br7",
         "fix": doc["bridges"][1]["findings"][0]["fix"]}]
    json.dumps(doc)


def test_doctor_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(["doctor", "--no-probe", "ndnosuchbr0"], capsys)
    assert code == exits.PROBLEMS
    assert "there is no interface ndnosuchbr0" in out
    code, out, _ = run_cli(["doctor", "--no-probe", "--json", "ndnosuchbr0"], capsys)
    assert code == exits.PROBLEMS
    assert json.loads(out)["ok"] is False
    # No bridge named, no plugin, no state database: nothing to check.
    code, _, err = run_cli(["doctor", "--socket", str(tmp_path / "gone.sock"), "--state-dir",
                            str(tmp_path / "none")], capsys)
    assert code == exits.USAGE
    assert "name the bridge" in err


def test_doctor_finds_the_bridges_in_the_state_file(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    state = tmp_path / "state"
    store = Store(state)
    store.add_network(NET_A, NetworkOptions(bridge="ndnosuchbr1").to_json())
    store.close()
    code, out, _ = run_cli(["doctor", "--no-probe", "--socket", str(tmp_path / "gone.sock"),
                            "--state-dir", str(state)], capsys)
    assert code == exits.PROBLEMS
    assert "bridge ndnosuchbr1" in out


# ---------------------------------------------------------------- firewall


def _iptables(forward: str, user: str = "") -> list[firewall.Chain]:
    return firewall.iptables_chains(
        "-P INPUT ACCEPT\n-P FORWARD DROP\n-P OUTPUT ACCEPT\n-N DOCKER-USER\n"
        "-A FORWARD -j DOCKER-USER\n" + forward + user + "-A DOCKER-USER -j RETURN\n"
        "-A FORWARD -o docker0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n")


@pytest.mark.parametrize(("forward", "user", "verdict", "unsure"), [
    ("", "", "drop", 0),  # "-o docker0" does not hold: the rule is not in doubt
    ("-A FORWARD -i br0 -o br0 -j ACCEPT\n", "", "accept", 0),
    ("", "-A DOCKER-USER -i br0 -o br0 -j ACCEPT\n", "accept", 0),
    ("-A FORWARD -i br+ -j ACCEPT\n", "", "accept", 0),
    ("-A FORWARD -m physdev --physdev-is-bridged -j ACCEPT\n", "", "accept", 0),
    ("-A FORWARD -i br0 -j DROP\n-A FORWARD -i br0 -o br0 -j ACCEPT\n", "", "drop", 0),
    ("-A FORWARD -i br1 -o br1 -j ACCEPT\n", "", "drop", 0),
    ("-A FORWARD ! -i br0 -j ACCEPT\n", "", "drop", 0),
    ("-A FORWARD -i br0 -p udp -m udp --dport 67 -j ACCEPT\n", "", "drop", 1),
])
def test_iptables_forward_chain_is_judged(forward: str, user: str, verdict: str,
                                          unsure: int) -> None:
    chains = _iptables(forward, user)
    verdicts = firewall.blocking(chains, "br0", bridge_netfilter=True)
    assert [v.chain.name for v in verdicts] == ["FORWARD"]
    assert verdicts[0].verdict == verdict
    assert len(verdicts[0].unsure) == unsure
    assert verdicts[0].fix("br0") == "iptables-legacy -I FORWARD -i br0 -o br0 -j ACCEPT"
    # Without bridge netfilter iptables never sees bridged frames.
    assert firewall.blocking(chains, "br0", bridge_netfilter=False) == []


def _nft_msg(family: int, attrs: list[tuple[str, Any]]) -> dict[str, Any]:
    return {"nfgen_family": family, "attrs": attrs}


def _meta(key: str) -> dict[str, Any]:
    return {"attrs": [("NFTA_EXPR_NAME", "meta"), ("NFTA_EXPR_DATA", {"attrs": [
        ("NFTA_META_KEY", key), ("NFTA_META_DREG", "NFT_REG_1")]})]}


def _cmp(value: bytes, op: str = "NFT_CMP_EQ") -> dict[str, Any]:
    return {"attrs": [("NFTA_EXPR_NAME", "cmp"), ("NFTA_EXPR_DATA", {"attrs": [
        ("NFTA_CMP_SREG", "NFT_REG_1"), ("NFTA_CMP_OP", op),
        ("NFTA_CMP_DATA", {"attrs": [("NFTA_DATA_VALUE", value)]})]})]}


def _verdict(code: str, chain: str | None = None) -> dict[str, Any]:
    v: list[tuple[str, Any]] = [("NFTA_VERDICT_CODE", code)]
    if chain:
        v.append(("NFTA_VERDICT_CHAIN", chain))
    return {"attrs": [("NFTA_EXPR_NAME", "immediate"), ("NFTA_EXPR_DATA", {"attrs": [
        ("NFTA_IMMEDIATE_DREG", "NFT_REG_VERDICT"),
        ("NFTA_IMMEDIATE_DATA", {"attrs": [("NFTA_DATA_VERDICT", {"attrs": v})]})]})]}


def _payload() -> dict[str, Any]:
    return {"attrs": [("NFTA_EXPR_NAME", "payload"), ("NFTA_EXPR_DATA", {"attrs": [
        ("NFTA_PAYLOAD_DREG", "NFT_REG_1"), ("NFTA_PAYLOAD_OFFSET", 9)]})]}


def _chain(family: int, table: str, name: str, policy: int | None) -> dict[str, Any]:
    attrs: list[tuple[str, Any]] = [("NFTA_CHAIN_TABLE", table), ("NFTA_CHAIN_NAME", name)]
    if policy is not None:
        attrs += [("NFTA_CHAIN_HOOK", {"attrs": [("NFTA_HOOK_HOOKNUM", 2)]}),
                  ("NFTA_CHAIN_POLICY", policy)]
    return _nft_msg(family, attrs)


def _rule(family: int, table: str, chain: str, *exprs: dict[str, Any]) -> dict[str, Any]:
    return _nft_msg(family, [("NFTA_RULE_TABLE", table), ("NFTA_RULE_CHAIN", chain),
                             ("NFTA_RULE_EXPRESSIONS", list(exprs))])


def test_nftables_rules_are_read_from_netlink_messages() -> None:
    inet, bridge = 1, 7
    chains = firewall.nft_chains(
        [_chain(inet, "filter", "forward", 0), _chain(inet, "filter", "lan", None),
         _chain(bridge, "filter", "forward", 0)],
        [_rule(inet, "filter", "forward", _payload(), _cmp(b"\x11"), _verdict("NF_ACCEPT")),
         _rule(inet, "filter", "forward", _meta("NFT_META_IIFNAME"), _cmp(b"br0\0"),
               _verdict("NFT_JUMP", "lan")),
         _rule(inet, "filter", "lan", _meta("NFT_META_OIFNAME"), _cmp(b"br0\0"),
               _verdict("NF_ACCEPT")),
         _rule(bridge, "filter", "forward", _meta("NFT_META_BRI_IIFNAME"), _cmp(b"br"),
               _verdict("NF_ACCEPT"))])
    verdicts = {v.chain.label: v for v in firewall.blocking(chains, "br0",
                                                            bridge_netfilter=True)}
    assert set(verdicts) == {"nftables chain inet filter forward",
                             "nftables chain bridge filter forward"}
    inet_v = verdicts["nftables chain inet filter forward"]
    assert inet_v.verdict == "accept"
    assert inet_v.by is not None
    assert inet_v.by.text == 'oifname "br0" accept'
    assert len(inet_v.unsure) == 1  # the udp rule: its cmp compares a payload
    assert verdicts["nftables chain bridge filter forward"].verdict == "accept"  # "br*"
    # Another bridge: the inet chain drops it, the bridge-family one too.
    other = firewall.blocking(chains, "lan1", bridge_netfilter=True)
    assert [v.verdict for v in other] == ["drop", "drop"]
    assert other[0].fix("lan1") == ('nft insert rule inet filter forward iifname "lan1" '
                                    'oifname "lan1" accept')
    assert other[1].fix("lan1") == ('nft insert rule bridge filter forward '
                                    'meta ibrname "lan1" accept')
    # Without bridge netfilter only the bridge family sees bridged frames.
    assert [v.chain.family for v in firewall.blocking(chains, "lan1",
                                                      bridge_netfilter=False)] == ["bridge"]


def test_the_netfilter_finding(tmp_path: Path) -> None:
    facts = doctor.BridgeFacts("br0", exists=True, is_bridge=True, index=7)
    unsure = doctor.Firewall(_iptables("-A FORWARD -i br0 -p udp --dport 67 -j ACCEPT\n"),
                             True)
    f = doctor.check_netfilter(facts, unsure)
    assert f.status == doctor.WARNING  # that rule may accept DHCP: doctor cannot tell
    assert "1 rule(s) on the way match on things doctor cannot evaluate" in f.message
    plain = doctor.Firewall(firewall.iptables_chains("-P FORWARD DROP\n"), True)
    f = doctor.check_netfilter(facts, plain)
    assert f.status == doctor.PROBLEM
    assert "its policy is DROP and no rule accepts it" in f.message
    assert f.fix is not None
    assert f.fix.startswith(
        "iptables-legacy -I FORWARD -i br0 -o br0 -j ACCEPT")
    open_fw = doctor.Firewall(_iptables("-A FORWARD -i br0 -o br0 -j ACCEPT\n"), True)
    f = doctor.check_netfilter(facts, open_fw)
    assert f.status == doctor.OK
    assert "-A FORWARD -i br0 -o br0 -j ACCEPT" in f.message
    f = doctor.check_netfilter(facts, doctor.Firewall(plain.chains, False))
    assert f.status == doctor.OK
    assert "bridge netfilter is off" in f.message
    f = doctor.check_netfilter(facts, doctor.Firewall(None, True, "reading needs root"))
    assert f.status == doctor.SKIPPED


def test_the_probe_findings() -> None:
    facts = doctor.BridgeFacts("br0", exists=True, is_bridge=True, up=True)
    none = dhcp_probe.ProbeResult(port="ndpaaaaaah", discovers=3)
    f = doctor._probe_finding(facts, none, 5)
    assert f.status == doctor.PROBLEM
    assert f.message == ("no DHCP server answered 3 DISCOVER(s) sent from a probe port on "
                         "br0 within 5s")
    one = copy.deepcopy(none)
    one.offers.append(dhcp_probe.Offer(IPv4Address("10.0.0.1"), IPv4Address("10.0.0.9"),
                                       "02:00:00:00:00:01", 0.01))
    assert doctor._probe_finding(facts, one, 5).status == doctor.OK
    two = copy.deepcopy(one)
    two.offers.append(dhcp_probe.Offer(IPv4Address("10.0.0.2"), IPv4Address("10.0.0.8"),
                                       "02:00:00:00:00:02", 0.02))
    f = doctor._probe_finding(facts, two, 5)
    assert f.status == doctor.WARNING
    assert "2 DHCP servers answer" in f.message
    stuck = dhcp_probe.ProbeResult(port="ndpaaaaaah", forwarding=False)
    assert doctor._probe_finding(facts, stuck, 5).status == doctor.PROBLEM


def test_probe_interface_names_are_unique_and_short() -> None:
    seen = set()
    for _ in range(50):
        host_if, client_if = dhcp_probe.names()
        assert len(host_if) <= 15
        assert host_if.startswith("ndp")
        assert host_if.endswith("h")
        assert client_if == host_if[:-1] + "c"
        seen.add(host_if)
    assert len(seen) == 50
    assert doctor._owner(host_if) == "probe"
    assert doctor._owner("dh0123456789ab") == "container"
    assert doctor._owner("eth0") == "lan"


def test_state_file_read_is_the_status_shape(tmp_path: Path) -> None:
    _stored(tmp_path)
    doc = state_file.read(tmp_path)
    assert doc["plugin"] is None
    assert set(doc["endpoints"][0]) == set(sample_doc()["endpoints"][0])
    assert doc["totals"]["by_state"] == {"unknown": 2}
