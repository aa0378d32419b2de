"""A hostile LAN, for real: a rogue DHCP responder answers every client message first.

The rogue (tests/integration/hostile.py) runs in the lab's server namespace next to dnsmasq,
sees every DISCOVER and REQUEST (the unicast renewals to dnsmasq too) and answers each at
once with broken replies: OFFERs without a server id or with an unusable yiaddr, ACKs and
NAKs without a server id, NAKs and a well-formed ACK from another server, ACKs "from the
real server" (option 54 spoofed) with a non-contiguous or zero mask, lease time 0 or none,
yiaddr 127.0.0.5 / 224.0.0.5 / 255.255.255.255. A sniffer on the client's bridge port checks
that those replies really reached the client before dnsmasq's, so the client had to judge
them. The client must end up with dnsmasq's lease, keep it, and never lose its address.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Address

import pytest

from net_dhcp import netlink
from net_dhcp.dhcp4 import codec
from net_dhcp.dhcp4.client import AcquireStats, acquire
from net_dhcp.dhcp4.keeper import LeaseKeeper
from net_dhcp.dhcp4.lease import Lease
from net_dhcp.dhcp4.sockets import open_dhcp_socket
from net_dhcp.sandbox import apply as apply_in_netns
from net_dhcp.sandbox import unapply as unapply_in_netns
from tests.conftest import LanFactory
from tests.integration.hostile import (
    ALL_KINDS,
    KINDS,
    NAK_KINDS,
    RENEWING,
    SELECTING,
    ReplySniffer,
    Rogue,
)
from tests.integration.test_dhcp_client import FAST, Veth
from tests.lab import DhcpLan, sh, tail

ACQUIRES = 5
RENEWALS = 3
HOSTNAME = "hostile1"


@dataclass
class HostileLan:
    """A lab LAN, a client veth on it, a sniffer on the veth's bridge port, the rogue."""

    lab: DhcpLan
    veth: Veth
    sniffer: ReplySniffer
    server_mac: str
    rogue: Rogue | None = None

    def start_rogue(self, kinds: Sequence[str], states: Sequence[str]) -> Rogue:
        rogue = Rogue(self.lab, kinds=kinds, states=states)
        self.rogue = rogue
        rogue.start()  # in the test's own thread: the rogue dies with it (PDEATHSIG)
        return rogue

    def diagnostics(self) -> str:
        """What the rogue did and the last messages the client got, for a failure message."""
        rogue = self.rogue
        if rogue is None:
            return "(no rogue)"
        counts = {k: v for k, v in rogue.counts().items() if k != "last"}
        return (f"\nrogue counts: {json.dumps(counts)}"
                f"\n--- messages at the client's bridge port (us after the client's) ---\n"
                f"{self.sniffer.timeline(rogue.mac, self.server_mac, 60)}"
                f"\n--- rogue output ---\n{tail(rogue.output(), 10)}")


@pytest.fixture
def hostile(lan: LanFactory) -> Iterator[HostileLan]:
    lab = lan(t1=2, t2=4)
    veth = Veth(lab)
    sniffer: ReplySniffer | None = None
    h: HostileLan | None = None
    try:
        sniffer = ReplySniffer(veth.host_if)
        sniffer.start()
        info = json.loads(sh("ip", "-n", lab.netns, "-j", "link", "show", lab.server_if).stdout)
        h = HostileLan(lab, veth, sniffer, str(info[0]["address"]).lower())
        yield h
    finally:
        if h is not None and h.rogue is not None:
            h.rogue.close()
        if sniffer is not None:
            sniffer.stop()
        veth.close()


async def _acquire(v: Veth) -> Lease:
    """What CreateEndpoint does: DISCOVER..ACK on the container end, still in the host."""
    sock = await asyncio.to_thread(open_dhcp_socket, v.cont_if, with_sink=False)
    sock.start()
    try:
        return await acquire(sock, client_id=codec.client_id_for_mac(sock.mac),
                             hostname=HOSTNAME, timeout_s=10, timing=FAST,
                             stats=AcquireStats())
    finally:
        sock.close()


def _is_real(lease: Lease, h: HostileLan) -> bool:
    """`lease` is dnsmasq's: its pool, its server id and MAC, its mask, router, lease time."""
    lab = h.lab
    return (lab.in_range(str(lease.address.ip))
            and lease.address.network.prefixlen == lab.prefixlen
            and lease.server_id == IPv4Address(lab.server_ip)
            and lease.server_mac.hex(":") == h.server_mac
            and lease.gateway == IPv4Address(lab.router) and lease.lease_time_s == 120)


def _assert_real(lease: Lease, h: HostileLan, diag: Callable[[], str] | None = None) -> None:
    """Assert `_is_real`, one property at a time."""
    lab = h.lab
    diag = diag or h.diagnostics
    assert lab.in_range(str(lease.address.ip)), f"{lease.address} is not dnsmasq's{diag()}"
    assert lease.address.network.prefixlen == lab.prefixlen, f"{lease.address}{diag()}"
    assert lease.server_id == IPv4Address(lab.server_ip), f"{lease.server_id}{diag()}"
    assert lease.server_mac.hex(":") == h.server_mac, f"{lease.server_mac.hex(':')}{diag()}"
    assert lease.gateway == IPv4Address(lab.router), f"{lease.gateway}{diag()}"
    assert lease.lease_time_s == 120, f"{lease.lease_time_s}{diag()}"


async def _wait_for(cond: Callable[[], bool], timeout: float, what: str,
                    detail: Callable[[], str]) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:g} s waiting for {what}{detail()}")
        await asyncio.sleep(0.05)


def _addresses(netns: str, ifname: str) -> set[str]:
    out = json.loads(sh("ip", "-n", netns, "-4", "-j", "addr", "show", ifname).stdout or "[]")
    return {f"{a['local']}/{a['prefixlen']}" for link in out for a in link.get("addr_info", [])}


# --------------------------------------------------------------------------- 1: acquire


@pytest.mark.asyncio
async def test_acquire_gets_the_real_lease_while_a_rogue_answers_first(
        hostile: HostileLan) -> None:
    """Every DISCOVER and SELECTING REQUEST of five acquisitions is answered by the rogue
    with every broken OFFER, resp. ACK/NAK kind; each acquisition gets dnsmasq's lease."""
    h = hostile
    rogue = h.start_rogue(ALL_KINDS, states=("discover", SELECTING))
    leases = [await _acquire(h.veth) for _ in range(ACQUIRES)]  # nothing may escape
    for lease in leases:
        _assert_real(lease, h)
    assert {le.address for le in leases} == {leases[0].address}, h.diagnostics()

    await _wait_for(lambda: rogue.counts().get("answered", {}).get("selecting", 0) >= ACQUIRES,
                    5, "the rogue to have answered every REQUEST", h.diagnostics)
    counts = rogue.counts()
    assert counts["answered"].get("discover", 0) >= ACQUIRES, h.diagnostics()
    assert set(counts["sent"]) == set(ALL_KINDS), h.diagnostics()
    # The broken replies were really there first: the client had to judge them.
    first = h.sniffer.rogue_first(rogue.mac, h.server_mac)
    offers = sum("discover" in k.answers for k in KINDS.values())
    replies = sum("selecting" in k.answers for k in KINDS.values())
    assert first["offer"] >= 1, f"{first}{h.diagnostics()}"
    assert first["reply"] >= 1, f"{first}{h.diagnostics()}"
    assert first["offer"] + first["reply"] >= offers + replies, f"{first}{h.diagnostics()}"
    print(f"rogue: {counts['total_sent']} replies sent, before dnsmasq's: {first}")


# --------------------------------------------------------------------------- 2, 3: keeper


@dataclass
class Watch:
    """What a keeper did: leases stored, applies, unapplies, every state it was seen in."""

    stored: list[Lease] = field(default_factory=list)
    applied: list[tuple[Lease | None, Lease]] = field(default_factory=list)
    unapplied: list[Lease] = field(default_factory=list)
    states: set[str] = field(default_factory=set)


async def _keep_through_the_rogue(h: HostileLan, kinds: Sequence[str]) -> None:
    lab, v = h.lab, h.veth
    lease = await _acquire(v)
    _assert_real(lease, h)
    v.hand_over(lease)
    sock = await netlink.run_in_netns(v.path, lambda: open_dhcp_socket("eth0", with_sink=True))
    sock.start()
    watch = Watch()

    async def apply(old: Lease | None, new: Lease) -> None:
        watch.applied.append((old, new))
        await apply_in_netns(v.path, v.mac, old, new)

    async def unapply(old: Lease) -> None:
        watch.unapplied.append(old)
        await unapply_in_netns(v.path, v.mac, old)

    keeper = LeaseKeeper("hostile", sock, lease, client_id=codec.client_id_for_mac(sock.mac),
                         hostname=HOSTNAME, apply=apply, unapply=unapply,
                         on_lease=watch.stored.append, timing=FAST)

    async def watch_states() -> None:
        while True:
            watch.states.add(keeper.state.value)
            await asyncio.sleep(0.005)

    # Only renewals are attacked here (acquire is test 1's): the unicast RENEWING REQUESTs
    # to dnsmasq, which the rogue sees from its place beside dnsmasq. (In REBINDING any
    # server may answer, so a NAK from another one would be right to believe there.)
    rogue = h.start_rogue(kinds, states=(RENEWING,))
    log_from = lab.log_offset()
    mark = h.sniffer.mark()
    task = asyncio.create_task(keeper.run())
    watcher = asyncio.create_task(watch_states())

    def detail() -> str:
        died = ""
        if task.done() and not task.cancelled() and task.exception() is not None:
            died = f"\nthe keeper died: {task.exception()!r}"
        return (f"{died}\nkeeper: state {keeper.state.value}, renewals {keeper.renewals}, "
                f"lease {keeper.lease.address} from {keeper.lease.server_id}; states seen "
                f"{sorted(watch.states)}; unapplied {[str(u.address) for u in watch.unapplied]}"
                f"; applied {[str(n.address) for _, n in watch.applied]}{h.diagnostics()}")

    try:
        # Stops early when the keeper dies, leaves BOUND/RENEWING or holds another lease
        # than dnsmasq's: the asserts below say which.
        await _wait_for(lambda: keeper.renewals >= RENEWALS or task.done()
                        or not watch.states <= {"BOUND", "RENEWING"}
                        or not _is_real(keeper.lease, h), 40, f"{RENEWALS} renewals", detail)
        assert not task.done(), f"the keeper stopped{detail()}"
        # Never fell out of BOUND/RENEWING: no NAK believed, no answer lost, no INIT.
        assert watch.states <= {"BOUND", "RENEWING"}, f"left BOUND/RENEWING{detail()}"
        assert keeper.state.value in ("BOUND", "RENEWING"), detail()
        # Still the real lease, and only it on the interface.
        assert keeper.lease.address == lease.address, detail()
        _assert_real(keeper.lease, h, detail)
        assert keeper.renewals >= RENEWALS, detail()
        assert watch.stored, detail()
        assert all(s.address == lease.address for s in watch.stored), detail()
        assert all(s.server_id == lease.server_id for s in watch.stored), detail()
        assert not watch.unapplied, detail()
        assert all(new.address == lease.address for _, new in watch.applied), detail()
        assert _addresses(v.netns, "eth0") == {str(lease.address)}, detail()
        # dnsmasq really renewed it each time, and was never asked from scratch.
        ip, mac = lease.address.ip, v.mac
        lab.wait_for_log(rf"DHCPACK\(\w+\) {ip} {mac} {HOSTNAME}", since=log_from, timeout=5)
        log = lab.log_file.read_bytes()[log_from:].decode(errors="replace")
        acks = re.findall(rf"DHCPACK\(\w+\) {re.escape(str(ip))} {mac}", log)
        assert len(acks) >= RENEWALS, f"{len(acks)} renewal ACKs in dnsmasq's log{detail()}"
        assert not re.search(rf"DHCPDISCOVER\(\w+\) {mac}", log), detail()
        # ... while the rogue answered every renewal, and its replies got there first.
        answered = rogue.counts().get("answered", {})
        assert answered.get(RENEWING, 0) >= RENEWALS, detail()
        first = h.sniffer.rogue_first(rogue.mac, h.server_mac, since=mark)
        assert first["reply"] >= RENEWALS, f"rogue first: {first}{detail()}"
        print(f"rogue: {rogue.counts()['total_sent']} replies sent, before dnsmasq's: "
              f"{first}; {keeper.renewals} renewals, {len(acks)} ACKs from dnsmasq")
    finally:
        watcher.cancel()
        task.cancel()
        await asyncio.gather(watcher, task, return_exceptions=True)
        sock.close()


@pytest.mark.asyncio
async def test_keeper_renews_the_real_lease_through_a_rogue(hostile: HostileLan) -> None:
    """Every broken ACK/NAK kind, and a good ACK from another server, answer each renewal."""
    await _keep_through_the_rogue(hostile, ALL_KINDS)


@pytest.mark.asyncio
async def test_naks_without_or_from_another_server_id_cost_nothing_while_renewing(
        hostile: HostileLan) -> None:
    """Only NAKs: one without option 54, one from a server that is not the lease's."""
    await _keep_through_the_rogue(hostile, NAK_KINDS)

