"""Metrics: the hooks, the registry of our own, the exposition text, the gauges computed
at scrape time, the listener's addresses, and the keepers' counting. No root."""

from __future__ import annotations

import asyncio
import http.client
import logging
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Interface
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from net_dhcp import metrics, metrics_server
from net_dhcp.cli import _parser
from net_dhcp.config import EndpointOptions, NetworkOptions
from net_dhcp.dhcp4 import codec
from net_dhcp.dhcp4.client import AcquireStats
from net_dhcp.dhcp4.lease import Lease
from net_dhcp.dhcp4.timing import Timing
from net_dhcp.errors import NetDhcpError
from net_dhcp.leases import LeaseSupervisor
from net_dhcp.registry import Endpoint, Registry
from net_dhcp.status import GAUGE_STATES, gauges
from net_dhcp.store import Store
from tests.unit.test_keeper import Harness, a_lease, reply

SRC = Path(__file__).resolve().parents[2] / "src"


@pytest.fixture
def enabled() -> Iterator[metrics.Metrics]:
    m = metrics.enable()
    try:
        yield m
    finally:
        metrics.disable()


def samples(m: metrics.Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a scrape, parsed back from the exposition text."""
    body, content_type = metrics.exposition(m)
    assert content_type.startswith("text/plain")
    out = {}
    for fam in text_string_to_metric_families(body.decode()):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(m: metrics.Metrics, name: str, **labels: str) -> float:
    return samples(m).get((name, tuple(sorted(labels.items()))), 0.0)


# ---- the hooks -------------------------------------------------------------------------
def test_importing_the_daemon_side_does_not_import_prometheus_client() -> None:
    code = ("import sys; import net_dhcp.cli, net_dhcp.metrics, net_dhcp.metrics_server, "
            "net_dhcp.keeping, net_dhcp.dhcp4.keeper, net_dhcp.dhcp6.keeper, net_dhcp.leases, "
            "net_dhcp.driver, net_dhcp.daemon; "
            "sys.exit('prometheus_client' in sys.modules)")
    res = subprocess.run([sys.executable, "-c", code], env={"PYTHONPATH": str(SRC)},
                         capture_output=True, text=True, check=False)
    assert res.returncode == 0, res.stderr


def test_hooks_do_nothing_while_metrics_are_off() -> None:
    assert metrics.active() is None
    metrics.acquired("4", 0.1)
    metrics.exchanged("4", AcquireStats(naks=1))
    metrics.failed("6")
    metrics.extended("4", rebind=True)
    metrics.refused("6")
    metrics.released("4")
    metrics.keeper_restarted("4")
    assert metrics.active() is None


def test_every_counter_is_counted_by_family(enabled: metrics.Metrics) -> None:
    m = enabled
    metrics.acquired("4", 0.04)
    metrics.acquired("4", 3.0)
    metrics.acquired("6", 0.2, metrics.KEEPER)
    metrics.exchanged("4", AcquireStats(naks=2, declined=[IPv4Address("10.0.0.9")]))
    metrics.failed("4", AcquireStats(declined=[IPv4Address("10.0.0.9")]))
    metrics.failed("6", AcquireStats())
    metrics.extended("4", rebind=False)
    metrics.extended("4", rebind=False)
    metrics.extended("6", rebind=True)
    metrics.refused("6")
    metrics.released("4")
    metrics.released("6")
    metrics.keeper_restarted("6")
    s = samples(m)
    assert s[("net_dhcp_acquisitions_total", (("family", "4"), ("origin", "create")))] == 2
    assert s[("net_dhcp_acquisitions_total", (("family", "6"), ("origin", "keeper")))] == 1
    assert s[("net_dhcp_acquisition_seconds_count",
              (("family", "4"), ("origin", "create")))] == 2
    assert s[("net_dhcp_acquisition_seconds_sum",
              (("family", "4"), ("origin", "create")))] == pytest.approx(3.04)
    assert s[("net_dhcp_acquisition_seconds_bucket",
              (("family", "4"), ("le", "0.05"), ("origin", "create")))] == 1
    assert s[("net_dhcp_acquisition_seconds_bucket",
              (("family", "4"), ("le", "+Inf"), ("origin", "create")))] == 2
    assert s[("net_dhcp_naks_total", (("family", "4"),))] == 2
    assert s[("net_dhcp_naks_total", (("family", "6"),))] == 1
    assert s[("net_dhcp_declines_total", (("family", "4"),))] == 1
    assert s[("net_dhcp_failures_total", (("family", "4"), ("origin", "create")))] == 1
    assert s[("net_dhcp_failures_total", (("family", "6"), ("origin", "create")))] == 1
    assert s[("net_dhcp_conflicts_total", (("family", "4"),))] == 1
    assert ("net_dhcp_conflicts_total", (("family", "6"),)) not in s
    assert s[("net_dhcp_renewals_total", (("family", "4"),))] == 2
    assert s[("net_dhcp_rebinds_total", (("family", "6"),))] == 1
    assert s[("net_dhcp_releases_total", (("family", "4"),))] == 1
    assert s[("net_dhcp_releases_total", (("family", "6"),))] == 1
    assert s[("net_dhcp_keeper_restarts_total", (("family", "6"),))] == 1


def test_the_exposition_text_names_and_types_every_metric(enabled: metrics.Metrics) -> None:
    metrics.released("4")
    text = metrics.exposition(enabled)[0].decode()
    for name, kind in [("net_dhcp_acquisitions", "counter"), ("net_dhcp_failures", "counter"),
                       ("net_dhcp_renewals", "counter"), ("net_dhcp_rebinds", "counter"),
                       ("net_dhcp_naks", "counter"), ("net_dhcp_declines", "counter"),
                       ("net_dhcp_conflicts", "counter"), ("net_dhcp_releases", "counter"),
                       ("net_dhcp_keeper_restarts", "counter"),
                       ("net_dhcp_acquisition_seconds", "histogram")]:
        shown = f"{name}_total" if kind == "counter" else name
        assert f"# TYPE {shown} {kind}\n" in text
        assert f"# HELP {shown} " in text
    assert 'net_dhcp_releases_total{family="4"} 1.0\n' in text
    # Its own registry: nothing of the library's default one (process, platform, gc).
    assert "process_" not in text
    assert "python_gc" not in text


def test_each_metrics_has_a_registry_of_its_own() -> None:
    a, b = metrics.Metrics(), metrics.Metrics()
    a.releases.labels("4").inc()
    assert value(a, "net_dhcp_releases_total", family="4") == 1
    assert value(b, "net_dhcp_releases_total", family="4") == 0


def test_a_broken_metric_never_breaks_the_lease_path(
        enabled: metrics.Metrics, caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    class Broken:
        def labels(self, *_: str) -> None:
            raise RuntimeError("metrics broke")

    for name in ("acquisitions", "failures", "renewals", "rebinds", "naks", "declines",
                 "releases", "keeper_restarts"):
        monkeypatch.setattr(enabled, name, Broken())
    monkeypatch.setattr(metrics, "_failed_once", False)
    with caplog.at_level(logging.ERROR, logger="net_dhcp.metrics"):
        metrics.acquired("4", 0.1)
        metrics.exchanged("4", AcquireStats(naks=1))
        metrics.failed("4")
        metrics.extended("4", rebind=False)
        metrics.refused("4")
        metrics.released("4")
        metrics.keeper_restarted("4")
    broke = [r for r in caplog.records if "leases are not affected" in r.getMessage()]
    assert len(broke) == 1  # logged once, not once per event


# ---- the gauges, at scrape time ----------------------------------------------------------
@dataclass
class FakeSnapshot:
    leases: dict[tuple[str, str], int] = field(default_factory=dict)
    networks: int = 0
    endpoints: int = 0


def test_gauges_are_computed_at_every_scrape() -> None:
    snap = FakeSnapshot({("4", "bound"): 2, ("6", "renewing"): 1}, networks=1, endpoints=2)
    m = metrics.Metrics(lambda: snap)
    assert value(m, "net_dhcp_leases", family="4", state="bound") == 2
    assert value(m, "net_dhcp_leases", family="6", state="renewing") == 1
    assert value(m, "net_dhcp_networks") == 1
    assert value(m, "net_dhcp_endpoints") == 2
    snap.leases = {("4", "bound"): 1, ("4", "rebinding"): 1}
    assert value(m, "net_dhcp_leases", family="4", state="bound") == 1
    assert value(m, "net_dhcp_leases", family="4", state="rebinding") == 1
    assert "# TYPE net_dhcp_leases gauge\n" in metrics.exposition(m)[0].decode()


def _lease() -> Lease:
    return Lease(address=IPv4Interface("10.0.0.5/24"), server_id=IPv4Address("10.0.0.1"),
                 server_mac=b"\x02" * 6, gateway=None, routes=(), dns=(), domain=None,
                 lease_time_s=120, t1_s=60, t2_s=105, obtained_at=0.0)


def test_lease_gauges_from_the_registry_and_the_supervisor(tmp_path: Path) -> None:
    reg = Registry(Store(tmp_path))
    reg.add_network("n1", NetworkOptions(bridge="br0"))
    for i in range(3):
        reg.add_endpoint(Endpoint(id=f"e{i}", network_id="n1", host_if=f"dh{i}",
                                  cont_if=f"dc{i}", mac=f"02:00:00:00:00:0{i}",
                                  options=EndpointOptions(), lease=_lease()))
    reg.set_joined(reg.endpoints["e2"], "/run/netns/gone")  # joined, no keeper runs
    leases = LeaseSupervisor(reg, Timing())
    g = gauges(reg, leases)
    assert g.networks == 1
    assert g.endpoints == 3
    assert g.leases[("4", "not_joined")] == 2
    assert g.leases[("4", "stopped")] == 1
    assert g.leases[("6", "bound")] == 0  # every state is there, 0 or not
    assert {state for _, state in g.leases} == set(GAUGE_STATES)
    m = metrics.Metrics(lambda: gauges(reg, leases))
    assert value(m, "net_dhcp_leases", family="4", state="not_joined") == 2
    assert value(m, "net_dhcp_leases", family="4", state="bound") == 0


# ---- the keepers count where things happen -----------------------------------------------
@pytest.mark.asyncio
async def test_keeper_counts_renewals(enabled: metrics.Metrics) -> None:
    def script(req: codec.DhcpMessage) -> codec.DhcpMessage | None:
        return reply(codec.MessageType.ACK, req, str(req.ciaddr))

    h = Harness(script, a_lease())
    await h.run_until(lambda: len(h.leases) >= 2)
    assert value(enabled, "net_dhcp_renewals_total", family="4") == h.keeper.renewals >= 2
    assert value(enabled, "net_dhcp_rebinds_total", family="4") == 0


@pytest.mark.asyncio
async def test_keeper_counts_its_new_acquisition_after_expiry(
        enabled: metrics.Metrics) -> None:
    # No REQUEST of the lease's is answered (renewing, then rebinding): it expires and the
    # keeper's new DISCOVER gets 10.0.0.77.
    def script(req: codec.DhcpMessage) -> codec.DhcpMessage | None:
        if req.message_type is codec.MessageType.DISCOVER:
            return reply(codec.MessageType.OFFER, req, "10.0.0.77", t1=60, t2=90, lease=120)
        if req.ciaddr == IPv4Address(0):
            return reply(codec.MessageType.ACK, req, "10.0.0.77", t1=60, t2=90, lease=120)
        return None

    h = Harness(script, a_lease())
    await h.run_until(lambda: bool(h.applied))
    assert h.keeper.lease.address == IPv4Interface("10.0.0.77/24")
    assert value(enabled, "net_dhcp_acquisitions_total", family="4", origin="keeper") == 1
    assert value(enabled, "net_dhcp_acquisition_seconds_count", family="4",
                 origin="keeper") == 1
    assert value(enabled, "net_dhcp_renewals_total", family="4") == 0


@pytest.mark.asyncio
async def test_keeper_counts_a_nak(enabled: metrics.Metrics) -> None:
    def script(req: codec.DhcpMessage) -> codec.DhcpMessage | None:
        if req.message_type is codec.MessageType.REQUEST and req.ciaddr != IPv4Address(0):
            return reply(codec.MessageType.NAK, req, "0.0.0.0")
        if req.message_type is codec.MessageType.DISCOVER:
            return reply(codec.MessageType.OFFER, req, "10.0.0.77", t1=60, t2=90, lease=120)
        return reply(codec.MessageType.ACK, req, "10.0.0.77", t1=60, t2=90, lease=120)

    h = Harness(script, a_lease())
    await h.run_until(lambda: bool(h.applied))
    assert value(enabled, "net_dhcp_naks_total", family="4") == 1
    assert value(enabled, "net_dhcp_acquisitions_total", family="4", origin="keeper") == 1


@pytest.mark.asyncio
async def test_keeper_counts_a_failed_step_as_a_restart(enabled: metrics.Metrics) -> None:
    def script(req: codec.DhcpMessage) -> codec.DhcpMessage | None:
        return reply(codec.MessageType.ACK, req, str(req.ciaddr), t1=60, t2=90, lease=120)

    h = Harness(script, a_lease())
    h.keeper._retry = Timing(keeper_retry_first_s=0.01, keeper_retry_max_s=0.02)
    real_send = h.sock.send
    calls = 0

    def send_failing_once(msg: codec.DhcpMessage, **kwargs: IPv4Address | bytes) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("a step fails once")  # not an OSError: the step fails
        real_send(msg, **kwargs)  # type: ignore[arg-type]

    h.sock.send = send_failing_once  # type: ignore[method-assign]
    await h.run_until(lambda: bool(h.leases))
    assert h.keeper.failures == 1
    assert value(enabled, "net_dhcp_keeper_restarts_total", family="4") == 1


# ---- the listener --------------------------------------------------------------------------
@pytest.mark.parametrize(("text", "want"), [
    ("unix", metrics_server.Address(path=metrics_server.DEFAULT_UNIX)),
    ("unix:/run/x/m.sock", metrics_server.Address(path=Path("/run/x/m.sock"))),
    ("unix:///run/x/m.sock", metrics_server.Address(path=Path("/run/x/m.sock"))),
    ("/tmp/m.sock", metrics_server.Address(path=Path("/tmp/m.sock"))),
    ("127.0.0.1:9101", metrics_server.Address(host="127.0.0.1", port=9101)),
    ("tcp://127.0.0.1:0", metrics_server.Address(host="127.0.0.1", port=0)),
    ("[::1]:9101", metrics_server.Address(host="::1", port=9101)),
    ("localhost:9101", metrics_server.Address(host="localhost", port=9101)),
    (":9101", metrics_server.Address(host="", port=9101)),
])
def test_metrics_addresses(text: str, want: metrics_server.Address) -> None:
    assert metrics_server.parse_address(text) == want


@pytest.mark.parametrize("text", ["unix:relative.sock", "9101", "127.0.0.1", "host:99999",
                                  "example.org:9101", "127.0.0.1:http", "/run/dir/"])
def test_bad_metrics_addresses_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="metrics address|absolute|IP address|socket"):
        metrics_server.parse_address(text)


def test_serve_metrics_flag_and_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("METRICS_ADDR", raising=False)
    assert _parser().parse_args(["serve"]).metrics is None  # off by default
    args = _parser().parse_args(["serve", "--metrics", "127.0.0.1:9101"])
    assert args.metrics == metrics_server.Address(host="127.0.0.1", port=9101)
    monkeypatch.setenv("METRICS_ADDR", "unix:/run/p/metrics.sock")
    args = _parser().parse_args(["serve"])
    assert args.metrics == metrics_server.Address(path=Path("/run/p/metrics.sock"))
    monkeypatch.setenv("METRICS_ADDR", "")
    assert _parser().parse_args(["serve"]).metrics is None


def test_a_bad_metrics_flag_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        _parser().parse_args(["serve", "--metrics", "nowhere"])
    assert exc.value.code == 2
    assert "is not a metrics address" in capsys.readouterr().err


class _UnixHTTP(http.client.HTTPConnection):
    def __init__(self, path: Path) -> None:
        super().__init__("localhost", timeout=5)
        self._path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(str(self._path))


def _get(conn: http.client.HTTPConnection, path: str) -> tuple[int, str, str]:
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.getheader("Content-Type") or "", resp.read().decode()
    finally:
        conn.close()


@pytest.mark.asyncio
async def test_listener_on_a_unix_socket(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "metrics.sock"
    snap = FakeSnapshot({("4", "bound"): 3}, networks=1, endpoints=3)
    server = await metrics_server.start(metrics_server.Address(path=path), lambda: snap)
    try:
        assert path.stat().st_mode & 0o777 == 0o600
        metrics.released("4")
        status, ctype, body = await asyncio.to_thread(_get, _UnixHTTP(path), "/metrics")
        assert status == 200
        assert ctype.startswith("text/plain; version=")
        assert 'net_dhcp_leases{family="4",state="bound"} 3.0' in body
        assert 'net_dhcp_releases_total{family="4"} 1.0' in body
        status, _, _ = await asyncio.to_thread(_get, _UnixHTTP(path), "/other")
        assert status == 404
        # A second listener on the same path is refused, the first one is left alone.
        with pytest.raises(NetDhcpError, match="another process listens"):
            await metrics_server.start(metrics_server.Address(path=path), None)
        assert path.exists()
    finally:
        await server.close()
    assert metrics.active() is None
    assert not path.exists()


@pytest.mark.asyncio
async def test_listener_replaces_a_stale_socket_and_refuses_a_file(tmp_path: Path) -> None:
    stale = tmp_path / "stale.sock"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(stale))
    s.close()  # a socket file nobody listens on
    server = await metrics_server.start(metrics_server.Address(path=stale), None)
    await server.close()
    regular = tmp_path / "file"
    regular.write_text("keep me")
    with pytest.raises(NetDhcpError, match="not a socket"):
        await metrics_server.start(metrics_server.Address(path=regular), None)
    assert regular.read_text() == "keep me"
    assert metrics.active() is None


@pytest.mark.asyncio
async def test_listener_on_tcp_loopback_port_0() -> None:
    server = await metrics_server.start(metrics_server.Address(host="127.0.0.1", port=0),
                                        None)
    try:
        host, _, port = server.shown.rpartition(":")
        assert host == "127.0.0.1"
        assert int(port) > 0
        metrics.extended("6", rebind=True)
        status, _, body = await asyncio.to_thread(
            _get, http.client.HTTPConnection(host, int(port), timeout=5), "/metrics")
        assert status == 200
        assert 'net_dhcp_rebinds_total{family="6"} 1.0' in body
    finally:
        await server.close()
