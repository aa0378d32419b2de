"""The DHCPv6 client's exchanges and keeper against a scripted server (no sockets).

A FakeSock6 stands in for dhcp6.sockets.Dhcp6Socket: what the client sends is recorded and
handed to a script that plays the server (or servers); the real kernel socket is tested
against dnsmasq in tests/integration/test_dhcp6.py.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from ipaddress import IPv6Address

import pytest

from net_dhcp.dhcp6 import codec
from net_dhcp.dhcp6.client import Acquire6Stats, Refused, acquire6, extend
from net_dhcp.dhcp6.keeper import Lease6Keeper
from net_dhcp.dhcp6.lease import Lease6
from net_dhcp.dhcp6.timing import REQUEST, SOLICIT, Retrans, Timing6, timeouts
from net_dhcp.errors import DhcpReplyError, LeaseError

MAC = bytes.fromhex("020000000601")
DUID = codec.duid_ll(MAC)
IAID = codec.iaid_for_mac(MAC)
SERVER_A = codec.duid_ll(bytes.fromhex("02000000aa01"))
SERVER_B = codec.duid_ll(bytes.fromhex("02000000bb02"))
ADDR_A = IPv6Address("fd00:6::1a")
ADDR_B = IPv6Address("fd00:6::1b")
FAST = Timing6(solicit=Retrans(irt=0.05, mrt=0.2), request=Retrans(irt=0.05, mrt=0.2, mrc=4),
               renew=Retrans(irt=0.05, mrt=0.2), rebind=Retrans(irt=0.05, mrt=0.2),
               init_retry_s=0.5, keeper_retry_first_s=0.05, keeper_retry_max_s=0.1)

Script = Callable[[codec.Message6], list[codec.Message6]]


class FakeSock6:
    """Records what is sent; queues what `script` answers (the socket's DUID filter too)."""

    def __init__(self, script: Script) -> None:
        self.ifname = "fake6"
        self.mac = MAC
        self.client_id = DUID
        self.script = script
        self.sent: list[codec.Message6] = []
        self.queue: asyncio.Queue[codec.Message6] = asyncio.Queue()

    async def send(self, msg: codec.Message6) -> None:
        # Through the wire format, as the real socket does.
        msg = codec.Message6.decode(msg.encode())
        self.sent.append(msg)
        for answer in self.script(msg):
            answer = codec.Message6.decode(answer.encode())
            if answer.client_id == self.client_id:
                self.queue.put_nowait(answer)

    async def recv(self) -> codec.Message6:
        return await self.queue.get()

    def drain(self) -> None:
        while not self.queue.empty():
            self.queue.get_nowait()

    def close(self) -> None:
        pass

    def kinds(self) -> list[int]:
        return [m.msg_type for m in self.sent]


def status(code: int, text: str = "") -> bytes:
    return code.to_bytes(2, "big") + text.encode()


def answer(kind: int, to: codec.Message6, server: bytes, addr: IPv6Address | None, *,
           t1: int = 60, t2: int = 96, valid: int = 120, preferred: int = 120,
           extra: tuple[tuple[int, bytes], ...] = (), ia_status: int | None = None,
           client: bytes = DUID) -> codec.Message6:
    """A server's Advertise or Reply to `to` for our IA_NA."""
    ia = codec.IaNa(IAID, t1, t2, (codec.IaAddress(addr, preferred, valid),) if addr else ())
    ia_value = ia.encode()
    if ia_status is not None:
        ia_value += codec.Opt.STATUS_CODE.to_bytes(2, "big") + len(status(ia_status)).to_bytes(
            2, "big") + status(ia_status)
    return codec.Message6(kind, to.xid, ((codec.Opt.CLIENTID, client),
                                         (codec.Opt.SERVERID, server),
                                         (codec.Opt.IA_NA, ia_value), *extra))


def server(duid: bytes, addr: IPv6Address, *, preference: int = 0,
           rapid: bool = False) -> Script:
    """A well-behaved server: Advertise, Reply to Request/Renew/Rebind (Rapid Commit if
    `rapid` and asked)."""
    def script(msg: codec.Message6) -> list[codec.Message6]:
        t = codec.MessageType
        if msg.msg_type == t.SOLICIT:
            if rapid and msg.rapid_commit:
                return [answer(t.REPLY, msg, duid, addr, extra=((codec.Opt.RAPID_COMMIT, b""),))]
            return [answer(t.ADVERTISE, msg, duid, addr,
                           extra=((codec.Opt.PREFERENCE, bytes((preference,))),))]
        if msg.msg_type in (t.REQUEST, t.RENEW) and msg.server_id == duid:
            return [answer(t.REPLY, msg, duid, addr)]
        if msg.msg_type == t.REBIND:
            return [answer(t.REPLY, msg, duid, addr)]
        return []
    return script


def both(*scripts: Script) -> Script:
    return lambda msg: [a for s in scripts for a in s(msg)]


async def _acquire(sock: FakeSock6, timeout_s: float = 2.0,
                   stats: Acquire6Stats | None = None) -> Lease6:
    return await acquire6(sock, iaid=IAID, hostname="c6", timeout_s=timeout_s,  # type: ignore[arg-type]
                          timing=FAST, rng=random.Random(1), stats=stats)


# --------------------------------------------------------------------------- acquire


@pytest.mark.asyncio
async def test_solicit_advertise_request_reply() -> None:
    sock = FakeSock6(server(SERVER_A, ADDR_A))
    lease = await _acquire(sock)
    t = codec.MessageType
    assert sock.kinds() == [t.SOLICIT, t.REQUEST]
    assert (lease.address, lease.server_duid, lease.iaid) == (ADDR_A, SERVER_A, IAID)
    assert (lease.t1_s, lease.t2_s, lease.valid_s) == (60, 96, 120)
    assert lease.prefixlen == 128  # no router advertisement here
    request = sock.sent[1]
    assert request.server_id == SERVER_A
    ia = request.ia_na(IAID)
    assert ia is not None
    assert [a.address for a in ia.addresses] == [ADDR_A]
    assert request.option(codec.Opt.CLIENT_FQDN) == codec.fqdn_option("c6")
    assert request.option(codec.Opt.ELAPSED_TIME) is not None


@pytest.mark.asyncio
async def test_rapid_commit_reply_is_the_lease() -> None:
    sock = FakeSock6(server(SERVER_A, ADDR_A, rapid=True))
    lease = await _acquire(sock)
    assert sock.kinds() == [codec.MessageType.SOLICIT]
    assert sock.sent[0].rapid_commit
    assert lease.address == ADDR_A


@pytest.mark.asyncio
async def test_the_most_preferred_advertise_wins() -> None:
    sock = FakeSock6(both(server(SERVER_A, ADDR_A, preference=10),
                          server(SERVER_B, ADDR_B, preference=200)))
    lease = await _acquire(sock)
    assert (lease.server_duid, lease.address) == (SERVER_B, ADDR_B)


@pytest.mark.asyncio
async def test_broken_and_empty_advertises_are_ignored() -> None:
    t = codec.MessageType

    def rogue(msg: codec.Message6) -> list[codec.Message6]:
        if msg.msg_type != t.SOLICIT:
            return []
        no_server = codec.Message6(t.ADVERTISE, msg.xid, ((codec.Opt.CLIENTID, DUID),))
        no_addrs = codec.Message6(t.ADVERTISE, msg.xid, (
            (codec.Opt.CLIENTID, DUID), (codec.Opt.SERVERID, SERVER_B),
            (codec.Opt.STATUS_CODE, status(codec.Status.NO_ADDRS_AVAIL, "full"))))
        multicast = answer(t.ADVERTISE, msg, SERVER_B, IPv6Address("ff02::1"),
                           extra=((codec.Opt.PREFERENCE, b"\xff"),))
        bad_duid = codec.Message6(t.ADVERTISE, msg.xid, (
            (codec.Opt.CLIENTID, DUID), (codec.Opt.SERVERID, b"\x00")))
        return [no_server, no_addrs, multicast, bad_duid]

    stats = Acquire6Stats()
    sock = FakeSock6(both(rogue, server(SERVER_A, ADDR_A)))
    lease = await _acquire(sock, stats=stats)
    assert (lease.server_duid, lease.address) == (SERVER_A, ADDR_A)
    assert stats.dropped >= 3
    assert stats.no_addrs >= 1


@pytest.mark.asyncio
async def test_no_server_is_a_lease_error_saying_what_was_tried() -> None:
    sock = FakeSock6(lambda _m: [])
    with pytest.raises(LeaseError, match=r"no DHCPv6 lease within 0.4s: \d+ Solicit"):
        await _acquire(sock, timeout_s=0.4)
    kinds = set(sock.kinds())
    assert kinds == {codec.MessageType.SOLICIT}
    assert len({m.xid for m in sock.sent}) == 1  # retransmissions keep the transaction ID


@pytest.mark.asyncio
async def test_a_refused_request_solicits_again() -> None:
    t = codec.MessageType
    refused_once = [False]

    def flaky(msg: codec.Message6) -> list[codec.Message6]:
        if msg.msg_type == t.REQUEST and not refused_once[0]:
            refused_once[0] = True
            return [answer(t.REPLY, msg, SERVER_A, ADDR_A, ia_status=codec.Status.NOT_ON_LINK)]
        return server(SERVER_A, ADDR_A)(msg)

    sock = FakeSock6(flaky)
    lease = await _acquire(sock)
    assert lease.address == ADDR_A
    assert sock.kinds() == [t.SOLICIT, t.REQUEST, t.SOLICIT, t.REQUEST]


# --------------------------------------------------------------------------- renew


def a_lease(**kw: object) -> Lease6:
    base: dict[str, object] = dict(address=ADDR_A, iaid=IAID, server_duid=SERVER_A,
                                   preferred_s=120.0, valid_s=120.0, t1_s=60.0, t2_s=96.0,
                                   obtained_at=0.0, prefixlen=64,
                                   router=IPv6Address("fe80::1"))
    base.update(kw)
    return Lease6(**base)  # type: ignore[arg-type]


@pytest.mark.asyncio
async def test_renew_believes_only_the_lease_server_and_keeps_what_the_ra_said() -> None:
    t = codec.MessageType

    def other_first(msg: codec.Message6) -> list[codec.Message6]:
        out = [answer(t.REPLY, msg, SERVER_B, ADDR_B)]  # not our server: ignored
        return out + server(SERVER_A, ADDR_A)(msg)

    sock = FakeSock6(other_first)
    got = await extend(sock, a_lease(), rebind=False, until=asyncio.get_running_loop().time()  # type: ignore[arg-type]
                       + 1e9, hostname=None, timing=FAST, rng=random.Random(2))
    assert isinstance(got, Lease6)
    assert (got.address, got.server_duid) == (ADDR_A, SERVER_A)
    assert (got.prefixlen, got.router) == (64, IPv6Address("fe80::1"))
    renew = sock.sent[0]
    assert renew.msg_type == t.RENEW
    assert renew.server_id == SERVER_A


@pytest.mark.asyncio
@pytest.mark.parametrize(("ia_status", "valid"), [
    (codec.Status.NOT_ON_LINK, 120), (codec.Status.NO_BINDING, 120), (None, 0)])
async def test_renew_refusals(ia_status: int | None, valid: int) -> None:
    t = codec.MessageType
    sock = FakeSock6(lambda m: [answer(t.REPLY, m, SERVER_A, ADDR_A, ia_status=ia_status,
                                       valid=valid, preferred=0)])
    got = await extend(sock, a_lease(), rebind=False, until=1e12, hostname=None,  # type: ignore[arg-type]
                       timing=FAST)
    assert isinstance(got, Refused)


def test_reply_sanity_checks() -> None:
    t = codec.MessageType
    req = codec.solicit(xid=7, client_id=DUID, iaid=IAID)
    for addr, why in [(IPv6Address("fe80::5"), "not a usable"),
                      (IPv6Address("::1"), "not a usable")]:
        with pytest.raises(DhcpReplyError, match=why):
            Lease6.from_reply(answer(t.REPLY, req, SERVER_A, addr), iaid=IAID, sent_at=0)
    with pytest.raises(DhcpReplyError, match="exceeds the valid lifetime"):
        Lease6.from_reply(answer(t.REPLY, req, SERVER_A, ADDR_A, preferred=200, valid=100),
                          iaid=IAID, sent_at=0)
    with pytest.raises(DhcpReplyError, match="T1 .* after T2"):
        Lease6.from_reply(answer(t.REPLY, req, SERVER_A, ADDR_A, t1=90, t2=60),
                          iaid=IAID, sent_at=0)
    lease = Lease6.from_reply(answer(t.REPLY, req, SERVER_A, ADDR_A, t1=0, t2=0,
                                     preferred=100), iaid=IAID, sent_at=0)
    assert (lease.t1_s, lease.t2_s) == (50, 80)  # RFC 8415 21.4: 0.5 and 0.8
    assert Lease6.from_dict(lease.to_dict()) == lease


def test_retransmission_follows_rfc_8415_section_15() -> None:
    rng = random.Random(3)
    first = [next(timeouts(SOLICIT, rng, first_positive=True)) for _ in range(200)]
    assert all(1.0 < rt <= 1.1 for rt in first)  # strictly more than IRT for Solicit
    rts = list(timeouts(REQUEST, random.Random(4)))
    assert len(rts) == REQUEST.mrc
    for prev, rt in zip(rts, rts[1:], strict=False):
        assert rt <= REQUEST.mrt * 1.1
        assert rt >= min(prev * 1.9, REQUEST.mrt * 0.9)


# --------------------------------------------------------------------------- keeper


@pytest.mark.asyncio
async def test_keeper_renews_at_t1_and_starts_over_on_not_on_link() -> None:
    t = codec.MessageType
    now = [1000.0]
    phase = ["renew"]
    applied: list[tuple[Lease6 | None, Lease6]] = []
    removed: list[Lease6] = []
    stored: list[Lease6] = []

    def script(msg: codec.Message6) -> list[codec.Message6]:
        if msg.msg_type == t.RENEW and phase[0] == "refuse":
            return [answer(t.REPLY, msg, SERVER_A, ADDR_A, ia_status=codec.Status.NOT_ON_LINK)]
        if phase[0] == "refuse" and msg.msg_type == t.SOLICIT:
            return server(SERVER_B, ADDR_B, rapid=True)(msg)
        return server(SERVER_A, ADDR_A)(msg)

    async def apply(old: Lease6 | None, new: Lease6) -> None:
        applied.append((old, new))

    async def unapply(old: Lease6) -> None:
        removed.append(old)

    sock = FakeSock6(script)
    keeper = Lease6Keeper("k6", sock, a_lease(obtained_at=now[0] - 61), hostname=None,  # type: ignore[arg-type]
                          apply=apply, unapply=unapply, on_lease=stored.append,
                          timing=FAST, rng=random.Random(5), clock=lambda: now[0])
    task = asyncio.create_task(keeper.run())
    try:
        async with asyncio.timeout(5):
            while keeper.renewals < 1:
                await asyncio.sleep(0.01)
        assert stored[-1].address == ADDR_A
        assert applied == []  # same address, same router: nothing to change
        # A new host name wakes the keeper for a Renew at once; the server refuses it.
        phase[0] = "refuse"
        keeper.set_hostname("c6-new")
        async with asyncio.timeout(5):
            while not stored or stored[-1].address != ADDR_B:
                await asyncio.sleep(0.01)
        assert [r.address for r in removed] == [ADDR_A]
        assert applied[-1][1].address == ADDR_B
        # What the router said about the link stays with the new address on it.
        assert (applied[-1][1].prefixlen, applied[-1][1].router) == (64, IPv6Address("fe80::1"))
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


@pytest.mark.asyncio
async def test_an_address_in_use_is_declined_and_another_taken() -> None:
    t = codec.MessageType
    offered = [ADDR_A, ADDR_B]

    def script(msg: codec.Message6) -> list[codec.Message6]:
        if msg.msg_type == t.DECLINE:
            offered.pop(0)
            return []
        return server(SERVER_A, offered[0], rapid=True)(msg)

    async def probe(ip: IPv6Address) -> bool:
        return ip == ADDR_A

    stats = Acquire6Stats()
    sock = FakeSock6(script)
    lease = await acquire6(sock, iaid=IAID, hostname=None, timeout_s=2,  # type: ignore[arg-type]
                           timing=FAST, stats=stats, probe=probe)
    assert lease.address == ADDR_B
    assert stats.declined == [ADDR_A]
    decline = next(m for m in sock.sent if m.msg_type == t.DECLINE)
    assert decline.server_id == SERVER_A
    ia = decline.ia_na(IAID)
    assert ia is not None
    assert [a.address for a in ia.addresses] == [ADDR_A]


@pytest.mark.asyncio
async def test_declines_are_paced() -> None:
    """Every address answers DAD (a proxy router): after the first decline the client waits
    decline_retry_s between attempts instead of draining the server's pool."""
    t = codec.MessageType
    n = [0]

    def script(msg: codec.Message6) -> list[codec.Message6]:
        if msg.msg_type == t.DECLINE:
            return []
        n[0] += 1
        return server(SERVER_A, IPv6Address(f"fd00:6::{n[0]:x}"), rapid=True)(msg)

    async def always(_ip: IPv6Address) -> bool:
        return True

    stats = Acquire6Stats()
    timing = Timing6(solicit=FAST.solicit, decline_retry_s=0.4)
    with pytest.raises(LeaseError, match="declined"):
        await acquire6(FakeSock6(script), iaid=IAID, hostname=None,  # type: ignore[arg-type]
                       timeout_s=1.0, timing=timing, stats=stats, probe=always)
    assert 2 <= len(stats.declined) <= 4, stats.declined
