"""Issue 8 end to end: dual-stack containers from a real `docker run`, with dnsmasq serving
DHCPv4, DHCPv6 and router advertisements on the lab LAN.

dnsmasq's DHCPv6 T1 for its minimum (2-minute) lease is 60 s: waits for an IPv6 Renew are
bounded by RENEW6_WAIT_S.
"""

from __future__ import annotations

import re

from tests.conftest import DockerCleanup, LanFactory, PluginFactory
from tests.e2e.test_lifecycle import T1, T2
from tests.e2e.test_plugin import our_veths
from tests.lab import DockerdHandle, Plugin, random_mac, tool, wait_until

RENEW6_WAIT_S = 90.0
SHOW6 = "ip -6 addr show dev eth0 scope global; ip -6 route show default"
FIRST6 = ("i=0; until ip -6 route show default | grep -q default || [ $i -ge 5000 ]; "
          "do i=$((i+1)); done; echo looks=$i; " + SHOW6)
"""The container's first instruction: how many looks until it has an IPv6 default route."""


def addr6_of(output: str) -> tuple[str, int]:
    m = re.search(r"inet6 ([0-9a-f:]+)/(\d+) scope global", output)
    assert m, f"no global IPv6 address in:\n{output}"
    return m.group(1), int(m.group(2))


def duid_of(mac: str) -> str:
    return "00:03:00:01:" + mac.lower()


def test_dual_stack_container_gets_both_families_from_the_lan(
        dockerd: DockerdHandle, lan: LanFactory, docker_cleanup: DockerCleanup,
        image: str) -> None:
    """-o ipv6=true: an IPv4 and an IPv6 lease, the /64 and the default route via the
    router's link-local address from its RA, IPv6 reachability; a reserved MAC gets its
    reserved IPv6 address; stop releases the IPv6 lease too. The plugin adds the default
    route itself (route6.py): on Docker 28 before the container's process starts, on
    20.10 as the interface comes up (within milliseconds, best effort: printed)."""
    mac = random_mac()
    lab = lan(ipv6=True)
    reserved6 = lab.address6(0x42)
    lab.stop_dnsmasq()
    lab.start_dnsmasq(reservations6={mac: reserved6})
    assert lab.server_ip6 is not None
    net = docker_cleanup.net_create(lab.bridge, options={"ipv6": "true"})
    c = docker_cleanup.run(image, "sleep", "300", network=net, mac=mac, detach=True)
    out = docker_cleanup.docker("exec", c.name, "sh", "-c", SHOW6).stdout
    assert addr6_of(out) == (reserved6, 64)
    assert f"default via {lab.server_link_local} dev eth0" in out, out
    docker_cleanup.docker("exec", c.name, "ping", "-6", "-c", "1", "-W", "3", lab.server_ip6)
    v4 = docker_cleanup.docker("exec", c.name, "ip", "-4", "-o", "addr", "show",
                               "eth0").stdout
    assert lab.in_range(v4.split()[3].split("/")[0]), v4
    assert any(le.ip == reserved6 and le.duid == duid_of(mac) for le in lab.leases6())

    other = docker_cleanup.run(image, "sh", "-c", FIRST6, network=net)
    ip6, plen = addr6_of(other.stdout)
    assert lab.in_range6(ip6), ip6
    assert plen == 64
    assert f"default via {lab.server_link_local} dev eth0" in other.stdout, other.stdout
    looks = int(re.search(r"looks=(\d+)", other.stdout).group(1))  # type: ignore[union-attr]
    print(f"{dockerd.engine.name}: IPv6 default route after {looks} looks")
    if dockerd.engine.name == "28.5":
        assert looks == 0, "Docker 28: the route is added before the process starts"

    since = lab.log_offset()
    docker_cleanup.docker("rm", "-f", c.name)
    lab.wait_for_log(rf"DHCPRELEASE\(\S+\) {re.escape(duid_of(mac))}", timeout=15,
                     since=since)
    wait_until(lambda: our_veths(lab.bridge) == [], 30, "every veth to be removed")


def test_router_advertisements_while_containers_start_never_fail_a_start(
        lan: LanFactory, docker_cleanup: DockerCleanup, image: str) -> None:
    """An RA that reaches a container between Docker bringing its interface up and adding
    the gateway used to give it a default route first; Docker's exclusive add then failed
    the start ("failed to set IPv6 gateway ...: file exists", seen in CI on 20.10). Under
    this storm 5 starts of 5 failed on 20.10 and 3 of 5 on 28.5 before the plugin took the
    route over from Docker (route6.py). With an RA every millisecond: every start
    succeeds, and each container has one IPv6 default route, via the router."""
    lab = lan(ipv6=True)
    net = docker_cleanup.net_create(lab.bridge, options={"ipv6": "true"})
    router = lab.server_link_local
    with lab.router_advert_storm():
        names = [docker_cleanup.run(image, "sleep", "300", network=net, detach=True).name
                 for _ in range(4)]
    for name in names:
        out = docker_cleanup.docker("exec", name, "ip", "-6", "route", "show",
                                    "default").stdout
        assert out.count("default") == 1, out
        assert f"default via {router} dev eth0" in out, out


def test_a_mac_reservation_holds_when_the_server_cannot_resolve_the_client(
        lan: LanFactory, docker_cleanup: DockerCleanup, image: str) -> None:
    """dnsmasq matches a DHCPv6 MAC reservation through its neighbour cache. Here the
    server's namespace drops every Neighbor Advertisement, so its own probes for the client
    go unanswered (as they can on a loaded host, where it gives up after 0.5 s and leases a
    dynamic address: seen once in CI): only the Router Solicitation the plugin sends before
    its first Solicit, with the container's MAC in it, can tell the server who asks."""
    mac = random_mac()
    lab = lan(ipv6=True)
    reserved6 = lab.address6(0x43)
    lab.stop_dnsmasq()
    lab.start_dnsmasq(reservations6={mac: reserved6})
    drop_na = ["INPUT", "-p", "icmpv6", "--icmpv6-type", "neighbour-advertisement",
               "-j", "DROP"]
    lab.server_exec(tool("ip6tables"), "-w", "-A", *drop_na)  # the lab's namespace only
    try:
        net = docker_cleanup.net_create(lab.bridge, options={"ipv6": "true"})
        c = docker_cleanup.run(image, "sleep", "300", network=net, mac=mac, detach=True)
        out = docker_cleanup.docker("exec", c.name, "sh", "-c", SHOW6).stdout
        assert addr6_of(out) == (reserved6, 64)
    finally:
        lab.server_exec(tool("ip6tables"), "-w", "-D", *drop_na, check=False)


def test_plugin_sigkill_keeps_and_renews_both_families(
        fresh_plugin: PluginFactory, lan: LanFactory, docker_cleanup: DockerCleanup,
        image: str) -> None:
    """SIGKILL and restart: the restarted plugin adopts both leases; it renews the IPv4
    one at T1 and Renews (never Solicits) the IPv6 one, here at once, as it learns the
    container's host name from Docker and tells the server (T1-driven IPv6 renewals are
    tests/integration/test_dhcp6.py's)."""
    lab = lan(ipv6=True, t1=T1, t2=T2)
    p = fresh_plugin()
    net = docker_cleanup.net_create(lab.bridge, driver=p.name, options={"ipv6": "true"})
    mac = random_mac()
    c = docker_cleanup.run(image, "sleep", "600", network=net, mac=mac, detach=True)
    ip6, _ = addr6_of(docker_cleanup.docker("exec", c.name, "sh", "-c", SHOW6).stdout)
    since = lab.log_offset()
    p.kill()
    p.start()
    lab.wait_for_log(rf"DHCPACK\(\w+\) \S+ {mac}", timeout=T2 * 3, since=since)
    lab.wait_for_log(rf"DHCPRENEW\(\S+\) {re.escape(duid_of(mac))}", timeout=RENEW6_WAIT_S,
                     since=since)
    lab.wait_for_log(rf"DHCPREPLY\(\S+\) {re.escape(ip6)} {re.escape(duid_of(mac))}",
                     timeout=10, since=since)
    after = lab.log(since)
    assert not re.search(rf"DHCPSOLICIT\(\S+\) {re.escape(duid_of(mac))}", after)
    out = docker_cleanup.docker("exec", c.name, "sh", "-c", SHOW6).stdout
    assert addr6_of(out)[0] == ip6


def test_no_dhcpv6_server_fails_the_start_with_the_fix(
        lan: LanFactory, docker_cleanup: DockerCleanup, image: str) -> None:
    lab = lan()  # IPv4 only: no DHCPv6 server, no RA
    net = docker_cleanup.net_create(lab.bridge, options={"ipv6": "true",
                                                         "lease_timeout": "3s"})
    res = docker_cleanup.run(image, "true", network=net, check=False)
    assert res.returncode != 0
    assert "no DHCPv6 lease within 3s" in res.stderr, res.stderr
    assert "without -o ipv6=true" in res.stderr, res.stderr
    assert our_veths(lab.bridge) == []


def test_docker_ipv6_flag_and_ipv4_false_on_docker_28(
        dockerd: DockerdHandle, plugin: Plugin, lan: LanFactory,
        docker_cleanup: DockerCleanup, image: str) -> None:
    """Docker 28+: `--ipv6` with null IPAM (IPv6Data ::/0) asks for IPv6 like -o ipv6=true;
    `--ipv4=false` is refused with the plugin's message. Docker 20.10 refuses `--ipv6` with
    null IPAM itself ("does not handle IPv6 address pool pool requests"): checked there."""
    lab = lan(ipv6=True)
    if dockerd.engine.name != "28.5":
        res = docker_cleanup.net_create(lab.bridge, args=["--ipv6"], check=False)
        out = docker_cleanup.docker("network", "ls", "--format", "{{.Name}}").stdout
        assert res not in out.split(), "Docker 20.10 accepted --ipv6 with null IPAM"
        return
    net = docker_cleanup.net_create(lab.bridge, args=["--ipv6"])
    out = docker_cleanup.run(image, "sh", "-c", SHOW6, network=net).stdout
    ip6, plen = addr6_of(out)
    assert lab.in_range6(ip6), out
    assert plen == 64
    assert f"default via {lab.server_link_local} dev eth0" in out, out
    offset = plugin.log_offset()
    v6only = docker_cleanup.net_create(lab.bridge, args=["--ipv6", "--ipv4=false"],
                                       check=False)
    out = docker_cleanup.docker("network", "ls", "--format", "{{.Name}}").stdout
    assert v6only not in out.split(), "an IPv6-only network was created"
    plugin.wait_for_log(r"IPv6-only networks \(--ipv4=false\) are not supported", timeout=10,
                        since=offset)
