"""Faults on a real host, each with a defined outcome, a clear log line, and the other
network unaffected: the DHCP server killed mid-exchange, the bridge deleted under running
containers, a container's namespace vanishing while its lease is kept.

The plugin runs as a process of its own (`net-dhcp serve`) and dockerd's calls are played
over its socket (tests/dockerplay.py), so the kernel side is real: veths, namespaces,
dnsmasq, the bridge. Every test has a second LAN with a running container whose renewals
(dnsmasq's DHCPACKs for its MAC) must go on while the first LAN is broken. The Docker
socket the plugin is given does not exist (see tests/e2e/test_docker_socket_fault.py for
that fault itself).
"""

from __future__ import annotations

import json
import re
import secrets
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest

from net_dhcp import netlink
from tests.conftest import LanFactory, require_root
from tests.dockerplay import Container, PlayedDocker, played_plugin
from tests.lab import DhcpLan, Plugin, random_mac, sh, wait_until

SWEEP_S = 1
"""The played plugin's sweep interval (tests.dockerplay.FAST_ARGS)."""
RENEWALS = 2
"""Renewals the unaffected network's container must get while the other LAN is broken."""


@dataclass
class Rig:
    """A plugin, two LANs with a network each, and a running container on the second."""

    plugin: Plugin
    docker: PlayedDocker
    a: DhcpLan
    b: DhcpLan
    net_a: str
    net_b: str
    on_b: Container

    def acks(self, lab: DhcpLan, c: Container, since: int = 0) -> int:
        """DHCPACKs dnsmasq has sent for `c`'s MAC (from byte offset `since` of its log)."""
        return len(re.findall(rf"DHCPACK\(\S+\) \S+ {re.escape(c.mac)}", lab.log(since)))

    def b_keeps_renewing(self, since: int) -> None:
        """The unaffected network's container renewed RENEWALS times since `since`."""
        wait_until(lambda: self.acks(self.b, self.on_b, since) >= RENEWALS, 30,
                   f"{RENEWALS} renewals on the unaffected network",
                   detail=lambda: self.plugin.diagnostics())
        assert self.docker.eth0_addresses(self.on_b) == [self.on_b.address]


@pytest.fixture
def rig(lan: LanFactory) -> Iterator[Rig]:
    require_root()
    a, b = lan(t1=2, t2=4), lan(t1=2, t2=4)
    with played_plugin() as (plugin, docker):
        net_a = docker.create_network(a.bridge, lease_timeout="6s")
        net_b = docker.create_network(b.bridge)
        yield Rig(plugin, docker, a, b, net_a, net_b, docker.start(net_b))


def _veth_names(endpoint_id: str) -> list[str]:
    tag = endpoint_id[:12]
    return [n for n in (f"dh{tag}", f"dc{tag}")
            if sh("ip", "link", "show", n, check=False).returncode == 0]


def _master(ifname: str) -> str | None:
    info = json.loads(sh("ip", "-j", "link", "show", ifname).stdout)
    master = info[0].get("master")
    return str(master) if master else None


# --------------------------------------------------------------------------- server killed


def test_dhcp_server_killed_mid_exchange(rig: Rig) -> None:
    """dnsmasq offers, then dies before it acknowledges: the container start fails within
    the network's lease_timeout, saying an offer came and no acknowledgement, with nothing
    left behind; the other network renews throughout; once the server is back, a start
    works."""
    a = rig.a
    # Let the OFFER through but drop the REQUEST (option 53 = 3, first option: ours always
    # is), so the server is killed exactly between its offer and its acknowledgement.
    drop = ["INPUT", "-p", "udp", "--dport", "67", "-m", "u32", "--u32",
            "0>>22&0x3C@248>>8=0x350103", "-j", "DROP"]
    sh("ip", "netns", "exec", a.netns, "iptables", "-w", "-I", *drop)
    endpoint_id = secrets.token_hex(32)
    try:
        offset_a, offset_b = a.log_offset(), rig.b.log_offset()
        with ThreadPoolExecutor(1) as pool:
            started = time.monotonic()
            create = pool.submit(rig.plugin.call, "NetworkDriver.CreateEndpoint",
                                 {"NetworkID": rig.net_a, "EndpointID": endpoint_id,
                                  "Interface": {}, "Options": {}}, 60)
            a.wait_for_log(r"DHCPOFFER\(", timeout=10, since=offset_a)
            a.kill_dnsmasq()
            status, body = create.result(60)
            took = time.monotonic() - started
    finally:
        sh("ip", "netns", "exec", a.netns, "iptables", "-w", "-D", *drop, check=False)

    assert status == 500, (status, body)
    err = body["Err"]
    assert "no DHCP lease within 6s" in err, err
    assert "an offer came (1) but no acknowledgement" in err, err
    assert "is it still running?" in err, err
    assert took < 6 + 5, f"CreateEndpoint took {took:.1f}s with lease_timeout=6s"
    assert _veth_names(endpoint_id) == [], "the failed endpoint's veth is still there"
    rig.plugin.wait_for_log(rf"endpoint {endpoint_id[:12]}.*no DHCP lease within 6s|"
                            rf"<- NetworkDriver.CreateEndpoint 500", timeout=5)
    status, body = rig.plugin.call("NetworkDriver.EndpointOperInfo",
                                   {"NetworkID": rig.net_a, "EndpointID": endpoint_id})
    assert (status, body) == (200, {"Value": {}}), "the failed endpoint is remembered"
    rig.b_keeps_renewing(offset_b)

    a.start_dnsmasq()
    c = rig.docker.start(rig.net_a)
    assert a.in_range(c.address.split("/")[0])
    rig.docker.stop(c)


# --------------------------------------------------------------------------- bridge deleted


def test_bridge_deleted_under_running_containers(rig: Rig) -> None:
    """The bridge goes: the plugin says so (ERROR, naming the fix), its containers keep
    their addresses, a new container is refused with a message naming the bridge, and the
    other network renews. The bridge comes back: the containers' veths are put back on it
    and their renewals resume."""
    a, plugin = rig.a, rig.plugin
    on_a = rig.docker.start(rig.net_a)
    host_if = f"dh{on_a.endpoint_id[:12]}"
    assert _master(host_if) == a.bridge
    offset, offset_b = plugin.log_offset(), rig.b.log_offset()

    sh("ip", "link", "del", a.bridge)
    plugin.wait_for_log(rf"ERROR .*network {rig.net_a[:12]}: bridge {a.bridge} is gone: its "
                        r"1 container\(s\) cannot reach the DHCP server.*Create the bridge "
                        "again", timeout=10 * SWEEP_S, since=offset)
    status, body = plugin.call("NetworkDriver.CreateEndpoint",
                               {"NetworkID": rig.net_a, "EndpointID": secrets.token_hex(32),
                                "Interface": {}, "Options": {}})
    assert status == 400, (status, body)
    assert f"bridge '{a.bridge}' does not exist" in body["Err"], body
    rig.b_keeps_renewing(offset_b)
    assert rig.docker.eth0_addresses(on_a) == [on_a.address], "the address went with the bridge"

    # What an administrator (or ifupdown) does: the bridge again, with its LAN port.
    offset_a = a.log_offset()
    sh("ip", "link", "add", a.bridge, "type", "bridge")
    sh("ip", "link", "set", a.server_veth, "master", a.bridge)
    sh("ip", "link", "set", a.bridge, "up")
    plugin.wait_for_log(rf"network {rig.net_a[:12]}: bridge {a.bridge} is there again; put "
                        rf"back on it: {host_if}", timeout=10 * SWEEP_S, since=offset)
    assert _master(host_if) == a.bridge
    wait_until(lambda: rig.acks(a, on_a, offset_a) >= 1, 30,
               "a renewal of the container on the re-made bridge",
               detail=lambda: plugin.diagnostics())
    assert rig.docker.eth0_addresses(on_a) == [on_a.address]
    rig.docker.stop(on_a)


# --------------------------------------------------------------------------- netns vanishes


def test_namespace_vanishing_while_its_lease_is_kept(rig: Rig) -> None:
    """The container's namespace is deleted and no Leave comes (Docker lost the call):
    within a sweep interval the plugin says so, releases the lease (dnsmasq forgets it)
    and closes its sockets, so the kernel frees the namespace and the veth pair; the
    endpoint's later Leave and DeleteEndpoint still succeed; the other network renews."""
    a, plugin = rig.a, rig.plugin
    on_a = rig.docker.start(rig.net_a)
    plugin.wait_for_log(rf"endpoint {on_a.endpoint_id[:12]}: keeping", timeout=10)
    wait_until(lambda: any(le.mac == on_a.mac for le in a.leases()), 10, "dnsmasq's lease")
    offset, offset_b = plugin.log_offset(), rig.b.log_offset()

    rig.docker.forget(on_a)  # `ip netns del`: the path goes; our sockets pinned the netns
    plugin.wait_for_log(rf"WARNING .*endpoint {on_a.endpoint_id[:12]}: the container's "
                        r"network namespace \S+ is gone but Docker never sent Leave",
                        timeout=10 * SWEEP_S, since=offset)
    plugin.wait_for_log(rf"endpoint {on_a.endpoint_id[:12]}: released "
                        rf"{re.escape(on_a.address)}", timeout=10, since=offset)
    wait_until(lambda: not any(le.mac == on_a.mac for le in a.leases()), 10,
               "dnsmasq to drop the released lease", detail=lambda: a.log()[-2000:])
    # Nothing holds the namespace any more: the kernel deletes it, and the veth pair with it.
    wait_until(lambda: _veth_names(on_a.endpoint_id) == [], 10,
               "the kernel to delete the dead namespace's veth pair")
    rig.b_keeps_renewing(offset_b)
    assert f"keeper:{on_a.endpoint_id[:12]} failed" not in plugin.log()

    # Docker's calls, late: nothing left to do, and no error.
    rig.docker.call("Leave", on_a.ids())
    rig.docker.call("DeleteEndpoint", on_a.ids())
    status, body = plugin.call("NetworkDriver.EndpointOperInfo", on_a.ids())
    assert (status, body) == (200, {"Value": {}})


def test_interface_deleted_inside_a_running_container(rig: Rig) -> None:
    """eth0 is deleted inside the container (the namespace stays): the keeper's next send
    finds no interface; it stops with a clear line instead of retrying for ever."""
    plugin = rig.plugin
    on_a = rig.docker.start(rig.net_a)
    plugin.wait_for_log(rf"endpoint {on_a.endpoint_id[:12]}: keeping", timeout=10)
    offset = plugin.log_offset()
    sh("ip", "-n", on_a.netns, "link", "del", "eth0")
    plugin.wait_for_log(rf"WARNING .*endpoint {on_a.endpoint_id[:12]}: its interface "
                        rf"{on_a.mac} is gone from {on_a.sandbox}", timeout=15, since=offset)
    assert "step failed" not in plugin.log(offset)
    on_a.joined = False  # nothing to hand back
    rig.docker.call("Leave", on_a.ids())
    rig.docker.call("DeleteEndpoint", on_a.ids())
    rig.docker.forget(on_a)


@pytest.mark.asyncio
async def test_a_veth_pair_failing_half_way_is_deleted(
        lan: LanFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """A failure after the pair exists (here: turning DAD off, as on a read-only /proc/sys
    before that was tolerated) deletes the pair: the caller never owned it, so nothing else
    would (a managed-plugin trial left such pairs behind)."""
    require_root()
    lab = lan(dhcp=False)
    tag = secrets.token_hex(5)
    host_if, cont_if = f"dh{tag}", f"dc{tag}"

    def refuse(_ifname: str) -> None:
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(netlink, "skip_dad", refuse)
    index = (await netlink.bridge_info(lab.bridge, with_routes=False)).index
    with pytest.raises(OSError, match="Read-only"):
        await netlink.create_veth(host_if, cont_if, index, random_mac(),
                                  replace_leftover=False, no_dad=True)
    for name in (host_if, cont_if):
        assert sh("ip", "link", "show", name, check=False).returncode != 0, name
