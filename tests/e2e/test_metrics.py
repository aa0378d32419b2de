"""The metrics listener against a real dockerd, dnsmasq and the plugin: the counters move
as a container starts, renews and stops, and the lease gauge follows it."""

from __future__ import annotations

import http.client
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import DockerCleanup, LanFactory, PluginFactory
from tests.lab import wait_until

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


class _UnixHTTP(http.client.HTTPConnection):
    def __init__(self, path: Path) -> None:
        super().__init__("localhost", timeout=5)
        self._path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(5)
        self.sock.connect(str(self._path))


def scrape(where: Path | int) -> Samples:
    """GET /metrics from a unix socket (a path) or 127.0.0.1:<port>; the samples by name
    and labels."""
    conn = (_UnixHTTP(where) if isinstance(where, Path)
            else http.client.HTTPConnection("127.0.0.1", where, timeout=5))
    try:
        conn.request("GET", "/metrics")
        resp = conn.getresponse()
        body = resp.read().decode()
        assert resp.status == 200, body
        assert (resp.getheader("Content-Type") or "").startswith("text/plain; version=")
    finally:
        conn.close()
    out: Samples = {}
    for fam in text_string_to_metric_families(body):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def get(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def answers(where: Path | int) -> bool:
    try:
        scrape(where)
    except OSError:
        return False
    return True


@pytest.fixture
def metrics_socket() -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="nd-metrics-"))
    try:
        yield folder / "metrics.sock"
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_metrics_follow_a_container_start_renewal_and_stop(
        fresh_plugin: PluginFactory, lan: LanFactory, docker_cleanup: DockerCleanup,
        image: str, metrics_socket: Path) -> None:
    plugin = fresh_plugin("--metrics", f"unix:{metrics_socket}")
    wait_until(lambda: answers(metrics_socket), 10, "the metrics socket to answer",
               detail=plugin.diagnostics)
    assert metrics_socket.stat().st_mode & 0o777 == 0o600
    lab = lan(t1=3, t2=100)  # a renewal every 3 s
    net = docker_cleanup.net_create(lab.bridge, driver=plugin.name)
    before = scrape(metrics_socket)
    assert get(before, "net_dhcp_networks") == 1
    assert get(before, "net_dhcp_leases", family="4", state="bound") == 0
    assert get(before, "net_dhcp_acquisitions_total", family="4", origin="create") == 0

    c = docker_cleanup.run(image, "sleep", "300", network=net, detach=True,
                           args=["--hostname", "metrics1"])
    after_start = scrape(metrics_socket)
    # CreateEndpoint answered before `docker run -d` returned: counted already.
    assert get(after_start, "net_dhcp_acquisitions_total", family="4", origin="create") == 1
    assert get(after_start, "net_dhcp_acquisition_seconds_count", family="4",
               origin="create") == 1
    assert 0 < get(after_start, "net_dhcp_acquisition_seconds_sum", family="4",
                   origin="create") < 10
    assert get(after_start, "net_dhcp_failures_total", family="4", origin="create") == 0
    assert get(after_start, "net_dhcp_endpoints") == 1
    # The keeper attaches inside the container, then is BOUND.
    wait_until(lambda: get(scrape(metrics_socket), "net_dhcp_leases", family="4",
                           state="bound") == 1, 20, "one bound IPv4 lease in the gauge",
               detail=plugin.diagnostics)
    # The host name the plugin learns from Docker goes to the server in a REQUEST at once,
    # and T1 comes every 3 s: renewals by the lease's server.
    wait_until(lambda: get(scrape(metrics_socket), "net_dhcp_renewals_total",
                           family="4") >= 2, 30, "renewals counted",
               detail=plugin.diagnostics)
    assert get(scrape(metrics_socket), "net_dhcp_rebinds_total", family="4") == 0
    assert get(scrape(metrics_socket), "net_dhcp_releases_total", family="4") == 0

    docker_cleanup.docker("rm", "-f", c.name)
    wait_until(lambda: get(scrape(metrics_socket), "net_dhcp_releases_total",
                           family="4") == 1, 20, "the release counted",
               detail=plugin.diagnostics)
    wait_until(lambda: get(scrape(metrics_socket), "net_dhcp_endpoints") == 0, 20,
               "the endpoint gone from the gauges", detail=plugin.diagnostics)
    end = scrape(metrics_socket)
    assert sum(v for (name, _), v in end.items() if name == "net_dhcp_leases") == 0
    assert get(end, "net_dhcp_acquisitions_total", family="4", origin="create") == 1
    assert get(end, "net_dhcp_keeper_restarts_total", family="4") == 0

    plugin.stop()
    assert not metrics_socket.exists()  # removed at shutdown


def test_metrics_count_both_families(
        fresh_plugin: PluginFactory, lan: LanFactory, docker_cleanup: DockerCleanup,
        image: str, metrics_socket: Path) -> None:
    plugin = fresh_plugin("--metrics", str(metrics_socket))
    wait_until(lambda: answers(metrics_socket), 10, "the metrics socket to answer",
               detail=plugin.diagnostics)
    lab = lan(ipv6=True)
    net = docker_cleanup.net_create(lab.bridge, driver=plugin.name, options={"ipv6": "true"})
    c = docker_cleanup.run(image, "sleep", "300", network=net, detach=True)
    started = scrape(metrics_socket)
    for family in ("4", "6"):
        assert get(started, "net_dhcp_acquisitions_total", family=family, origin="create") == 1
        assert get(started, "net_dhcp_acquisition_seconds_count", family=family,
                   origin="create") == 1
    wait_until(lambda: all(get(scrape(metrics_socket), "net_dhcp_leases", family=f,
                               state="bound") == 1 for f in ("4", "6")),
               20, "a bound lease of each family", detail=plugin.diagnostics)
    docker_cleanup.docker("rm", "-f", c.name)
    wait_until(lambda: all(get(scrape(metrics_socket), "net_dhcp_releases_total",
                               family=f) == 1 for f in ("4", "6")),
               20, "both releases counted", detail=plugin.diagnostics)
