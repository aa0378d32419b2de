"""Which routes a container gets: the lease's and the bridge's, with on-link next hops only.

One rule for Join and for every renewal: a next hop the container cannot reach on its own
subnet is dropped (the kernel refuses it with ENETUNREACH, and Docker fails the Join).
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from typing import Any


@dataclass(frozen=True)
class Route:
    """A route to hand to Docker or apply in a container: gateway None means on-link."""

    destination: IPv4Network
    gateway: IPv4Address | None


def reachable(address: IPv4Interface, hop: IPv4Address | None) -> bool:
    """True if `hop` is a host on the subnet of `address` other than itself (None, on-link,
    always is): not the subnet's network or broadcast address."""
    if hop is None:
        return True
    net = address.network
    if net.prefixlen <= 30 and hop in (net.network_address, net.broadcast_address):
        return False
    return hop in net and hop != address.ip


def on_link(address: IPv4Interface, gateway: IPv4Address | None,
            routes: tuple[Route, ...]) -> tuple[IPv4Address | None, tuple[Route, ...]]:
    """The gateway and routes usable from `address`: off-link next hops dropped."""
    usable_gw = gateway if gateway is not None and reachable(address, gateway) else None
    kept = tuple(r for r in routes if r.destination.prefixlen > 0
                 and reachable(address, r.gateway))
    return usable_gw, kept


def join_routes(address: IPv4Interface, lease_routes: tuple[Route, ...],
                bridge_routes: list[Route]) -> list[dict[str, Any]]:
    """StaticRoutes for Join: lease routes then bridge routes, one per destination."""
    seen: set[IPv4Network] = {address.network}
    out: list[dict[str, Any]] = []
    _, usable = on_link(address, None, (*lease_routes, *bridge_routes))
    for route in usable:
        if route.destination in seen:
            continue
        seen.add(route.destination)
        if route.gateway is None:
            out.append({"Destination": str(route.destination), "RouteType": 1})
        else:
            out.append({"Destination": str(route.destination), "RouteType": 0,
                        "NextHop": str(route.gateway)})
    return out
