"""macvlan and ipvlan networks against dnsmasq, no dockerd: the real plugin process, dockerd's
calls played over its socket (tests/dockerplay.py), containers as network namespaces.

The parent is one end of a veth pair of the test's own whose other end is on the lab's
bridge (tests/e2e/test_attach_modes.py's Parent); ipvlan cases skip on a kernel without it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from net_dhcp.driver import generated_mac
from tests.conftest import LanFactory, require_root
from tests.dockerplay import PlayedDocker, PlayError, played_plugin
from tests.e2e.test_attach_modes import MODES, Parent, client_ids, need
from tests.lab import DhcpLan, Plugin, random_mac, sh, wait_until


@dataclass
class Rig:
    lab: DhcpLan
    parent: Parent
    plugin: Plugin
    docker: PlayedDocker


@pytest.fixture
def rig(lan: LanFactory) -> Iterator[Rig]:
    require_root()
    lab = lan(t1=2, t2=4)
    parent = Parent(lab)
    try:
        with played_plugin() as (plugin, docker):
            yield Rig(lab, parent, plugin, docker)
    finally:
        parent.close()


def link_kind(netns: str) -> str:
    return sh("ip", "-n", netns, "-d", "-o", "link", "show", "eth0").stdout


@pytest.mark.parametrize("mode", MODES)
def test_played_container_lease_renewal_release(rig: Rig, mode: str) -> None:
    need(mode)
    net = rig.docker.create_network("", mode=mode, parent=rig.parent.name)
    a = rig.docker.start(net)
    b = rig.docker.start(net)
    assert a.address != b.address
    for c in (a, b):
        assert rig.docker.eth0_addresses(c) == [c.address]
        details = link_kind(c.netns)
        assert re.search(rf"\b{mode}\b.*mode (bridge|l2)", details), details
    ips = [c.address.split("/")[0] for c in (a, b)]
    wait_until(lambda: set(ips) <= set(client_ids(rig.lab)), 10, "both leases on file")
    seen = client_ids(rig.lab)
    if mode == "ipvlan":
        assert a.mac == b.mac == ""  # Docker is given no MAC: it would fail setting it
        assert {seen[ip][0] for ip in ips} == {rig.parent.mac}
    else:
        assert [seen[ip][0] for ip in ips] == [a.mac, b.mac]
    assert len({seen[ip][1] for ip in ips}) == 2
    since = rig.lab.log_offset()
    for ip in ips:
        rig.lab.wait_for_log(rf"DHCPACK\(\w+\) {re.escape(ip)} ", timeout=10, since=since)
    assert rig.parent.links() == []
    for c in (a, b):
        rig.docker.stop(c)
    for ip in ips:
        rig.lab.wait_for_log(rf"DHCPRELEASE\(\w+\) {re.escape(ip)} ", timeout=10, since=since)
    wait_until(lambda: rig.lab.leases() == [], 10, "the lease file to be empty")
    wait_until(lambda: rig.parent.links() == [], 10, "no link left on the parent")


def test_macvlan_release_of_a_gone_link_goes_from_a_stand_in(rig: Rig) -> None:
    net = rig.docker.create_network("", mode="macvlan", parent=rig.parent.name)
    mac = random_mac()
    c = rig.docker.create(net, mac=mac)
    name = "dm" + c.endpoint_id[:12]
    assert rig.parent.links() == [name]
    ip = c.address.split("/")[0]
    rig.lab.wait_for_lease(mac=mac)
    sh("ip", "link", "del", name)  # gone, as with a namespace that died
    since = rig.plugin.log_offset()
    rig.docker.call("DeleteEndpoint", c.ids())
    rig.docker.forget(c)
    rig.lab.wait_for_log(rf"DHCPRELEASE\(\w+\) {re.escape(ip)} {mac}", timeout=10)
    rig.plugin.wait_for_log(rf"interface gone; released {re.escape(ip)}/\d+ .* from a "
                            rf"stand-in macvlan link on {rig.parent.name}", timeout=5,
                            since=since)
    wait_until(lambda: rig.lab.leases() == [], 10, "the lease file to be empty")
    wait_until(lambda: rig.parent.links() == [], 10, "the stand-in to be deleted")


def test_same_mac_twice_on_a_parent_is_refused_clearly(rig: Rig) -> None:
    net = rig.docker.create_network("", mode="macvlan", parent=rig.parent.name)
    mac = random_mac()
    rig.docker.start(net, mac=mac)
    with pytest.raises(PlayError, match=rf"MAC {mac} is already used by another macvlan link "
                                        rf"on parent {rig.parent.name}"):
        rig.docker.create(net, mac=mac)
    assert len(rig.parent.links()) == 0  # the failed one left nothing; the live one is inside


@pytest.mark.parametrize("mode", MODES)
def test_dhcpv6_client_is_the_endpoint_not_the_shared_mac(lan: LanFactory, mode: str) -> None:
    """An ipv6=true network on a parent: the IPv6 lease is obtained on the link in the host,
    kept in the container, and released at stop; its DUID-LL is made from the endpoint's MAC
    (on ipvlan the generated one, never the parent's, which every container carries)."""
    require_root()
    need(mode)
    lab = lan(ipv6=True, t1=4, t2=8)
    parent = Parent(lab)
    try:
        with played_plugin() as (_plugin, docker):
            net = docker.create_network("", mode=mode, parent=parent.name, ipv6="true")
            c = docker.start(net)
            ip6 = c.address6.partition("/")[0]
            assert lab.in_range6(ip6), c.address6
            assert docker.eth0_addresses(c, 6) == [c.address6]
            identity = c.mac if mode == "macvlan" else generated_mac(c.endpoint_id)
            duid = "00:03:00:01:" + identity
            assert lab.wait_for_lease6(ip=ip6).duid == duid
            assert duid != "00:03:00:01:" + parent.mac
            offset = lab.log_offset()
            docker.stop(c)
            lab.wait_for_log(rf"DHCPRELEASE\(\S+\) {re.escape(duid)}", timeout=10,
                             since=offset)
            wait_until(lambda: all(le.ip != ip6 for le in lab.leases6()), 10,
                       "dnsmasq to forget the released IPv6 lease")
            wait_until(lambda: parent.links() == [], 10, "no link left on the parent")
    finally:
        parent.close()
