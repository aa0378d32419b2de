"""Start-up and background reconciliation: the store vs the kernel vs Docker.

Every task here has one owner (Reconciler) that cancels and awaits it. Docker is only
ever asked from these background tasks, so dockerd starting up (and not yet serving
its API) can never deadlock against a plugin request.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Coroutine
from ipaddress import IPv4Network
from typing import Any

from . import netlink
from .attach import choose, veth
from .config import valid_hostname
from .docker_api import DockerClient
from .driver import Driver
from .errors import DockerNotFound
from .registry import Endpoint
from .stable_mac import Found

LOG = logging.getLogger(__name__)

DIE_GRACE_S = 5.0
"""After a container dies, give Docker this long to send Leave/DeleteEndpoint itself."""
NEW_ENDPOINT_GRACE_S = 30.0
"""An endpoint younger than this may not be visible in Docker yet: the sweep spares it."""
RETRY_S = 5.0


class Reconciler:
    """Owns the background tasks that keep the plugin's view in line with reality."""

    def __init__(self, driver: Driver, *, driver_name: str | None, socket_name: str,
                 docker_socket: str | None, sweep_interval_s: float,
                 plugin_id: str | None = None) -> None:
        self.driver = driver
        self.driver_name = driver_name
        """The name Docker knows us by; None: a managed plugin's, learnt from Docker."""
        self.socket_name = socket_name
        self.plugin_id = plugin_id
        """A managed plugin's own ID, if it could tell (managed.own_plugin_id)."""
        self.docker = DockerClient(docker_socket)
        self.sweep_interval_s = sweep_interval_s
        self._tasks: set[asyncio.Task[None]] = set()
        self._strays: set[str] = set()
        self._missing_bridges: set[str] = set()
        self.docker_reachable: bool | None = None
        """None until the first try; then whether the Docker API answered last time."""

    async def adopt_from_kernel(self) -> None:
        """Resume keepers for endpoints whose container still runs; clean the rest."""
        for ep in list(self.driver.registry.endpoints.values()):
            att = self.driver.attachment_of(ep)
            if att.shares_mac and ep.link_mac is None:
                ep.link_mac = att.link_mac(ep.mac)
            if not await att.present(ep.host_if, ep.cont_if, ep.sandbox, ep.iface_mac):
                LOG.info("endpoint %s: %s %s is gone; releasing and forgetting it",
                         ep.id[:12], "veth" if att.kind == "bridge" else f"{att.kind} link",
                         ep.host_if)
                await self.driver.remove_endpoint(ep, release=True)
                continue
            if ep.sandbox and ep.lease is not None and netlink.file_exists(ep.sandbox):
                # A sandbox file that is not (yet) a namespace is not proof the container
                # stopped: Docker <= 27 mounts it late, and a managed plugin whose netns
                # mount does not propagate sees only placeholders. Wait for it; never release.
                LOG.info("endpoint %s: re-adopting %s in %s", ep.id[:12], ep.lease.address,
                         ep.sandbox)
                await self.driver.leases.start(ep)
            elif ep.sandbox:
                LOG.info("endpoint %s: its container stopped while the plugin was away; "
                         "cleaning up", ep.id[:12])
                await self.driver.remove_endpoint(ep, release=True)

    def start(self) -> None:
        """Start the Docker watcher and the sweep."""
        self._spawn(self._events(), "docker-events")
        self._spawn(self._sweep_forever(), "sweep")

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        """Run `coro` as a task this reconciler owns until it ends (then it is forgotten)."""
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        """Cancel and await every task; close the Docker client."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.docker.close()

    # ---- Docker networks: IPAM pools for the conflict check ---------------------------------
    async def refresh_pools(self) -> None:
        """Remember the subnets of Docker networks that have a real IPAM pool."""
        pools: list[tuple[str, IPv4Network]] = []
        for net in await self.docker.networks():
            ipam = net.get("IPAM") or {}
            if net.get("Id") in self.driver.registry.networks or ipam.get("Driver") == "null":
                continue
            for cfg in ipam.get("Config") or []:
                with contextlib.suppress(ValueError, TypeError):
                    subnet = IPv4Network(cfg.get("Subnet", ""), strict=False)
                    if subnet.prefixlen > 0:  # 0.0.0.0/0 is a null pool, not an allocation
                        pools.append((str(net.get("Name")), subnet))
        self.driver.docker_pools = pools

    # ---- events ------------------------------------------------------------------------------
    async def _events(self) -> None:
        filters = {"type": ["network", "container"],
                   "event": ["connect", "create", "destroy", "die", "start"]}
        while True:
            try:
                await self.refresh_pools()
                self._docker_reachable(True)
                await self.rebuild_from_docker()
                await self.learn_all()
                async for event in self.docker.events(filters):
                    await self._on_event(event)
            except asyncio.CancelledError:
                raise
            except Exception as err:  # noqa: BLE001 - Docker may be down; try again later
                self._docker_reachable(False, err)
            await asyncio.sleep(RETRY_S)

    def _docker_reachable(self, now: bool, err: BaseException | None = None) -> None:
        """Log when the Docker API becomes reachable or stops being so (once each way)."""
        if now == self.docker_reachable:
            if err is not None:
                LOG.debug("Docker events unavailable (%s); retrying in %gs", err, RETRY_S)
            return
        self.docker_reachable = now
        if now:
            LOG.info("Docker API at %s answers: watching its events", self.docker.socket_path)
        else:
            LOG.warning("cannot reach the Docker API at %s (%s): plugin requests are still "
                        "served, but containers that die without Docker telling the plugin, "
                        "and state lost with the state file, are only handled once it "
                        "answers; retrying every %gs. If dockerd uses another socket, give "
                        "it with --docker-socket or DOCKER_HOST=unix://PATH",
                        self.docker.socket_path, err, RETRY_S)

    async def _on_event(self, event: dict[str, Any]) -> None:
        kind, action = event.get("Type"), event.get("Action")
        actor = event.get("Actor") or {}
        attrs = actor.get("Attributes") or {}
        if kind == "network":
            if action in ("create", "destroy"):
                if action == "create" and attrs.get("name"):
                    # Known by name from the start: a container created on it names it so.
                    self.driver.registry.name_network(str(actor.get("ID")), attrs["name"])
                await self.refresh_pools()
            elif action == "connect" and actor.get("ID") in self.driver.registry.networks:
                container = attrs.get("container")
                if container:
                    await self.learn(container)
        elif kind == "container" and action in ("create", "die"):
            cid = str(actor.get("ID", ""))
            self.driver.starts.look_up(cid, functools.partial(self._about_to_start, cid))
        if kind == "container" and action in ("destroy", "start"):
            self.driver.starts.started(str(actor.get("ID", "")))
        if kind == "container" and action in ("die", "destroy"):
            cid = actor.get("ID", "")
            eps = [ep for ep in self.driver.registry.endpoints.values()
                   if ep.container_id == cid]
            if eps:
                self._spawn(self._after_death(cid, eps), f"after-death:{cid[:12]}")

    async def _about_to_start(self, container_id: str) -> Found | None:
        """Name, labels and networks (IDs and names) of a container just created or
        stopped, from Docker's container list (which takes no container lock: the
        container may be starting)."""
        for c in await self.docker.containers(id=container_id):
            if c.get("Id") != container_id:
                continue
            nets = (c.get("NetworkSettings") or {}).get("Networks") or {}
            keys = set(nets) | {str(n.get("NetworkID")) for n in nets.values()
                                if n and n.get("NetworkID")}
            names = c.get("Names") or [""]
            return str(names[0]), dict(c.get("Labels") or {}), keys
        return None

    async def rebuild_from_docker(self) -> None:
        """Recover networks and endpoints that Docker has and our state lost (e.g. a
        corrupt or deleted state file): options from Docker's network, leases re-bound."""
        names = await self.driver_names()
        for summary in await self.docker.networks():
            if summary.get("Driver") not in names:
                continue
            net_id = str(summary.get("Id"))
            if net_id not in self.driver.registry.networks:
                try:
                    self.driver.recover_network(net_id, summary.get("Options") or {},
                                                bool(summary.get("EnableIPv6")))
                except Exception as err:  # noqa: BLE001 - one bad network must not stop us
                    LOG.error("cannot recover network %s from Docker: %s", net_id[:12], err)
                    continue
                LOG.warning("recovered network %s (%s) from Docker's copy of its options",
                            net_id[:12], summary.get("Name"))
            if summary.get("Name"):
                self.driver.registry.name_network(net_id, str(summary["Name"]))
            net = await self.docker.get(f"/networks/{net_id}")
            for cid, c in (net.get("Containers") or {}).items():
                eid = c.get("EndpointID", "")
                if not eid or eid in self.driver.registry.endpoints:
                    continue
                info = await self.docker.inspect_container(cid)
                settings = info.get("NetworkSettings") or {}
                sandbox = settings.get("SandboxKey") or None
                if not (info.get("State") or {}).get("Running") or not sandbox:
                    continue
                ep = await self.driver.recover_endpoint(
                    network_id=net_id, endpoint_id=eid, mac=str(c.get("MacAddress", "")),
                    address=str(c.get("IPv4Address", "")),
                    address6=str(c.get("IPv6Address", "")), sandbox_key=sandbox)
                if ep is not None:
                            LOG.warning("recovered endpoint %s of container %s from Docker; "
                                "re-binding its lease", eid[:12], cid[:12])

    async def driver_names(self) -> set[str]:
        """The driver names of our networks. A managed plugin's is its reference
        (owner/name:tag), chosen at `docker plugin install`: the plugin with our own ID, or,
        if we could not tell it, every enabled network-driver plugin serving a socket of
        our socket's name."""
        if self.driver_name is not None:
            return {self.driver_name}
        names: set[str] = set()
        for plugin in await self.docker.plugins():
            if self.plugin_id is not None:
                if plugin.get("Id") == self.plugin_id:
                    return {str(plugin.get("Name"))}
                continue
            iface = (plugin.get("Config") or {}).get("Interface") or {}
            if (plugin.get("Enabled") and iface.get("Socket") == self.socket_name
                    and "docker.networkdriver/1.0" in (iface.get("Types") or [])):
                names.add(str(plugin.get("Name")))
        return names

    async def learn_all(self) -> None:
        """Map every running container on our networks to its endpoints."""
        for c in await self.docker.containers():
            nets = ((c.get("NetworkSettings") or {}).get("Networks") or {}).values()
            ours = {n.get("EndpointID") for n in nets} & set(self.driver.registry.endpoints)
            if ours:
                await self.learn(c["Id"])

    async def learn(self, container_id: str) -> None:
        """Record the container and its host name on each of our endpoints it has."""
        info = await self.docker.inspect_container(container_id)
        hostname = (info.get("Config") or {}).get("Hostname") or None
        if hostname and not valid_hostname(hostname):
            LOG.warning("container %s: host name %r is not a valid DHCP host name (RFC 1123); "
                        "not sending it", container_id[:12], hostname)
            hostname = None
        name = str(info.get("Name") or "").lstrip("/") or None
        nets = (info.get("NetworkSettings") or {}).get("Networks") or {}
        for net_name, n in nets.items():
            ep = self.driver.registry.endpoints.get(n.get("EndpointID", ""))
            if ep is None:
                continue
            self.driver.registry.set_container(ep, str(info.get("Id", container_id)), hostname,
                                               name=name)
            self.driver.registry.name_network(ep.network_id, str(net_name))
            wanted = ep.wanted_hostname
            LOG.info("endpoint %s belongs to container %s (host name %s)", ep.id[:12],
                     container_id[:12], wanted)
            if wanted:
                for keeper in self.driver.leases.keepers(ep):
                    keeper.set_hostname(wanted)

    async def _after_death(self, container_id: str, eps: list[Endpoint]) -> None:
        await asyncio.sleep(DIE_GRACE_S)
        for ep in eps:
            if self.driver.registry.endpoints.get(ep.id) is not ep:
                continue  # Docker tore it down itself
            try:
                info = await self.docker.inspect_container(container_id)
                running = bool((info.get("State") or {}).get("Running"))
            except DockerNotFound:
                running = False
            except Exception as err:  # noqa: BLE001 - never act on an API error
                LOG.info("endpoint %s: cannot ask Docker (%s); leaving it alone",
                         ep.id[:12], err)
                continue
            if not running:
                LOG.info("endpoint %s: container %s is gone but Docker never removed the "
                         "endpoint; cleaning up", ep.id[:12], container_id[:12])
                await self.driver.remove_endpoint(ep, release=True)

    # ---- sweep -------------------------------------------------------------------------------
    async def _sweep_forever(self) -> None:
        """Every sweep interval: the bridges, the containers' namespaces, then the sweep
        (which needs Docker). One failing check never skips the others."""
        while True:
            await asyncio.sleep(self.sweep_interval_s)
            for check in (self.check_bridges, self.driver.leases.check_sandboxes):
                try:
                    await check()
                except asyncio.CancelledError:
                    raise
                except Exception as err:  # noqa: BLE001 - try again next time
                    LOG.warning("%s failed: %s", check.__name__, err)
            try:
                await self.sweep()
            except asyncio.CancelledError:
                raise
            except Exception as err:  # noqa: BLE001 - never act on an API error
                LOG.debug("sweep skipped: %s", err)

    async def check_bridges(self) -> None:
        """Say when a network's bridge disappears, and when it is back, put the veths of
        its endpoints back on it (deleting a bridge leaves its ports behind, unattached).
        A parent (macvlan/ipvlan) is only watched: its links die with it."""
        for net in list(self.driver.registry.networks.values()):
            if net.options.mode != "bridge":
                await self._check_parent(net.id, net.options.parent, net.options.mode)
                continue
            bridge = net.options.bridge
            eps = self.driver.registry.endpoints_of(net.id)
            if not await netlink.link_exists(bridge):
                if bridge not in self._missing_bridges:
                    self._missing_bridges.add(bridge)
                    LOG.error("network %s: bridge %s is gone: its %d container(s) cannot "
                              "reach the DHCP server and keep their addresses only until "
                              "their leases expire, and new containers cannot start. Create "
                              "the bridge again (with its LAN port): the plugin puts the "
                              "containers back on it within %gs", net.id[:12], bridge,
                              len(eps), self.sweep_interval_s)
                continue
            back = bridge in self._missing_bridges
            self._missing_bridges.discard(bridge)
            on_it = set(await netlink.link_names(veth.HOST_IF_PREFIX, masters={bridge}))
            moved = [ep.host_if for ep in eps
                     if ep.host_if not in on_it and await veth.reattach(ep.host_if, bridge)]
            if back or moved:
                LOG.warning("network %s: bridge %s is there again; put back on it: %s",
                            net.id[:12], bridge, ", ".join(moved) or "nothing needed it")

    async def _check_parent(self, net_id: str, parent: str, mode: str) -> None:
        eps = self.driver.registry.endpoints_of(net_id)
        if not await netlink.link_exists(parent):
            if parent not in self._missing_bridges:
                self._missing_bridges.add(parent)
                LOG.error("network %s: parent %s is gone: the kernel deleted the %s links of "
                          "its %d container(s) with it, so they are off the LAN, and new "
                          "containers cannot start. Create %s again, then restart those "
                          "containers (docker restart)", net_id[:12], parent, mode, len(eps),
                          parent)
            return
        if parent in self._missing_bridges:
            self._missing_bridges.discard(parent)
            LOG.warning("network %s: parent %s is there again; containers that were running "
                        "on it need a restart (docker restart) to get a link on it",
                        net_id[:12], parent)

    async def sweep(self) -> None:
        """Remove endpoints (and stray veths) that no Docker network knows any more."""
        known: set[str] = set()
        checked: set[str] = set()
        for net_id in list(self.driver.registry.networks):
            try:
                net = await self.docker.get(f"/networks/{net_id}")
            except DockerNotFound:
                # Not a network of this dockerd: say nothing about its endpoints.
                LOG.debug("sweep: Docker does not know network %s", net_id[:12])
                continue
            checked.add(net_id)
            known.update(c.get("EndpointID", "") for c in (net.get("Containers") or {}).values())
        now = time.monotonic()
        for ep in list(self.driver.registry.endpoints.values()):
            if (ep.network_id not in checked or ep.id in known
                    or now - ep.known_since < NEW_ENDPOINT_GRACE_S):
                continue
            LOG.info("sweep: endpoint %s is unknown to Docker; cleaning up", ep.id[:12])
            await self.driver.remove_endpoint(ep, release=True)
        # A veth of ours on one of our bridges that no endpoint owns, seen on two sweeps
        # in a row (so never one that a CreateEndpoint in flight is setting up).
        names: set[str] = set()
        for mode in choose.all_modes():
            lans = {net.options.lan for net in self.driver.registry.networks.values()
                    if net.options.mode == mode.kind}
            if lans or mode.kind == "bridge":
                names |= await mode("").strays(lans)
        ours = ({ep.host_if for ep in self.driver.registry.endpoints.values()}
                | self.driver.registry.being_created())
        strays = names - ours
        for name in strays & self._strays:
            LOG.info("sweep: removing stray %s %s", "veth" if name.startswith(
                veth.HOST_IF_PREFIX) else "link", name)
            await netlink.delete_link(name)
        self._strays = strays - self._strays
