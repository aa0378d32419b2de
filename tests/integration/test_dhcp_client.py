"""The DHCP client and the interface hand-over, against dnsmasq in namespaces (no dockerd).

What Docker does between Join and the container's start is played by hand here: the
container end of the veth is moved into a namespace, renamed eth0 and given the leased
address, either before the plugin looks (Docker 28+) or a few hundred ms after (Docker
<= 27, where Join returns first).
"""

from __future__ import annotations

import asyncio
import functools
import secrets
import time
from collections.abc import Iterator

import pytest

from net_dhcp import netlink
from net_dhcp.dhcp4 import codec
from net_dhcp.dhcp4.client import AcquireStats, acquire, send_release
from net_dhcp.dhcp4.keeper import LeaseKeeper
from net_dhcp.dhcp4.lease import Lease
from net_dhcp.dhcp4.sockets import open_dhcp_socket
from net_dhcp.dhcp4.timing import Timing
from net_dhcp.sandbox import apply as _apply_in_netns
from net_dhcp.sandbox import unapply as _unapply_in_netns
from net_dhcp.sandbox import wait_for_iface as _wait_for_iface
from tests.conftest import LanFactory
from tests.lab import DhcpLan, random_mac, sh

FAST = Timing(renew_retry_min_s=1.0, renew_retry_max_s=2.0, init_first_retry_s=1.0,
              init_max_retry_s=2.0)


class Veth:
    """A veth pair on the lab bridge whose container end can be handed to a namespace."""

    def __init__(self, lab: DhcpLan) -> None:
        tag = secrets.token_hex(4)
        self.host_if, self.cont_if, self.netns = f"dhit{tag}", f"dcit{tag}", f"ndit-{tag}"
        self.mac = random_mac()
        self.path = f"/run/netns/{self.netns}"
        sh("ip", "link", "add", self.host_if, "type", "veth", "peer", "name", self.cont_if)
        sh("ip", "link", "set", self.cont_if, "address", self.mac, "up")
        sh("ip", "link", "set", self.host_if, "master", lab.bridge, "up")
        sh("ip", "netns", "add", self.netns)

    def hand_over(self, lease: Lease, *, address_first: bool = False) -> None:
        """What Docker does after Join: move, rename, address, up. dockerd 20.10 was seen
        to put the address on before the rename (`address_first`)."""
        sh("ip", "link", "set", self.cont_if, "netns", self.netns)
        if address_first:
            sh("ip", "-n", self.netns, "addr", "add", str(lease.address), "dev", self.cont_if)
            sh("ip", "-n", self.netns, "link", "set", self.cont_if, "up")
            time.sleep(0.3)  # the window in which the old name carries the address
            sh("ip", "-n", self.netns, "link", "set", self.cont_if, "down")
        sh("ip", "-n", self.netns, "link", "set", self.cont_if, "name", "eth0")
        if not address_first:
            sh("ip", "-n", self.netns, "addr", "add", str(lease.address), "dev", "eth0")
        sh("ip", "-n", self.netns, "link", "set", "eth0", "up")

    def close(self) -> None:
        sh("ip", "link", "del", self.host_if, check=False)
        sh("ip", "netns", "del", self.netns, check=False)


@pytest.fixture
def veth(lan: LanFactory) -> Iterator[tuple[DhcpLan, Veth]]:
    lab = lan(t1=2, t2=4)
    v = Veth(lab)
    try:
        yield lab, v
    finally:
        v.close()


async def _acquire(v: Veth) -> Lease:
    sock = await asyncio.to_thread(open_dhcp_socket, v.cont_if, with_sink=False)
    sock.start()
    try:
        return await acquire(sock, client_id=codec.client_id_for_mac(sock.mac), hostname="it1",
                             timeout_s=10, timing=FAST, stats=AcquireStats())
    finally:
        sock.close()


@pytest.mark.asyncio
@pytest.mark.parametrize("order", ["already-there", "moved-later", "address-before-rename"])
async def test_keeper_renews_in_the_namespace_after_either_hand_over_order(
        veth: tuple[DhcpLan, Veth], order: str) -> None:
    lab, v = veth
    lease = await _acquire(v)
    assert lab.in_range(str(lease.address.ip))
    # dnsmasq sends T2 as asked and T1 rounded (3 s for 2 s asked): never the defaults.
    assert lease.t1_s < lease.t2_s == 4
    assert lease.lease_time_s == 120
    if order == "already-there":
        v.hand_over(lease)
        handed = None
    else:
        handed = asyncio.get_running_loop().run_in_executor(
            None, functools.partial(v.hand_over, lease,
                                    address_first=order == "address-before-rename"))
    index, ifname = await asyncio.wait_for(
        _wait_for_iface(v.path, v.mac, lease, not_named=v.cont_if), 20)
    if handed is not None:
        await handed
    assert ifname == "eth0"
    sock = await netlink.run_in_netns(v.path, lambda: open_dhcp_socket("eth0", with_sink=True))
    sock.start()
    seen: list[Lease] = []
    renewed = asyncio.Event()

    def on_lease(new: Lease) -> None:
        seen.append(new)
        renewed.set()

    async def apply(old: Lease | None, new: Lease) -> None:
        await _apply_in_netns(v.path, v.mac, old, new)

    async def unapply(old: Lease) -> None:
        await _unapply_in_netns(v.path, v.mac, old)

    keeper = LeaseKeeper("it", sock, lease, client_id=codec.client_id_for_mac(sock.mac),
                         hostname="it1", apply=apply, unapply=unapply, on_lease=on_lease,
                         timing=FAST)
    task = asyncio.create_task(keeper.run())
    try:
        since = lab.log_offset()
        await asyncio.wait_for(renewed.wait(), 15)
        assert seen[-1].address == lease.address
        # A RENEWING request: unicast, ciaddr set; dnsmasq logs it as a REQUEST for our IP.
        lab.wait_for_log(rf"DHCPREQUEST\(\w+\) {lease.address.ip} {v.mac}", since=since,
                         timeout=5)
        lab.wait_for_log(rf"DHCPACK\(\w+\) {lease.address.ip} {v.mac} it1", since=since,
                         timeout=5)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    send_release(sock, keeper.lease, keeper.client_id)
    sock.close()
    lab.wait_for_log(rf"DHCPRELEASE\(\w+\) {lease.address.ip} {v.mac}", timeout=5)


@pytest.mark.asyncio
async def test_nak_brings_a_new_address_applied_in_place(veth: tuple[DhcpLan, Veth]) -> None:
    lab, v = veth
    lease = await _acquire(v)
    v.hand_over(lease)
    await asyncio.wait_for(_wait_for_iface(v.path, v.mac, lease), 10)
    sock = await netlink.run_in_netns(v.path, lambda: open_dhcp_socket("eth0", with_sink=True))
    sock.start()
    moved = asyncio.Event()

    async def apply(old: Lease | None, new: Lease) -> None:
        await _apply_in_netns(v.path, v.mac, old, new)

    async def unapply(old: Lease) -> None:
        await _unapply_in_netns(v.path, v.mac, old)

    def on_lease(new: Lease) -> None:
        if new.address != lease.address:
            moved.set()

    keeper = LeaseKeeper("it", sock, lease, client_id=codec.client_id_for_mac(sock.mac),
                         hostname=None, apply=apply, unapply=unapply, on_lease=on_lease,
                         timing=FAST)
    lab.stop_dnsmasq()
    lab.start_dnsmasq(range_start=lab.address(220), range_end=lab.address(230))
    task = asyncio.create_task(keeper.run())
    try:
        await asyncio.wait_for(moved.wait(), 30)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        sock.close()
    new = keeper.lease.address
    assert 220 <= int(str(new.ip).rsplit(".", 1)[1]) <= 230
    shown = sh("ip", "-n", v.netns, "-4", "addr", "show", "eth0").stdout
    assert str(new) in shown
    assert str(lease.address) not in shown
    assert f"default via {lab.router}" in sh("ip", "-n", v.netns, "-4", "route").stdout
