"""The registry: memory and store in step; an endpoint ID is created once (defect 7)."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Interface
from pathlib import Path

import pytest

from net_dhcp.config import EndpointOptions, NetworkOptions
from net_dhcp.dhcp4.lease import Lease
from net_dhcp.errors import RequestError, StoreError
from net_dhcp.registry import Endpoint, Registry
from net_dhcp.store import Store


def lease() -> Lease:
    return Lease(address=IPv4Interface("10.0.0.5/24"), server_id=IPv4Address("10.0.0.1"),
                 server_mac=b"\x02" * 6, gateway=None, routes=(), dns=(), domain=None,
                 lease_time_s=120, t1_s=60, t2_s=105, obtained_at=0.0)


def endpoint(eid: str, host_if: str = "dhx") -> Endpoint:
    return Endpoint(id=eid, network_id="n1", host_if=host_if, cont_if="dcx",
                    mac="02:00:00:00:00:01", options=EndpointOptions(), lease=lease())


def test_a_live_or_creating_endpoint_id_is_refused(tmp_path: Path) -> None:
    # Before: a duplicate CreateEndpoint re-created the veth of a running container.
    reg = Registry(Store(tmp_path))
    reg.add_network("n1", NetworkOptions(bridge="br0"))
    reg.add_endpoint(endpoint("e1", "dhe1"))
    with pytest.raises(RequestError, match="already exists"), reg.creating("e1", "dhe1"):
        pass
    with reg.creating("e2", "dhe2"):
        with pytest.raises(RequestError, match="already exists"), reg.creating("e2", "dhe2"):
            pass
        with pytest.raises(RequestError, match="owns"), reg.creating("e3", "dhe2"):
            pass
        assert reg.being_created() == {"dhe2"}
    assert reg.being_created() == set()


def test_a_failed_write_leaves_memory_as_the_store_is(tmp_path: Path) -> None:
    store = Store(tmp_path)
    reg = Registry(store)
    reg.add_network("n1", NetworkOptions(bridge="br0"))
    ep = endpoint("e1")
    reg.add_endpoint(ep)
    store.close()  # every later write fails
    with pytest.raises(StoreError):
        reg.set_joined(ep, "/run/netns/x")
    assert ep.sandbox is None
    with pytest.raises(StoreError):
        reg.add_endpoint(endpoint("e2"))
    assert "e2" not in reg.endpoints
