"""The conflict probe (RFC 5227) around CreateEndpoint and Join, against a real LAN.

dockerd runs CreateEndpoint one at a time per network, Join side by side, so the probe is
split (acd/probe.py): what the first ARP probe brings within 10 ms decides in
CreateEndpoint, where a conflict is declined and another address taken as before; the rest
(the second probe, 20 ms of listening) ends before Join answers. A host that claims the
address only then fails the start with the reason, after a DHCPDECLINE: Docker has
recorded the address by then. The plugin runs as its own process, dockerd is played
(tests/dockerplay.py), the LAN is a lab bridge with dnsmasq; the late host answers ARP 16 ms
late (tests/late_arp.py).
"""

from __future__ import annotations

import re

import pytest

from tests.conftest import LanFactory, require_root
from tests.dockerplay import PlayError, played_plugin
from tests.lab import DhcpLan, random_mac
from tests.late_arp import late_claimer

LATE_S = 0.016
"""After the first probe's 10 ms window, well before the end of the listening (30 ms)."""


def reserved(lan: LanFactory) -> tuple[DhcpLan, str, str]:
    """A LAN whose server offers (address, MAC) first, to that MAC."""
    require_root()
    lab = lan()
    taken, mac = lab.address(50), random_mac()
    lab.stop_dnsmasq()
    lab.start_dnsmasq(reservations={mac: taken})
    return lab, taken, mac


def test_a_host_answering_at_once_gets_another_address_in_create_endpoint(
        lan: LanFactory) -> None:
    lab, taken, mac = reserved(lan)
    lab.add_host(ip=taken)  # another machine already uses it (its kernel answers at once)
    with played_plugin() as (_plugin, docker):
        net = docker.create_network(lab.bridge)
        c = docker.create(net, mac=mac)
        assert c.address.split("/")[0] != taken
        assert lab.in_range(c.address.split("/")[0])
        lab.wait_for_log(rf"DHCPDECLINE\(\S+\) {re.escape(taken)} {mac}", timeout=10)
        docker.join(c)  # the rest of the probe finds nothing: Join answers
        assert docker.eth0_addresses(c) == [c.address]


def test_a_host_answering_late_fails_join_with_the_reason_after_a_decline(
        lan: LanFactory) -> None:
    lab, taken, mac = reserved(lan)
    late = lab.add_host()
    with played_plugin() as (_plugin, docker), late_claimer(late, taken, LATE_S) as answered:
        net = docker.create_network(lab.bridge)
        c = docker.create(net, mac=mac)
        # The first probe's window closed before the claim came: Docker got the address.
        assert c.address.split("/")[0] == taken
        with pytest.raises(PlayError) as failure:
            docker.join(c)
        assert answered, "the late host never saw a probe"
        message = str(failure.value)
        assert f"{taken} is in use on the LAN: {late.mac}" in message, message
        assert "start the container again" in message, message
        lab.wait_for_log(rf"DHCPDECLINE\(\S+\) {re.escape(taken)} {mac}", timeout=10)
        # dockerd deletes the endpoint of a failed Join: no DHCPRELEASE may undo the decline.
        mark = lab.log_offset()
        docker.call("DeleteEndpoint", c.ids())
        docker.forget(c)
        again = docker.start(net)  # the LAN and the plugin go on
        assert lab.in_range(again.address.split("/")[0])
        assert not re.search(rf"DHCPRELEASE\(\S+\) {re.escape(taken)} ", lab.log(mark))
