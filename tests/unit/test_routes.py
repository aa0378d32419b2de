"""Route selection for Join: lease routes, bridge routes, no duplicates, on-link next hops."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from typing import Any

from net_dhcp.dhcp4.lease import Lease
from net_dhcp.driver import generated_mac
from net_dhcp.routes import Route, join_routes


def _join_routes(lease: Lease, bridge_routes: list[Route]) -> list[dict[str, Any]]:
    return join_routes(lease.address, lease.routes, bridge_routes)


def lease(routes: tuple[Route, ...] = ()) -> Lease:
    return Lease(address=IPv4Interface("192.168.1.50/24"), server_id=IPv4Address("192.168.1.1"),
                 server_mac=b"\x02" * 6, gateway=IPv4Address("192.168.1.1"), routes=routes,
                 dns=(), domain=None, lease_time_s=120, t1_s=60, t2_s=105, obtained_at=0.0)


def R(dst: str, gw: str | None = None) -> Route:
    return Route(IPv4Network(dst), IPv4Address(gw) if gw else None)


def test_bridge_routes_become_static_routes() -> None:
    out = _join_routes(lease(), [R("10.10.0.0/16", "192.168.1.254"), R("169.254.0.0/16")])
    assert out == [
        {"Destination": "10.10.0.0/16", "RouteType": 0, "NextHop": "192.168.1.254"},
        {"Destination": "169.254.0.0/16", "RouteType": 1},
    ]


def test_duplicates_are_dropped() -> None:
    # docker-net-dhcp #21: a link-local route copied twice failed a second network.
    out = _join_routes(lease((R("169.254.0.0/16"),)),
                       [R("169.254.0.0/16"), R("169.254.0.0/16")])
    assert out == [{"Destination": "169.254.0.0/16", "RouteType": 1}]


def test_own_subnet_default_and_off_link_next_hops_are_skipped() -> None:
    out = _join_routes(lease(), [R("192.168.1.0/24"), R("0.0.0.0/0", "192.168.1.1"),
                                 R("10.0.0.0/8", "172.16.0.1")])
    assert out == []


def test_lease_routes_win_over_bridge_routes() -> None:
    out = _join_routes(lease((R("10.9.0.0/16", "192.168.1.2"),)), [R("10.9.0.0/16", "192.168.1.3")])
    assert out == [{"Destination": "10.9.0.0/16", "RouteType": 0, "NextHop": "192.168.1.2"}]


def test_generated_mac_is_stable_local_unicast() -> None:
    mac = generated_mac("abc")
    assert mac == generated_mac("abc") != generated_mac("abd")
    first = int(mac.split(":")[0], 16)
    assert first & 0x02
    assert not first & 0x01
