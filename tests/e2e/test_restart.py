"""Issue 4 (part): the plugin killed with SIGKILL while containers run loses nothing."""

from __future__ import annotations

import os
import re

import pytest

from tests.conftest import DockerCleanup, LanFactory, PluginFactory
from tests.e2e.test_lifecycle import T1, T2, container_ip
from tests.e2e.test_plugin import our_veths
from tests.lab import random_mac, wait_until


@pytest.mark.parametrize("how", ["SIGKILL", "SIGTERM"])
def test_plugin_restart_with_running_containers_keeps_and_renews_every_lease(
        fresh_plugin: PluginFactory, lan: LanFactory, docker_cleanup: DockerCleanup,
        image: str, how: str) -> None:
    """NET_DHCP_KILL_N containers (default 5; the issue's full size is 20)."""
    n = int(os.environ.get("NET_DHCP_KILL_N", "5"))
    lab = lan(t1=T1, t2=T2)
    p = fresh_plugin()
    net = docker_cleanup.net_create(lab.bridge, driver=p.name)
    macs = [random_mac() for _ in range(n)]
    names = [docker_cleanup.run(image, "sleep", "600", network=net, mac=mac,
                                detach=True).name for mac in macs]
    ips = [container_ip(docker_cleanup, name) for name in names]
    assert len(set(ips)) == n
    since = lab.log_offset()
    if how == "SIGKILL":
        p.kill()
    else:
        p.stop()  # a clean shutdown must not release running containers' leases
        assert "DHCPRELEASE" not in lab.log(since)
    p.start()
    # Every container renews its own address (unicast REQUEST, ACK) before its T2,
    # with no new DISCOVER and no RELEASE: the restarted plugin adopted them all.
    for ip, mac in zip(ips, macs, strict=True):
        lab.wait_for_log(rf"DHCPACK\(\w+\) {re.escape(ip)} {mac}", timeout=T2 * 3,
                         since=since)
    after = lab.log(since)
    for mac in macs:
        assert not re.search(rf"DHCP(DISCOVER|RELEASE)\(\w+\) .*{mac}", after)
    assert [container_ip(docker_cleanup, name) for name in names] == ips
    assert len(our_veths(lab.bridge)) == n
    docker_cleanup.docker("rm", "-f", *names)
    wait_until(lambda: our_veths(lab.bridge) == [], 30, "every veth to be removed")
    for ip, mac in zip(ips, macs, strict=True):
        lab.wait_for_log(rf"DHCPRELEASE\(\w+\) {re.escape(ip)} {mac}", timeout=15,
                         since=since)


def test_corrupt_state_file_is_moved_aside_and_state_rebuilt_from_docker(
        fresh_plugin: PluginFactory, lan: LanFactory, docker_cleanup: DockerCleanup,
        image: str) -> None:
    lab = lan(t1=T1, t2=T2)
    p = fresh_plugin()
    net = docker_cleanup.net_create(lab.bridge, driver=p.name)
    mac = random_mac()
    c = docker_cleanup.run(image, "sleep", "600", network=net, mac=mac, detach=True)
    ip = container_ip(docker_cleanup, c.name)
    p.stop()
    db = p.state_dir / "net-dhcp.sqlite3"
    for extra in p.state_dir.glob("net-dhcp.sqlite3-*"):
        extra.unlink()
    db.write_bytes(b"\x00garbage, not SQLite\x00" * 64)
    since, mark = lab.log_offset(), p.log_offset()
    p.start()
    p.wait_for_log(r"state file .* is unreadable .* moved it to", timeout=10, since=mark)
    p.wait_for_log(r"recovered network", timeout=30, since=mark)
    p.wait_for_log(r"recovered endpoint", timeout=30, since=mark)
    # The running container's lease is re-bound (broadcast REQUEST, ACK), unchanged.
    lab.wait_for_log(rf"DHCPACK\(\w+\) {re.escape(ip)} {mac}", timeout=T2 * 3, since=since)
    assert container_ip(docker_cleanup, c.name) == ip
    # The recovered network takes new containers, with the options Docker kept.
    out = docker_cleanup.run(image, "ip", "-4", "addr", "show", "eth0", network=net).stdout
    assert lab.subnet.network_address.exploded.rsplit(".", 1)[0] in out
    # And the recovered endpoint is torn down and released like any other.
    docker_cleanup.docker("rm", "-f", c.name)
    wait_until(lambda: our_veths(lab.bridge) == [], 30, "every veth to be removed")
    lab.wait_for_log(rf"DHCPRELEASE\(\w+\) {re.escape(ip)} {mac}", timeout=15, since=since)
    assert list(p.state_dir.glob("net-dhcp.sqlite3.corrupt-*"))
