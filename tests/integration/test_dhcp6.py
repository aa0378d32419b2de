"""IPv6 for real, without dockerd: the plugin (its own process) on a lab LAN where dnsmasq
serves DHCPv6 and sends router advertisements; dockerd's calls are played over the
plugin's socket (tests/dockerplay.py), which configures the container's IPv6 the way
Docker does (the address without DAD; the plugin adds the IPv6 default route itself).

dnsmasq cannot shorten DHCPv6 T1 below half its 2-minute minimum lease, so the one test
that waits for an IPv6 renewal waits up to RENEW6_WAIT_S.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.conftest import LanFactory, require_root
from tests.dockerplay import PlayedDocker, played_plugin
from tests.lab import DhcpLan, Plugin, random_mac, sh, wait_until

RENEW6_WAIT_S = 90.0
"""dnsmasq's T1 for a 2-minute lease is 60 s; a little over it, generously."""


@dataclass
class Rig:
    lab: DhcpLan
    plugin: Plugin
    docker: PlayedDocker


@pytest.fixture
def rig(lan: LanFactory) -> Iterator[Rig]:
    require_root()
    lab = lan(ipv6=True, t1=4, t2=8)
    with played_plugin() as (plugin, docker):
        yield Rig(lab, plugin, docker)


def default_routes6(netns: str) -> str:
    """`ip -6 route show default` in the played container's namespace."""
    return sh("ip", "-n", netns, "-6", "route", "show", "default").stdout


def duid_of(mac: str) -> str:
    """dnsmasq's spelling of our DUID-LL for `mac`."""
    return "00:03:00:01:" + mac.lower()


def test_the_plugin_adds_the_ipv6_default_route_and_leaves_one_that_is_there(
        rig: Rig) -> None:
    """Join returns no GatewayIPv6 (route6.py says why). When ProgramExternalConnectivity
    after the hand-over (Docker 28's order) is answered, the default route via the RA's
    router is there. Sent before the interface moves (Docker <= 27's order) it does
    nothing and says nothing wrong; the keeper adds the route as the interface comes up.
    A container that has an IPv6 default route already (here via another interface, as
    another network or the kernel's RA handling gives one) keeps it as it is, and gets no
    second one."""
    lab, docker, plugin = rig.lab, rig.docker, rig.plugin
    net = docker.create_network(lab.bridge, ipv6="true")
    offset = plugin.log_offset()
    c = docker.start(net, program="after")
    shown = default_routes6(c.netns)
    assert c.gateway6 is None
    assert f"default via {lab.server_link_local} dev eth0" in shown, shown

    early = docker.start(net, program="before")
    wait_until(lambda: f"default via {lab.server_link_local} dev eth0"
               in default_routes6(early.netns), 10, "the keeper to add the IPv6 default route")
    assert "could not add the IPv6 default route" not in plugin.log(since=offset)

    other = docker.create(net)
    sh("ip", "-n", other.netns, "link", "add", "d0", "type", "veth", "peer", "name", "d1")
    for end in ("d0", "d1"):  # the other end up too, for d0's carrier
        sh("ip", "-n", other.netns, "link", "set", end, "up")
    sh("ip", "-n", other.netns, "-6", "route", "add", "default", "dev", "d0")
    docker.join(other, program="after")
    assert plugin.wait_for_log(rf"endpoint {other.endpoint_id[:12]}: IPv6 default route "
                                   r"via \S+ already there", timeout=10)
    shown = default_routes6(other.netns)
    assert shown.split() == ["default", "dev", "d0", "metric", "1024", "pref", "medium"], shown


def test_dual_stack_container_keeps_both_families_through_a_plugin_crash(rig: Rig) -> None:
    """One container on an ipv6=true network: an IPv4 and an IPv6 lease from dnsmasq, the
    /64 and the router from the RA, reachable over IPv6; the plugin is SIGKILLed and
    restarted, and both leases go on being renewed; stop releases both."""
    lab, plugin, docker = rig.lab, rig.plugin, rig.docker
    net = docker.create_network(lab.bridge, ipv6="true")
    started = time.monotonic()
    c = docker.start(net)
    took = time.monotonic() - started
    assert lab.in_range(c.address.split("/")[0])
    ip6, _, plen = c.address6.partition("/")
    assert lab.in_range6(ip6), c.address6
    assert plen == "64", f"the RA's on-link prefix gives the length: {c.address6}"
    assert c.gateway6 is None, "Docker must not add the IPv6 gateway (Driver.join says why)"
    wait_until(lambda: f"default via {lab.server_link_local} dev eth0"
               in default_routes6(c.netns), 10,
               "the keeper to add the IPv6 default route via the RA's router")
    assert docker.eth0_addresses(c, 6) == [c.address6]
    lease6 = lab.wait_for_lease6(ip=ip6)
    assert lease6.duid == duid_of(c.mac), lease6
    assert lab.server_ip6 is not None
    sh("ip", "netns", "exec", c.netns, "busybox", "ping", "-6", "-c", "1", "-W", "3",
       lab.server_ip6)
    print(f"dual-stack start (CreateEndpoint + Join + hand-over): {took * 1000:.0f} ms")

    plugin.kill()
    offset, plugin_offset = lab.log_offset(), plugin.log_offset()
    plugin.start()
    plugin.wait_for_log(rf"endpoint {c.endpoint_id[:12]}: keeping {re.escape(ip6)}",
                        timeout=30, since=plugin_offset)
    # IPv4 renews every 4 s here; IPv6 at dnsmasq's T1 (60 s after the lease began).
    lab.wait_for_log(rf"DHCPACK\(\S+\) {re.escape(c.address.split('/')[0])} ", timeout=30,
                     since=offset)
    plugin.wait_for_log(rf"IPv6 lease on {re.escape(ip6)} extended", timeout=RENEW6_WAIT_S,
                        since=plugin_offset)
    lab.wait_for_log(rf"DHCPRENEW\(\S+\) {re.escape(duid_of(c.mac))}", timeout=5,
                     since=offset)
    assert docker.eth0_addresses(c, 6) == [c.address6]

    offset = lab.log_offset()
    docker.stop(c)
    lab.wait_for_log(rf"DHCPRELEASE\(\S+\) {re.escape(duid_of(c.mac))}", timeout=10,
                     since=offset)
    wait_until(lambda: all(le.ip != ip6 for le in lab.leases6()), 10,
               "dnsmasq to forget the released IPv6 lease")


def test_reserved_mac_keeps_its_reserved_ipv6_address(lan: LanFactory) -> None:
    """dnsmasq's --dhcp-host=<mac>,[addr] matches the MAC the Solicit comes from: the
    container's, since it is sent from the container's own interface."""
    require_root()
    mac = random_mac()
    probe = lan(ipv6=True)
    reserved4, reserved6 = probe.address(42), probe.address6(0x42)
    probe.stop_dnsmasq()
    probe.start_dnsmasq(reservations={mac: reserved4}, reservations6={mac: reserved6})
    with played_plugin() as (plugin, docker):
        net = docker.create_network(probe.bridge, ipv6="true")
        c = docker.create(net, mac=mac)
        assert c.address == f"{reserved4}/{probe.prefixlen}"
        assert c.address6 == f"{reserved6}/64"


def test_no_dhcpv6_server_fails_the_start_and_gives_the_ipv4_lease_back(
        lan: LanFactory) -> None:
    """ipv6=true on a LAN without DHCPv6: the start fails within lease_timeout, saying so
    and how to fix it; the IPv4 lease obtained meanwhile is released, nothing is left."""
    require_root()
    lab = lan()  # IPv4 only
    with played_plugin() as (plugin, docker):
        net = docker.create_network(lab.bridge, ipv6="true", lease_timeout="3s")
        endpoint_id, mac = secrets.token_hex(32), random_mac()
        started = time.monotonic()
        status, body = plugin.call("NetworkDriver.CreateEndpoint", {
            "NetworkID": net, "EndpointID": endpoint_id,
            "Interface": {"MacAddress": mac}, "Options": {}}, timeout=30)
        took = time.monotonic() - started
    assert status == 500, (status, body)
    err = body["Err"]
    assert "no DHCPv6 lease within 3s" in err, err
    assert "Solicit" in err, err
    assert "dnsmasq: --dhcp-range=<prefix>::100" in err, err
    assert "without -o ipv6=true" in err, err
    assert took < 3 + 4, took
    assert sh("ip", "link", "show", f"dh{endpoint_id[:12]}", check=False).returncode != 0
    lab.wait_for_log(rf"DHCPRELEASE\(\S+\) \S+ {mac}", timeout=10)


def test_ipv6_only_network_is_refused_with_the_way_out(lan: LanFactory) -> None:
    require_root()
    lab = lan()
    with Plugin() as plugin:
        plugin.start()
        status, body = plugin.call("NetworkDriver.CreateNetwork", {
            "NetworkID": secrets.token_hex(32),
            "Options": {"com.docker.network.enable_ipv4": False,
                        "com.docker.network.enable_ipv6": True,
                        "com.docker.network.generic": {"bridge": lab.bridge}},
            "IPv4Data": [], "IPv6Data": [{"AddressSpace": "null", "Pool": "::/0"}]})
        # Docker 28's --ipv6 with its own IPAM pool: refused too, naming the fix.
        status2, body2 = plugin.call("NetworkDriver.CreateNetwork", {
            "NetworkID": secrets.token_hex(32),
            "Options": {"com.docker.network.enable_ipv6": True,
                        "com.docker.network.generic": {"bridge": lab.bridge}},
            "IPv4Data": [{"AddressSpace": "null", "Pool": "0.0.0.0/0"}],
            "IPv6Data": [{"AddressSpace": "LocalDefault", "Pool": "fd00:dead::/64"}]})
        # And with null IPAM for both, --ipv6 alone asks for IPv6 (Docker 28+).
        net_id = secrets.token_hex(32)
        status3, body3 = plugin.call("NetworkDriver.CreateNetwork", {
            "NetworkID": net_id,
            "Options": {"com.docker.network.enable_ipv6": True,
                        "com.docker.network.generic": {"bridge": lab.bridge}},
            "IPv4Data": [{"AddressSpace": "null", "Pool": "0.0.0.0/0"}],
            "IPv6Data": [{"AddressSpace": "null", "Pool": "::/0"}]})
        plugin.wait_for_log(rf"network {net_id[:12]} created on bridge .*ipv6=True",
                            timeout=5)
    assert status == 400, (status, body)
    assert "IPv6-only networks (--ipv4=false) are not supported" in body["Err"]
    assert status2 == 400, (status2, body2)
    assert "null IPAM driver for IPv6 too" in body2["Err"]
    assert (status3, body3) == (200, {})


def test_an_ipv6_address_in_use_is_declined_and_the_start_says_so(lan: LanFactory) -> None:
    """The server's only IPv6 address is already used by another host on the LAN: the
    plugin's duplicate address detection sees its advertisement, declines the address
    (dnsmasq logs the Decline) and the start fails naming the cause."""
    require_root()
    lab = lan(ipv6=True)
    taken = lab.address6(0x150)
    lab.range6_start = lab.range6_end = taken
    lab.stop_dnsmasq()
    lab.start_dnsmasq()
    holder = lab.add_host()
    sh("ip", "-n", holder.netns, "-6", "addr", "add", f"{taken}/64", "dev", holder.ifname,
       "nodad")
    with played_plugin() as (plugin, docker):
        net = docker.create_network(lab.bridge, ipv6="true", lease_timeout="3s")
        status, body = plugin.call("NetworkDriver.CreateEndpoint", {
            "NetworkID": net, "EndpointID": secrets.token_hex(32), "Interface": {},
            "Options": {}}, timeout=30)
    assert status == 500, (status, body)
    assert f"declined {taken}" in body["Err"], body
    assert "already used by another host on the LAN" in body["Err"], body
    lab.wait_for_log(r"DHCPDECLINE\(", timeout=5)
