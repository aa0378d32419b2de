"""The network driver's use cases: networks, endpoints, join, leave. Orchestration only.

Requests arrive typed and validated (requests.py); state lives in registry.py, leases are
kept and released by leases.py, the veth by attach/veth.py, work inside a container's
namespace by sandbox.py. Nothing here calls the Docker API: what Docker knows reaches us
through the background `Reconciler` (reconcile.py).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from typing import Any

from . import netlink, sandbox
from .acd import probe as acd
from .attach import veth
from .config import EndpointOptions, NetworkOptions
from .dhcp4 import codec
from .dhcp4.client import AcquireStats, acquire
from .dhcp4.lease import UNKNOWN_SERVER, Lease
from .dhcp4.sockets import DhcpSocket, open_dhcp_socket
from .dhcp4.timing import Timing
from .diagnose import explain_no_lease
from .errors import LeaseError, OptionError, StoreError
from .leases import LeaseSupervisor
from .registry import Endpoint, Network, Registry
from .requests import (
    CreateEndpointRequest,
    CreateNetworkRequest,
    EndpointRequest,
    JoinRequest,
    NetworkRequest,
)
from .routes import join_routes
from .store import Store

LOG = logging.getLogger(__name__)

RECOVERED_LEASE_S = 24 * 3600.0
"""How long a recovered address (server and expiry unknown) is kept with no server answer."""


def generated_mac(endpoint_id: str) -> str:
    """A stable locally administered unicast MAC derived from the endpoint ID."""
    digest = hashlib.sha256(endpoint_id.encode()).digest()
    return codec.mac_to_str(b"\x02" + digest[:5])


class Driver:
    """Implements the NetworkDriver calls; api.py maps HTTP onto these methods."""

    def __init__(self, store: Store, *, timing: Timing = Timing()) -> None:
        self.registry = Registry(store)
        self.leases = LeaseSupervisor(self.registry, timing)
        self.timing = timing
        self.docker_pools: list[tuple[str, IPv4Network]] = []

    def load(self) -> None:
        """Load networks and endpoints from the store (no kernel or Docker work)."""
        self.registry.load()

    # ---- recovery (called by the reconciler) -------------------------------------------------
    def recover_network(self, network_id: str, options: dict[str, Any], ipv6: bool) -> None:
        """Re-create a network from the options Docker kept (state file lost)."""
        generic = {str(k): str(v) for k, v in options.items()}
        self.registry.add_network(network_id,
                                  NetworkOptions.from_generic(generic, enable_ipv6=ipv6))

    async def recover_endpoint(self, *, network_id: str, endpoint_id: str, mac: str,
                               address: str, sandbox_key: str) -> Endpoint | None:
        """Re-adopt a running container's endpoint known only to Docker and the kernel.

        The lease's server and times are unknown: the keeper starts in REBINDING (broadcast
        REQUEST for the address the container has), and the server's ACK restores the
        real lease. Until then the address is kept for RECOVERED_LEASE_S.
        """
        host_if, cont_if = veth.names(endpoint_id)
        if not mac or not address or not await netlink.link_exists(host_if):
            return None
        lease = Lease(address=IPv4Interface(address), server_id=UNKNOWN_SERVER, server_mac=b"",
                      gateway=None, routes=(), dns=(), domain=None,
                      lease_time_s=RECOVERED_LEASE_S, t1_s=0.0, t2_s=0.0,
                      obtained_at=time.time())
        ep = Endpoint(id=endpoint_id, network_id=network_id, host_if=host_if, cont_if=cont_if,
                      mac=mac.lower(), options=EndpointOptions(), lease=lease,
                      sandbox=sandbox_key)
        self.registry.add_endpoint(ep)
        await self.leases.start(ep)
        return ep

    # ---- networks ------------------------------------------------------------------------
    async def create_network(self, req: CreateNetworkRequest) -> dict[str, Any]:
        """Validate options and the bridge, refuse conflicts, persist the network."""
        for data in req.ipv4_data:
            if data.address_space != "null" or data.pool != "0.0.0.0/0":
                raise OptionError(
                    "net-dhcp needs the null IPAM driver: create the network with "
                    "--ipam-driver null. Otherwise Docker hands out addresses from its own "
                    f"pool ({data.pool}) that clash with the addresses your DHCP server "
                    "gives out"
                )
        opts = NetworkOptions.from_generic(req.generic, enable_ipv6=req.enable_ipv6)
        bridge = await netlink.bridge_info(opts.bridge, with_routes=False)
        if not opts.ignore_conflicts:
            for other in self.registry.networks.values():
                if other.id != req.network_id and other.options.bridge == opts.bridge:
                    raise OptionError(
                        f"bridge {opts.bridge} is already used by net-dhcp network "
                        f"{other.id[:12]}: use that network, or add -o ignore_conflicts=true"
                    )
            for name, pool in self.docker_pools:
                for addr in bridge.addresses:
                    if addr.network.overlaps(pool):
                        raise OptionError(
                            f"bridge {opts.bridge} ({addr}) overlaps Docker network {name} "
                            f"({pool}): containers there would clash with the LAN; remove "
                            "that network or add -o ignore_conflicts=true"
                        )
        self.registry.add_network(req.network_id, opts)
        LOG.info("network %s created on bridge %s (%s)", req.network_id[:12], opts.bridge, opts)
        if await asyncio.to_thread(netlink.bridge_mac_is_fixed, opts.bridge) is False:
            # docker-net-dhcp #27: a bridge takes its MAC from its ports, so it can change
            # as container veths come and go, and the host loses its own lease and ARP.
            LOG.warning("bridge %s has no fixed MAC address: it may change as containers "
                        "come and go and cut the host off the LAN. Fix: ip link set %s "
                        "address <the MAC of your LAN interface>", opts.bridge, opts.bridge)
        return {}

    async def delete_network(self, req: NetworkRequest) -> dict[str, Any]:
        """Tear down endpoints Docker left behind, then forget the network; idempotent."""
        for ep in self.registry.endpoints_of(req.network_id):
            LOG.info("network %s deleted with endpoint %s still there; removing it",
                     req.network_id[:12], ep.id[:12])
            await self.remove_endpoint(ep, release=True)
        self.registry.forget_network(req.network_id)
        LOG.info("network %s deleted", req.network_id[:12])
        return {}

    # ---- endpoints -----------------------------------------------------------------------
    async def create_endpoint(self, req: CreateEndpointRequest) -> dict[str, Any]:
        """Create the veth, get a lease on its container end, persist, reply with it."""
        net = self.registry.network(req.network_id)
        ep_opts = EndpointOptions.from_request(req.options)
        mac = req.mac or generated_mac(req.endpoint_id)
        host_if, cont_if = veth.names(req.endpoint_id)
        with self.registry.creating(req.endpoint_id, host_if):
            await veth.create(req.endpoint_id, net.options.bridge, mac)
            ep = Endpoint(id=req.endpoint_id, network_id=net.id, host_if=host_if,
                          cont_if=cont_if, mac=mac, options=ep_opts, lease=None)
            try:
                ep.lease = await self._acquire(net, cont_if, mac, ep_opts.hostname)
                self.registry.add_endpoint(ep)
            except BaseException as err:
                if isinstance(err, StoreError) and ep.lease is not None:
                    # Nothing remembers this lease: give it back before the veth goes.
                    try:
                        await self.leases.release(ep, ep.lease)
                    except Exception as rel_err:  # noqa: BLE001 - best effort
                        LOG.warning("endpoint %s: DHCPRELEASE failed: %s", ep.id[:12],
                                    rel_err)
                await veth.remove(host_if, cont_if, f"endpoint {req.endpoint_id[:12]}")
                raise
        lease = ep.lease
        LOG.info("endpoint %s: %s for %s from server %s (lease %gs)", ep.id[:12],
                 lease.address, mac, lease.server_id, lease.lease_time_s)
        out: dict[str, Any] = {}
        if not req.address:
            out["Address"] = str(lease.address)
        if not req.mac:
            out["MacAddress"] = mac
        return {"Interface": out}

    async def _acquire(self, net: Network, ifname: str, mac: str, hostname: str | None) -> Lease:
        sock: DhcpSocket = await asyncio.to_thread(open_dhcp_socket, ifname, with_sink=False)
        stats = AcquireStats()
        try:
            sock.start()

            async def probe(ip: IPv4Address) -> bool:
                return await acd.in_use(ifname, None, ip)

            return await acquire(sock, client_id=codec.client_id_for_mac(codec.mac_from_str(mac)),
                                 hostname=hostname, timeout_s=net.options.lease_timeout_s,
                                 probe=None if net.options.ignore_conflicts else probe,
                                 timing=self.timing, stats=stats)
        except LeaseError as err:
            raise LeaseError(await explain_no_lease(net.options.bridge,
                                                    net.options.lease_timeout_s, stats)) from err
        finally:
            sock.close()

    async def endpoint_oper_info(self, req: EndpointRequest) -> dict[str, Any]:
        """Docker ignores the value; answer fast with what we know."""
        ep = self.registry.endpoints.get(req.endpoint_id)
        value: dict[str, Any] = {}
        if ep is not None and ep.lease is not None:
            value = {"ip": str(ep.lease.address), "mac": ep.mac,
                     "server": str(ep.lease.server_id)}
        return {"Value": value}

    async def join(self, req: JoinRequest) -> dict[str, Any]:
        """Tell Docker the interface, gateway and routes; start keeping the lease."""
        ep = self.registry.endpoint(req.endpoint_id)
        if ep.lease is None:
            raise LeaseError(f"endpoint {req.endpoint_id[:12]} has no lease")
        net = self.registry.network(ep.network_id)
        where = req.sandbox_key
        lease = ep.lease
        gateway = lease.gateway
        bridge: netlink.BridgeInfo | None = None
        if gateway is None or not net.options.skip_routes:
            bridge = await netlink.bridge_info(net.options.bridge)
            if gateway is None:
                gateway = bridge.default_gateway
        routes = join_routes(lease.address, lease.routes,
                             [] if net.options.skip_routes or bridge is None
                             else list(bridge.routes))
        if routes and where and netlink.is_netns(where):
            # `docker network connect` to a running container: a route it already has
            # (e.g. 169.254.0.0/16 from another network) would fail the whole connect.
            present = await sandbox.route_destinations(where)
            routes = [r for r in routes if r["Destination"] not in present]
        reply: dict[str, Any] = {
            "InterfaceName": {"SrcName": ep.cont_if, "DstPrefix": "eth"},
            "DisableGatewayService": True,
        }
        if gateway is not None and gateway in lease.address.network:
            reply["Gateway"] = str(gateway)
        if routes:
            reply["StaticRoutes"] = routes
        async with ep.lock:
            self.registry.set_joined(ep, where)
            ep.released = False
            if where:
                await self.leases.start(ep)
        return reply

    async def leave(self, req: EndpointRequest) -> dict[str, Any]:
        """Stop keeping the lease and release it; idempotent."""
        ep = self.registry.endpoints.get(req.endpoint_id)
        if ep is None:
            return {}
        async with ep.lock:
            await self.leases.stop(ep, release=True)
            self.registry.set_joined(ep, None)
        return {}

    async def delete_endpoint(self, req: EndpointRequest) -> dict[str, Any]:
        """Release if still held, delete the veth, forget the endpoint; idempotent."""
        ep = self.registry.endpoints.get(req.endpoint_id)
        if ep is None:
            # Unknown or already deleted: still make sure no veth of ours is left, unless
            # the names belong to an endpoint that is live or being created.
            host_if, cont_if = veth.names(req.endpoint_id)
            owned = {e.host_if for e in self.registry.endpoints.values()}
            if host_if not in owned | self.registry.being_created():
                await veth.remove(host_if, cont_if, f"endpoint {req.endpoint_id[:12]}")
            return {}
        await self.remove_endpoint(ep, release=True)
        return {}

    async def remove_endpoint(self, ep: Endpoint, *, release: bool) -> None:
        """Tear an endpoint down completely: keeper, lease, veth, state. Best effort."""
        async with ep.lock:
            await self.leases.stop(ep, release=release)
            await veth.remove(ep.host_if, ep.cont_if, f"endpoint {ep.id[:12]}")
            self.registry.forget_endpoint(ep)
            LOG.info("endpoint %s deleted", ep.id[:12])

    async def close(self) -> None:
        """Stop every keeper without releasing: containers keep their addresses."""
        await self.leases.close()
