"""The network driver's use cases: networks, endpoints, join, leave. Orchestration only.

Kernel work goes through netlink.py, DHCP through dhcp4/, state through store.py.
Nothing here calls the Docker API: what Docker knows reaches us through the
background `Reconciler` (reconcile.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import logging
import time
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from typing import Any

from pyroute2 import IPRoute

from . import arp, netlink
from .config import ENABLE_IPV6, GENERIC, EndpointOptions, NetworkOptions
from .dhcp4 import codec
from .dhcp4.client import AcquireStats, LeaseKeeper, Timing, acquire, send_release
from .dhcp4.lease import Lease
from .dhcp4.sockets import DhcpSocket, open_dhcp_socket, send_release_as
from .diagnose import explain_no_lease
from .errors import LeaseError, NotFoundError, OptionError, RequestError
from .store import Store

LOG = logging.getLogger(__name__)

HOST_IF_PREFIX = "dh"
CONT_IF_PREFIX = "dc"
IF_ID_LEN = 12
IFACE_WAIT_S = 60.0
IFACE_POLL_FIRST_S = 0.02
IFACE_POLL_MAX_S = 0.25
KEEPER_STOP_S = 2.0
ATTACH_TRIES = 5
RECOVERED_LEASE_S = 24 * 3600.0
"""How long a recovered address (server and expiry unknown) is kept with no server answer."""


def generated_mac(endpoint_id: str) -> str:
    """A stable locally administered unicast MAC derived from the endpoint ID."""
    digest = hashlib.sha256(endpoint_id.encode()).digest()
    return codec.mac_to_str(b"\x02" + digest[:5])


@dataclass
class Network:
    """A net-dhcp network as created by Docker."""

    id: str
    options: NetworkOptions


@dataclass
class Endpoint:
    """One container attachment: a veth pair and its lease."""

    id: str
    network_id: str
    host_if: str
    cont_if: str
    mac: str
    options: EndpointOptions
    lease: Lease | None
    sandbox: str | None = None
    container_id: str | None = None
    hostname: str | None = None
    keeper: LeaseKeeper | None = None
    task: asyncio.Task[None] | None = None
    released: bool = False
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def client_id(self) -> bytes:
        """RFC 2132 9.14 client identifier: hardware type 1 and the MAC."""
        return codec.client_id_for_mac(codec.mac_from_str(self.mac))

    @property
    def wanted_hostname(self) -> str | None:
        """The driver option wins over the container's own host name."""
        return self.options.hostname or self.hostname


class Driver:
    """Implements the NetworkDriver calls; api.py maps HTTP onto these methods."""

    def __init__(self, store: Store, *, timing: Timing = Timing()) -> None:
        self.store = store
        self.timing = timing
        self.networks: dict[str, Network] = {}
        self.endpoints: dict[str, Endpoint] = {}
        self.docker_pools: list[tuple[str, IPv4Network]] = []
        self.creating: set[str] = set()
        """Host-side veth names of endpoints being created (not yet in `endpoints`)."""

    # ---- state --------------------------------------------------------------------------
    def load(self) -> None:
        """Load networks and endpoints from the store (no kernel or Docker work)."""
        for row in self.store.networks():
            try:
                self.networks[row.id] = Network(row.id, NetworkOptions.from_json(row.options))
            except (TypeError, ValueError) as err:
                LOG.error("stored network %s is unreadable (%s); ignoring it", row.id[:12], err)
        for ep in self.store.endpoints():
            self.endpoints[ep.id] = Endpoint(
                id=ep.id, network_id=ep.network_id, host_if=ep.host_if, cont_if=ep.cont_if,
                mac=ep.mac, options=EndpointOptions(hostname=ep.options.get("hostname")),
                lease=Lease.from_dict(ep.lease) if ep.lease else None,
                sandbox=ep.sandbox if ep.joined else None, container_id=ep.container_id,
                hostname=ep.hostname,
            )
        LOG.info("loaded %d network(s) and %d endpoint(s) from %s", len(self.networks),
                 len(self.endpoints), self.store.path)

    def recover_network(self, network_id: str, options: dict[str, Any], ipv6: bool) -> None:
        """Re-create a network from the options Docker kept (state file lost)."""
        opts = NetworkOptions.from_generic(dict(options), enable_ipv6=ipv6)
        self.store.add_network(network_id, opts.to_json())
        self.networks[network_id] = Network(network_id, opts)

    async def recover_endpoint(self, *, network_id: str, endpoint_id: str, mac: str,
                               address: str, sandbox: str) -> Endpoint | None:
        """Re-adopt a running container's endpoint known only to Docker and the kernel.

        The lease's server and times are unknown: the keeper starts straight in REBINDING
        (broadcast REQUEST for the address the container has), and the server's ACK
        restores the real lease. Until then the address is kept for RECOVERED_LEASE_S.
        """
        suffix = endpoint_id[:IF_ID_LEN]
        host_if, cont_if = HOST_IF_PREFIX + suffix, CONT_IF_PREFIX + suffix
        if not mac or not address or not await netlink.link_exists(host_if):
            return None
        iface = IPv4Interface(address)
        lease = Lease(address=iface, server_id=IPv4Address(0), server_mac=b"",
                      gateway=None, routes=(), dns=(), domain=None,
                      lease_time_s=RECOVERED_LEASE_S, t1_s=0.0, t2_s=0.0,
                      obtained_at=time.time())
        ep = Endpoint(id=endpoint_id, network_id=network_id, host_if=host_if, cont_if=cont_if,
                      mac=mac.lower(), options=EndpointOptions(), lease=lease, sandbox=sandbox)
        self.store.add_endpoint(endpoint_id=endpoint_id, network_id=network_id,
                                host_if=host_if, cont_if=cont_if, mac=ep.mac, options={},
                                lease=lease.to_dict())
        self.store.set_joined(endpoint_id, sandbox, True)
        self.endpoints[endpoint_id] = ep
        self.start_keeper(ep)
        return ep

    def _network(self, network_id: str) -> Network:
        net = self.networks.get(network_id)
        if net is None:
            raise NotFoundError(
                f"network {network_id[:12]} is not known to net-dhcp: if the plugin has just "
                "started without its state, it recovers networks from Docker within seconds, "
                "so try again; otherwise remove it with docker network rm and create it again"
            )
        return net

    # ---- networks ------------------------------------------------------------------------
    async def create_network(self, req: dict[str, Any]) -> dict[str, Any]:
        """Validate options and the bridge, refuse conflicts, persist the network."""
        network_id = _str_field(req, "NetworkID")
        options = req.get("Options") or {}
        if not isinstance(options, dict):
            raise RequestError("CreateNetwork: Options must be an object")
        for data in req.get("IPv4Data") or []:
            if data.get("AddressSpace") != "null" or data.get("Pool") != "0.0.0.0/0":
                raise OptionError(
                    "net-dhcp needs the null IPAM driver: create the network with "
                    "--ipam-driver null. Otherwise Docker hands out addresses from its own "
                    f"pool ({data.get('Pool')}) that clash with the addresses your DHCP "
                    "server gives out"
                )
        generic = options.get(GENERIC) or {}
        if not isinstance(generic, dict):
            raise RequestError(f"CreateNetwork: {GENERIC} must be an object")
        opts = NetworkOptions.from_generic(
            generic, enable_ipv6=bool(options.get(ENABLE_IPV6, False)))
        bridge = await netlink.bridge_info(opts.bridge, with_routes=False)
        if not opts.ignore_conflicts:
            for other in self.networks.values():
                if other.id != network_id and other.options.bridge == opts.bridge:
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
        self.store.add_network(network_id, opts.to_json())
        self.networks[network_id] = Network(network_id, opts)
        LOG.info("network %s created on bridge %s (%s)", network_id[:12], opts.bridge, opts)
        if await asyncio.to_thread(netlink.bridge_mac_is_fixed, opts.bridge) is False:
            # docker-net-dhcp #27: a bridge takes its MAC from its ports, so it can change
            # as container veths come and go, and the host loses its own lease and ARP.
            LOG.warning("bridge %s has no fixed MAC address: it may change as containers "
                        "come and go and cut the host off the LAN. Fix: ip link set %s "
                        "address <the MAC of your LAN interface>", opts.bridge, opts.bridge)
        return {}

    async def delete_network(self, req: dict[str, Any]) -> dict[str, Any]:
        """Forget the network; unknown networks are fine (idempotent)."""
        network_id = _str_field(req, "NetworkID")
        self.networks.pop(network_id, None)
        self.store.delete_network(network_id)
        LOG.info("network %s deleted", network_id[:12])
        return {}

    # ---- endpoints -----------------------------------------------------------------------
    async def create_endpoint(self, req: dict[str, Any]) -> dict[str, Any]:
        """Create the veth, get a lease on its container end, persist, reply with it."""
        network_id = _str_field(req, "NetworkID")
        endpoint_id = _str_field(req, "EndpointID")
        net = self._network(network_id)
        iface = req.get("Interface") or {}
        ep_opts = EndpointOptions.from_request(req.get("Options") or {})
        given_mac = str(iface.get("MacAddress") or "").lower()
        mac = given_mac or generated_mac(endpoint_id)
        bridge = await netlink.bridge_info(net.options.bridge, with_routes=False)
        suffix = endpoint_id[:IF_ID_LEN]
        host_if, cont_if = HOST_IF_PREFIX + suffix, CONT_IF_PREFIX + suffix
        self.creating.add(host_if)
        try:
            await netlink.create_veth(host_if, cont_if, bridge.index, mac)
            try:
                lease = await self._acquire(net, cont_if, mac, ep_opts.hostname)
            except BaseException:
                with contextlib.suppress(Exception):
                    await netlink.delete_link(host_if)
                raise
        finally:
            self.creating.discard(host_if)
        ep = Endpoint(id=endpoint_id, network_id=network_id, host_if=host_if, cont_if=cont_if,
                      mac=mac, options=ep_opts, lease=lease)
        self.store.add_endpoint(endpoint_id=endpoint_id, network_id=network_id,
                                host_if=host_if, cont_if=cont_if, mac=mac,
                                options={"hostname": ep_opts.hostname}, lease=lease.to_dict())
        self.endpoints[endpoint_id] = ep
        LOG.info("endpoint %s: %s for %s from server %s (lease %gs)", endpoint_id[:12],
                 lease.address, mac, lease.server_id, lease.lease_time_s)
        out: dict[str, Any] = {}
        if not iface.get("Address"):
            out["Address"] = str(lease.address)
        if not given_mac:
            out["MacAddress"] = mac
        return {"Interface": out}

    async def _acquire(self, net: Network, ifname: str, mac: str, hostname: str | None) -> Lease:
        sock: DhcpSocket = await asyncio.to_thread(open_dhcp_socket, ifname, with_sink=False)
        stats = AcquireStats()
        try:
            sock.start()

            async def probe(ip: IPv4Address) -> bool:
                return await arp.in_use(ifname, None, ip)

            return await acquire(sock, client_id=codec.client_id_for_mac(codec.mac_from_str(mac)),
                                 hostname=hostname, timeout_s=net.options.lease_timeout_s,
                                 probe=None if net.options.ignore_conflicts else probe,
                                 timing=self.timing, stats=stats)
        except LeaseError as err:
            raise LeaseError(await explain_no_lease(net.options.bridge,
                                                    net.options.lease_timeout_s, stats)) from err
        finally:
            sock.close()

    async def endpoint_oper_info(self, req: dict[str, Any]) -> dict[str, Any]:
        """Docker ignores the value; answer fast with what we know."""
        ep = self.endpoints.get(str(req.get("EndpointID", "")))
        value: dict[str, Any] = {}
        if ep is not None and ep.lease is not None:
            value = {"ip": str(ep.lease.address), "mac": ep.mac,
                     "server": str(ep.lease.server_id)}
        return {"Value": value}

    async def join(self, req: dict[str, Any]) -> dict[str, Any]:
        """Tell Docker the interface, gateway and routes; start keeping the lease."""
        endpoint_id = _str_field(req, "EndpointID")
        ep = self.endpoints.get(endpoint_id)
        if ep is None or ep.lease is None:
            raise NotFoundError(f"endpoint {endpoint_id[:12]} is not known to net-dhcp")
        net = self._network(ep.network_id)
        sandbox = str(req.get("SandboxKey") or "") or None
        lease = ep.lease
        gateway = lease.gateway
        bridge: netlink.BridgeInfo | None = None
        if gateway is None or not net.options.skip_routes:
            bridge = await netlink.bridge_info(net.options.bridge)
            if gateway is None:
                gateway = bridge.default_gateway
        routes = _join_routes(lease, [] if net.options.skip_routes or bridge is None
                              else list(bridge.routes))
        if routes and sandbox and netlink.is_netns(sandbox):
            # `docker network connect` to a running container: a route it already has
            # (e.g. 169.254.0.0/16 from another network) would fail the whole connect.
            present = await netlink.run_in_netns(sandbox, _route_destinations)
            routes = [r for r in routes if r["Destination"] not in present]
        reply: dict[str, Any] = {
            "InterfaceName": {"SrcName": ep.cont_if, "DstPrefix": "eth"},
            "DisableGatewayService": True,
        }
        if gateway is not None and gateway in lease.address.network:
            reply["Gateway"] = str(gateway)
        if routes:
            reply["StaticRoutes"] = routes
        ep.sandbox = sandbox
        ep.released = False
        self.store.set_joined(endpoint_id, sandbox, True)
        if sandbox:
            self.start_keeper(ep)
        return reply

    async def leave(self, req: dict[str, Any]) -> dict[str, Any]:
        """Stop keeping the lease and release it; idempotent."""
        endpoint_id = _str_field(req, "EndpointID")
        ep = self.endpoints.get(endpoint_id)
        if ep is None:
            return {}
        async with ep.lock:
            await self._stop_keeper(ep, release=True)
            ep.sandbox = None
            self.store.set_joined(endpoint_id, None, False)
        return {}

    async def delete_endpoint(self, req: dict[str, Any]) -> dict[str, Any]:
        """Release if still held, delete the veth, forget the endpoint; idempotent."""
        endpoint_id = _str_field(req, "EndpointID")
        ep = self.endpoints.get(endpoint_id)
        if ep is None:
            # Unknown or already deleted: still make sure no veth of ours is left.
            suffix = endpoint_id[:IF_ID_LEN]
            for name in (HOST_IF_PREFIX + suffix, CONT_IF_PREFIX + suffix):
                with contextlib.suppress(Exception):
                    await netlink.delete_link(name)
            return {}
        await self.remove_endpoint(ep, release=True)
        return {}

    async def remove_endpoint(self, ep: Endpoint, *, release: bool) -> None:
        """Tear an endpoint down completely: keeper, lease, veth, state. Best effort."""
        async with ep.lock:
            await self._stop_keeper(ep, release=release)
            # Deleting one end of a veth deletes both; the container end is looked for only
            # when the host end is already gone (it may be back in the host, alone).
            for name in (ep.host_if, ep.cont_if):
                try:
                    if await netlink.delete_link(name):
                        break
                except Exception as err:  # noqa: BLE001 - teardown is best effort
                    LOG.warning("endpoint %s: could not delete %s: %s", ep.id[:12], name, err)
            self.store.delete_endpoint(ep.id)
            self.endpoints.pop(ep.id, None)
            LOG.info("endpoint %s deleted", ep.id[:12])

    # ---- the lease keeper ----------------------------------------------------------------
    def start_keeper(self, ep: Endpoint) -> None:
        """Run a LeaseKeeper for the endpoint in the background, owned by the endpoint."""
        if ep.task is not None and not ep.task.done():
            return
        ep.task = asyncio.create_task(self._keep(ep), name=f"keeper:{ep.id[:12]}")
        ep.task.add_done_callback(_log_task_failure)

    async def _keep(self, ep: Endpoint) -> None:
        assert ep.sandbox is not None
        assert ep.lease is not None
        sandbox = ep.sandbox
        for attempt in range(1, ATTACH_TRIES + 1):
            try:
                _, ifname = await _wait_for_iface(sandbox, ep.mac, ep.lease,
                                                      not_named=ep.cont_if)
            except TimeoutError:
                LOG.error("endpoint %s: interface %s never appeared in %s; its lease is not "
                          "renewed", ep.id[:12], ep.mac, sandbox)
                return
            except OSError as err:
                LOG.warning("endpoint %s: sandbox %s is gone (%s)", ep.id[:12], sandbox, err)
                return
            try:
                sock = await netlink.run_in_netns(
                    sandbox, functools.partial(open_dhcp_socket, ifname, with_sink=True))
                break
            except OSError as err:
                # Renamed or moved between the look and the open: look again.
                LOG.debug("endpoint %s: opening %s failed (%s), attempt %d", ep.id[:12],
                          ifname, err, attempt)
                if attempt == ATTACH_TRIES:
                    LOG.error("endpoint %s: cannot open a DHCP socket on %s in %s: %s; its "
                              "lease is not renewed", ep.id[:12], ifname, sandbox, err)
                    return
        sock.start()
        net = self.networks.get(ep.network_id)

        async def apply(old: Lease | None, new: Lease) -> None:
            await _apply_in_netns(sandbox, ep.mac, old, new)

        async def unapply(old: Lease) -> None:
            await _unapply_in_netns(sandbox, ep.mac, old)

        async def probe(ip: IPv4Address) -> bool:
            return await arp.in_use(ifname, sandbox, ip)

        def on_lease(lease: Lease) -> None:
            ep.lease = lease
            self.store.set_lease(ep.id, lease.to_dict())

        keeper = LeaseKeeper(
            f"endpoint {ep.id[:12]}", sock, ep.lease, client_id=ep.client_id,
            hostname=ep.wanted_hostname, apply=apply, unapply=unapply, on_lease=on_lease,
            probe=None if net is None or net.options.ignore_conflicts else probe,
            timing=self.timing,
        )
        ep.keeper = keeper
        LOG.info("endpoint %s: keeping %s on %s in %s (renew in %.0fs)", ep.id[:12],
                 ep.lease.address, ifname, sandbox, max(0.0, ep.lease.t1_at - time.time()))
        try:
            await keeper.run()
        except OSError as err:
            LOG.warning("endpoint %s: DHCP client stopped: %s", ep.id[:12], err)
        except Exception:
            LOG.exception("endpoint %s: DHCP client failed; its lease is no longer renewed",
                          ep.id[:12])
        finally:
            sock.close()

    async def _stop_keeper(self, ep: Endpoint, *, release: bool) -> None:
        keeper = ep.keeper
        if release and keeper is not None and not ep.released and self._same_client(ep) is None:
            # The running keeper's socket is already open in the container's namespace:
            # release through it (no thread, no netlink) before stopping it.
            try:
                send_release(keeper.sock, keeper.lease, ep.client_id)
            except OSError as err:
                LOG.info("endpoint %s: DHCPRELEASE through the keeper failed (%s); "
                         "trying again after it stops", ep.id[:12], err)
            else:
                ep.released = True
                LOG.info("endpoint %s: released %s to %s", ep.id[:12], keeper.lease.address,
                         keeper.lease.server_id)
        task, ep.task = ep.task, None
        if task is not None:
            task.cancel()
            # Never let a keeper that fails to stop block Leave or DeleteEndpoint.
            done, _ = await asyncio.wait({task}, timeout=KEEPER_STOP_S)
            if not done:
                LOG.error("endpoint %s: DHCP client did not stop within %gs; going on",
                          ep.id[:12], KEEPER_STOP_S)
        ep.keeper = None
        if release and not ep.released and ep.lease is not None:
            ep.released = True
            twin = self._same_client(ep)
            if twin is not None:
                # A restarted container reuses its MAC (--mac-address): the server sees one
                # client, and releasing the stale endpoint would release the live one.
                LOG.info("endpoint %s: no DHCPRELEASE, endpoint %s holds the same MAC %s",
                         ep.id[:12], twin.id[:12], ep.mac)
                return
            try:
                await self._release(ep, ep.lease)
            except Exception as err:  # noqa: BLE001 - a failed release never blocks teardown
                LOG.warning("endpoint %s: DHCPRELEASE of %s failed: %s", ep.id[:12],
                            ep.lease.address, err)

    def _same_client(self, ep: Endpoint) -> Endpoint | None:
        """Another endpoint the DHCP server would take for the same client, if any."""
        for other in self.endpoints.values():
            if other is not ep and other.mac == ep.mac:
                return other
        return None

    async def _release(self, ep: Endpoint, lease: Lease) -> None:
        """Send DHCPRELEASE from wherever the container end is now (sandbox or host)."""
        where: str | None = None
        ifname = ep.cont_if
        if ep.sandbox and netlink.is_netns(ep.sandbox):
            found = await netlink.run_in_netns(ep.sandbox, lambda: _lookup_mac(ep.mac))
            if found is not None:
                where, ifname = ep.sandbox, found[1]
        if where is None:
            if not await netlink.link_exists(ep.cont_if):
                await self._release_via_bridge(ep, lease)
                return
            # Docker hands the container end back to the host down; we delete it next.
            await netlink.set_up(ep.cont_if)
        sock = await netlink.run_in_netns(where, lambda: open_dhcp_socket(ifname,
                                                                          with_sink=False))
        try:
            send_release(sock, lease, ep.client_id)
        finally:
            sock.close()
        LOG.info("endpoint %s: released %s to %s", ep.id[:12], lease.address, lease.server_id)

    async def _release_via_bridge(self, ep: Endpoint, lease: Lease) -> None:
        """The container's interface is gone (its namespace died with it): send the
        DHCPRELEASE into the LAN bridge in the endpoint's name (its MAC as the frame's
        source), so the server does not keep a phantom lease until it expires."""
        net = self.networks.get(ep.network_id)
        if net is None or not await netlink.link_exists(net.options.bridge):
            LOG.info("endpoint %s: interface and bridge gone, no DHCPRELEASE for %s",
                     ep.id[:12], lease.address)
            return
        mac = codec.mac_from_str(ep.mac)
        await asyncio.to_thread(send_release_as, net.options.bridge, mac, lease, ep.client_id)
        LOG.info("endpoint %s: interface gone; released %s to %s through bridge %s",
                 ep.id[:12], lease.address, lease.server_id, net.options.bridge)

    async def close(self) -> None:
        """Stop every keeper without releasing: containers keep their addresses."""
        for ep in list(self.endpoints.values()):
            await self._stop_keeper(ep, release=False)


def _str_field(req: dict[str, Any], name: str) -> str:
    value = req.get(name)
    if not isinstance(value, str) or not value:
        raise RequestError(f"request is missing the string field {name!r}")
    return value


def _join_routes(lease: Lease, bridge_routes: list[netlink.Route]) -> list[dict[str, Any]]:
    """StaticRoutes for Join: lease routes then bridge routes, one per destination."""
    seen: set[IPv4Network] = {lease.address.network}
    out: list[dict[str, Any]] = []
    for route in [*lease.routes, *bridge_routes]:
        if route.destination in seen or route.destination.prefixlen == 0:
            continue
        if route.gateway is not None and route.gateway not in lease.address.network:
            continue  # the next hop must be on-link for Docker to add it
        seen.add(route.destination)
        if route.gateway is None:
            out.append({"Destination": str(route.destination), "RouteType": 1})
        else:
            out.append({"Destination": str(route.destination), "RouteType": 0,
                        "NextHop": str(route.gateway)})
    return out


def _log_task_failure(task: asyncio.Task[None]) -> None:
    """Make a background task's crash visible (its owner keeps a reference to it)."""
    if not task.cancelled() and task.exception() is not None:
        LOG.error("%s failed: %r", task.get_name(), task.exception(),
                  exc_info=task.exception())


def _route_destinations() -> set[str]:
    with IPRoute() as ipr:
        return {str(r.destination) for r in netlink.main_routes(ipr)}


def _lookup_mac(mac: str) -> tuple[int, str] | None:
    with IPRoute() as ipr:
        return netlink.find_link_by_mac(ipr, mac)


async def _wait_for_iface(sandbox: str, mac: str, lease: Lease,
                          not_named: str | None = None) -> tuple[int, str]:
    """Wait until Docker has moved, renamed, addressed and brought up the interface.

    Docker's order varies by version (the address may be set before the rename), so the
    interface counts as ready only once it is up, has the leased address and no longer
    carries its host-side name `not_named`.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + IFACE_WAIT_S
    delay = IFACE_POLL_FIRST_S

    def look() -> tuple[int, str] | None:
        with IPRoute() as ipr:
            found = netlink.find_link_by_mac(ipr, mac)
            if found is None or found[1] == not_named or not netlink.link_is_up(ipr, found[0]):
                return None
            addrs = netlink.link_addresses(ipr, found[0])
            return found if lease.address in addrs else None

    while True:
        if netlink.is_netns(sandbox):
            try:
                found = await netlink.run_in_netns(sandbox, look)
            except OSError:
                raise
            except Exception as err:  # noqa: BLE001 - Docker may be mid-way configuring it
                LOG.debug("%s: looking for %s failed (%r); trying again", sandbox, mac, err)
                found = None
            if found is not None:
                return found
        if loop.time() >= deadline:
            raise TimeoutError
        await asyncio.sleep(delay)
        delay = min(delay * 2, IFACE_POLL_MAX_S)


async def _apply_in_netns(sandbox: str, mac: str, old: Lease | None, new: Lease) -> None:
    def body() -> None:
        with IPRoute() as ipr:
            found = netlink.find_link_by_mac(ipr, mac)
            if found is None:
                raise OSError(f"no interface with MAC {mac} in {sandbox}")
            netlink.apply_lease(ipr, found[0], old.address if old else None, new.address,
                                new.gateway, list(new.routes))

    await netlink.run_in_netns(sandbox, body)


async def _unapply_in_netns(sandbox: str, mac: str, old: Lease) -> None:
    def body() -> None:
        with IPRoute() as ipr:
            found = netlink.find_link_by_mac(ipr, mac)
            if found is not None:
                with contextlib.suppress(Exception):
                    ipr.addr("del", index=found[0], address=str(old.address.ip),
                             prefixlen=old.address.network.prefixlen)

    await netlink.run_in_netns(sandbox, body)
