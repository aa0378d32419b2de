"""The lab itself works: bridge + dnsmasq namespace, extra hosts, teardown, test image.

These need root but not the plugin.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import DockerCleanup, LanFactory
from tests.lab import (
    BUSYBOX,
    LabError,
    docker,
    lab_leftovers,
    pick_subnet,
    random_mac,
    sh,
)

pytestmark = pytest.mark.integration


def _links() -> set[str]:
    return set(re.findall(r"^\d+: ([^:@]+)", sh("ip", "-o", "link", "show").stdout, re.M))


def test_udhcpc_gets_a_lease_from_the_pool(lan: LanFactory) -> None:
    lab = lan()
    client = lab.add_host()
    ip = client.dhcp(hostname="labclient")
    assert lab.in_range(ip), f"{ip} outside {lab.range_start}-{lab.range_end}"
    lease = lab.wait_for_lease(mac=client.mac)
    assert lease.ip == ip
    assert lease.hostname == "labclient"
    m = lab.wait_for_log(rf"DHCPACK\({lab.server_if}\) (\S+) {client.mac}", timeout=5)
    assert m[1] == ip


def test_reservation_gives_the_reserved_ip(lan: LanFactory) -> None:
    subnet = pick_subnet()
    mac, reserved = random_mac(), str(subnet.network_address + 50)  # outside the pool
    lab = lan(subnet=subnet, reservations={mac: reserved})
    client = lab.add_host(mac=mac)
    assert client.mac == mac
    assert client.dhcp() == reserved
    assert lab.wait_for_lease(mac=mac).ip == reserved


def test_added_host_answers_ping_from_the_server_namespace(lan: LanFactory) -> None:
    lab = lan(dhcp=False)
    host = lab.add_host(ip=lab.address(20))
    res = lab.server_exec(BUSYBOX, "ping", "-c", "1", "-W", "2", lab.address(20), check=False)
    assert res.returncode == 0, res.stdout + res.stderr
    assert host.ping(lab.server_ip, check=False).returncode == 0


def test_host_ip_lets_the_host_reach_the_lan(lan: LanFactory) -> None:
    lab = lan(host_ip=True)
    assert lab.host_address == lab.address(2)
    host = lab.add_host()
    ip = host.dhcp()
    res = sh(BUSYBOX, "ping", "-c", "1", "-W", "2", ip, check=False)
    assert res.returncode == 0, res.stdout + res.stderr


def test_t1_t2_options_reach_the_client(lan: LanFactory) -> None:
    lab = lan(t1=10, t2=15)
    since = lab.log_offset()
    lab.add_host().dhcp()
    lab.wait_for_log(r"option: 58 T1\s+10s", timeout=5, since=since)
    lab.wait_for_log(r"option: 59 T2\s+15s", timeout=5, since=since)


def test_dnsmasq_restart_with_new_range(lan: LanFactory) -> None:
    lab = lan()
    first = lab.add_host()
    assert lab.in_range(first.dhcp())
    lab.stop_dnsmasq()
    assert not lab.dnsmasq_running()
    lab.start_dnsmasq(range_start=lab.address(210), range_end=lab.address(220),
                      clear_leases=True)
    assert lab.leases() == []
    ip = lab.add_host().dhcp()
    assert 210 <= int(ip.rsplit(".", 1)[1]) <= 220
    assert [le.ip for le in lab.leases()] == [ip]


def test_wait_for_log_times_out_with_the_log_tail(lan: LanFactory) -> None:
    lab = lan()
    with pytest.raises(LabError, match=r"(?s)never-logged.*DHCP, IP range"):
        lab.wait_for_log("never-logged", timeout=0.2)


def test_dnsmasq_failure_to_start_is_reported(lan: LanFactory) -> None:
    lab = lan(dhcp=False)
    with pytest.raises(LabError, match="dnsmasq in .* did not start"):
        lab.start_dnsmasq(extra_args=["--no-such-option"])
    assert not lab.dnsmasq_running()


def test_forward_rule_is_first_and_exact(lan: LanFactory) -> None:
    lab = lan()
    rules = sh("iptables", "-w", "-S", "FORWARD").stdout.splitlines()
    assert rules[1] == f"-A FORWARD -i {lab.bridge} -o {lab.bridge} -j ACCEPT"
    bare = lan(forward_rule=False, dhcp=False)
    assert bare.bridge not in sh("iptables", "-w", "-S", "FORWARD").stdout


def test_close_leaves_nothing_behind(lan: LanFactory) -> None:
    lab = lan(host_ip=True)
    client = lab.add_host()
    client.dhcp()
    lab.add_host(ip=lab.address(30))
    names = lab.names()
    pid = int(lab.pid_file.read_text())
    workdir = lab.workdir
    assert set(names["links"]) <= _links()
    assert set(names["netns"]) <= set(sh("ip", "netns", "list").stdout.split())

    assert lab.close() == []

    assert not set(names["links"]) & _links()
    netns_left = sh("ip", "netns", "list").stdout
    assert not [n for n in names["netns"] if n in netns_left.split()]
    assert lab.bridge not in sh("iptables", "-w", "-S", "FORWARD").stdout
    assert not Path(f"/proc/{pid}").exists(), "dnsmasq still running"
    assert not workdir.exists()
    assert lab.id not in " ".join(lab_leftovers())
    assert lab.close() == []  # idempotent


def test_image_has_busybox_applets(docker_cleanup: DockerCleanup, image: str) -> None:
    res = docker_cleanup.run(image, "sh", "-c", "ip -4 addr show lo && readlink /bin/udhcpc",
                             network="none")
    assert "127.0.0.1" in res.stdout
    assert res.stdout.strip().endswith("\nbusybox")


def test_docker_client_is_the_matching_one(dockerd: object) -> None:
    versions = docker("version", "--format", "{{.Client.APIVersion}} {{.Server.APIVersion}}")
    client, server = versions.stdout.split()
    assert client == server, "use /usr/bin/docker: a newer client refuses --mac-address"
