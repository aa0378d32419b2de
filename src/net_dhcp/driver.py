"""The network driver's use cases: networks, endpoints, join, leave. Orchestration only.

Requests arrive typed and validated (requests.py); state lives in registry.py, leases are
kept and released by leases.py, the container's interface by attach/ (a veth on a bridge,
or a macvlan or ipvlan link on a parent: chosen by attach/choose.py from the network's
mode), work inside a container's namespace by sandbox.py. Nothing here calls the Docker
API: what Docker knows reaches us through the background `Reconciler` (reconcile.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import secrets
import time
from collections.abc import AsyncIterator, Callable
from ipaddress import IPv4Address, IPv4Interface, IPv4Network, IPv6Address, IPv6Interface
from pathlib import Path
from typing import Any

from . import metrics, netlink, route6, sandbox, stable_mac, validate
from .acd import probe as acd
from .attach import choose
from .attach.base import Attachment
from .config import EndpointOptions, NetworkOptions
from .dhcp4 import codec
from .dhcp4.client import PROBE_DECLINE_MESSAGE, AcquireStats, acquire
from .dhcp4.lease import UNKNOWN_SERVER, Lease
from .dhcp4.sockets import DhcpSocket, open_dhcp_socket
from .dhcp4.timing import Timing
from .dhcp6 import codec as codec6
from .dhcp6.client import Acquire6Stats, acquire6
from .dhcp6.lease import Lease6
from .dhcp6.sockets import open_dhcp6_socket
from .diagnose import explain_no_lease, explain_no_lease6
from .errors import LeaseError, NotFoundError, OptionError
from .lan_looks import LanLooks
from .leases import LeaseSupervisor, client_duid, client_identity, wanted_mtu
from .ndp import dad, router
from .registry import Endpoint, Network, Registry
from .requests import (
    CreateEndpointRequest,
    CreateNetworkRequest,
    EndpointRequest,
    JoinRequest,
    NetworkRequest,
)
from .routes import join_routes
from .stable_mac import PendingStarts
from .store import Store
from .tasks import KeyedLocks, together
from .teardown import Teardowns

LOG = logging.getLogger(__name__)

PROBE_END_WAIT_S = 2.0
"""The longest Join waits for the rest of the conflict probe (it takes ~20 ms)."""
RA_WAIT_S = 2.0
"""After the DHCPv6 lease, how much longer to wait for the router's advertisement."""
RS_FIRST_WAIT_S = 0.25
"""How long the first DHCPv6 Solicit waits for the first Router Solicitation to go out.
The RS carries the container's MAC (its Source Link-Layer Address option), and a router
that takes it (forwarding on, RFC 4861 6.2.6) has the MAC in its neighbour cache before the
Solicit comes: dnsmasq matches a MAC reservation (dhcp-host=<mac>,[<v6>]) from that cache
and otherwise probes for up to 0.5 s, and under load it can miss and lease a dynamic
address instead (seen once in CI)."""
RECOVERED_LEASE_S = 24 * 3600.0
"""How long a recovered address (server and expiry unknown) is kept with no server answer."""


def generated_mac(endpoint_id: str) -> str:
    """A stable locally administered unicast MAC derived from the endpoint ID."""
    digest = hashlib.sha256(endpoint_id.encode()).digest()
    return codec.mac_to_str(b"\x02" + digest[:5])


def _recovered6(mac: str, address6: str) -> Lease6 | None:
    """The IPv6 lease of a recovered endpoint, from the address Docker shows (if any)."""
    if not address6:
        return None
    iface = IPv6Interface(address6)
    return Lease6(address=iface.ip, iaid=codec6.iaid_for_mac(codec.mac_from_str(mac)),
                  server_duid=b"", preferred_s=RECOVERED_LEASE_S, valid_s=RECOVERED_LEASE_S,
                  t1_s=0.0, t2_s=0.0, obtained_at=time.time(),
                  prefixlen=iface.network.prefixlen)


class _Stopwatch:
    """Where a CreateEndpoint's time went, for the log line the benchmark reads: the veth,
    each family's DHCP exchange (IPv4's without its conflict probe), the probe, and the
    state file's commit of the new endpoint."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.parts: dict[str, float] = {}

    ORDER = ("veth", "DHCPv4", "DHCPv6", "probe", "store")

    def since(self, start: float) -> float:
        return time.perf_counter() - start

    def add(self, name: str, seconds: float) -> None:
        self.parts[name] = self.parts.get(name, 0.0) + seconds

    def __str__(self) -> str:
        total = self.since(self.start) * 1000
        parts = ", ".join(f"{k} {self.parts[k] * 1000:.1f} ms"
                          for k in self.ORDER if k in self.parts)
        return f"{total:.1f} ms ({parts})"


async def _cancelled(task: asyncio.Task[Any]) -> None:
    """Cancel a helper task and wait for it, whatever it raised."""
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


class Driver:
    """Implements the NetworkDriver calls; api.py maps HTTP onto these methods."""

    def __init__(self, store: Store, *, timing: Timing = Timing(),
                 netns_dir: Path | None = None) -> None:
        self.registry = Registry(store)
        self.leases = LeaseSupervisor(self.registry, timing)
        self.timing = timing
        self.docker_pools: list[tuple[str, IPv4Network]] = []
        self._ids = KeyedLocks()
        self.teardowns = Teardowns()
        """Leave's and DeleteEndpoint's work after their reply (teardown.py)."""
        self.lan_looks = LanLooks()
        """The LAN interface's routes for Join, one look per burst (lan_looks.py)."""
        self.netns_dir = netns_dir
        """A managed plugin's mount of the host's Docker netns folder (None: legacy)."""
        self.starts = PendingStarts()
        """Containers created and about to start, for stable MACs (fed by the reconciler)."""

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
                               address: str, sandbox_key: str,
                               address6: str = "") -> Endpoint | None:
        """Re-adopt a running container's endpoint known only to Docker and the kernel.

        The lease's server and times are unknown: the keeper starts in REBINDING (broadcast
        REQUEST for the address the container has; for IPv6, a Rebind), and the server's
        reply restores the real lease. Until then the address is kept for RECOVERED_LEASE_S.
        """
        net = self.registry.networks.get(network_id)
        if net is None:
            return None
        att = choose.attachment(net.options)
        host_if, cont_if = att.names(endpoint_id)
        if att.shares_mac:
            mac = generated_mac(endpoint_id)  # Docker shows none: see create_endpoint
        where = sandbox.local_path(sandbox_key, self.netns_dir)
        if not mac or not address or not await att.present(host_if, cont_if, where,
                                                            att.link_mac(mac.lower())):
            return None
        lease = Lease(address=IPv4Interface(address), server_id=UNKNOWN_SERVER, server_mac=b"",
                      gateway=None, routes=(), dns=(), domain=None,
                      lease_time_s=RECOVERED_LEASE_S, t1_s=0.0, t2_s=0.0,
                      obtained_at=time.time())
        ep = Endpoint(id=endpoint_id, network_id=network_id, host_if=host_if, cont_if=cont_if,
                      mac=mac.lower(), options=EndpointOptions(), lease=lease, sandbox=where,
                      lease6=_recovered6(mac, address6))
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
        for data in req.ipv6_data:
            if data.address_space != "null" or data.pool != "::/0":
                raise OptionError(
                    "net-dhcp needs the null IPAM driver for IPv6 too: create the network "
                    "with --ipam-driver null (and -o ipv6=true, or --ipv6 on Docker 28+); "
                    f"Docker's own IPv6 pool ({data.pool}) would clash with the LAN's")
        if not req.enable_ipv4:
            raise OptionError(
                "IPv6-only networks (--ipv4=false) are not supported: net-dhcp gets every "
                "container an IPv4 lease, and with -o ipv6=true an IPv6 one too. Create the "
                "network without --ipv4=false")
        opts = NetworkOptions.from_generic(req.generic, enable_ipv6=req.enable_ipv6)
        att = choose.attachment(opts)
        bridge = await att.check()
        word = att.lan_word
        if not opts.ignore_conflicts:
            # One network per LAN interface, whatever the modes: two networks there would
            # be one LAN to the DHCP server, with two plugins' views of its clients.
            for other in self.registry.networks.values():
                if other.id != req.network_id and other.options.lan == opts.lan:
                    mode = "" if other.options.mode == opts.mode == "bridge" else (
                        f" (mode {other.options.mode})")
                    raise OptionError(
                        f"{word} {opts.lan} is already used by net-dhcp network "
                        f"{other.id[:12]}{mode}: use that network, or add -o "
                        "ignore_conflicts=true"
                    )
            for name, pool in self.docker_pools:
                for addr in bridge.addresses:
                    if addr.network.overlaps(pool):
                        raise OptionError(
                            f"{word} {opts.lan} ({addr}) overlaps Docker network {name} "
                            f"({pool}): containers there would clash with the LAN; remove "
                            "that network or add -o ignore_conflicts=true"
                        )
        if opts.mode != "bridge":
            await self._check_kind(att)
        if opts.validate_dhcp:  # a DISCOVER from a throwaway port; not on recover_network
            await validate.validate(opts)
        self.registry.add_network(req.network_id, opts)
        LOG.info("network %s created on %s (%s)", req.network_id[:12], att.where(), opts)
        if opts.mode != "bridge":
            return {}
        if await asyncio.to_thread(netlink.bridge_mac_is_fixed, opts.bridge) is False:
            # docker-net-dhcp #27: a bridge takes its MAC from its ports, so it can change
            # as container veths come and go, and the host loses its own lease and ARP.
            LOG.warning("bridge %s has no fixed MAC address: it may change as containers "
                        "come and go and cut the host off the LAN. Fix: ip link set %s "
                        "address <the MAC of your LAN interface>", opts.bridge, opts.bridge)
        return {}

    async def _default_mac(self, net: Network, endpoint_id: str) -> str:
        """The MAC of an endpoint created without --mac-address: with stable_mac, the one
        derived from the container about to start (stable_mac.py), unless a live endpoint
        on the same LAN has it; else derived from the endpoint ID."""
        if net.options.stable_mac:
            who = await self.starts.sole({net.id} | ({net.name} if net.name else set()))
            if who is not None:
                mac = stable_mac.mac_for(net.options.lan, who)
                await self._wait_for_mac(mac)
                holder = self._mac_holder(net, mac)
                if holder is None:
                    LOG.info("endpoint %s: MAC %s from the identity %s (stable_mac)",
                             endpoint_id[:12], mac, who)
                    return mac
                LOG.warning("endpoint %s: MAC %s of %s is held by live endpoint %s; using "
                            "one of its own", endpoint_id[:12], mac, who, holder[:12])
        return generated_mac(endpoint_id)

    async def _wait_for_mac(self, mac: str) -> None:
        """Wait for the teardowns of endpoints with `mac` (replied to, not finished: the
        old endpoint of a re-create or of a `docker restart` with --mac-address): their
        release must not follow the new lease, and on macvlan their link must be gone."""
        await self.teardowns.wait(e.id for e in self.registry.endpoints.values()
                                  if e.mac == mac.lower())

    def _mac_holder(self, net: Network, mac: str) -> str | None:
        """The ID of a live endpoint on `net`'s LAN interface with `mac`, if any."""
        for other in self.registry.endpoints.values():
            there = self.registry.networks.get(other.network_id)
            if other.mac == mac.lower() and there is not None and (
                    there.options.lan == net.options.lan):
                return other.id
        return None

    async def _check_kind(self, att: Attachment) -> None:
        """Refuse a mode this kernel lacks at create (OptionError), not at the first start:
        a throwaway link of the kind on the parent, deleted at once."""
        name = f"ndk{secrets.token_hex(3)}"
        try:
            await netlink.create_sublink(name, att.lan, att.kind, None, replace_leftover=False,
                                         quiet=True)
        finally:
            await netlink.delete_link(name)

    async def delete_network(self, req: NetworkRequest) -> dict[str, Any]:
        """Tear down endpoints Docker left behind, then forget the network; idempotent."""
        await self.teardowns.wait(ep.id for ep in self.registry.endpoints_of(req.network_id))
        for ep in self.registry.endpoints_of(req.network_id):
            LOG.info("network %s deleted with endpoint %s still there; removing it",
                     req.network_id[:12], ep.id[:12])
            await self.remove_endpoint(ep, release=True)
        self.registry.forget_network(req.network_id)
        LOG.info("network %s deleted", req.network_id[:12])
        return {}

    # ---- endpoints -----------------------------------------------------------------------
    async def create_endpoint(self, req: CreateEndpointRequest) -> dict[str, Any]:
        """Create the veth, get the leases on its container end (IPv4, and IPv6 at the same
        time when the network asks for it), persist, reply with them."""
        net = self.registry.network(req.network_id)
        ep_opts = EndpointOptions.from_request(req.options)
        att = choose.attachment(net.options)
        if req.mac and att.shares_mac:
            raise OptionError(
                f"network {net.id[:12]} is in ipvlan mode: every container's interface has "
                f"the MAC of parent {net.options.parent}, which cannot be changed, so "
                f"--mac-address {req.mac} cannot be applied. Drop --mac-address (the DHCP "
                "server tells ipvlan containers apart by their client identifier), or use a "
                "network with -o mode=macvlan for a MAC of its own per container")
        host_if, cont_if = att.names(req.endpoint_id)
        # Work owed to an earlier call for this ID (a DeleteEndpoint's veth deletion) first.
        await self.teardowns.wait([req.endpoint_id])
        if req.mac:
            mac = req.mac
            if att.unique_macs:
                # macvlan: a link with this MAC still on the parent (the old endpoint of a
                # `docker restart` with --mac-address) would make the new one fail with
                # "address already in use".
                await self._wait_for_mac(mac)
        else:
            mac = await self._default_mac(net, req.endpoint_id)
        # One call at a time per endpoint ID: a DeleteEndpoint for it that is removing a
        # leftover pair finishes before this one creates the new pair.
        async with (self._one_client(net, req.endpoint_id),
                    self._ids.hold(req.endpoint_id)):
            with self.registry.creating(req.endpoint_id, host_if):
                clock = _Stopwatch()
                # What Join will need from the bridge (its routes), fetched meanwhile (a
                # look shared with the other CreateEndpoints of a burst: lan_looks.py).
                routes = asyncio.create_task(self.lan_looks.info(att),
                                             name=f"bridge-info:{req.endpoint_id[:12]}")
                try:
                    link_mac = await att.create(req.endpoint_id, mac, ipv6=net.options.ipv6)
                except BaseException:
                    await _cancelled(routes)
                    raise
                clock.add("veth", clock.since(clock.start))
                ep = Endpoint(id=req.endpoint_id, network_id=net.id, host_if=host_if,
                              cont_if=cont_if, mac=mac, options=ep_opts, lease=None)
                ep.link_mac = link_mac if link_mac != mac.lower() else None
                try:
                    await self._acquire_all(net, ep, clock)
                    if net.id not in self.registry.networks:
                        raise NotFoundError(f"network {net.id[:12]} was deleted while endpoint "
                                            f"{ep.id[:12]} was being created")
                    stored = time.perf_counter()
                    self.registry.add_endpoint(ep)
                    clock.add("store", clock.since(stored))
                except BaseException:
                    await _cancelled(routes)
                    if ep.conflict_check is not None:
                        await _cancelled(ep.conflict_check)
                    if ep.lease is not None or ep.lease6 is not None:
                        # Nothing remembers these leases: give them back before the veth goes.
                        await self.leases.release_all(ep)
                    await att.remove(host_if, cont_if, f"endpoint {req.endpoint_id[:12]}")
                    raise
                ep.bridge_info = routes
        LOG.info("endpoint %s: CreateEndpoint %s", ep.id[:12], clock)
        assert ep.lease is not None
        lease = ep.lease
        LOG.info("endpoint %s: %s for %s from server %s (lease %gs)", ep.id[:12],
                 lease.address, mac, lease.server_id, lease.lease_time_s)
        out: dict[str, Any] = {}
        if not req.address:
            out["Address"] = str(lease.address)
        if ep.lease6 is not None:
            LOG.info("endpoint %s: %s for %s (valid %gs, router %s)", ep.id[:12],
                     ep.lease6.interface, mac, ep.lease6.valid_s, ep.lease6.router or "none")
            if not req.address_ipv6:
                out["AddressIPv6"] = str(ep.lease6.interface)
        if not req.mac and not att.shares_mac:
            # ipvlan: Docker would set this MAC on the link at Join, which the kernel
            # refuses; the link keeps the parent's.
            out["MacAddress"] = mac
        return {"Interface": out}

    @contextlib.asynccontextmanager
    async def _one_client(self, net: Network, endpoint_id: str) -> AsyncIterator[None]:
        """A `client_id` without {mac} makes every container of the network the same DHCP
        client: the server would hand them one address, and one's release would free the
        other's. So one container at a time (after the teardowns of those leaving): the
        block runs alone for the network, and only if no other endpoint is there."""
        client_id = net.options.client_id
        if not client_id or codec.MAC_PLACEHOLDER in client_id:
            yield
            return
        async with self._ids.hold(f"client_id:{net.id}"):  # ':' is in no endpoint ID
            others = [e for e in self.registry.endpoints_of(net.id) if e.id != endpoint_id]
            await self.teardowns.wait(e.id for e in others)
            for other in self.registry.endpoints_of(net.id):
                if other.id == endpoint_id:
                    continue
                raise OptionError(
                    f"network {net.id[:12]} has the constant client_id {client_id!r} and "
                    f"endpoint {other.id[:12]} (MAC {other.mac}) already uses it: two "
                    "containers would be one DHCP client to the server. Stop that "
                    "container first, or create the network with {mac} in client_id "
                    "(e.g. -o client_id=" + client_id + "-{mac}) so each container is "
                    "its own client")
            yield

    async def _acquire_all(self, net: Network, ep: Endpoint, clock: _Stopwatch) -> None:
        """Get the endpoint's leases, both families at once; each is set on `ep` as soon
        as it comes, so a failure of the other leaves it there to be released."""
        hostname = ep.options.hostname

        start = time.perf_counter()

        def keep_check(rest: acd.Rest) -> None:
            if ep.conflict_check is not None:
                ep.conflict_check.cancel()
            ep.conflict_check = rest

        async def v4() -> None:
            ep.lease = await self._acquire(net, ep.cont_if, ep.mac, hostname, clock,
                                           ep.options.requested_ip, keep_check)
            metrics.acquired("4", clock.since(start))
            clock.add("DHCPv4", clock.since(start) - clock.parts.get("probe", 0.0))
            mtu = wanted_mtu(net.options, ep.lease)
            if mtu is not None:
                # Both ends, before the reply: Docker moves the container end as it is.
                await netlink.set_mtu(choose.attachment(net.options).mtu_names(
                    ep.host_if, ep.cont_if), mtu)
                LOG.info("endpoint %s: MTU %d from the lease (option 26%s)", ep.id[:12], mtu,
                         "" if mtu == ep.lease.mtu else f" {ep.lease.mtu}, clamped")

        async def v6() -> None:
            ep.lease6 = await self._acquire6(net, ep.cont_if, ep.mac, hostname)
            metrics.acquired("6", clock.since(start))
            clock.add("DHCPv6", clock.since(start))

        await together(v4(), *([v6()] if net.options.ipv6 else []))

    async def _acquire(self, net: Network, ifname: str, mac: str, hostname: str | None,
                       clock: _Stopwatch, requested: IPv4Address | None,
                       keep_check: Callable[[acd.Rest], None]) -> Lease:
        """The IPv4 lease. Its conflict probe decides here on what the first ARP probe
        brought; the rest of the probe goes to `keep_check`, for Join (acd/probe.py)."""
        # In the host's namespace: a few quick syscalls, no thread needed.
        sock: DhcpSocket = open_dhcp_socket(ifname, with_sink=False)
        stats = AcquireStats()
        try:
            sock.start()

            async def probe(ip: IPv4Address) -> bool:
                started = time.perf_counter()
                try:
                    claimed, rest = await acd.in_use_soon(ifname, ip)
                finally:
                    clock.add("probe", time.perf_counter() - started)
                if rest is not None:
                    keep_check(rest)
                return claimed is not None

            return await acquire(sock, client_id=client_identity(net.options, mac),
                                 hostname=hostname, timeout_s=net.options.lease_timeout_s,
                                 probe=None if net.options.ignore_conflicts else probe,
                                 timing=self.timing, stats=stats, requested_ip=requested)
        except LeaseError as err:
            metrics.failed("4", stats)
            att = choose.attachment(net.options)
            raise LeaseError(await explain_no_lease(net.options.lan,
                                                    net.options.lease_timeout_s, stats,
                                                    kind=att.kind)) from err
        finally:
            sock.close(soon=True)
            metrics.exchanged("4", stats)

    async def _acquire6(self, net: Network, ifname: str, mac: str,
                        hostname: str | None) -> Lease6:
        """DHCPv6 (and the router's advertisement, at the same time) on `ifname`, as the
        client whose DUID and IAID come from the endpoint's MAC `mac` (not the interface's:
        on ipvlan every container's interface has the parent's)."""
        timeout = net.options.lease_timeout_s
        stats = Acquire6Stats()
        sock = await asyncio.to_thread(open_dhcp6_socket, ifname)
        sock.client_id = client_duid(net.options, codec6.duid_ll(codec.mac_from_str(mac)))
        rs_sent = asyncio.Event()
        ra_task = asyncio.create_task(router.solicit(ifname, None, timeout, rs_sent),
                                      name=f"ra:{ifname}")
        try:
            sock.start()
            rs_waiter = asyncio.ensure_future(rs_sent.wait())
            try:
                await asyncio.wait({ra_task, rs_waiter}, timeout=RS_FIRST_WAIT_S,
                                   return_when=asyncio.FIRST_COMPLETED)
            finally:
                rs_waiter.cancel()
            async def probe(ip: IPv6Address) -> bool:
                return await dad.in_use6(ifname, None, ip)

            try:
                lease = await acquire6(sock, iaid=codec6.iaid_for_mac(codec.mac_from_str(mac)),
                                       hostname=hostname, timeout_s=timeout, stats=stats,
                                       probe=None if net.options.ignore_conflicts else probe)
            except LeaseError as err:
                metrics.failed("6", stats)
                raise LeaseError(explain_no_lease6(net.options.lan, timeout, stats,
                                                   kind=net.options.mode)) from err
            ra = await router.wait(ra_task, RA_WAIT_S)
        finally:
            sock.close()
            ra_task.cancel()
            metrics.exchanged("6", stats)
        return router.on_link(lease, ra)

    async def program_external_connectivity(self, req: EndpointRequest) -> dict[str, Any]:
        """Docker 28+ sends this for the container's gateway endpoint once its interface is
        up in the container, before the process starts: the moment for the IPv6 default
        route (route6.py). Earlier engines send it before the interface moves: nothing to
        do then, the keeper adds the route when it attaches."""
        await self.teardowns.wait([req.endpoint_id])
        ep = self.registry.endpoints.get(req.endpoint_id)
        if ep is not None and ep.lease6 is not None and ep.sandbox:
            await route6.add_default(f"endpoint {ep.id[:12]}", ep.sandbox, ep.iface_mac,
                                     ep.lease6.router)
        return {}

    async def endpoint_oper_info(self, req: EndpointRequest) -> dict[str, Any]:
        """Docker ignores the value; answer fast with what we know (after any work still
        owed to an earlier call for the endpoint, as every call for it does)."""
        await self.teardowns.wait([req.endpoint_id])
        ep = self.registry.endpoints.get(req.endpoint_id)
        value: dict[str, Any] = {}
        if ep is not None and ep.lease is not None:
            value = {"ip": str(ep.lease.address), "mac": ep.mac,
                     "server": str(ep.lease.server_id)}
            if ep.lease6 is not None:
                value["ipv6"] = str(ep.lease6.interface)
        return {"Value": value}

    async def join(self, req: JoinRequest) -> dict[str, Any]:
        """Tell Docker the interface, gateway and routes; start keeping the lease."""
        await self.teardowns.wait([req.endpoint_id])  # an earlier Leave's release first
        ep = self.registry.endpoint(req.endpoint_id)
        if ep.lease is None:
            raise LeaseError(f"endpoint {req.endpoint_id[:12]} has no lease")
        net = self.registry.network(ep.network_id)
        await self._end_of_probe(ep, ep.lease)
        where = sandbox.local_path(req.sandbox_key, self.netns_dir)
        lease = ep.lease
        gateway = lease.gateway
        wanted = net.options.gateway_ip
        if wanted is not None:
            if wanted not in lease.address.network or wanted == lease.address.ip:
                raise OptionError(
                    f"gateway {wanted} (network option gateway) is not in the leased subnet "
                    f"{lease.address.network} ({lease.address.ip}): recreate the network with "
                    "a -o gateway= router on that subnet, or without -o gateway to use the "
                    "lease's router")
            gateway = wanted
        bridge: netlink.BridgeInfo | None = None
        if gateway is None or not net.options.skip_routes:
            bridge = await self._bridge_for_join(ep, net)
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
        # No GatewayIPv6, on purpose: route6.py says why, and adds the route itself.
        if routes:
            reply["StaticRoutes"] = routes
        async with ep.lock:
            if self.registry.endpoints.get(ep.id) is not ep:
                raise NotFoundError(f"endpoint {ep.id[:12]} was deleted during Join")
            self.registry.set_joined(ep, where)
            ep.released, ep.released_part = False, (False, False)
            if where:
                await self.leases.start(ep)
        return reply

    async def _end_of_probe(self, ep: Endpoint, lease: Lease) -> None:
        """Wait for the rest of the conflict probe CreateEndpoint started. A host that
        claims the address now cannot be worked around: Docker has recorded it. So the
        address is declined to the server and Join fails, saying so; the container's next
        start gets another address. A probe that cannot finish is not a conflict."""
        check, ep.conflict_check = ep.conflict_check, None
        if check is None:
            return
        started = time.perf_counter()
        try:
            claimed = await asyncio.wait_for(check, PROBE_END_WAIT_S)
        except (TimeoutError, OSError) as err:
            LOG.warning("endpoint %s: the conflict probe of %s did not finish (%r); going on",
                        ep.id[:12], lease.address.ip, err)
            return
        LOG.debug("endpoint %s: Join waited %.1f ms for the end of the conflict probe",
                  ep.id[:12], (time.perf_counter() - started) * 1000)
        if claimed is None:
            return
        try:
            await self.leases.decline(ep, lease, PROBE_DECLINE_MESSAGE)
        except Exception as err:  # noqa: BLE001 - the start fails either way, saying why
            LOG.warning("endpoint %s: DHCPDECLINE of %s failed: %s", ep.id[:12],
                        lease.address, err)
        metrics.declined("4")
        raise LeaseError(
            f"{lease.address.ip} is in use on the LAN: {claimed} answered the conflict probe "
            f"(RFC 5227) after the address was given to Docker. It was declined to the DHCP "
            f"server {lease.server_id}; start the container again to get another address, "
            "and find the host with that MAC (a static address inside the DHCP pool?)")

    async def _bridge_for_join(self, ep: Endpoint, net: Network) -> netlink.BridgeInfo:
        """The bridge's routes, as fetched during CreateEndpoint (a few ms ago), or now."""
        fetched, ep.bridge_info = ep.bridge_info, None
        if fetched is not None:
            try:
                return await fetched
            except Exception as err:  # noqa: BLE001 - look again, and fail (clearly) then
                LOG.debug("endpoint %s: bridge look-up during CreateEndpoint failed (%s); "
                          "again", ep.id[:12], err)
        return await choose.attachment(net.options).info()

    async def leave(self, req: EndpointRequest) -> dict[str, Any]:
        """Record the Leave and release the leases through the running keepers (a send
        each), answer, then stop the keepers (teardown.py): Docker waits for this reply
        before it moves the interface out. Idempotent."""
        ep = self.registry.endpoints.get(req.endpoint_id)
        if ep is None:
            return {}
        async with ep.lock:
            self.registry.set_joined(ep, None)
            # Docker moves the interface out right after this reply: release now, through
            # the keeper's socket in the container (one send), and stop the keeper after.
            await self.leases.release_now(ep)
        self.teardowns.start(ep.id, self._after_leave(ep), f"Leave of endpoint {ep.id[:12]}")
        return {}

    async def _after_leave(self, ep: Endpoint) -> None:
        async with ep.lock:
            if ep.sandbox is None:  # not joined again meanwhile
                # What the keepers' sockets could not release is released by
                # DeleteEndpoint, from the host, once Docker has moved the interface back.
                await self.leases.stop(ep, release=False)

    async def delete_endpoint(self, req: EndpointRequest) -> dict[str, Any]:
        """Release if still held, delete the veth, forget the endpoint; idempotent."""
        ep = self.registry.endpoints.get(req.endpoint_id)
        if ep is None:
            # Unknown or already deleted: still make sure no veth of ours is left, unless
            # the names belong to an endpoint that is live or being created.
            net = self.registry.networks.get(req.network_id)
            modes = ([choose.attachment(net.options)] if net is not None
                     else [mode("") for mode in choose.all_modes()])
            async with self._ids.hold(req.endpoint_id):
                owned = {e.host_if for e in self.registry.endpoints.values()}
                for att in modes:
                    host_if, cont_if = att.names(req.endpoint_id)
                    if host_if not in owned | self.registry.being_created():
                        await att.remove(host_if, cont_if, f"endpoint {req.endpoint_id[:12]}")
            return {}
        # Answer now; release (if Leave did not), delete the veth and forget the endpoint
        # right after. Until then it stays in the state file, so a crash loses nothing.
        self.teardowns.start(ep.id, self.remove_endpoint(ep, release=True),
                             f"DeleteEndpoint of endpoint {ep.id[:12]}")
        return {}

    async def remove_endpoint(self, ep: Endpoint, *, release: bool) -> None:
        """Tear an endpoint down completely: keeper, lease, veth, state. Best effort."""
        async with ep.lock:
            if ep.bridge_info is not None:  # never joined
                await _cancelled(ep.bridge_info)
                ep.bridge_info = None
            if ep.conflict_check is not None:  # never joined either
                await _cancelled(ep.conflict_check)
                ep.conflict_check = None
            await self.leases.stop(ep, release=release)
            await self.attachment_of(ep).remove(ep.host_if, ep.cont_if,
                                                 f"endpoint {ep.id[:12]}")
            self.registry.forget_endpoint(ep)
            LOG.info("endpoint %s deleted", ep.id[:12])

    def attachment_of(self, ep: Endpoint) -> Attachment:
        """The endpoint's attachment; a network already forgotten: told by its names."""
        net = self.registry.networks.get(ep.network_id)
        if net is not None:
            return choose.attachment(net.options)
        for mode in choose.all_modes():
            if ep.host_if.startswith(mode.prefix):
                return mode("")
        return choose.all_modes()[0]("")

    async def close(self) -> None:
        """Finish the work owed to replies already sent, then stop every keeper without
        releasing: containers keep their addresses."""
        await self.starts.close()
        await self.teardowns.close()
        await self.leases.close()
