"""The per-network identity and lease options against dnsmasq, no dockerd: the real plugin
process, dockerd's calls played over its socket (tests/dockerplay.py), containers as
network namespaces.

client_id, vendor_class and register_dns are read back from dnsmasq's side: its lease
file (client id, host name) and its --log-dhcp log (vendor class, and option 81 in its
replies, which dnsmasq sends only to a client that sent option 81). propagate_mtu and
gateway are read from the interfaces and from Join's reply.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.conftest import LanFactory, require_root
from tests.dockerplay import Container, PlayedDocker, PlayError, played_plugin
from tests.lab import DhcpLan, Plugin, sh, wait_until

VENDOR = "acme-nas 1.0"
FQDN_SENT = re.compile(r"sent size: +\d+ option: 81 FQDN")
"""What dnsmasq --log-dhcp logs when its reply echoes the Client FQDN option."""


@dataclass
class Rig:
    lab: DhcpLan
    plugin: Plugin
    docker: PlayedDocker


@pytest.fixture
def rig(lan: LanFactory) -> Iterator[Rig]:
    require_root()
    lab = lan(t1=2, t2=4, extra_args=["--dhcp-option=26,1400"])
    with played_plugin() as (plugin, docker):
        yield Rig(lab, plugin, docker)


def lease_line(lab: DhcpLan, mac: str) -> list[str] | None:
    """The lease file's line for `mac`: expiry, mac, ip, hostname, client id."""
    try:
        text = lab.lease_file.read_text()
    except FileNotFoundError:
        return None
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 5 and parts[1].lower() == mac.lower():
            return parts
    return None


def hex_of(raw: bytes) -> str:
    """dnsmasq's spelling of a client id in its lease file."""
    return ":".join(f"{b:02x}" for b in raw)


def mtu_of(ifname: str, netns: str | None = None) -> int:
    where = ["-n", netns] if netns else []
    out = sh("ip", *where, "-o", "link", "show", "dev", ifname).stdout
    match = re.search(r"\bmtu (\d+)", out)
    assert match, out
    return int(match.group(1))


def host_if(c: Container) -> str:
    return "dh" + c.endpoint_id[:12]


def test_client_id_vendor_class_and_fqdn_reach_the_server_in_every_message(rig: Rig) -> None:
    """DISCOVER/REQUEST at start, every renewal, and the release all speak as the
    network's client: dnsmasq files the lease under the client id, logs the vendor class
    for the start and for renewals, echoes option 81, and frees the lease on stop."""
    lab, docker = rig.lab, rig.docker
    net = docker.create_network(lab.bridge, client_id="nd-{mac}", vendor_class=VENDOR,
                                register_dns="true")
    since = lab.log_offset()
    c = docker.start(net, options={"hostname": "idn1"})
    ip = c.address.split("/")[0]
    line = lease_line(lab, c.mac)
    assert line is not None, lab.lease_file.read_text()
    assert line[2] == ip
    assert line[3] == "idn1"
    assert line[4] == hex_of(b"\x00nd-" + c.mac.lower().encode()), line
    start_log = lab.log(since)
    assert f"vendor class: {VENDOR}" in start_log
    assert FQDN_SENT.search(start_log), start_log[-2000:]
    # A renewal (T1 = 2 s) carries the same identity.
    renewed_at = lab.log_offset()
    lab.wait_for_log(rf"DHCPREQUEST\(\S+\) {re.escape(ip)} {re.escape(c.mac.lower())}",
                     timeout=15, since=renewed_at)
    lab.wait_for_log(rf"DHCPACK\(\S+\) {re.escape(ip)} {re.escape(c.mac.lower())}",
                     timeout=15, since=renewed_at)
    renewal_log = lab.log(renewed_at)
    assert f"vendor class: {VENDOR}" in renewal_log
    assert FQDN_SENT.search(renewal_log)
    # The release carries the same client id, or dnsmasq would not find the lease.
    docker.stop(c)
    wait_until(lambda: lease_line(lab, c.mac) is None, 10, "the released lease to go",
               detail=lambda: lab.log(renewed_at)[-3000:])


def test_hex_client_id_is_sent_as_raw_octets_and_no_extras_by_default(rig: Rig) -> None:
    lab, docker = rig.lab, rig.docker
    net = docker.create_network(lab.bridge, client_id="ff:00:00:00:2a:{mac}")
    since = lab.log_offset()
    c = docker.start(net, options={"hostname": "idn2"})
    line = lease_line(lab, c.mac)
    assert line is not None
    assert line[4] == "ff:00:00:00:2a:" + c.mac.lower()
    log = lab.log(since)
    assert "vendor class" not in log
    assert not FQDN_SENT.search(log), "no option 81 without register_dns"
    assert mtu_of("eth0", c.netns) == 1500, "no MTU change without propagate_mtu"


def test_a_constant_client_id_admits_one_container_at_a_time(rig: Rig) -> None:
    lab, docker = rig.lab, rig.docker
    net = docker.create_network(lab.bridge, client_id="01:02:aa:bb:cc:dd:ee")
    first = docker.start(net)
    line = lease_line(lab, first.mac)
    assert line is not None
    assert line[4] == "01:02:aa:bb:cc:dd:ee"
    with pytest.raises(PlayError, match=r"constant client_id .* already uses it.*\{mac\}"):
        docker.start(net)
    docker.stop(first)  # its release frees the lease; then the next container may start
    wait_until(lambda: lease_line(lab, first.mac) is None, 10, "the first lease to go")
    second = docker.start(net)
    line = lease_line(lab, second.mac)
    assert line is not None
    assert line[4] == "01:02:aa:bb:cc:dd:ee"


def test_mtu_from_the_lease_on_both_ends_and_followed_on_renewal(rig: Rig) -> None:
    """Option 26 is on both veth ends when CreateEndpoint answers; when the server's MTU
    changes, a renewal applies it (clamped to 576) inside the container and on the host."""
    lab, docker = rig.lab, rig.docker
    net = docker.create_network(lab.bridge, propagate_mtu="true")
    c = docker.create(net)
    assert mtu_of(c_if := "dc" + c.endpoint_id[:12]) == 1400, c_if
    assert mtu_of(host_if(c)) == 1400
    docker.join(c)
    assert mtu_of("eth0", c.netns) == 1400
    lab.stop_dnsmasq()
    lab.start_dnsmasq(extra_args=["--dhcp-option=26,400"])
    # The plugin sets the container's end, then the host's: wait for both.
    wait_until(lambda: (mtu_of("eth0", c.netns), mtu_of(host_if(c))) == (576, 576), 20,
               "the renewed MTU (400, clamped to 576) on both ends of the veth",
               detail=lambda: rig.plugin.log()[-3000:])
    assert re.search(r"MTU 1400 -> 576", rig.plugin.log())


def test_gateway_option_is_joins_gateway_and_must_be_on_the_leased_subnet(rig: Rig) -> None:
    lab, docker = rig.lab, rig.docker
    other_router = lab.address(254)
    net = docker.create_network(lab.bridge, gateway=other_router)
    c = docker.start(net)
    assert c.gateway == other_router
    assert c.gateway != lab.server_ip
    off = docker.create_network(lab.bridge, gateway="192.0.2.1", ignore_conflicts="true")
    with pytest.raises(PlayError, match=r"gateway 192\.0\.2\.1 .* is not in the leased subnet"):
        docker.start(off)


def test_the_options_survive_a_plugin_crash(rig: Rig) -> None:
    """The options live in the state file: after a SIGKILL and a new start, the
    re-adopted keeper renews with the same client id and vendor class, and still follows
    the server's MTU."""
    lab, plugin, docker = rig.lab, rig.plugin, rig.docker
    net = docker.create_network(lab.bridge, client_id="nd-{mac}", vendor_class=VENDOR,
                                propagate_mtu="true")
    c = docker.start(net, options={"hostname": "idn3"})
    ip = c.address.split("/")[0]
    assert mtu_of("eth0", c.netns) == 1400
    plugin.kill()
    since = plugin.log_offset()
    plugin.start()
    plugin.wait_for_log(rf"endpoint {c.endpoint_id[:12]}: keeping {re.escape(ip)}",
                        timeout=20, since=since)
    lab.stop_dnsmasq()
    renewed_at = lab.log_offset()
    lab.start_dnsmasq(extra_args=["--dhcp-option=26,1280"])
    lab.wait_for_log(rf"DHCPACK\(\S+\) {re.escape(ip)} {re.escape(c.mac.lower())}",
                     timeout=15, since=renewed_at)
    assert f"vendor class: {VENDOR}" in lab.log(renewed_at)
    # dnsmasq rewrites its lease file in place (truncate, then write): a read can fall
    # between the two, so the line is waited for.
    wait_until(lambda: lease_line(lab, c.mac) is not None, 10, "the lease in dnsmasq's file")
    line = lease_line(lab, c.mac)
    assert line is not None
    assert line[4] == hex_of(b"\x00nd-" + c.mac.lower().encode())
    wait_until(lambda: (mtu_of("eth0", c.netns), mtu_of(host_if(c))) == (1280, 1280), 20,
               "the renewed MTU after restart on both ends of the veth",
               detail=lambda: plugin.log()[-3000:])
