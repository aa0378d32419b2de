"""The lease supervisor: one keeper task per joined endpoint, and the release policy.

It owns every keeper task (started at Join or re-adoption, cancelled and awaited at Leave,
teardown or shutdown; one task keeps the IPv4 lease and, on an IPv6 network, the IPv6 one
beside it) and decides whether and how leases are released: through the running keepers'
sockets, from wherever the container's interface is now, or (IPv4) in the endpoint's name
when the interface is gone (into the LAN bridge; on a parent, from a short-lived link like
the endpoint's); never while another live endpoint holds the same MAC. The same in every
attachment mode (attach/): the interface is found by the MAC it carries (`iface_mac`), the
DHCP identity comes from the endpoint's own MAC (`mac`).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
import time
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address

from . import metrics, netlink, resolv, route6, sandbox
from .acd import probe as acd
from .attach import choose
from .attach.base import Attachment
from .config import NetworkOptions, clamp_mtu
from .dhcp4 import codec
from .dhcp4.client import send_decline, send_release
from .dhcp4.keeper import LeaseKeeper
from .dhcp4.lease import Lease
from .dhcp4.sockets import DhcpSocket, open_dhcp_socket, send_release_as
from .dhcp4.timing import Timing
from .dhcp6 import codec as codec6
from .dhcp6.client import send_release6
from .dhcp6.keeper import Lease6Keeper
from .dhcp6.lease import Lease6
from .dhcp6.sockets import Dhcp6Socket, open_dhcp6_socket
from .dhcp6.timing import Timing6
from .errors import InterfaceGone
from .keeping import KeeperBase
from .ndp import dad
from .registry import Endpoint, Registry
from .tasks import together

LOG = logging.getLogger(__name__)

KEEPER_STOP_S = 2.0
ATTACH_TRIES = 5


def client_identity(options: NetworkOptions | None, mac: str) -> codec.ClientIdentity:
    """What a container on a network with `options` is to the DHCPv4 server, in every
    message it sends: its client identifier (the network's `client_id` with {mac} replaced,
    else type 1 and the MAC), with the network's vendor class (option 60) and whether the
    Client FQDN (option 81) goes with the host name (`register_dns`)."""
    raw = codec.mac_from_str(mac)
    if options is None:
        return codec.ClientIdentity(codec.client_id_for_mac(raw))
    value = (codec.client_id_from_text(options.client_id, raw) if options.client_id
             else codec.client_id_for_mac(raw))
    vendor = options.vendor_class.encode("ascii") if options.vendor_class else None
    return codec.ClientIdentity(value, vendor_class=vendor, fqdn=options.register_dns)


def client_duid(options: NetworkOptions | None, duid: bytes) -> codec6.ClientDuid:
    """A DHCPv6 socket's DUID with the network's `register_dns` (Client FQDN's S flag)."""
    return codec6.ClientDuid(duid, register_dns=options is not None and options.register_dns)


def gateway_for(options: NetworkOptions | None, lease: Lease) -> IPv4Address | None:
    """The default gateway to configure for `lease`: the network's `gateway` option when it
    lies in the leased subnet, else (logged by the caller) the lease's router."""
    wanted = options.gateway_ip if options is not None else None
    if wanted is not None and wanted in lease.address.network and wanted != lease.address.ip:
        return wanted
    return lease.gateway


_SEARCH_NAME = re.compile(r"(?=.{1,253}\Z)[A-Za-z0-9_-]{1,63}(\.[A-Za-z0-9_-]{1,63})*\Z")


def wanted_dns(options: NetworkOptions | None,
               lease: Lease) -> tuple[tuple[IPv4Address, ...], tuple[str, ...]] | None:
    """propagate_dns: the servers (option 6) and search list (option 119, else the domain
    of option 15) for the container's resolv.conf; None when the option is off."""
    if options is None or not options.propagate_dns:
        return None
    search = lease.search or ((lease.domain,) if lease.domain else ())
    return lease.dns, tuple(d for d in search if _SEARCH_NAME.match(d))


def wanted_mtu(options: NetworkOptions | None, lease: Lease | None) -> int | None:
    """The MTU to give the container's interface for `lease` (propagate_mtu), if any."""
    if options is None or not options.propagate_mtu or lease is None or lease.mtu is None:
        return None
    return clamp_mtu(lease.mtu)


@dataclass(frozen=True)
class KeeperCounts:
    """Renewals (replies that extended a lease) and failed keeper steps, of either family."""

    renewals: int = 0
    failures: int = 0

    def __add__(self, other: KeeperCounts) -> KeeperCounts:
        return KeeperCounts(self.renewals + other.renewals, self.failures + other.failures)


@dataclass
class _Running:
    task: asyncio.Task[None]
    sandbox: str
    keeper: LeaseKeeper | None = None
    keeper6: Lease6Keeper | None = None
    netns: int | None = None
    """The identity of the namespace the keeper attached in (netlink.netns_inode)."""
    past: KeeperCounts = KeeperCounts()
    """What this run's earlier keepers counted (before it followed a renamed interface)."""
    mtu: int | None = None
    """The MTU last set on the endpoint's interfaces (propagate_mtu), as far as known."""
    mtu_task: asyncio.Task[None] | None = None
    dns_task: asyncio.Task[None] | None = None

    def counts(self) -> KeeperCounts:
        """Everything this run's keepers counted, the current ones included."""
        total = self.past
        for k in (self.keeper, self.keeper6):
            if k is not None:
                total += KeeperCounts(k.renewals, k.failures)
        return total


class LeaseSupervisor:
    """Starts, stops and releases the leases of endpoints; see the module docstring."""

    def __init__(self, registry: Registry, timing: Timing,
                 timing6: Timing6 = Timing6()) -> None:
        self.registry = registry
        self.timing = timing
        self.timing6 = timing6
        self._running: dict[str, _Running] = {}
        self._retired = KeeperCounts()
        """What the keepers of runs that ended (Leave, teardown, a new Join) counted."""

    # ---- read-only counters (the status route) -------------------------------------------
    def counts(self, ep: Endpoint) -> KeeperCounts:
        """The endpoint's renewals and keeper failures since it joined (or was re-adopted)."""
        run = self._running.get(ep.id)
        return run.counts() if run is not None else KeeperCounts()

    def totals(self) -> KeeperCounts:
        """Renewals and keeper failures of every keeper this process ran, stopped or not."""
        total = self._retired
        for run in self._running.values():
            total += run.counts()
        return total

    def keeping(self, ep: Endpoint) -> bool:
        """Whether a keeper task runs for the endpoint (attached yet or not)."""
        run = self._running.get(ep.id)
        return run is not None and not run.task.done()

    def _retire(self, run: _Running) -> None:
        self._retired += run.counts()

    def keeper(self, ep: Endpoint) -> LeaseKeeper | None:
        """The endpoint's running IPv4 keeper, once it has attached to the interface."""
        run = self._running.get(ep.id)
        return run.keeper if run is not None else None

    def keepers(self, ep: Endpoint) -> list[KeeperBase[Lease] | KeeperBase[Lease6]]:
        """The endpoint's running keepers (IPv4, and IPv6 on an IPv6 network)."""
        run = self._running.get(ep.id)
        if run is None:
            return []
        return [k for k in (run.keeper, run.keeper6) if k is not None]

    async def start(self, ep: Endpoint) -> None:
        """Keep the endpoint's lease in its sandbox; a keeper on another sandbox (a second
        Join without Leave) is stopped first, without a release."""
        assert ep.sandbox is not None
        run = self._running.get(ep.id)
        if run is not None and not run.task.done():
            if run.sandbox == ep.sandbox:
                return
            LOG.info("endpoint %s: joined %s without leaving %s; moving its keeper",
                     ep.id[:12], ep.sandbox, run.sandbox)
            await self._cancel(ep)
        att = self._attachment(ep)
        if ep.link_mac is None and att is not None and att.shares_mac:
            ep.link_mac = att.link_mac(ep.mac)  # after a restart: the parent's MAC now
        finished = self._running.pop(ep.id, None)  # its keeper stopped by itself
        if finished is not None:
            self._retire(finished)
        task = asyncio.create_task(self._keep(ep, ep.sandbox), name=f"keeper:{ep.id[:12]}")
        task.add_done_callback(_log_task_failure)
        self._running[ep.id] = _Running(task, ep.sandbox)

    async def _keep(self, ep: Endpoint, where: str) -> None:
        """Keep the lease on the interface in `where`; follow the interface if the
        container renames it; stop (logged) when it is gone from `where` for good."""
        while True:
            found = await self._attach(ep, where)
            if found is None:
                return
            ifname, sock = found
            try:
                await self._run_keeper(ep, where, ifname, sock)
            except InterfaceGone as err:
                LOG.debug("endpoint %s: %s", ep.id[:12], err)
            finally:
                sock.close()
            try:
                moved = netlink.is_netns(where) and await sandbox.find(where, ep.iface_mac)
            except OSError:
                moved = None
            if not moved:
                lease = ep.lease.address if ep.lease is not None else "its lease"
                LOG.warning("endpoint %s: its interface %s is gone from %s (the container's "
                            "network namespace went away, or the interface was deleted): no "
                            "longer renewing %s; it is released when Docker removes the "
                            "endpoint, or by the sweep", ep.id[:12], ep.mac, where, lease)
                return
            LOG.info("endpoint %s: interface %s is now %s in %s; following it", ep.id[:12],
                     ep.mac, moved[1], where)

    async def _run_keeper(self, ep: Endpoint, where: str, ifname: str,
                          sock: DhcpSocket) -> None:
        assert ep.lease is not None
        sock.start()
        net = self.registry.networks.get(ep.network_id)
        options = net.options if net is not None else None

        async def apply(old: Lease | None, new: Lease) -> None:
            gateway = gateway_for(options, new)
            if options is not None and options.gateway and gateway != options.gateway_ip:
                LOG.warning("endpoint %s: gateway %s (option gateway) is not in the leased "
                            "subnet %s; using the lease's router %s", ep.id[:12],
                            options.gateway, new.address.network, new.gateway or "(none)")
            await sandbox.apply(where, ep.iface_mac, old, new, gateway=gateway)

        def on_lease(lease: Lease) -> None:
            self.registry.set_lease(ep, lease)
            self._follow_mtu(ep, where, options, lease)
            self._follow_dns(ep, where, options, lease)

        async def unapply(old: Lease) -> None:
            await sandbox.unapply(where, ep.iface_mac, old)

        async def probe(ip: IPv4Address) -> bool:
            return await acd.in_use(ifname, where, ip)

        keeper = LeaseKeeper(
            f"endpoint {ep.id[:12]}", sock, ep.lease,
            client_id=client_identity(options, ep.mac),
            hostname=ep.wanted_hostname, apply=apply, unapply=unapply, on_lease=on_lease,
            probe=None if net is None or net.options.ignore_conflicts else probe,
            timing=self.timing,
        )
        sock6: Dhcp6Socket | None = None
        try:
            keeper6: Lease6Keeper | None = None
            if ep.lease6 is not None:
                sock6 = await netlink.run_in_netns(
                    where, functools.partial(open_dhcp6_socket, ifname))
                sock6.client_id = client_duid(
                    options, codec6.duid_ll(codec.mac_from_str(ep.mac)))
                sock6.start()
                keeper6 = self._keeper6(ep, where, sock6, ep.lease6)
            run = self._running.get(ep.id)
            if run is not None:
                run.past = run.counts()  # the keepers being replaced, if any
                run.keeper, run.keeper6 = keeper, keeper6
                run.netns = netlink.netns_inode(where)
                if run.mtu is None:
                    run.mtu = wanted_mtu(options, ep.lease)  # set at CreateEndpoint
                self._follow_dns(ep, where, options, ep.lease, settle=True)
            LOG.info("endpoint %s: keeping %s on %s in %s (renew in %.0fs)", ep.id[:12],
                     ep.lease.address, ifname, where, max(0.0, ep.lease.t1_at - time.time()))
            if keeper6 is not None:
                LOG.info("endpoint %s: keeping %s (renew in %.0fs)", ep.id[:12],
                         keeper6.lease.address, max(0.0, keeper6.lease.t1_at - time.time()))
                await together(keeper.run(), keeper6.run())
            else:
                await keeper.run()
        finally:
            if sock6 is not None:
                sock6.close()

    def _follow_mtu(self, ep: Endpoint, where: str, options: NetworkOptions | None,
                    lease: Lease) -> None:
        """propagate_mtu: a renewal (or new lease) whose option 26 differs from the MTU
        the interfaces have gets it set on both veth ends, in the background (a failure
        is logged and tried again at the next renewal). A lease without option 26 leaves
        the MTU as it is."""
        mtu = wanted_mtu(options, lease)
        run = self._running.get(ep.id)
        if (mtu is None or run is None or run.mtu == mtu
                or (run.mtu_task is not None and not run.mtu_task.done())):
            return
        run.mtu_task = asyncio.create_task(self._set_mtu(ep, where, run, mtu),
                                           name=f"mtu:{ep.id[:12]}")
        run.mtu_task.add_done_callback(_log_task_failure)

    def _follow_dns(self, ep: Endpoint, where: str, options: NetworkOptions | None,
                    lease: Lease, *, settle: bool = False) -> None:
        """propagate_dns: make the container's resolv.conf carry the lease's DNS servers and
        search list, at attach (looked at again while the container starts) and at every
        new lease or renewal (written only if the file lacks them: the DNS changed, or
        Docker wrote the file again), in the background; a failure is logged and tried
        again at the next renewal."""
        dns = wanted_dns(options, lease)
        run = self._running.get(ep.id)
        if (dns is None or run is None
                or (run.dns_task is not None and not run.dns_task.done())):
            return

        async def write() -> None:
            await resolv.propagate(f"endpoint {ep.id[:12]}", where, *dns, settle=settle)

        run.dns_task = asyncio.create_task(write(), name=f"dns:{ep.id[:12]}")
        run.dns_task.add_done_callback(_log_task_failure)

    async def _set_mtu(self, ep: Endpoint, where: str, run: _Running, mtu: int) -> None:
        try:
            name = await netlink.run_in_netns(
                where, functools.partial(netlink.set_mtu_by_mac, ep.iface_mac, mtu))
            await netlink.set_mtu((ep.host_if,), mtu)
        except Exception as err:  # noqa: BLE001 - OSError, netlink errors: the lease goes on
            LOG.warning("endpoint %s: could not set the MTU to %d (%s); trying again at the "
                        "next renewal", ep.id[:12], mtu, err)
            return
        LOG.info("endpoint %s: MTU %s -> %d (lease option 26) on %s and %s", ep.id[:12],
                 run.mtu or "unknown", mtu, name or "(container interface gone)", ep.host_if)
        run.mtu = mtu

    def _keeper6(self, ep: Endpoint, where: str, sock: Dhcp6Socket,
                 lease: Lease6) -> Lease6Keeper:
        async def apply(old: Lease6 | None, new: Lease6) -> None:
            await sandbox.apply6(where, ep.iface_mac, old, new)

        async def unapply(old: Lease6) -> None:
            await sandbox.unapply6(where, ep.iface_mac, old)

        async def probe(ip: IPv6Address) -> bool:
            return await dad.in_use6(sock.ifname, where, ip)

        net = self.registry.networks.get(ep.network_id)
        return Lease6Keeper(
            f"endpoint {ep.id[:12]} (IPv6)", sock, lease, hostname=ep.wanted_hostname,
            apply=apply, unapply=unapply,
            on_lease=functools.partial(self.registry.set_lease6, ep),
            probe=None if net is None or net.options.ignore_conflicts else probe,
            timing=self.timing6)

    async def _attach(self, ep: Endpoint, where: str) -> tuple[str, DhcpSocket] | None:
        """Wait for the container's interface and open a DHCP socket on it."""
        assert ep.lease is not None
        for attempt in range(1, ATTACH_TRIES + 1):
            try:
                _, ifname = await sandbox.wait_for_iface(where, ep.iface_mac, ep.lease,
                                                         not_named=ep.cont_if)
            except TimeoutError:
                hint = ""
                if netlink.file_exists(where) and not netlink.is_netns(where):
                    hint = (": that file is not a network namespace. For a managed plugin "
                            "the host's Docker netns folder must be a shared mount (mount "
                            "--bind D D && mount --make-shared D) before the plugin is enabled")
                LOG.error("endpoint %s: interface %s never appeared in %s%s; its lease is not "
                          "renewed", ep.id[:12], ep.mac, where, hint)
                return None
            except OSError as err:
                LOG.warning("endpoint %s: sandbox %s is gone (%s)", ep.id[:12], where, err)
                return None
            if ep.lease6 is not None:  # first: the container may be starting this moment
                await route6.add_default(f"endpoint {ep.id[:12]}", where, ep.iface_mac,
                                         ep.lease6.router)
            try:
                sock = await netlink.run_in_netns(
                    where, functools.partial(open_dhcp_socket, ifname, with_sink=True))
            except OSError as err:
                # Renamed or moved between the look and the open: look again.
                LOG.debug("endpoint %s: opening %s failed (%s), attempt %d", ep.id[:12],
                          ifname, err, attempt)
                if attempt == ATTACH_TRIES:
                    LOG.error("endpoint %s: cannot open a DHCP socket on %s in %s: %s; its "
                              "lease is not renewed", ep.id[:12], ifname, where, err)
            else:
                attachment = self._attachment(ep)
                if attachment is not None and not await attachment.wait_passing(ep.host_if):
                    LOG.info("endpoint %s: %s does not pass frames yet; sending anyway",
                             ep.id[:12], ep.host_if)
                return ifname, sock
        return None

    async def check_sandboxes(self) -> None:
        """Stop keeping, and release, the lease of every container whose namespace is gone
        (Docker deleted it and no Leave reached us): the keeper's sockets would keep the
        dead namespace, its interface and the lease alive for ever. Called periodically."""
        for endpoint_id, run in list(self._running.items()):
            if run.keeper is None or run.task.done():
                continue  # not attached yet (Docker <= 25 mounts the namespace late)
            if netlink.netns_inode(run.sandbox) == run.netns:
                continue
            ep = self.registry.endpoints.get(endpoint_id)
            if ep is None:
                continue
            LOG.warning("endpoint %s: the container's network namespace %s is gone but "
                        "Docker never sent Leave; stopping its DHCP client and releasing %s "
                        "(the endpoint goes when Docker deletes it, or at the sweep)",
                        ep.id[:12], run.sandbox, run.keeper.lease.address)
            async with ep.lock:
                if self._running.get(endpoint_id) is run:
                    await self.stop(ep, release=True)

    async def _cancel(self, ep: Endpoint) -> None:
        run = self._running.pop(ep.id, None)
        if run is None:
            return
        self._retire(run)
        run.task.cancel()
        for side in (run.mtu_task, run.dns_task):
            if side is not None:
                side.cancel()
        # Never let a keeper that fails to stop block Leave or DeleteEndpoint.
        done, _ = await asyncio.wait({run.task}, timeout=KEEPER_STOP_S)
        if not done:
            LOG.error("endpoint %s: DHCP client did not stop within %gs; going on",
                      ep.id[:12], KEEPER_STOP_S)

    async def release_now(self, ep: Endpoint) -> None:
        """Leave, before its reply: give the leases back through the running keepers'
        sockets, open in the container's namespace (a send each, no thread, no netlink),
        while Docker has not yet moved the interface out. Best effort: what this does not
        release, the endpoint's removal does, from the host (`stop` with `release`)."""
        run = self._running.get(ep.id)
        if (run is None or run.task.done() or ep.released
                or self.same_client(ep) is not None):
            return
        done4, done6 = ep.released_part
        if run.keeper is not None and not done4:
            try:
                send_release(run.keeper.sock, run.keeper.lease, run.keeper.client_id)
            except (OSError, InterfaceGone) as err:
                LOG.info("endpoint %s: DHCPRELEASE through the keeper failed (%s); it is "
                         "sent when the endpoint is removed", ep.id[:12], err)
            else:
                done4 = True
                metrics.released("4")
                LOG.info("endpoint %s: released %s to %s", ep.id[:12],
                         run.keeper.lease.address, run.keeper.lease.server_id)
        if run.keeper6 is not None and not done6:
            try:
                await send_release6(run.keeper6.sock, run.keeper6.lease)
            except (OSError, InterfaceGone) as err:
                LOG.info("endpoint %s: DHCPv6 Release through the keeper failed (%s); it "
                         "is sent when the endpoint is removed", ep.id[:12], err)
            else:
                done6 = True
                metrics.released("6")
                LOG.info("endpoint %s: released %s", ep.id[:12], run.keeper6.lease.address)
        ep.released_part = (done4, done6)
        if (done4 or ep.lease is None) and (done6 or ep.lease6 is None):
            ep.released = True

    async def stop(self, ep: Endpoint, *, release: bool) -> None:
        """Stop keeping the leases; with `release`, give them back (best effort, logged),
        but for what `release_now` gave back already."""
        if release:
            await self.release_now(ep)
        run = self._running.get(ep.id)
        keeper = run.keeper if run is not None else None
        keeper6 = run.keeper6 if run is not None else None
        lease = keeper.lease if keeper is not None else ep.lease
        lease6 = keeper6.lease if keeper6 is not None else ep.lease6
        await self._cancel(ep)
        if not release or ep.released or (lease is None and lease6 is None):
            return
        ep.released = True
        twin = self.same_client(ep)
        if twin is not None:
            # A restarted container reuses its MAC (--mac-address): the server sees one
            # client, and releasing the stale endpoint would release the live one.
            LOG.info("endpoint %s: no release, endpoint %s holds the same MAC %s or "
                     "client identifier", ep.id[:12], twin.id[:12], ep.mac)
            return
        done4, done6 = ep.released_part
        await self._release_rest(ep, None if done4 else lease, None if done6 else lease6)

    async def release_all(self, ep: Endpoint) -> None:
        """Give back both leases of an endpoint no keeper runs for (best effort, logged)."""
        await self._release_rest(ep, ep.lease, ep.lease6)

    async def _release_rest(self, ep: Endpoint, lease: Lease | None,
                            lease6: Lease6 | None) -> None:
        if lease is not None:
            try:
                await self.release(ep, lease)
            except Exception as err:  # noqa: BLE001 - a failed release never blocks teardown
                LOG.warning("endpoint %s: DHCPRELEASE of %s failed: %s", ep.id[:12],
                            lease.address, err)
        if lease6 is not None:
            try:
                await self.release6(ep, lease6)
            except Exception as err:  # noqa: BLE001 - a failed release never blocks teardown
                LOG.warning("endpoint %s: DHCPv6 Release of %s failed: %s", ep.id[:12],
                            lease6.address, err)

    def client_identity(self, ep: Endpoint) -> codec.ClientIdentity:
        """The endpoint's DHCPv4 identity on its network (see client_identity)."""
        net = self.registry.networks.get(ep.network_id)
        return client_identity(net.options if net is not None else None, ep.mac)

    def same_client(self, ep: Endpoint) -> Endpoint | None:
        """Another endpoint the DHCP server takes for the same client: the same MAC, or
        (a network's constant `client_id`) the same client identifier."""
        twin = self.registry.same_client(ep)
        if twin is not None:
            return twin
        net = self.registry.networks.get(ep.network_id)
        if net is None or not net.options.client_id:
            return None
        mine = bytes(self.client_identity(ep))
        for other in self.registry.endpoints.values():
            there = self.registry.networks.get(other.network_id)
            if (other is not ep and there is not None
                    and there.options.lan == net.options.lan
                    and bytes(self.client_identity(other)) == mine):
                return other
        return None

    def _attachment(self, ep: Endpoint) -> Attachment | None:
        net = self.registry.networks.get(ep.network_id)
        return choose.attachment(net.options) if net is not None else None

    async def _where(self, ep: Endpoint) -> tuple[str | None, str] | None:
        """(namespace, name) of the container's interface now: its sandbox, or the host
        (None) where Docker hands it back; None if it is gone."""
        if ep.sandbox and netlink.is_netns(ep.sandbox):
            found = await sandbox.find(ep.sandbox, ep.iface_mac)
            if found is not None:
                return ep.sandbox, found[1]
        if await netlink.link_exists(ep.cont_if):
            return None, ep.cont_if
        return None

    async def _bring_back_up(self, ep: Endpoint, ifname: str) -> None:
        """Up the container end Docker handed back to the host, and wait until a frame
        from it reaches the LAN: until the kernel's link watch has run for both ends,
        the device drops frames and the bridge port does not forward, without an error."""
        await netlink.set_up(ifname)
        if not await netlink.wait_passing(ep.host_if, ifname):
            LOG.info("endpoint %s: %s and %s do not pass frames yet; sending anyway",
                     ep.id[:12], ep.host_if, ifname)

    async def release6(self, ep: Endpoint, lease: Lease6) -> None:
        """Send a DHCPv6 Release from wherever the container end is now."""
        place = await self._where(ep)
        if place is None:
            LOG.info("endpoint %s: interface gone, no DHCPv6 Release for %s (the server "
                     "frees it when its valid lifetime ends)", ep.id[:12], lease.address)
            return
        where, ifname = place
        if where is None:
            # Back in the host, down, with a fresh link-local address: usable at once.
            await asyncio.to_thread(netlink.skip_dad, ifname)
            await self._bring_back_up(ep, ifname)
        sock = await netlink.run_in_netns(where, functools.partial(open_dhcp6_socket, ifname))
        try:
            sock.start()
            await send_release6(sock, lease)
        finally:
            sock.close()
        LOG.info("endpoint %s: released %s", ep.id[:12], lease.address)
        metrics.released("6")

    async def decline(self, ep: Endpoint, lease: Lease, message: str) -> None:
        """DHCPDECLINE `lease` (another host uses its address) from the endpoint's interface
        in the host, where it is until Join answers; the lease then counts as given back, so
        no DHCPRELEASE follows (it would free the address at the server)."""
        ep.released_part = (True, ep.released_part[1])
        sock = await asyncio.to_thread(open_dhcp_socket, ep.cont_if, with_sink=False)
        try:
            send_decline(sock, lease, self.client_identity(ep), message)
        finally:
            sock.close()
        LOG.info("endpoint %s: declined %s to %s", ep.id[:12], lease.address, lease.server_id)

    async def release(self, ep: Endpoint, lease: Lease) -> None:
        """Send DHCPRELEASE from wherever the container end is now (sandbox or host), or
        through the bridge in its name when it is gone."""
        place = await self._where(ep)
        if place is None:
            att = self._attachment(ep)
            if att is None or att.kind == "bridge":
                await self._release_via_bridge(ep, lease)
            else:
                await self._release_via_stand_in(ep, lease, att)
            return
        where, ifname = place
        if where is None:
            # Docker hands the container end back to the host down; it is deleted next.
            await self._bring_back_up(ep, ifname)
        sock = await netlink.run_in_netns(
            where, functools.partial(open_dhcp_socket, ifname, with_sink=False))
        try:
            send_release(sock, lease, self.client_identity(ep))
        finally:
            sock.close()
        LOG.info("endpoint %s: released %s to %s", ep.id[:12], lease.address, lease.server_id)
        metrics.released("4")

    async def _release_via_bridge(self, ep: Endpoint, lease: Lease) -> None:
        """The container's interface is gone (its namespace died with it): send the
        DHCPRELEASE into the LAN bridge in the endpoint's name (its MAC as the frame's
        source), so the server does not keep a phantom lease until it expires."""
        net = self.registry.networks.get(ep.network_id)
        if net is None or not await netlink.link_exists(net.options.bridge):
            LOG.info("endpoint %s: interface and bridge gone, no DHCPRELEASE for %s",
                     ep.id[:12], lease.address)
            return
        mac = codec.mac_from_str(ep.mac)
        await asyncio.to_thread(send_release_as, net.options.bridge, mac, lease,
                                self.client_identity(ep))
        LOG.info("endpoint %s: interface gone; released %s to %s through bridge %s",
                 ep.id[:12], lease.address, lease.server_id, net.options.bridge)
        metrics.released("4")

    async def _release_via_stand_in(self, ep: Endpoint, lease: Lease,
                                    att: Attachment) -> None:
        """macvlan/ipvlan: the container's link is gone (its namespace died with it): make a
        short-lived link like it on the parent (the endpoint's name and MAC) and send the
        DHCPRELEASE from there, as the container would have, then delete it."""
        if not await netlink.link_exists(att.lan):
            LOG.info("endpoint %s: interface and parent %s gone, no DHCPRELEASE for %s",
                     ep.id[:12], att.lan, lease.address)
            return
        async with att.stand_in(ep.cont_if, ep.mac) as ifname:
            assert ifname is not None
            sock = await asyncio.to_thread(open_dhcp_socket, ifname, with_sink=False)
            try:
                send_release(sock, lease, self.client_identity(ep))
            finally:
                sock.close()
        LOG.info("endpoint %s: interface gone; released %s to %s from a stand-in %s link "
                 "on %s", ep.id[:12], lease.address, lease.server_id, att.kind, att.lan)
        metrics.released("4")

    async def close(self) -> None:
        """Stop every keeper without releasing: containers keep their addresses."""
        for endpoint_id in list(self._running):
            ep = self.registry.endpoints.get(endpoint_id)
            if ep is not None:
                await self._cancel(ep)
            else:
                run = self._running.pop(endpoint_id)
                self._retire(run)
                run.task.cancel()


def _log_task_failure(task: asyncio.Task[None]) -> None:
    """Make a background task's crash visible (its owner keeps a reference to it)."""
    if not task.cancelled() and task.exception() is not None:
        LOG.error("%s failed: %r", task.get_name(), task.exception(),
                  exc_info=task.exception())
