"""The per-network identity and lease options end to end, with a real dockerd (both
engines) and dnsmasq: what the container shows (MTU, default route) and what the server
saw (client id in its lease file, vendor class in its log, option 81 echoed, the release)."""

from __future__ import annotations

import re
import secrets
from pathlib import Path

import pytest

from tests.conftest import DockerCleanup, LanFactory
from tests.e2e.test_plugin import addr_of
from tests.lab import random_mac, wait_until

T1, T2 = 5, 8
VENDOR = "acme-nas-e2e"
FQDN_SENT = re.compile(r"sent size: +\d+ option: 81 FQDN")


def lease_client_id(lease_file_text: str, mac: str) -> str | None:
    for line in lease_file_text.splitlines():
        parts = line.split()
        if len(parts) >= 5 and parts[1].lower() == mac.lower():
            return parts[4]
    return None


def test_options_reach_the_container_and_the_server(
        lan: LanFactory, docker_cleanup: DockerCleanup, image: str) -> None:
    """client_id ({mac} template), vendor_class, register_dns, gateway and propagate_mtu
    on one network, as `docker network create -o` (and Compose driver_opts) give them."""
    lab = lan(t1=T1, t2=T2, extra_args=["--dhcp-option=26,1400"])
    gateway = lab.address(254)
    net = docker_cleanup.net_create(lab.bridge, options={
        "client_id": "e2e-{mac}", "vendor_class": VENDOR, "register_dns": "true",
        "gateway": gateway, "propagate_mtu": "true"})
    mac = random_mac()
    host = f"idn-{secrets.token_hex(3)}"
    c = docker_cleanup.run(image, "sleep", "300", network=net, mac=mac, detach=True,
                           args=("--hostname", host))
    shown = docker_cleanup.docker("exec", c.name, "sh", "-c",
                                  "ip link show eth0; ip -4 addr show eth0; ip -4 route").stdout
    ip, _ = addr_of(shown)
    assert lab.in_range(ip)
    assert re.search(r"\bmtu 1400\b", shown), shown
    assert re.search(rf"^default via {re.escape(gateway)} dev eth0", shown, re.M), shown
    # The server files the lease under the client id, with the host name (sent with
    # option 12 and 81 once Docker's API told the plugin the name).
    lab.wait_for_log(rf"DHCPACK\(\w+\) {re.escape(ip)} {mac} {host}", timeout=15)
    wait_until(lambda: lease_client_id(lab.lease_file.read_text(), mac) is not None, 10,
               "the lease in dnsmasq's lease file")
    expected = ":".join(f"{b:02x}" for b in b"\x00e2e-" + mac.lower().encode())
    assert lease_client_id(lab.lease_file.read_text(), mac) == expected
    log = lab.log()
    assert f"vendor class: {VENDOR}" in log
    assert FQDN_SENT.search(log)
    # A renewal carries the same identity.
    since = lab.log_offset()
    lab.wait_for_log(rf"DHCPACK\(\w+\) {re.escape(ip)} {mac} {host}", timeout=T1 * 4,
                     since=since)
    assert f"vendor class: {VENDOR}" in lab.log(since)
    # Stop: the release names the same client, so the server drops the lease.
    docker_cleanup.docker("stop", "-t", "1", c.name)
    lab.wait_for_log(rf"DHCPRELEASE\(\w+\) {re.escape(ip)} {mac}", timeout=15)
    wait_until(lambda: all(lease.mac != mac for lease in lab.leases()), 15,
               "the server to drop the released lease")


@pytest.mark.parametrize(("option", "expected"), [
    ("gateway=10.0.0", "option gateway='10.0.0' is not an IPv4 address: use the router's"),
    ("propagate_mtu=sometimes", "option propagate_mtu='sometimes' is not a boolean"),
    ("client_id=web-{name}", "unknown placeholder {name}"),
])
def test_bad_values_fail_network_create_with_the_fix(
        lan: LanFactory, docker_cleanup: DockerCleanup, option: str, expected: str) -> None:
    lab = lan(dhcp=False)
    name = docker_cleanup.track_network(f"nd-bad-{secrets.token_hex(3)}")
    res = docker_cleanup.docker("network", "create", "-d", docker_cleanup._default_driver(),
                                "--ipam-driver", "null", "-o", f"bridge={lab.bridge}",
                                "-o", option, name, check=False)
    assert res.returncode != 0, "the network was created"
    assert expected in res.stderr


def test_propagate_dns_writes_the_lease_into_resolv_conf_and_follows_renewals(
        lan: LanFactory, docker_cleanup: DockerCleanup, image: str) -> None:
    """Options 6 and 119 (dnsmasq compresses the list, RFC 3397) go into the container's
    /etc/resolv.conf; after the server's options change, a renewal rewrites it (option 15
    standing in for a missing 119); the host's own resolv.conf is never touched."""
    host_before = Path("/etc/resolv.conf").read_bytes()
    lab = lan(t1=T1, t2=T2)
    dns1, dns2, dns3 = lab.address(53), lab.address(54), lab.address(55)
    lab.stop_dnsmasq()
    lab.start_dnsmasq(extra_args=[f"--dhcp-option=6,{dns1},{dns2}",
                                  "--dhcp-option=119,lan.example,corp.lan.example"])
    net = docker_cleanup.net_create(lab.bridge, options={"propagate_dns": "true"})
    c = docker_cleanup.run(image, "sleep", "300", network=net, detach=True)

    def resolv_conf() -> str:
        return docker_cleanup.docker("exec", c.name, "cat", "/etc/resolv.conf").stdout

    wait_until(lambda: f"nameserver {dns1}\nnameserver {dns2}\n" in resolv_conf(), 15,
               "the lease's DNS servers in the container", detail=resolv_conf)
    assert "search lan.example corp.lan.example\n" in resolv_conf()
    assert "127.0.0.11" not in resolv_conf(), "the lease's servers replace Docker's"
    lab.stop_dnsmasq()
    lab.start_dnsmasq(extra_args=[f"--dhcp-option=6,{dns3}", "--dhcp-option=15,other.example"])
    wait_until(lambda: f"nameserver {dns3}\n" in resolv_conf(), T1 * 4,
               "the renewed DNS server in the container", detail=resolv_conf)
    text = resolv_conf()
    assert dns1 not in text
    assert "search other.example\n" in text
    assert Path("/etc/resolv.conf").read_bytes() == host_before
