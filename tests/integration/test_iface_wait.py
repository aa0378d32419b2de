"""The keeper's wait for the container's interface (sandbox.wait_for_iface) and its raw look
(linkdump.ready_link), in real namespaces: what counts as ready, and a namespace deleted
during the wait. The hand-over orders Docker uses are in test_dhcp_client.py."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from ipaddress import IPv4Interface

import pytest

from net_dhcp import linkdump, netlink, sandbox
from net_dhcp.dhcp4.lease import Lease
from tests.conftest import require_root
from tests.lab import random_mac, scratch_netns, sh

ADDRESS = IPv4Interface("10.77.0.5/24")


@pytest.fixture
def netns() -> Iterator[str]:
    """A fresh, empty namespace (its name), deleted after the test."""
    require_root()
    with scratch_netns("iw") as name:
        yield name


def _lease() -> Lease:
    return Lease(address=ADDRESS, server_id=ADDRESS.ip, server_mac=b"\x02" * 6, gateway=None,
                 routes=(), dns=(), domain=None, lease_time_s=120, t1_s=60, t2_s=105,
                 obtained_at=0.0)


@pytest.mark.asyncio
async def test_ready_only_once_up_addressed_and_renamed(netns: str) -> None:
    mac = random_mac()
    path = f"/run/netns/{netns}"
    query = await netlink.run_in_netns(path, linkdump.open_query)
    try:
        def look() -> tuple[int, str] | None:
            return linkdump.ready_link(query, mac, ADDRESS, "dctemp")

        assert look() is None  # no such MAC yet
        ip = ("ip", "-n", netns, "link")
        sh(*ip, "add", "dctemp", "address", mac, "type", "veth", "peer", "name", "other")
        assert look() is None  # down
        sh(*ip, "set", "dctemp", "up")
        assert look() is None  # no address
        sh("ip", "-n", netns, "addr", "add", str(ADDRESS), "dev", "dctemp")
        assert look() is None  # still the host-side name
        sh(*ip, "set", "dctemp", "down")
        sh(*ip, "set", "dctemp", "name", "eth0")
        assert look() is None  # renamed, down again
        sh(*ip, "set", "eth0", "up")
        index = int(sh("ip", "netns", "exec", netns, "cat", "/sys/class/net/eth0/ifindex")
                    .stdout)
        assert look() == (index, "eth0")
        sh("ip", "-n", netns, "addr", "flush", "dev", "eth0")
        sh("ip", "-n", netns, "addr", "add", "10.77.0.6/24", "dev", "eth0")
        assert look() is None  # another address: not this lease's
    finally:
        query.close()


@pytest.mark.asyncio
async def test_a_namespace_deleted_during_the_wait_ends_it(netns: str) -> None:
    """The wait's sockets keep the namespace alive; the path going is what ends it, within a
    poll period, as an OSError (the keeper logs the sandbox as gone)."""
    path = f"/run/netns/{netns}"
    wait = asyncio.create_task(sandbox.wait_for_iface(path, random_mac(), _lease()))
    await asyncio.sleep(0.3)  # let it open its sockets there and look once
    assert not wait.done()
    sh("ip", "netns", "del", netns)
    with pytest.raises(FileNotFoundError):
        await asyncio.wait_for(wait, 5)
