"""Issue 11 item 3 end to end: without --mac-address, a container re-created under its name
(or restarted) gets its MAC, and so its lease, back; `stable_mac=false` turns that off; two
live containers never share a MAC. Compose's `up -d --force-recreate` is in test_compose.py.

dnsmasq hands a client with no lease the address its MAC hashes to, as routers hand a
known client its last address: the same MAC is what makes the address come back.
"""

from __future__ import annotations

import re
import secrets
import threading

from net_dhcp.stable_mac import mac_for
from tests.conftest import DockerCleanup, LanFactory
from tests.e2e.test_lifecycle import container_ip
from tests.lab import DhcpLan


def mac_in(dc: DockerCleanup, name: str) -> str:
    return dc.docker("exec", name, "cat", "/sys/class/net/eth0/address").stdout.strip()


def released(lab: DhcpLan, ip: str, mac: str, since: int) -> None:
    lab.wait_for_log(rf"DHCPRELEASE\(\w+\) {re.escape(ip)} {mac}", timeout=15, since=since)


def test_a_container_recreated_or_restarted_under_its_name_keeps_its_address(
        lan: LanFactory, docker_cleanup: DockerCleanup, image: str) -> None:
    lab = lan()
    net = docker_cleanup.net_create(lab.bridge)
    name = f"nd-ctr-{secrets.token_hex(4)}"
    docker_cleanup.run(image, "sleep", "300", network=net, name=name, detach=True)
    ip, mac = container_ip(docker_cleanup, name), mac_in(docker_cleanup, name)
    assert mac == mac_for(lab.bridge, f"name:{name}")
    assert lab.wait_for_lease(mac=mac).ip == ip
    # Removed (its lease released: the server forgets it) and created again.
    since = lab.log_offset()
    docker_cleanup.docker("rm", "-f", name)
    released(lab, ip, mac, since)
    docker_cleanup.run(image, "sleep", "300", network=net, name=name, detach=True)
    assert mac_in(docker_cleanup, name) == mac
    assert container_ip(docker_cleanup, name) == ip
    # `docker restart`: stopped, then started with a new endpoint: the same again.
    since = lab.log_offset()
    docker_cleanup.docker("restart", "-t", "1", name)
    released(lab, ip, mac, since)
    assert mac_in(docker_cleanup, name) == mac
    assert container_ip(docker_cleanup, name) == ip
    # Another name, another MAC.
    other = docker_cleanup.run(image, "sleep", "300", network=net, detach=True).name
    assert mac_in(docker_cleanup, other) not in (mac, "")


def test_stable_mac_false_gives_each_endpoint_its_own_mac(
        lan: LanFactory, docker_cleanup: DockerCleanup, image: str) -> None:
    lab = lan()
    net = docker_cleanup.net_create(lab.bridge, options={"stable_mac": "false"})
    name = f"nd-ctr-{secrets.token_hex(4)}"
    docker_cleanup.run(image, "sleep", "300", network=net, name=name, detach=True)
    first = mac_in(docker_cleanup, name)
    assert first != mac_for(lab.bridge, f"name:{name}")
    docker_cleanup.docker("rm", "-f", name)
    docker_cleanup.run(image, "sleep", "300", network=net, name=name, detach=True)
    assert mac_in(docker_cleanup, name) != first


def test_a_live_container_keeps_its_mac_to_itself(
        lan: LanFactory, docker_cleanup: DockerCleanup, image: str) -> None:
    """A container renamed while running still holds the MAC of its old name: a new one
    under that name gets a MAC of its own, not the same one on the same LAN."""
    lab = lan()
    net = docker_cleanup.net_create(lab.bridge)
    name = f"nd-ctr-{secrets.token_hex(4)}"
    docker_cleanup.run(image, "sleep", "300", network=net, name=name, detach=True)
    mac = mac_in(docker_cleanup, name)
    assert mac == mac_for(lab.bridge, f"name:{name}")
    renamed = docker_cleanup.track_container(f"{name}-old")
    docker_cleanup.docker("rename", name, renamed)
    docker_cleanup.run(image, "sleep", "300", network=net, name=name, detach=True)
    assert mac_in(docker_cleanup, name) != mac
    assert container_ip(docker_cleanup, name) != container_ip(docker_cleanup, renamed)


def test_containers_started_at_once_get_distinct_macs_and_leases(
        lan: LanFactory, docker_cleanup: DockerCleanup, image: str) -> None:
    lab = lan()
    net = docker_cleanup.net_create(lab.bridge)
    names = [docker_cleanup.track_container(f"nd-ctr-{secrets.token_hex(4)}")
             for _ in range(4)]
    threads = [threading.Thread(target=docker_cleanup.run, args=(image, "sleep", "300"),
                                kwargs={"network": net, "name": n, "detach": True})
               for n in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    macs = {mac_in(docker_cleanup, n) for n in names}
    ips = {container_ip(docker_cleanup, n) for n in names}
    assert len(macs) == len(ips) == len(names)
    for ip in ips:
        assert lab.in_range(ip)
