"""DHCPv4 Rapid Commit (RFC 4039) in acquire(), against scripted servers that answer in bytes.

Every reply is built, put on the wire (encode), has raw option bytes spliced in where a test
needs them (option 80 is spliced in by hand, not by the codec under test), and is decoded as
DhcpSocket decodes it. What the client sends is checked on its encoded bytes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from ipaddress import IPv4Address, IPv4Interface

import pytest

from net_dhcp.dhcp4 import codec
from net_dhcp.dhcp4.client import AcquireStats, acquire
from net_dhcp.dhcp4.fsm import Machine, State
from net_dhcp.errors import LeaseError
from tests.unit.test_client_hardening import broken
from tests.unit.test_keeper import FAST, MAC, SERVER, SERVER_MAC, FakeSock, Harness, a_lease, reply

MT = codec.MessageType
CID = codec.client_id_for_mac(MAC)
OTHER = IPv4Address("10.0.0.2")
"""A second server on the LAN."""
OPTIONS_AT = 240
"""RFC 2131 section 3: the 236-octet fixed header, then the magic cookie, then options."""
RAPID = bytes((80, 0))
"""RFC 4039 section 4: code 80, length 0."""

Answer = Callable[[codec.DhcpMessage], list[bytes]]


class Wire(FakeSock):
    """A FakeSock on whose LAN servers answer in bytes, one or several replies (several
    servers) per message, queued in the order given and decoded as DhcpSocket decodes."""

    def __init__(self, answer: Answer) -> None:
        super().__init__(lambda _msg: None)
        self.answer = answer

    def send(self, msg: codec.DhcpMessage, *, src: IPv4Address = IPv4Address(0),
             dst: IPv4Address = IPv4Address("255.255.255.255"),
             dst_mac: bytes = b"\xff" * 6) -> None:
        super().send(msg, src=src, dst=dst, dst_mac=dst_mac)
        for raw in self.answer(msg):
            self.queue.put_nowait((codec.DhcpMessage.decode(raw), SERVER_MAC))

    def kinds(self) -> list[MT | None]:
        return [m.message_type for m, *_ in self.sent]

    def of(self, kind: MT) -> list[codec.DhcpMessage]:
        return [m for m, *_ in self.sent if m.message_type is kind]


def on_wire(msg: codec.DhcpMessage, extra: bytes = b"") -> bytes:
    """`msg` encoded, with the raw option bytes `extra` spliced in first."""
    raw = msg.encode()
    assert raw[OPTIONS_AT - 4:OPTIONS_AT] == codec.MAGIC_COOKIE
    return raw[:OPTIONS_AT] + extra + raw[OPTIONS_AT:]


def wire_options(msg: codec.DhcpMessage) -> list[tuple[int, bytes]]:
    """The options of `msg` as it goes on the wire, read octet by octet up to END."""
    raw = msg.encode()
    out: list[tuple[int, bytes]] = []
    i = OPTIONS_AT
    while raw[i] != 255:
        if raw[i] == 0:
            i += 1
            continue
        code, length = raw[i], raw[i + 1]
        out.append((code, raw[i + 2:i + 2 + length]))
        i += 2 + length
    return out


def answer(req: codec.DhcpMessage, kind: MT, ip: str, *, server: IPv4Address = SERVER,
           extra: bytes = b"") -> bytes:
    """A good server's reply of `kind` to `req` granting `ip`, in bytes."""
    msg = reply(kind, req, ip, t1=60, t2=90, lease=120)
    msg.options[codec.Opt.SERVER_ID] = server.packed
    return on_wire(msg, extra)


def four_messages(req: codec.DhcpMessage) -> list[bytes]:
    """A server without Rapid Commit: OFFER 10.0.0.50, ACK to the REQUEST."""
    if req.message_type is MT.DISCOVER:
        return [answer(req, MT.OFFER, "10.0.0.50")]
    if req.message_type is MT.REQUEST:
        return [answer(req, MT.ACK, "10.0.0.50")]
    return []


def two_messages(req: codec.DhcpMessage) -> list[bytes]:
    """A Rapid Commit server: ACK with option 80 to a DISCOVER that has it, else RFC 2131."""
    if req.message_type is MT.DISCOVER and req.options.get(codec.Opt.RAPID_COMMIT) == b"":
        return [answer(req, MT.ACK, "10.0.0.50", extra=RAPID)]
    return four_messages(req)


# --------------------------------------------------------------------------- the option


@pytest.mark.parametrize(("extra", "expected"), [
    (b"", False),
    (RAPID, True),
    (RAPID + RAPID, True),  # RFC 3396: instances concatenate, still empty
    (bytes((80, 1, 0)), False),  # RFC 4039 4: the option has no value
])
def test_option_80_is_read_from_the_wire(extra: bytes, expected: bool) -> None:
    req = codec.discover(xid=7, chaddr=MAC, client_id=CID)
    msg = codec.DhcpMessage.decode(answer(req, MT.ACK, "10.0.0.50", extra=extra))
    assert msg.rapid_commit is expected
    assert msg.message_type is MT.ACK


@pytest.mark.asyncio
@pytest.mark.parametrize("rapid_commit", [True, False])
async def test_discover_asks_for_rapid_commit_unless_turned_off(rapid_commit: bool) -> None:
    sock = Wire(four_messages)
    lease = await acquire(sock, client_id=CID, hostname=None,  # type: ignore[arg-type]
                          timeout_s=5, timing=FAST, rapid_commit=rapid_commit)
    assert lease.address == IPv4Interface("10.0.0.50/24")
    [discover] = sock.of(MT.DISCOVER)
    eighty = [value for code, value in wire_options(discover) if code == 80]
    assert eighty == ([b""] if rapid_commit else [])
    [request] = sock.of(MT.REQUEST)
    assert 80 not in dict(wire_options(request))  # RFC 4039: DISCOVER and ACK only


# --------------------------------------------------------------------------- two messages


@pytest.mark.asyncio
async def test_a_rapid_commit_ack_is_the_lease_in_two_messages() -> None:
    sock = Wire(two_messages)
    stats = AcquireStats()
    fsm = Machine("t")
    before = time.time()
    lease = await acquire(sock, client_id=CID, hostname="c1",  # type: ignore[arg-type]
                          timeout_s=5, timing=FAST, stats=stats, fsm=fsm)
    assert sock.kinds() == [MT.DISCOVER]
    assert lease.address == IPv4Interface("10.0.0.50/24")
    assert (lease.server_id, lease.server_mac) == (SERVER, SERVER_MAC)
    assert lease.gateway == SERVER
    assert (lease.lease_time_s, lease.t1_s, lease.t2_s) == (120, 60, 90)
    assert lease.hostname_sent == "c1"
    assert before <= lease.obtained_at <= time.time()  # counts from the DISCOVER
    assert stats.rapid_commit
    assert (stats.rapid_acks, stats.discovers, stats.offers, stats.requests) == (1, 1, 0, 0)
    assert fsm.state is State.REQUESTING  # the caller binds, as after a REQUEST's ACK
    fsm.move(State.BOUND)


@pytest.mark.asyncio
async def test_a_retransmitted_discover_still_asks_and_its_rapid_ack_is_taken() -> None:
    seen: list[codec.DhcpMessage] = []

    def deaf_once(req: codec.DhcpMessage) -> list[bytes]:
        seen.append(req)
        return [] if len(seen) == 1 else two_messages(req)

    sock = Wire(deaf_once)
    stats = AcquireStats()
    lease = await acquire(sock, client_id=CID, hostname=None,  # type: ignore[arg-type]
                          timeout_s=5, timing=FAST, stats=stats)
    assert lease.address.ip == IPv4Address("10.0.0.50")
    assert sock.kinds() == [MT.DISCOVER, MT.DISCOVER]
    assert seen[0].xid == seen[1].xid  # RFC 2131 4.1: a retransmission, same xid
    assert all((80, b"") in wire_options(m) for m in seen)
    assert stats.rapid_commit
    assert stats.discovers == 2


@pytest.mark.asyncio
async def test_the_keeper_binds_a_rapid_commit_lease_after_a_nak() -> None:
    def script(req: codec.DhcpMessage) -> codec.DhcpMessage | None:
        if req.message_type is MT.REQUEST:
            return reply(MT.NAK, req, "0.0.0.0")
        msg = codec.DhcpMessage.decode(answer(req, MT.ACK, "10.0.0.77", extra=RAPID))
        return msg if msg.rapid_commit and (80, b"") in wire_options(req) else None

    h = Harness(script, a_lease(t1=0.05))
    await h.run_until(lambda: bool(h.applied))
    # The keeper moves to BOUND before it applies: the state machine took the lease.
    assert h.applied[0][1].address == IPv4Interface("10.0.0.77/24")
    assert [m.message_type for m, *_ in h.sock.sent] == [MT.REQUEST, MT.DISCOVER]


# --------------------------------------------------------------------------- what is ignored


@pytest.mark.asyncio
@pytest.mark.parametrize(("extra", "why"), [
    (b"", "without Rapid Commit (option 80"),
    (bytes((80, 1, 1)), "Rapid Commit option has 1 octets"),
])
async def test_an_ack_to_a_discover_without_a_proper_option_80_is_ignored(
        extra: bytes, why: str) -> None:
    def lan(req: codec.DhcpMessage) -> list[bytes]:
        if req.message_type is MT.DISCOVER:  # the bad ACK comes first: it would win
            return [answer(req, MT.ACK, "10.0.0.66", server=OTHER, extra=extra),
                    answer(req, MT.OFFER, "10.0.0.50")]
        return four_messages(req)

    sock = Wire(lan)
    stats = AcquireStats()
    lease = await acquire(sock, client_id=CID, hostname=None,  # type: ignore[arg-type]
                          timeout_s=5, timing=FAST, stats=stats)
    assert lease.address.ip == IPv4Address("10.0.0.50")
    assert lease.server_id == SERVER
    assert sock.kinds() == [MT.DISCOVER, MT.REQUEST]
    assert not stats.rapid_commit
    assert stats.rapid_acks == 0
    assert stats.dropped == 1
    assert why in (stats.last_drop_reason or "")


@pytest.mark.asyncio
async def test_only_acks_without_option_80_is_no_lease() -> None:
    def lan(req: codec.DhcpMessage) -> list[bytes]:
        return [answer(req, MT.ACK, "10.0.0.66")]

    sock = Wire(lan)
    stats = AcquireStats()
    with pytest.raises(LeaseError, match="0 usable offer"):  # when the backoff runs out
        await acquire(sock, client_id=CID, hostname=None,  # type: ignore[arg-type]
                      timeout_s=5, timing=FAST, stats=stats)
    assert set(sock.kinds()) == {MT.DISCOVER}
    assert stats.dropped == stats.discovers >= 2
    assert not stats.rapid_commit


@pytest.mark.asyncio
async def test_turned_off_a_rapid_commit_ack_is_ignored() -> None:
    def pushy(req: codec.DhcpMessage) -> list[bytes]:
        if req.message_type is MT.DISCOVER:  # answers with option 80 although not asked
            return [answer(req, MT.ACK, "10.0.0.66", server=OTHER, extra=RAPID),
                    answer(req, MT.OFFER, "10.0.0.50")]
        return four_messages(req)

    sock = Wire(pushy)
    stats = AcquireStats()
    lease = await acquire(sock, client_id=CID, hostname=None,  # type: ignore[arg-type]
                          timeout_s=5, timing=FAST, stats=stats, rapid_commit=False)
    assert lease.address.ip == IPv4Address("10.0.0.50")
    assert sock.kinds() == [MT.DISCOVER, MT.REQUEST]
    assert not stats.rapid_commit
    assert "did not ask for Rapid Commit" in (stats.last_drop_reason or "")


@pytest.mark.asyncio
async def test_a_server_that_only_offers_gets_the_four_message_exchange() -> None:
    sock = Wire(four_messages)
    stats = AcquireStats()
    lease = await acquire(sock, client_id=CID, hostname=None,  # type: ignore[arg-type]
                          timeout_s=5, timing=FAST, stats=stats)
    assert lease.address == IPv4Interface("10.0.0.50/24")
    assert sock.kinds() == [MT.DISCOVER, MT.REQUEST]
    [request] = sock.of(MT.REQUEST)
    assert dict(wire_options(request))[50] == IPv4Address("10.0.0.50").packed
    assert (stats.offers, stats.requests, stats.rapid_acks, stats.dropped) == (1, 1, 0, 0)
    assert not stats.rapid_commit


# --------------------------------------------------------------------------- several servers


@pytest.mark.asyncio
@pytest.mark.parametrize("ack_first", [True, False])
async def test_a_rapid_ack_received_with_an_offer_wins(ack_first: bool) -> None:
    def two_servers(req: codec.DhcpMessage) -> list[bytes]:
        if req.message_type is not MT.DISCOVER:
            return four_messages(req)
        offer = answer(req, MT.OFFER, "10.0.0.50")
        rapid = answer(req, MT.ACK, "10.0.0.60", server=OTHER, extra=RAPID)
        return [rapid, offer] if ack_first else [offer, rapid]

    sock = Wire(two_servers)
    stats = AcquireStats()
    lease = await acquire(sock, client_id=CID, hostname=None,  # type: ignore[arg-type]
                          timeout_s=5, timing=FAST, stats=stats)
    assert (lease.address.ip, lease.server_id) == (IPv4Address("10.0.0.60"), OTHER)
    assert sock.kinds() == [MT.DISCOVER]
    assert stats.rapid_commit
    assert stats.offers == 0


@pytest.mark.asyncio
async def test_a_rapid_ack_after_the_offer_was_taken_is_not_the_lease() -> None:
    # It comes once the REQUEST went to the offering server: that server's ACK is awaited.
    def late(req: codec.DhcpMessage) -> list[bytes]:
        if req.message_type is MT.REQUEST:
            return [answer(req, MT.ACK, "10.0.0.60", server=OTHER, extra=RAPID),
                    answer(req, MT.ACK, "10.0.0.50")]
        return four_messages(req)

    sock = Wire(late)
    stats = AcquireStats()
    lease = await acquire(sock, client_id=CID, hostname=None,  # type: ignore[arg-type]
                          timeout_s=5, timing=FAST, stats=stats)
    assert (lease.address.ip, lease.server_id) == (IPv4Address("10.0.0.50"), SERVER)
    assert not stats.rapid_commit
    assert f"not from our server {SERVER}" in (stats.last_drop_reason or "")


# --------------------------------------------------------------------------- hostile


HOSTILE: list[tuple[dict[str, object], str]] = [
    ({"drop": [54]}, "no server identifier"),
    ({"opts": {54: IPv4Address("224.0.0.1").packed}}, "not a host address"),
    ({"opts": {54: IPv4Address("0.0.0.0").packed}}, "not a host address"),
    ({"drop": [51]}, "no lease time"),
    ({"opts": {51: (0).to_bytes(4, "big")}}, "lease time of 0"),
    ({"opts": {1: IPv4Address("255.0.255.0").packed}}, "not contiguous"),
    ({"opts": {1: IPv4Address("0.0.0.0").packed}}, "0.0.0.0"),
    ({"opts": {1: b"\xff\xff"}}, "not 4"),
    ({"yiaddr": IPv4Address(0)}, "not a usable host address"),
    ({"yiaddr": IPv4Address("127.1.2.3")}, "not a usable host address"),
    ({"yiaddr": IPv4Address("224.0.0.5")}, "not a usable host address"),
    ({"yiaddr": IPv4Address("255.255.255.255")}, "not a usable host address"),
    ({"yiaddr": IPv4Address("10.0.0.255")}, "broadcast"),
    ({"yiaddr": SERVER}, "the server's own address"),
]


@pytest.mark.asyncio
@pytest.mark.parametrize(("change", "why"), HOSTILE)
async def test_a_hostile_rapid_commit_ack_is_rejected_like_any_ack(
        change: dict[str, object], why: str) -> None:
    def lan(req: codec.DhcpMessage) -> list[bytes]:
        if req.message_type is MT.DISCOVER:  # the hostile ACK comes first: it would win
            return [on_wire(broken(req, MT.ACK, **change), RAPID),
                    answer(req, MT.OFFER, "10.0.0.50")]
        return four_messages(req)

    sock = Wire(lan)
    stats = AcquireStats()
    lease = await acquire(sock, client_id=CID, hostname=None,  # type: ignore[arg-type]
                          timeout_s=5, timing=FAST, stats=stats)
    assert lease.address == IPv4Interface("10.0.0.50/24")
    assert (lease.lease_time_s, lease.server_id) == (120, SERVER)
    assert sock.kinds() == [MT.DISCOVER, MT.REQUEST]
    assert not stats.rapid_commit
    assert stats.rapid_acks == 0
    assert stats.dropped == 1
    assert why in (stats.last_drop_reason or ""), stats.last_drop_reason


@pytest.mark.asyncio
async def test_only_hostile_rapid_acks_is_no_lease() -> None:
    def lan(req: codec.DhcpMessage) -> list[bytes]:
        return [on_wire(broken(req, MT.ACK, drop=[51]), RAPID)]

    sock = Wire(lan)
    stats = AcquireStats()
    with pytest.raises(LeaseError, match="no lease time"):  # when the backoff runs out
        await acquire(sock, client_id=CID, hostname=None,  # type: ignore[arg-type]
                      timeout_s=5, timing=FAST, stats=stats)
    assert set(sock.kinds()) == {MT.DISCOVER}


# --------------------------------------------------------------------------- conflicts


@pytest.mark.asyncio
async def test_a_rapid_commit_address_in_use_is_declined_and_discovery_starts_over() -> None:
    probed: list[IPv4Address] = []

    async def first_in_use(ip: IPv4Address) -> bool:
        probed.append(ip)
        return ip == IPv4Address("10.0.0.50")

    def lan(req: codec.DhcpMessage) -> list[bytes]:
        if req.message_type is not MT.DISCOVER:
            return []
        ip = "10.0.0.51" if sock.of(MT.DECLINE) else "10.0.0.50"
        return [answer(req, MT.ACK, ip, extra=RAPID)]

    sock = Wire(lan)
    stats = AcquireStats()
    lease = await acquire(sock, client_id=CID, hostname=None,  # type: ignore[arg-type]
                          timeout_s=5, timing=FAST, stats=stats, probe=first_in_use)
    assert lease.address == IPv4Interface("10.0.0.51/24")
    assert probed == [IPv4Address("10.0.0.50"), IPv4Address("10.0.0.51")]
    assert sock.kinds() == [MT.DISCOVER, MT.DECLINE, MT.DISCOVER]
    first, second = sock.of(MT.DISCOVER)
    [decline] = sock.of(MT.DECLINE)
    options = dict(wire_options(decline))
    assert decline.xid == first.xid != second.xid
    assert options[50] == IPv4Address("10.0.0.50").packed
    assert options[54] == SERVER.packed
    assert 80 not in options
    assert decline.ciaddr == IPv4Address(0)  # RFC 2131 table 5
    assert (80, b"") in wire_options(second)
    assert stats.declined == [IPv4Address("10.0.0.50")]
    assert stats.rapid_commit
    assert stats.rapid_acks == 2


@pytest.mark.asyncio
async def test_declined_rapid_commit_leases_end_in_a_clear_error() -> None:
    async def in_use(_ip: IPv4Address) -> bool:
        return True

    sock = Wire(two_messages)
    stats = AcquireStats()
    with pytest.raises(LeaseError, match=r"1 Rapid Commit ACK\(s\); declined 10\.0\.0\.50"):
        await acquire(sock, client_id=CID, hostname=None,  # type: ignore[arg-type]
                      timeout_s=5, timing=FAST, stats=stats, probe=in_use, max_declines=1)
    assert sock.kinds() == [MT.DISCOVER, MT.DECLINE]
    assert not stats.rapid_commit  # no lease came of it
