"""The plugin's networks and endpoints, in memory and in the store, always in step.

The only writer of both: every change goes to the store first and reaches memory only
once it is committed, so a failed write (a full disk) leaves the two agreeing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .config import EndpointOptions, NetworkOptions
from .dhcp4 import codec
from .dhcp4.lease import Lease
from .dhcp6.lease import Lease6
from .errors import NotFoundError, RequestError, StoreError
from .store import Store

if TYPE_CHECKING:
    from .netlink import BridgeInfo

LOG = logging.getLogger(__name__)


@dataclass
class Network:
    """A net-dhcp network as created by Docker."""

    id: str
    options: NetworkOptions
    name: str | None = None
    """Docker's name for it, once the reconciler has seen it (memory only; for status)."""


@dataclass
class Endpoint:
    """One container attachment: its interfaces, its lease and where it is joined."""

    id: str
    network_id: str
    host_if: str
    cont_if: str
    mac: str
    options: EndpointOptions
    lease: Lease | None
    sandbox: str | None = None
    lease6: Lease6 | None = None
    container_id: str | None = None
    hostname: str | None = None
    container_name: str | None = None
    """Docker's name of the container, once the reconciler learnt it (memory only)."""
    released: bool = False
    released_part: tuple[bool, bool] = (False, False)
    """(IPv4, IPv6) given back already while `released` is still False (at Leave)."""
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    bridge_info: asyncio.Task[BridgeInfo] | None = field(default=None, repr=False)
    """The bridge's look-up started by CreateEndpoint for Join (memory only, used once)."""
    conflict_check: asyncio.Task[str | None] | None = field(default=None, repr=False)
    """The end of the conflict probe CreateEndpoint started (acd.probe.in_use_soon): Join
    waits for it (memory only, used once; it returns the MAC of a host claiming the
    address, or None)."""
    link_mac: str | None = None
    """The MAC the container's interface carries when it is not `mac` (ipvlan: the
    parent's; memory only, looked up again after a restart). `mac` is the endpoint's own,
    which the DHCP identity comes from."""
    known_since: float = field(default_factory=time.monotonic)
    """When this process learnt of the endpoint (created, loaded or recovered): the
    sweep spares it for a while, as Docker may not show it yet."""

    @property
    def client_id(self) -> bytes:
        """RFC 2132 9.14 client identifier: hardware type 1 and the MAC."""
        return codec.client_id_for_mac(codec.mac_from_str(self.mac))

    @property
    def iface_mac(self) -> str:
        """The MAC the container's interface is found by."""
        return self.link_mac or self.mac

    @property
    def wanted_hostname(self) -> str | None:
        """The driver option wins over the container's own host name."""
        return self.options.hostname or self.hostname


class Registry:
    """Networks and endpoints by ID; the store's only user besides start-up."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.networks: dict[str, Network] = {}
        self.endpoints: dict[str, Endpoint] = {}
        self._creating: dict[str, str] = {}
        """Endpoint ID -> host-side interface name, for endpoints being created."""

    # ---- loading ---------------------------------------------------------------------------
    def load(self) -> None:
        """Fill memory from the store (no kernel or Docker work)."""
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
                lease6=Lease6.from_dict(ep.lease6) if ep.lease6 else None,
                sandbox=ep.sandbox if ep.joined else None, container_id=ep.container_id,
                hostname=ep.hostname,
            )
        LOG.info("loaded %d network(s) and %d endpoint(s) from %s", len(self.networks),
                 len(self.endpoints), self.store.path)

    # ---- networks --------------------------------------------------------------------------
    def network(self, network_id: str) -> Network:
        """The network, or NotFoundError with what to do."""
        net = self.networks.get(network_id)
        if net is None:
            raise NotFoundError(
                f"network {network_id[:12]} is not known to net-dhcp: if the plugin has just "
                "started without its state, it recovers networks from Docker within seconds, "
                "so try again; otherwise remove it with docker network rm and create it again"
            )
        return net

    def add_network(self, network_id: str, options: NetworkOptions) -> Network:
        """Store and remember a network (replacing one with the same ID)."""
        self.store.add_network(network_id, options.to_json())
        net = self.networks[network_id] = Network(network_id, options)
        return net

    def forget_network(self, network_id: str) -> None:
        """Forget a network (idempotent)."""
        self.store.delete_network(network_id)
        self.networks.pop(network_id, None)

    def endpoints_of(self, network_id: str) -> list[Endpoint]:
        """The endpoints on one network."""
        return [ep for ep in self.endpoints.values() if ep.network_id == network_id]

    # ---- endpoints -------------------------------------------------------------------------
    def endpoint(self, endpoint_id: str) -> Endpoint:
        """The endpoint, or NotFoundError."""
        ep = self.endpoints.get(endpoint_id)
        if ep is None:
            raise NotFoundError(f"endpoint {endpoint_id[:12]} is not known to net-dhcp")
        return ep

    @contextlib.contextmanager
    def creating(self, endpoint_id: str, host_if: str) -> Iterator[None]:
        """Reserve an endpoint ID and its interface name while the endpoint is created.

        RequestError if the ID is live or being created, or another endpoint owns the name.
        """
        if endpoint_id in self.endpoints or endpoint_id in self._creating:
            raise RequestError(
                f"endpoint {endpoint_id[:12]} already exists (or is being created): Docker "
                "sent CreateEndpoint twice; remove the container and start it again")
        owners = {ep.host_if: ep.id for ep in self.endpoints.values()}
        owners.update({name: eid for eid, name in self._creating.items()})
        if host_if in owners:
            raise RequestError(
                f"endpoint {endpoint_id[:12]} would use interface {host_if}, which endpoint "
                f"{owners[host_if][:12]} owns (their IDs share a prefix); start the "
                "container again to get a new endpoint ID")
        self._creating[endpoint_id] = host_if
        try:
            yield
        finally:
            self._creating.pop(endpoint_id, None)

    def being_created(self) -> set[str]:
        """Host-side interface names of endpoints being created (not yet registered)."""
        return set(self._creating.values())

    def add_endpoint(self, ep: Endpoint) -> None:
        """Store and remember a new endpoint with its lease."""
        assert ep.lease is not None
        self.store.add_endpoint(endpoint_id=ep.id, network_id=ep.network_id,
                                host_if=ep.host_if, cont_if=ep.cont_if, mac=ep.mac,
                                options={"hostname": ep.options.hostname},
                                lease=ep.lease.to_dict(),
                                lease6=ep.lease6.to_dict() if ep.lease6 else None)
        if ep.sandbox:
            self.store.set_joined(ep.id, ep.sandbox, True)
        self.endpoints[ep.id] = ep

    def set_lease(self, ep: Endpoint, lease: Lease) -> None:
        """Store and remember an endpoint's new lease (StoreError: neither changed)."""
        self.store.set_lease(ep.id, lease.to_dict())
        ep.lease = lease

    def set_lease6(self, ep: Endpoint, lease: Lease6) -> None:
        """Store and remember an endpoint's new IPv6 lease (StoreError: neither changed)."""
        self.store.set_lease(ep.id, lease.to_dict(), family=6)
        ep.lease6 = lease

    def set_joined(self, ep: Endpoint, sandbox: str | None) -> None:
        """Record Join (with its sandbox path) or Leave (None)."""
        self.store.set_joined(ep.id, sandbox, sandbox is not None)
        ep.sandbox = sandbox

    def set_container(self, ep: Endpoint, container_id: str, hostname: str | None,
                      name: str | None = None) -> None:
        """Record which container owns the endpoint, and its host name (stored), and its
        Docker name (memory only, for `net-dhcp status`)."""
        self.store.set_container(ep.id, container_id, hostname)
        ep.container_id, ep.hostname = container_id, hostname
        if name is not None:
            ep.container_name = name

    def name_network(self, network_id: str, name: str) -> None:
        """Remember Docker's name for a network (memory only, for `net-dhcp status`)."""
        net = self.networks.get(network_id)
        if net is not None:
            net.name = name

    def forget_endpoint(self, ep: Endpoint) -> None:
        """Forget an endpoint. Memory forgets even if the store cannot (the row is then
        found again at the next start, and cleaned up then)."""
        try:
            self.store.delete_endpoint(ep.id)
        except StoreError as err:
            LOG.error("endpoint %s: could not delete it from the state file (%s); it is "
                      "cleaned up again at the next start", ep.id[:12], err)
        self.endpoints.pop(ep.id, None)

    def same_client(self, ep: Endpoint) -> Endpoint | None:
        """Another endpoint the DHCP server would take for the same client, if any."""
        for other in self.endpoints.values():
            if other is not ep and other.mac == ep.mac:
                return other
        return None
