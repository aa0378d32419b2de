"""A hostile LAN for the integration tests: a rogue DHCP responder and a reply sniffer.

The rogue runs as its own process (``python -m tests.integration.hostile ...``) inside the
lab's server namespace, on an AF_PACKET socket bound to the server's veth (``lan0``). There
it sees every DHCP message a client sends to the LAN: the broadcast DISCOVERs and REQUESTs,
and the unicast RENEWING REQUESTs addressed to dnsmasq, which a learning bridge would not
flood to any other port. It answers each at once with broken replies, framed as a real
server frames them: from its own MAC and IP, UDP 67 -> 68, IP destination 255.255.255.255,
Ethernet broadcast when the client set the BROADCAST flag and unicast to chaddr otherwise,
the client's xid and chaddr. To beat dnsmasq (C, --no-ping) it runs SCHED_FIFO with the GC
off, warms its code up before it says it is ready, and stamps each answer from templates
made the first time a client sent that kind of message (only the xid and the UDP checksum
change). Seen in the lab: the rogue's replies reach the client 0.2-0.6 ms after its
message, dnsmasq's 0.5-10 ms after; the sniffer below is how a test checks that, per run.

Self-contained on purpose (struct, socket, no ``net_dhcp`` import): the rogue must not depend
on the code it attacks, and the same file runs against older checkouts of the client.

Parent side, used by the tests:

``Rogue(lab, kinds=ALL_KINDS, states=ALL_STATES, burst=0, lifetime_s=120.0)``
    ``start()`` spawns the process (``ip netns exec <lab.netns> python -m ...``) and waits for
    it to be listening; ``counts()`` reads what it has seen and sent; ``close()`` kills it
    (idempotent). ``mac``, ``ip`` (its own server identifier, ``lab.address(250)``, outside
    the pool) and ``bait`` (a valid-looking address it offers, ``lab.address(240)``).
``ReplySniffer(ifname)``
    A thread recording, in arrival order with kernel timestamps, every DHCP message crossing
    ``ifname`` (use the host end of the client's veth: the bridge port). ``rogue_first(rogue,
    server, since)`` counts the rogue replies that reached the client before the real
    server's reply to the same client message; ``timeline(...)`` prints who answered when.

Reply kinds (``KINDS``; each names what it answers and what is wrong with it):

    offer-no-sid            OFFER of the bait address without option 54
    offer-yiaddr-zero       OFFER with yiaddr 0.0.0.0
    offer-yiaddr-loopback   OFFER of 127.0.0.5
    ack-no-sid              ACK of the requested address without option 54
    nak-no-sid              NAK without a server identifier
    nak-other-sid           NAK from the rogue's own server id
    ack-mask-noncontig      ACK "from the real server" (option 54 spoofed), mask 255.0.255.0
    ack-mask-zero           ACK "from the real server", mask 0.0.0.0
    ack-lease-zero          ACK "from the real server", lease time 0
    ack-no-lease-time       ACK "from the real server" without option 51
    ack-yiaddr-loopback     ACK "from the real server" of 127.0.0.5
    ack-yiaddr-multicast    ACK "from the real server" of 224.0.0.5
    ack-yiaddr-broadcast    ACK "from the real server" of 255.255.255.255
    ack-other-sid           a well-formed ACK of the bait address from the rogue's server id
                            (not sent to REBINDING requests, where any server may answer)

``burst`` replies go out per client message, cycling through the kinds that apply to it
(0: all of them, in the order given). ``states`` limits the client messages answered:
"discover", "selecting", "init-reboot", "renewing" (a REQUEST with ciaddr, unicast) and
"rebinding" (the same, broadcast).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import gc
import json
import os
import secrets
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

from tests.lab import REPO_ROOT, DhcpLan, LabError, random_mac, tail, tool

ETH_P_IP = 0x0800
ETH_P_ALL = 0x0003
SO_ATTACH_FILTER = 26
PACKET_OUTGOING = 4
BROADCAST_MAC = b"\xff" * 6
ZERO = IPv4Address(0)
LIMITED_BROADCAST = IPv4Address("255.255.255.255")
MAGIC_COOKIE = b"\x63\x82\x53\x63"
BOOTP_HEADER = struct.Struct("!BBBBIHH4s4s4s4s16s64s128s")
IP_HEADER = struct.Struct("!BBHHHBBH4s4s")
UDP_HEADER = struct.Struct("!HHHH")

DISCOVER, OFFER, REQUEST, DECLINE, ACK, NAK, RELEASE, INFORM = range(1, 9)
MESSAGE_NAMES = {DISCOVER: "DISCOVER", OFFER: "OFFER", REQUEST: "REQUEST", DECLINE: "DECLINE",
                 ACK: "ACK", NAK: "NAK", RELEASE: "RELEASE", INFORM: "INFORM"}
OPT_MASK, OPT_ROUTER, OPT_REQUESTED, OPT_LEASE, OPT_TYPE, OPT_SID = 1, 3, 50, 51, 53, 54
OPT_MESSAGE, OPT_T1, OPT_T2 = 56, 58, 59

# What a client message is, as the rogue sees it (RFC 2131 4.3.2).
SELECTING, INIT_REBOOT, RENEWING, REBINDING = "selecting", "init-reboot", "renewing", "rebinding"
REQUEST_STATES = (SELECTING, INIT_REBOOT, RENEWING, REBINDING)
ALL_STATES = ("discover", *REQUEST_STATES)

# Classic BPF on an Ethernet frame: IPv4, UDP, not a fragment, destination port 67.
_BPF_DHCP_SERVER = [
    (0x28, 0, 0, 12),  # ldh [12]             ethertype
    (0x15, 0, 8, ETH_P_IP),  # jeq IPv4       else drop
    (0x30, 0, 0, 23),  # ldb [23]             IP protocol
    (0x15, 0, 6, 17),  # jeq UDP              else drop
    (0x28, 0, 0, 20),  # ldh [20]             flags + fragment offset
    (0x45, 4, 0, 0x1FFF),  # jset 0x1fff      a fragment: drop
    (0xB1, 0, 0, 14),  # ldxb 4*([14]&0xf)    IP header length
    (0x48, 0, 0, 16),  # ldh [x+16]           UDP destination port
    (0x15, 0, 1, 67),  # jeq 67               else drop
    (0x06, 0, 0, 0x40000),  # accept
    (0x06, 0, 0, 0),  # drop
]


@dataclass(frozen=True)
class Kind:
    """One broken reply: what it answers, its type, and how it is built."""

    name: str
    answers: tuple[str, ...]  # "discover" and/or REQUEST_STATES
    mtype: int
    sid: str  # "none", "real" (option 54 spoofed as the real server's) or "rogue"
    yiaddr: str = "requested"  # "requested", "bait", "zero" or a literal address
    mask: str | None = "lab"  # "lab", a literal mask, or None (no option 1)
    lease_s: int | None = 120  # None: no option 51


_OFFER = ("discover",)
_REPLIES = REQUEST_STATES
KINDS: dict[str, Kind] = {k.name: k for k in (
    Kind("offer-no-sid", _OFFER, OFFER, "none", yiaddr="bait"),
    Kind("offer-yiaddr-zero", _OFFER, OFFER, "rogue", yiaddr="zero"),
    Kind("offer-yiaddr-loopback", _OFFER, OFFER, "rogue", yiaddr="127.0.0.5"),
    Kind("ack-no-sid", _REPLIES, ACK, "none"),
    Kind("nak-no-sid", _REPLIES, NAK, "none", yiaddr="zero", mask=None, lease_s=None),
    Kind("nak-other-sid", _REPLIES, NAK, "rogue", yiaddr="zero", mask=None, lease_s=None),
    Kind("ack-mask-noncontig", _REPLIES, ACK, "real", mask="255.0.255.0"),
    Kind("ack-mask-zero", _REPLIES, ACK, "real", mask="0.0.0.0"),
    Kind("ack-lease-zero", _REPLIES, ACK, "real", lease_s=0),
    Kind("ack-no-lease-time", _REPLIES, ACK, "real", lease_s=None),
    Kind("ack-yiaddr-loopback", _REPLIES, ACK, "real", yiaddr="127.0.0.5"),
    Kind("ack-yiaddr-multicast", _REPLIES, ACK, "real", yiaddr="224.0.0.5"),
    Kind("ack-yiaddr-broadcast", _REPLIES, ACK, "real", yiaddr="255.255.255.255"),
    Kind("ack-other-sid", (SELECTING, RENEWING), ACK, "rogue", yiaddr="bait"),
)}
ALL_KINDS: tuple[str, ...] = tuple(KINDS)
NAK_KINDS: tuple[str, ...] = ("nak-no-sid", "nak-other-sid")


# --------------------------------------------------------------------------- wire helpers


def checksum(data: bytes) -> int:
    """RFC 1071 Internet checksum."""
    return ~_ones_sum(data) & 0xFFFF


def udp_ipv4(src: IPv4Address, dst: IPv4Address, sport: int, dport: int,
             payload: bytes) -> bytes:
    """An IPv4 packet carrying one UDP datagram, both checksums set."""
    length = UDP_HEADER.size + len(payload)
    pseudo = src.packed + dst.packed + struct.pack("!BBH", 0, 17, length)
    udp_sum = checksum(pseudo + UDP_HEADER.pack(sport, dport, length, 0) + payload) or 0xFFFF
    ip = IP_HEADER.pack(0x45, 0, IP_HEADER.size + length, 0, 0, 64, 17, 0, src.packed,
                        dst.packed)
    ip = ip[:10] + checksum(ip).to_bytes(2, "big") + ip[12:]
    return ip + UDP_HEADER.pack(sport, dport, length, udp_sum) + payload


def dhcp_options(data: bytes) -> dict[int, bytes]:
    """The options area of a BOOTP message (no overload handling: clients do not use it)."""
    out: dict[int, bytes] = {}
    i = BOOTP_HEADER.size + 4
    while i < len(data):
        code = data[i]
        if code == 0:
            i += 1
            continue
        if code == 255 or i + 1 >= len(data):
            break
        length = data[i + 1]
        out[code] = out.get(code, b"") + data[i + 2:i + 2 + length]
        i += 2 + length
    return out


@dataclass(frozen=True)
class Frame:
    """A DHCP message lifted out of an Ethernet frame."""

    dst_mac: bytes
    src_mac: bytes
    ip_dst: IPv4Address
    sport: int
    dport: int
    op: int
    xid: int
    flags: int
    ciaddr: IPv4Address
    yiaddr: IPv4Address
    giaddr: IPv4Address
    chaddr: bytes  # the 16-octet field as sent
    options: dict[int, bytes]

    @property
    def mtype(self) -> int | None:
        value = self.options.get(OPT_TYPE)
        return value[0] if value and len(value) == 1 else None

    @property
    def server_id(self) -> IPv4Address | None:
        value = self.options.get(OPT_SID)
        return IPv4Address(value) if value and len(value) == 4 else None


def parse_frame(frame: bytes) -> Frame | None:
    """The DHCP message in an Ethernet/IPv4/UDP frame, or None."""
    if len(frame) < 14 + 20 + 8 + BOOTP_HEADER.size + 4 or frame[12:14] != b"\x08\x00":
        return None
    ihl = (frame[14] & 0x0F) * 4
    if frame[14] >> 4 != 4 or frame[23] != 17 or ihl < 20:
        return None
    udp = 14 + ihl
    sport, dport = struct.unpack_from("!HH", frame, udp)
    payload = frame[udp + 8:]
    if len(payload) < BOOTP_HEADER.size + 4 or payload[236:240] != MAGIC_COOKIE:
        return None
    (op, _htype, _hlen, _hops, xid, _secs, flags, ciaddr, yiaddr, _siaddr, giaddr, chaddr,
     _sname, _file) = BOOTP_HEADER.unpack_from(payload)
    return Frame(dst_mac=frame[0:6], src_mac=frame[6:12],
                 ip_dst=IPv4Address(frame[30:34]), sport=sport, dport=dport, op=op, xid=xid,
                 flags=flags, ciaddr=IPv4Address(ciaddr), yiaddr=IPv4Address(yiaddr),
                 giaddr=IPv4Address(giaddr), chaddr=chaddr, options=dhcp_options(payload))


def client_state(req: Frame) -> str | None:
    """"discover", a REQUEST_STATES value, or None for what the rogue does not answer."""
    if req.op != 1:
        return None
    if req.mtype == DISCOVER:
        return "discover"
    if req.mtype != REQUEST:
        return None
    if req.server_id is not None:
        return SELECTING
    if req.ciaddr == ZERO:
        return INIT_REBOOT
    return REBINDING if req.ip_dst == LIMITED_BROADCAST else RENEWING


# --------------------------------------------------------------------------- the rogue


@dataclass
class RogueConfig:
    iface: str
    mac: bytes
    ip: IPv4Address
    real_server: IPv4Address
    bait: IPv4Address
    mask: IPv4Address
    router: IPv4Address
    kinds: tuple[str, ...]
    states: tuple[str, ...]
    burst: int
    counts_file: Path
    lifetime_s: float


@dataclass
class RogueCounts:
    """What the rogue saw and sent; written to the counts file after every answer."""

    pid: int
    ready: bool = False
    seen: dict[str, int] = field(default_factory=dict)  # by client state
    sent: dict[str, int] = field(default_factory=dict)  # by kind
    answered: dict[str, int] = field(default_factory=dict)  # client messages, by state
    total_sent: int = 0
    send_errors: int = 0
    last: list[list[Any]] = field(default_factory=list)  # [xid, state, kind], the last 200


def _ones_sum(data: bytes) -> int:
    """The folded 16-bit ones'-complement sum of `data` (RFC 1071), not yet inverted."""
    if len(data) % 2:
        data += b"\x00"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total


# Offsets in a reply frame: Ethernet 14 + IPv4 20, then UDP (checksum at +6), BOOTP xid at +4.
_UDP_AT = 14 + 20
_UDP_SUM_AT = _UDP_AT + 6
_XID_AT = _UDP_AT + 8 + 4


@dataclass(frozen=True)
class Template:
    """A reply frame with xid 0, and the ones'-complement sum its UDP checksum starts from."""

    kind: str
    frame: bytes
    partial_sum: int

    def for_xid(self, xid: bytes) -> bytes:
        """The frame for this 4-octet xid, UDP checksum patched in (RFC 1624 style)."""
        total = self.partial_sum + int.from_bytes(xid[:2], "big") + int.from_bytes(xid[2:], "big")
        while total >> 16:
            total = (total & 0xFFFF) + (total >> 16)
        udp_sum = (~total & 0xFFFF) or 0xFFFF
        f = self.frame
        return (f[:_UDP_SUM_AT] + udp_sum.to_bytes(2, "big") + f[_UDP_SUM_AT + 2:_XID_AT]
                + xid + f[_XID_AT + 4:])


def build_template(kind: Kind, req: Frame, cfg: RogueConfig) -> Template:
    """One broken reply to `req`, as a template to stamp with each request's xid."""
    requested_raw = req.options.get(OPT_REQUESTED)
    requested = (IPv4Address(requested_raw) if requested_raw and len(requested_raw) == 4
                 else req.ciaddr)
    yiaddr = {"requested": requested, "bait": cfg.bait, "zero": ZERO}.get(kind.yiaddr)
    if yiaddr is None:
        yiaddr = IPv4Address(kind.yiaddr)
    opts = bytearray((OPT_TYPE, 1, kind.mtype))
    sid = {"real": cfg.real_server, "rogue": cfg.ip}.get(kind.sid)
    if sid is not None:
        opts += bytes((OPT_SID, 4)) + sid.packed
    if kind.mtype == NAK:
        opts += bytes((OPT_MESSAGE, 5)) + b"rogue"
    else:
        if kind.lease_s is not None:
            opts += bytes((OPT_LEASE, 4)) + kind.lease_s.to_bytes(4, "big")
            if kind.lease_s:
                opts += bytes((OPT_T1, 4)) + (kind.lease_s // 2).to_bytes(4, "big")
                opts += bytes((OPT_T2, 4)) + (kind.lease_s * 7 // 8).to_bytes(4, "big")
        if kind.mask is not None:
            mask = cfg.mask if kind.mask == "lab" else IPv4Address(kind.mask)
            opts += bytes((OPT_MASK, 4)) + mask.packed
        opts += bytes((OPT_ROUTER, 4)) + cfg.router.packed
    opts.append(255)
    ciaddr = req.ciaddr if kind.mtype == ACK else ZERO
    header = BOOTP_HEADER.pack(2, 1, 6, 0, 0, 0, req.flags, ciaddr.packed, yiaddr.packed,
                               ZERO.packed, req.giaddr.packed, req.chaddr, b"", b"")
    payload = header + MAGIC_COOKIE + bytes(opts)
    payload += bytes(max(0, 300 - len(payload)))
    packet = udp_ipv4(cfg.ip, LIMITED_BROADCAST, 67, 68, payload)
    udp = packet[20:]
    pseudo = cfg.ip.packed + LIMITED_BROADCAST.packed + struct.pack("!BBH", 0, 17, len(udp))
    partial = _ones_sum(pseudo + udp[:6] + b"\x00\x00" + udp[8:])
    # Like a real server: broadcast when the client asked for it, else unicast to chaddr.
    dst_mac = BROADCAST_MAC if req.flags & 0x8000 else req.chaddr[:6]
    return Template(kind.name, dst_mac + cfg.mac + ETH_P_IP.to_bytes(2, "big") + packet,
                    partial)


def build_reply(kind: Kind, req: Frame, cfg: RogueConfig) -> bytes:
    """The Ethernet frame of one broken reply to `req` (with its xid)."""
    return build_template(kind, req, cfg).for_xid(req.xid.to_bytes(4, "big"))


def _attach_filter(sock: socket.socket, program: list[tuple[int, int, int, int]]) -> None:
    raw = b"".join(struct.pack("HBBI", *ins) for ins in program)
    buf = ctypes.create_string_buffer(raw)
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER,
                    struct.pack("HL", len(program), ctypes.addressof(buf)))


def _write_counts(path: Path, counts: RogueCounts) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(counts.__dict__))
    os.replace(tmp, path)


def _make_fast() -> None:
    """Best effort: win the race against dnsmasq (woken by the same frame, in C)."""
    gc.disable()
    with contextlib.suppress(OSError, AttributeError, PermissionError):
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(10))


def _warm_up(cfg: RogueConfig, kinds: Sequence[Kind]) -> None:
    """Build (and drop) every kind once, so the first real answer runs warm code."""
    dummy = Frame(dst_mac=BROADCAST_MAC, src_mac=cfg.mac, ip_dst=LIMITED_BROADCAST, sport=68,
                  dport=67, op=1, xid=1, flags=0x8000, ciaddr=ZERO, yiaddr=ZERO, giaddr=ZERO,
                  chaddr=cfg.mac + bytes(10), options={OPT_TYPE: bytes((REQUEST,))})
    for kind in kinds:
        parse_frame(build_reply(kind, dummy, cfg))


def run_rogue(cfg: RogueConfig) -> int:
    """Answer every client message on `cfg.iface` until the lifetime ends or SIGTERM."""
    # Die with the test process even if it is killed before its `finally` runs.
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    kinds = [KINDS[k] for k in cfg.kinds]
    applicable = {state: [k for k in kinds if state in k.answers]
                  if state in cfg.states else []
                  for state in ("discover", *REQUEST_STATES)}
    cursor = dict.fromkeys(applicable, 0)
    # Replies to a client message are stamped from templates made the first time the
    # same client sent the same kind of message: the xid is all that changes.
    templates: dict[tuple[Any, ...], list[Template]] = {}
    counts = RogueCounts(pid=os.getpid())
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_IP))
    _attach_filter(sock, _BPF_DHCP_SERVER)
    sock.bind((cfg.iface, ETH_P_IP))
    sock.settimeout(0.5)
    _make_fast()
    _warm_up(cfg, kinds)
    counts.ready = True
    _write_counts(cfg.counts_file, counts)
    deadline = time.monotonic() + cfg.lifetime_s
    while time.monotonic() < deadline:
        try:
            data, addr = sock.recvfrom(4096)
        except TimeoutError:
            continue
        if addr[2] == PACKET_OUTGOING:
            continue
        req = parse_frame(data)
        state = None if req is None else client_state(req)
        if req is None or state is None:
            continue
        counts.seen[state] = counts.seen.get(state, 0) + 1
        choices = applicable[state]
        if not choices:
            continue
        xid = req.xid.to_bytes(4, "big")
        key = (state, req.chaddr, req.flags, req.ciaddr, req.giaddr,
               req.options.get(OPT_REQUESTED))
        made = templates.get(key)
        if made is None:
            made = []
            for kind in choices:  # send each as soon as it is built: the race is on
                made.append(build_template(kind, req, cfg))
                if cfg.burst <= 0:
                    _send(sock, made[-1].for_xid(xid), made[-1].kind, state, req, counts)
            templates[key] = made
            if cfg.burst <= 0:
                _answered(cfg, counts, state)
                continue
        n = len(made) if cfg.burst <= 0 else cfg.burst
        for i in range(n):
            t = made[(cursor[state] + i) % len(made)]
            _send(sock, t.for_xid(xid), t.kind, state, req, counts)
        cursor[state] = (cursor[state] + n) % len(made)
        _answered(cfg, counts, state)
    return 0


def _send(sock: socket.socket, frame: bytes, kind: str, state: str, req: Frame,
          counts: RogueCounts) -> None:
    try:
        sock.send(frame)
    except OSError:
        counts.send_errors += 1
        return
    counts.sent[kind] = counts.sent.get(kind, 0) + 1
    counts.total_sent += 1
    counts.last.append([req.xid, state, kind])


def _answered(cfg: RogueConfig, counts: RogueCounts, state: str) -> None:
    counts.answered[state] = counts.answered.get(state, 0) + 1
    del counts.last[:-200]
    _write_counts(cfg.counts_file, counts)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.integration.hostile",
                                description="a rogue DHCP responder for the lab")
    p.add_argument("--iface", required=True)
    p.add_argument("--mac", required=True)
    p.add_argument("--ip", required=True, help="the rogue's own server identifier")
    p.add_argument("--real-server", required=True, help="the server id it spoofs")
    p.add_argument("--bait", required=True, help="a valid-looking address it offers")
    p.add_argument("--mask", required=True)
    p.add_argument("--router", required=True)
    p.add_argument("--kinds", default=",".join(ALL_KINDS))
    p.add_argument("--states", default=",".join(ALL_STATES),
                   help="client messages to answer: discover, " + ", ".join(REQUEST_STATES))
    p.add_argument("--burst", type=int, default=0, help="replies per client message, 0: all")
    p.add_argument("--counts-file", required=True)
    p.add_argument("--lifetime", type=float, default=120.0)
    a = p.parse_args(argv)
    kinds = tuple(k for k in a.kinds.split(",") if k)
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        p.error(f"unknown kinds {unknown}; known: {', '.join(KINDS)}")
    cfg = RogueConfig(iface=a.iface, mac=bytes.fromhex(a.mac.replace(":", "")),
                      ip=IPv4Address(a.ip), real_server=IPv4Address(a.real_server),
                      bait=IPv4Address(a.bait), mask=IPv4Address(a.mask),
                      router=IPv4Address(a.router), kinds=kinds,
                      states=tuple(x for x in a.states.split(",") if x), burst=a.burst,
                      counts_file=Path(a.counts_file), lifetime_s=a.lifetime)
    return run_rogue(cfg)


# --------------------------------------------------------------------------- parent side


class Rogue:
    """The rogue process for one lab (in the lab's server namespace, on its veth)."""

    def __init__(self, lab: DhcpLan, *, kinds: Sequence[str] = ALL_KINDS,
                 states: Sequence[str] = ALL_STATES, burst: int = 0,
                 lifetime_s: float = 120.0) -> None:
        self.lab = lab
        self.kinds = tuple(kinds)
        self.states = tuple(states)
        self.burst = burst
        self.lifetime_s = lifetime_s
        self.mac = random_mac()
        self.ip = lab.address(250)
        self.bait = lab.address(240)
        self.workdir = Path(tempfile.mkdtemp(prefix=f"net-dhcp-rogue-{secrets.token_hex(3)}-"))
        self.counts_file = self.workdir / "counts.json"
        self.output_file = self.workdir / "output"
        self.proc: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        return [
            tool("ip"), "netns", "exec", self.lab.netns,
            sys.executable, "-m", "tests.integration.hostile",
            "--iface", self.lab.server_if, "--mac", self.mac, "--ip", self.ip,
            "--real-server", self.lab.server_ip, "--bait", self.bait,
            "--mask", str(self.lab.subnet.netmask), "--router", self.lab.router,
            "--kinds", ",".join(self.kinds), "--states", ",".join(self.states),
            "--burst", str(self.burst),
            "--counts-file", str(self.counts_file), "--lifetime", f"{self.lifetime_s:g}",
        ]

    def start(self, timeout: float = 10.0) -> None:
        """Spawn the rogue and wait until its socket is bound.

        Call from the thread that will outlive the rogue (the test's): the child asks to be
        SIGKILLed when its parent thread exits.
        """
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            [str(REPO_ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
        with self.output_file.open("ab") as out:
            self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=out, cwd=REPO_ROOT, env=env,
                                         start_new_session=True)
        deadline = time.monotonic() + timeout
        while not self.counts().get("ready"):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.close()
                raise LabError(f"the rogue did not start (exit {self.proc.returncode})\n"
                               f"{tail(self.output(), 20)}")
            time.sleep(0.02)

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def counts(self) -> dict[str, Any]:
        try:
            data: dict[str, Any] = json.loads(self.counts_file.read_text())
        except (FileNotFoundError, ValueError):
            return {}
        return data

    def output(self) -> str:
        try:
            return self.output_file.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def close(self) -> None:
        """Kill the process (SIGKILL) and remove its temp dir; idempotent."""
        proc, self.proc = self.proc, None
        if proc is not None:
            if proc.poll() is None:
                proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(10)
        if os.environ.get("NET_DHCP_LAB_KEEP") != "1":
            shutil.rmtree(self.workdir, ignore_errors=True)


@dataclass(frozen=True)
class Seen:
    """One DHCP message the sniffer saw, in arrival order (`seq`), kernel time `t_ns`."""

    seq: int
    t_ns: int
    op: int
    src_mac: str
    xid: int
    mtype: int | None
    server_id: IPv4Address | None
    yiaddr: IPv4Address

    @property
    def family(self) -> str:
        """Which client message a reply answers: "offer" (a DISCOVER) or "reply" (a REQUEST);
        for a client message, which family of replies it asks for."""
        return "offer" if self.mtype in (OFFER, DISCOVER) else "reply"


def _mac_str(mac: bytes) -> str:
    return ":".join(f"{b:02x}" for b in mac)


SO_TIMESTAMPNS = 35


class ReplySniffer:
    """Records every DHCP message crossing `ifname` (host namespace), in arrival order.

    Give it the bridge port of the client's veth: client messages come in there, and the
    replies the bridge forwards to the client go out there in the order the client gets them.
    """

    def __init__(self, ifname: str) -> None:
        self.ifname = ifname
        self.seen: list[Seen] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        # ETH_P_ALL: only such taps see the frames the bridge sends out of this port.
        self._sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        try:
            self._sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
            self._sock.bind((ifname, ETH_P_ALL))
            self._sock.setblocking(False)
        except BaseException:
            self._sock.close()
            raise
        self._thread = threading.Thread(target=self._run, name=f"sniff-{ifname}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        seq = 0
        while not self._stop.is_set():
            ready, _, _ = select.select([self._sock], [], [], 0.1)
            if not ready:
                continue
            while True:
                try:
                    data, anc, _flags, _addr = self._sock.recvmsg(4096, socket.CMSG_SPACE(16))
                except BlockingIOError:
                    break
                except OSError:
                    return
                f = parse_frame(data)
                if f is None or (f.sport, f.dport) not in ((67, 68), (68, 67)):
                    continue
                t_ns = time.time_ns()
                for level, kind, value in anc:
                    if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(value) >= 16:
                        sec, nsec = struct.unpack_from("qq", value)
                        t_ns = sec * 1_000_000_000 + nsec
                with self._lock:
                    self.seen.append(Seen(seq, t_ns, f.op, _mac_str(f.src_mac), f.xid,
                                          f.mtype, f.server_id, f.yiaddr))
                seq += 1

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)
        self._sock.close()

    def snapshot(self) -> list[Seen]:
        with self._lock:
            return list(self.seen)

    def mark(self) -> int:
        """The `seq` the next message will get: pass it as `since` to look only at later ones."""
        with self._lock:
            return len(self.seen)

    def rogue_first(self, rogue_mac: str, server_mac: str, since: int = 0) -> dict[str, int]:
        """Per family ("offer", "reply"), the rogue replies that reached the client before
        the real server's first reply to the same client message (same xid and family)."""
        first_real: dict[tuple[int, str], int] = {}
        seen = [s for s in self.snapshot() if s.op == 2 and s.seq >= since]
        for s in seen:
            if s.src_mac == server_mac.lower():
                first_real.setdefault((s.xid, s.family), s.seq)
        out = {"offer": 0, "reply": 0}
        for s in seen:
            if s.src_mac != rogue_mac.lower():
                continue
            real = first_real.get((s.xid, s.family))
            if real is not None and s.seq < real:
                out[s.family] += 1
        return out

    def timeline(self, rogue_mac: str, server_mac: str, limit: int = 60) -> str:
        """The last `limit` messages, times relative to the client message they answer."""
        names = {rogue_mac.lower(): "rogue", server_mac.lower(): "server"}
        asked: dict[tuple[int, str], int] = {}
        lines = []
        for s in self.snapshot()[-limit:]:
            what = MESSAGE_NAMES.get(s.mtype or 0, "?")
            if s.op == 1:
                asked[(s.xid, s.family)] = s.t_ns
                lines.append(f"{s.seq:4} client {what:9} xid {s.xid:08x}")
                continue
            t0 = asked.get((s.xid, s.family))
            dt = f"+{(s.t_ns - t0) / 1000:8.0f} us" if t0 is not None else "          ?"
            lines.append(f"{s.seq:4} {dt} {names.get(s.src_mac, s.src_mac):6} {what:5} xid "
                         f"{s.xid:08x} sid {s.server_id} yiaddr {s.yiaddr}")
        return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
