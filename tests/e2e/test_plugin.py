"""Issue 2 end to end: real dockerd, real `docker run`, dnsmasq as the LAN's DHCP server."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import DockerCleanup, LanFactory
from tests.lab import BUSYBOX, Plugin, random_mac, sh, wait_until

SHOW = "ip -4 addr show eth0; ip -4 route"


def addr_of(output: str) -> tuple[str, int]:
    m = re.search(r"inet (\d+\.\d+\.\d+\.\d+)/(\d+)", output)
    assert m, f"no IPv4 address in:\n{output}"
    return m.group(1), int(m.group(2))


def our_veths(bridge: str) -> list[str]:
    out = sh("ip", "-o", "link", "show", "master", bridge).stdout
    return [ln.split(":")[1].strip().split("@")[0] for ln in out.splitlines()
            if re.match(r"\d+: dh", ln)]


def test_container_gets_its_address_from_the_lan_server(
        lan: LanFactory, docker_cleanup: DockerCleanup, image: str) -> None:
    lab = lan()
    net = docker_cleanup.net_create(lab.bridge)
    mac = random_mac()
    c = docker_cleanup.run(image, "sleep", "300", network=net, mac=mac, detach=True)
    out = docker_cleanup.docker("exec", c.name, "sh", "-c", SHOW).stdout
    ip, prefix = addr_of(out)
    assert lab.in_range(ip)
    assert prefix == lab.prefixlen
    assert f"default via {lab.router} dev eth0" in out
    assert lab.wait_for_lease(mac=mac).ip == ip
    assert len(our_veths(lab.bridge)) == 1
    docker_cleanup.docker("rm", "-f", c.name)
    # DeleteEndpoint deletes the veth right after its reply (teardown.py).
    wait_until(lambda: our_veths(lab.bridge) == [], 10, "the container's veth to be deleted")


def test_reserved_mac_gets_reserved_address(
        lan: LanFactory, docker_cleanup: DockerCleanup, image: str) -> None:
    mac = random_mac()
    lab = lan()
    reserved = lab.address(42)
    lab.stop_dnsmasq()
    lab.start_dnsmasq(reservations={mac: reserved})
    net = docker_cleanup.net_create(lab.bridge)
    out = docker_cleanup.run(image, "sh", "-c", SHOW, network=net, mac=mac).stdout
    assert addr_of(out) == (reserved, lab.prefixlen)


def test_two_containers_get_different_addresses(
        lan: LanFactory, docker_cleanup: DockerCleanup, image: str) -> None:
    lab = lan(host_ip=True)
    net = docker_cleanup.net_create(lab.bridge)
    a = docker_cleanup.run(image, "sleep", "300", network=net, detach=True)
    b = docker_cleanup.run(image, "sleep", "300", network=net, detach=True)
    ip_a, _ = addr_of(docker_cleanup.docker("exec", a.name, "sh", "-c", SHOW).stdout)
    ip_b, _ = addr_of(docker_cleanup.docker("exec", b.name, "sh", "-c", SHOW).stdout)
    assert ip_a != ip_b
    assert lab.in_range(ip_a)
    assert lab.in_range(ip_b)
    # They are real hosts on the LAN: the host reaches them through the bridge.
    sh(BUSYBOX, "ping", "-c", "1", "-W", "2", ip_a)
    docker_cleanup.docker("exec", a.name, "ping", "-c", "1", "-W", "2", ip_b)
    assert len(our_veths(lab.bridge)) == 2


@pytest.mark.parametrize(("options", "ipam_null", "expected"), [
    ({}, True, "option bridge is required"),
    ({"bridge": "nd-nosuchbr"}, True, "bridge 'nd-nosuchbr' does not exist"),
    ({"bridge": "BR", "brigde": "x"}, True, "unknown option(s) brigde; valid options are"),
    ({"bridge": "BR", "lease_timeout": "soon"}, True, "is not a duration"),
    ({"bridge": "BR", "skip_routes": "perhaps"}, True, "is not a boolean"),
    ({"bridge": "BR"}, False, "--ipam-driver null"),
])
def test_invalid_options_are_refused_with_a_fix(
        lan: LanFactory, docker_cleanup: DockerCleanup, options: dict[str, str],
        ipam_null: bool, expected: str) -> None:
    lab = lan(dhcp=False)
    opts = {k: (lab.bridge if v == "BR" else v) for k, v in options.items()}
    name = docker_cleanup.track_network("nd-bad")
    res = docker_cleanup.docker("network", "create", "-d", docker_cleanup._default_driver(),
                                *(["--ipam-driver", "null"] if ipam_null else []),
                                *[a for k, v in opts.items() for a in ("-o", f"{k}={v}")],
                                name, check=False)
    assert res.returncode != 0, "the network was created"
    assert expected in res.stderr
    assert docker_cleanup.docker("network", "inspect", name, check=False).returncode != 0


def test_not_a_bridge_and_shared_bridge(lan: LanFactory, docker_cleanup: DockerCleanup) -> None:
    lab = lan(dhcp=False)
    veth = lab.server_veth  # a veth on the host, not a bridge
    err = docker_cleanup.docker("network", "create", "-d", docker_cleanup._default_driver(),
                                "--ipam-driver", "null", "-o", f"bridge={veth}",
                                docker_cleanup.track_network("nd-notbr"), check=False).stderr
    assert "not a bridge" in err
    docker_cleanup.net_create(lab.bridge)
    second = docker_cleanup.track_network("nd-second")
    err = docker_cleanup.docker("network", "create", "-d", docker_cleanup._default_driver(),
                                "--ipam-driver", "null", "-o", f"bridge={lab.bridge}", second,
                                check=False).stderr
    assert "already used by net-dhcp network" in err
    assert "ignore_conflicts=true" in err
    docker_cleanup.net_create(lab.bridge, name="nd-third", options={"ignore_conflicts": "true"})


def test_no_server_gives_an_explanatory_error_and_leaves_nothing(
        lan: LanFactory, docker_cleanup: DockerCleanup, image: str) -> None:
    lab = lan(dhcp=False)
    net = docker_cleanup.net_create(lab.bridge, options={"lease_timeout": "2s"})
    res = docker_cleanup.run(image, "true", network=net, check=False)
    assert res.returncode != 0
    assert "no DHCP lease within 2s on bridge" in res.stderr
    assert "no DHCP server answered" in res.stderr
    assert "lease_timeout" in res.stderr
    assert our_veths(lab.bridge) == []


def test_netfilter_eating_dhcp_is_named_with_the_fixing_rule(
        lan: LanFactory, docker_cleanup: DockerCleanup, image: str) -> None:
    policy = sh("iptables", "-S", "FORWARD").stdout.splitlines()[0]
    nf_file = Path("/proc/sys/net/bridge/bridge-nf-call-iptables")
    nf = nf_file.read_text().strip() if nf_file.exists() else "0"
    if policy != "-P FORWARD DROP" or nf != "1":
        pytest.skip(f"needs Docker's FORWARD DROP policy and bridge netfilter ({policy}, {nf})")
    lab = lan(forward_rule=False)
    net = docker_cleanup.net_create(lab.bridge, options={"lease_timeout": "2s"})
    res = docker_cleanup.run(image, "true", network=net, check=False)
    assert res.returncode != 0
    assert f"iptables -I FORWARD -i {lab.bridge} -o {lab.bridge} -j ACCEPT" in res.stderr


def test_routes_gateway_and_skip_routes(
        lan: LanFactory, docker_cleanup: DockerCleanup, image: str) -> None:
    lab = lan(host_ip=True)
    lab2 = lan(host_ip=True)
    added = [("10.254.77.0/24", "via", lab.server_ip, "dev", lab.bridge),
             ("169.254.0.0/16", "dev", lab.bridge, "metric", "1077"),
             ("169.254.0.0/16", "dev", lab2.bridge, "metric", "1078")]
    for route in added:
        sh("ip", "route", "add", *route)
    try:
        net = docker_cleanup.net_create(lab.bridge)
        out = docker_cleanup.run(image, "ip", "-4", "route", network=net).stdout
        assert f"10.254.77.0/24 via {lab.server_ip} dev eth0" in out
        assert "169.254.0.0/16 dev eth0" in out
        assert f"default via {lab.router}" in out
        # docker-net-dhcp #21: a second network whose bridge has the same link-local route
        # must not fail because the container already has that route.
        net2 = docker_cleanup.net_create(lab2.bridge)
        c = docker_cleanup.run(image, "sleep", "300", network=net, detach=True)
        docker_cleanup.docker("network", "connect", net2, c.name)
        two = docker_cleanup.docker("exec", c.name, "ip", "-4", "addr", "show", "eth1").stdout
        assert lab2.in_range(addr_of(two)[0])
        skip = docker_cleanup.net_create(lab.bridge, options={"skip_routes": "true",
                                                               "ignore_conflicts": "1"})
        out = docker_cleanup.run(image, "ip", "-4", "route", network=skip).stdout
        assert "10.254.77.0/24" not in out
        assert "169.254.0.0/16" not in out
        assert f"default via {lab.router}" in out
    finally:
        for route in added:
            sh("ip", "route", "del", *route, check=False)


def test_a_bridge_without_a_fixed_mac_is_warned_about(
        lan: LanFactory, docker_cleanup: DockerCleanup, plugin: Plugin) -> None:
    lab = lan()  # the lab's bridge takes its MAC from its ports
    mark = plugin.log_offset()
    docker_cleanup.net_create(lab.bridge)
    plugin.wait_for_log(rf"bridge {lab.bridge} has no fixed MAC address.*ip link set "
                        rf"{lab.bridge} address", timeout=5, since=mark)
    sh("ip", "link", "set", lab.bridge, "address", random_mac())
    mark = plugin.log_offset()
    docker_cleanup.net_create(lab.bridge, options={"ignore_conflicts": "true"})
    plugin.wait_for_log(r"network \w+ created on bridge", timeout=5, since=mark)
    assert "no fixed MAC" not in plugin.log(mark)


def test_plugin_restart_keeps_networks(
        lan: LanFactory, docker_cleanup: DockerCleanup, image: str, plugin: Plugin) -> None:
    lab = lan()
    net = docker_cleanup.net_create(lab.bridge)
    plugin.restart()
    out = docker_cleanup.run(image, "sh", "-c", SHOW, network=net).stdout
    assert lab.in_range(addr_of(out)[0])
