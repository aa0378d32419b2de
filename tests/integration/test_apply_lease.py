"""Applying a new address in a namespace keeps every route (issue 7 defect 9).

Before: the old address was deleted first; deleting an interface's last IPv4 address makes
the kernel flush its routes, so Join's static routes and the default route were lost.
"""

from __future__ import annotations

from collections.abc import Iterator
from ipaddress import IPv4Address, IPv4Interface, IPv4Network

import pytest

from net_dhcp import netlink
from net_dhcp.routes import Route
from tests.conftest import require_root
from tests.lab import scratch_netns, sh

MAC = "02:00:5e:10:20:30"


@pytest.fixture
def netns() -> Iterator[str]:
    require_root()
    with scratch_netns("ap") as name:
        # A veth with both ends inside (no dummy module here); the peer keeps the link up.
        sh("ip", "-n", name, "link", "add", "eth0", "address", MAC, "type", "veth",
           "peer", "name", "peer0")
        sh("ip", "-n", name, "link", "set", "peer0", "up")
        sh("ip", "-n", name, "link", "set", "eth0", "up")
        sh("ip", "-n", name, "addr", "add", "10.1.0.5/24", "dev", "eth0")
        sh("ip", "-n", name, "route", "add", "default", "via", "10.1.0.1")
        sh("ip", "-n", name, "route", "add", "10.9.0.0/16", "via", "10.1.0.254")
        sh("ip", "-n", name, "route", "add", "169.254.0.0/16", "dev", "eth0")
        yield name


def routes(ns: str) -> set[str]:
    return {" ".join(line.split()[:3]) for line in
            sh("ip", "-n", ns, "-4", "route", "show").stdout.splitlines()}


def addresses(ns: str) -> list[str]:
    out = sh("ip", "-n", ns, "-4", "-o", "addr", "show", "dev", "eth0").stdout
    return [line.split()[3] for line in out.splitlines()]


@pytest.mark.asyncio
@pytest.mark.parametrize("new", ["10.1.0.77/24", "10.1.0.77/16"])
async def test_renumbering_within_the_subnet_keeps_address_and_routes(
        netns: str, new: str) -> None:
    await netlink.run_in_netns(f"/run/netns/{netns}", lambda: netlink.apply_lease_by_mac(
        MAC, IPv4Interface("10.1.0.5/24"), IPv4Interface(new), IPv4Address("10.1.0.1"), []))
    assert addresses(netns) == [new]
    have = routes(netns)
    assert "default via 10.1.0.1" in have
    assert "10.9.0.0/16 via 10.1.0.254" in have
    assert "169.254.0.0/16 dev eth0" in have


@pytest.mark.asyncio
async def test_moving_to_another_subnet_keeps_what_is_still_reachable(netns: str) -> None:
    lease_routes = [Route(IPv4Network("10.50.0.0/16"), IPv4Address("10.2.0.9"))]
    await netlink.run_in_netns(f"/run/netns/{netns}", lambda: netlink.apply_lease_by_mac(
        MAC, IPv4Interface("10.1.0.5/24"), IPv4Interface("10.2.0.7/24"),
        IPv4Address("10.2.0.1"), lease_routes))
    assert addresses(netns) == ["10.2.0.7/24"]
    have = routes(netns)
    assert "default via 10.2.0.1" in have
    assert "10.50.0.0/16 via 10.2.0.9" in have
    assert "169.254.0.0/16 dev eth0" in have  # on-link: still reachable
    assert not any(r.startswith("10.9.0.0/16") for r in have)  # its hop is gone
