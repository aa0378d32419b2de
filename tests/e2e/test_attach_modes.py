"""Issue 11 item 1 end to end: macvlan and ipvlan networks (no host bridge) against a real
dockerd and dnsmasq.

The parent is one end of a veth pair of the test's own (`ndpa<hex>`, in the host, up) whose
other end (`ndpb<hex>`) is a port of the lab's bridge, so the parent is "the NIC on the LAN"
and dnsmasq the LAN's server. No real interface is ever a parent. ipvlan tests skip when the
kernel has no ipvlan (CONFIG_IPVLAN unset).
"""

from __future__ import annotations

import re
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import DockerCleanup, LanFactory, PluginFactory
from tests.e2e.test_lifecycle import T1, T2, container_ip
from tests.lab import DhcpLan, Plugin, random_mac, sh, wait_until

MODES = ["macvlan", "ipvlan"]


def kernel_has(kind: str) -> bool:
    """Whether this kernel makes links of `kind` (tried in a private namespace)."""
    res = subprocess.run(
        ["unshare", "-n", "sh", "-c", "ip link add p0 type veth peer name p1 && "
         f"ip link add link p0 name t0 type {kind}"], capture_output=True, check=False)
    return res.returncode == 0


def need(mode: str) -> None:
    if not kernel_has(mode):
        pytest.skip(f"this kernel has no {mode} (CONFIG_{mode.upper()} is not set)")


class Parent:
    """A parent NIC on the lab LAN: `name` in the host, its peer on the lab's bridge."""

    def __init__(self, lab: DhcpLan) -> None:
        tag = secrets.token_hex(3)
        self.name, self.peer = f"ndpa{tag}", f"ndpb{tag}"
        sh("ip", "link", "add", self.name, "type", "veth", "peer", "name", self.peer)
        Path(f"/proc/sys/net/ipv6/conf/{self.name}/accept_ra").write_text("0\n")
        sh("ip", "link", "set", self.peer, "master", lab.bridge, "up")
        sh("ip", "link", "set", self.name, "up")

    @property
    def mac(self) -> str:
        return Path(f"/sys/class/net/{self.name}/address").read_text().strip()

    def links(self) -> list[str]:
        """Host links whose lower device is the parent (our macvlan/ipvlan links)."""
        out = sh("ip", "-o", "link", "show").stdout
        return [m.group(1) for m in re.finditer(rf"^\d+: ([^@:]+)@{self.name}:", out, re.M)
                if m.group(1) != self.peer]

    def close(self) -> None:
        sh("ip", "link", "del", self.name, check=False)


@pytest.fixture
def parent(lan: LanFactory) -> Iterator[tuple[DhcpLan, Parent]]:
    lab = lan(t1=T1, t2=T2)
    p = Parent(lab)
    try:
        yield lab, p
    finally:
        p.close()


def net_on(dc: DockerCleanup, mode: str, parent: Parent, driver: str | None = None,
           **options: str) -> str:
    return dc.net_create(driver=driver, options={"mode": mode, "parent": parent.name,
                                                 **options})


def mac_in(dc: DockerCleanup, name: str) -> str:
    return dc.docker("exec", name, "cat", "/sys/class/net/eth0/address").stdout.strip()


def client_ids(lab: DhcpLan) -> dict[str, tuple[str, str]]:
    """ip -> (chaddr, client id) from dnsmasq's lease file."""
    out = {}
    for line in lab.lease_file.read_text().splitlines():
        parts = line.split()
        if parts[:1] == ["duid"]:
            break
        if len(parts) >= 5:
            out[parts[2]] = (parts[1].lower(), parts[4].lower())
    return out


@pytest.mark.parametrize("mode", MODES)
def test_lease_renewal_release_and_nothing_left_on_the_parent(
        parent: tuple[DhcpLan, Parent], docker_cleanup: DockerCleanup, image: str,
        mode: str) -> None:
    need(mode)
    lab, par = parent
    net = net_on(docker_cleanup, mode, par)
    c = docker_cleanup.run(image, "sleep", "300", network=net, detach=True)
    ip = container_ip(docker_cleanup, c.name)
    assert lab.in_range(ip)
    mac = mac_in(docker_cleanup, c.name)
    # macvlan: the container's own MAC; ipvlan: the parent's, for every container.
    assert (mac == par.mac) == (mode == "ipvlan")
    out = docker_cleanup.docker("exec", c.name, "ip", "-4", "route").stdout
    assert f"default via {lab.router} dev eth0" in out
    lab.wait_for_lease(ip=ip)
    assert lab.wait_for_lease(ip=ip).mac == mac
    assert par.links() == []  # the link is in the container, not in the host
    # Renewed (unicast REQUEST at T1, ACK) in the container, address kept.
    since = lab.log_offset()
    lab.wait_for_log(rf"DHCPREQUEST\(\w+\) {re.escape(ip)} {mac}", timeout=T1 * 4, since=since)
    lab.wait_for_log(rf"DHCPACK\(\w+\) {re.escape(ip)} {mac}", timeout=T1 * 4, since=since)
    docker_cleanup.docker("exec", c.name, "ping", "-c", "1", "-W", "2", lab.server_ip)
    assert container_ip(docker_cleanup, c.name) == ip
    # Released at stop; the server's lease file is empty; no link left on the parent.
    docker_cleanup.docker("stop", "-t", "1", c.name)
    lab.wait_for_log(rf"DHCPRELEASE\(\w+\) {re.escape(ip)} {mac}", timeout=15)
    wait_until(lambda: lab.leases() == [], 15, "dnsmasq's lease file to be empty")
    wait_until(lambda: par.links() == [], 10, f"no link left on {par.name}")


@pytest.mark.parametrize("mode", MODES)
def test_two_containers_are_two_clients(
        parent: tuple[DhcpLan, Parent], docker_cleanup: DockerCleanup, image: str,
        mode: str) -> None:
    need(mode)
    lab, par = parent
    net = net_on(docker_cleanup, mode, par)
    a, b = (docker_cleanup.run(image, "sleep", "300", network=net, detach=True).name
            for _ in range(2))
    ip_a, ip_b = container_ip(docker_cleanup, a), container_ip(docker_cleanup, b)
    assert ip_a != ip_b
    wait_until(lambda: {ip_a, ip_b} <= set(client_ids(lab)), 15, "both leases on file")
    seen = client_ids(lab)
    chaddrs = {seen[ip_a][0], seen[ip_b][0]}
    ids = {seen[ip_a][1], seen[ip_b][1]}
    assert len(ids) == 2  # different client identifiers ...
    if mode == "ipvlan":
        assert chaddrs == {par.mac}  # ... and the same chaddr: the parent's
    else:
        assert len(chaddrs) == 2
    # Each keeps renewing its own address.
    since = lab.log_offset()
    for ip in (ip_a, ip_b):
        lab.wait_for_log(rf"DHCPACK\(\w+\) {re.escape(ip)} ", timeout=T1 * 4, since=since)
    docker_cleanup.docker("rm", "-f", a, b)
    wait_until(lambda: lab.leases() == [], 15, "both leases released")
    wait_until(lambda: par.links() == [], 10, f"no link left on {par.name}")


@pytest.mark.parametrize("mode", MODES)
def test_plugin_restart_keeps_and_renews_the_lease(
        fresh_plugin: PluginFactory, parent: tuple[DhcpLan, Parent],
        docker_cleanup: DockerCleanup, image: str, mode: str) -> None:
    need(mode)
    lab, par = parent
    p = fresh_plugin()
    net = net_on(docker_cleanup, mode, par, driver=p.name)
    c = docker_cleanup.run(image, "sleep", "300", network=net, detach=True)
    ip = container_ip(docker_cleanup, c.name)
    mac = mac_in(docker_cleanup, c.name)
    since = lab.log_offset()
    p.kill()
    p.start()
    # The restarted plugin adopts it: a renewal of the same address, no DISCOVER, no RELEASE.
    lab.wait_for_log(rf"DHCPACK\(\w+\) {re.escape(ip)} {mac}", timeout=T2 * 3, since=since)
    assert not re.search(rf"DHCP(DISCOVER|RELEASE)\(\w+\) .*{mac}", lab.log(since))
    assert container_ip(docker_cleanup, c.name) == ip
    p.wait_for_log(rf"re-adopting {re.escape(ip)}", timeout=5)
    docker_cleanup.docker("rm", "-f", c.name)
    lab.wait_for_log(rf"DHCPRELEASE\(\w+\) {re.escape(ip)} {mac}", timeout=15, since=since)
    wait_until(lambda: par.links() == [], 10, f"no link left on {par.name}")


def test_macvlan_docker_restart_with_a_fixed_mac_keeps_its_address(
        parent: tuple[DhcpLan, Parent], docker_cleanup: DockerCleanup, image: str) -> None:
    """The Go fork's bug: `docker restart` on macvlan with --mac-address hit "address already
    in use" (the new link came up while the old one with that MAC was still there)."""
    lab, par = parent
    net = net_on(docker_cleanup, "macvlan", par)
    mac = random_mac()
    c = docker_cleanup.run(image, "sleep", "300", network=net, mac=mac, detach=True)
    ip = container_ip(docker_cleanup, c.name)
    assert mac_in(docker_cleanup, c.name) == mac
    for _ in range(3):
        docker_cleanup.docker("restart", "-t", "1", c.name)
        assert container_ip(docker_cleanup, c.name) == ip
    assert mac_in(docker_cleanup, c.name) == mac


def test_macvlan_lease_of_a_vanished_link_is_released_from_a_stand_in(
        parent: tuple[DhcpLan, Parent], docker_cleanup: DockerCleanup, plugin: Plugin) -> None:
    """An endpoint Docker never knew whose link died (as with its namespace): the sweep
    releases its lease from a short-lived macvlan with its MAC, then removes it."""
    lab, par = parent
    net = net_on(docker_cleanup, "macvlan", par)
    net_id = docker_cleanup.docker("network", "inspect", "-f", "{{.Id}}", net).stdout.strip()
    endpoint_id = secrets.token_hex(32)
    status, body = plugin.call("NetworkDriver.CreateEndpoint", {
        "NetworkID": net_id, "EndpointID": endpoint_id, "Interface": {}, "Options": {}})
    assert status == 200, body
    ip, mac = body["Interface"]["Address"].split("/")[0], body["Interface"]["MacAddress"]
    lab.wait_for_lease(mac=mac)
    assert par.links() == ["dm" + endpoint_id[:12]]
    sh("ip", "link", "del", "dm" + endpoint_id[:12])
    lab.wait_for_log(rf"DHCPRELEASE\(\w+\) {re.escape(ip)} {mac}", timeout=90)
    wait_until(lambda: all(lease.mac != mac for lease in lab.leases()), 15,
               "the server to drop the lease")
    plugin.wait_for_log(rf"endpoint {endpoint_id[:12]}: interface gone; released "
                        rf"{re.escape(ip)}/\d+ to \S+ from a stand-in macvlan link", timeout=5)
    wait_until(lambda: par.links() == [], 10, "the stand-in to be deleted")


def _create(dc: DockerCleanup, **options: str) -> subprocess.CompletedProcess[str]:
    name = dc.track_network(f"nd-net-{secrets.token_hex(3)}")
    args = [a for k, v in options.items() for a in ("-o", f"{k}={v}")]
    return dc.docker("network", "create", "-d", dc._default_driver(), "--ipam-driver", "null",
                     *args, name, check=False)


def test_parent_problems_are_refused_with_a_fix(
        parent: tuple[DhcpLan, Parent], docker_cleanup: DockerCleanup) -> None:
    lab, par = parent
    cases = [
        ({"mode": "macvlan"}, "option parent is required with mode=macvlan"),
        ({"mode": "macvlan", "parent": "ndnosuch0"}, "parent 'ndnosuch0' does not exist"),
        ({"mode": "macvlan", "parent": par.name, "bridge": lab.bridge},
         "option bridge is for mode=bridge"),
        ({"parent": par.name}, "option parent is for mode=macvlan or mode=ipvlan"),
        ({"mode": "macvlan", "parent": par.peer},
         f"parent '{par.peer}' is a port of another interface"),
    ]
    for options, message in cases:
        proc = _create(docker_cleanup, **options)
        assert proc.returncode != 0, options
        assert message in proc.stderr, (options, proc.stderr)
    sh("ip", "link", "set", par.name, "down")
    proc = _create(docker_cleanup, mode="macvlan", parent=par.name)
    assert proc.returncode != 0
    assert f"parent '{par.name}' is down: bring it up (ip link set {par.name} up)" in proc.stderr
    sh("ip", "link", "set", par.name, "up")
    assert _create(docker_cleanup, mode="macvlan", parent=par.name).returncode == 0
    proc = _create(docker_cleanup, mode="ipvlan", parent=par.name)
    assert proc.returncode != 0
    assert f"parent {par.name} is already used by net-dhcp network" in proc.stderr
    assert "add -o ignore_conflicts=true" in proc.stderr
    assert _create(docker_cleanup, mode="macvlan", parent=par.name,
                   ignore_conflicts="true").returncode == 0


def test_validate_dhcp_probes_from_a_link_on_the_parent(
        parent: tuple[DhcpLan, Parent], docker_cleanup: DockerCleanup, plugin: Plugin) -> None:
    lab, par = parent
    mark = plugin.log_offset()
    assert _create(docker_cleanup, mode="macvlan", parent=par.name, validate_dhcp="true",
                   lease_timeout="5s").returncode == 0
    log = plugin.wait_for_log(r"validate_dhcp: probe port (ndp\w+c) on parent "
                              rf"{par.name} \(macvlan\) sent \d DISCOVER\(s\) in [\d.]+s: "
                              rf"{re.escape(lab.server_ip)} \(", timeout=5, since=mark)
    assert log.group(1) not in sh("ip", "-o", "link").stdout  # the probe link is gone
    lab.stop_dnsmasq()
    proc = _create(docker_cleanup, mode="macvlan", parent=par.name, validate_dhcp="true",
                   lease_timeout="2s", ignore_conflicts="true")
    assert proc.returncode != 0
    assert (f"validate_dhcp: no DHCP lease within 2s on parent {par.name} (macvlan); sent "
            in proc.stderr), proc.stderr
    assert "iptables" not in proc.stderr
    assert par.links() == []


def test_sweep_removes_a_stray_macvlan_on_its_parent_only(
        lan: LanFactory, docker_cleanup: DockerCleanup, plugin: Plugin) -> None:
    """A dm<hex> macvlan on a network's parent that no endpoint owns (a crash between
    making it and recording it) goes at the second sweep that sees it; one on another
    parent, or of another kind, is not ours and stays."""
    lab = lan()
    ours, other = Parent(lab), Parent(lab)
    try:
        net_on(docker_cleanup, "macvlan", ours)
        stray, foreign = "dm" + secrets.token_hex(6), "dm" + secrets.token_hex(6)
        sh("ip", "link", "add", "link", ours.name, "name", stray, "type", "macvlan")
        sh("ip", "link", "add", "link", other.name, "name", foreign, "type", "macvlan")
        plugin.wait_for_log(rf"sweep: removing stray link {stray}", timeout=30)
        wait_until(lambda: ours.links() == [], 5, "the stray to be gone")
        assert other.links() == [foreign]
    finally:
        ours.close()
        other.close()
