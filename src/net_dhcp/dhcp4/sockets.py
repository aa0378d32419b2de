"""The only owner of DHCP sockets.

DHCP goes over an AF_PACKET/SOCK_DGRAM socket bound to one interface: it needs no
address on the interface, survives rp_filter, and lets us choose the IP source
(0.0.0.0 before a lease, the leased address after) and the link-layer destination
(broadcast, or the server's MAC for RFC 2131 unicasts). Sockets keep the network
namespace they were created in, so `open_*` must run in a thread inside the target
namespace (see netlink.run_in_netns); everything else runs on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import errno
import fcntl
import logging
import os
import socket
import struct
from ipaddress import IPv4Address
from typing import Generic, Protocol, TypeVar

from ..errors import InterfaceGone
from ..wire import udp4
from ..wire.closing import close_soon
from . import codec
from .lease import Lease

LOG = logging.getLogger(__name__)
T = TypeVar("T")

ETH_P_IP = 0x0800
SO_ATTACH_FILTER = 26
SO_BINDTODEVICE = 25
SOL_PACKET = 263
PACKET_AUXDATA = 8
TP_STATUS_CSUMNOTREADY = 8
BROADCAST_MAC = b"\xff" * 6
ANY = IPv4Address(0)
GONE_ERRNOS = (errno.ENODEV, errno.ENXIO)
"""sendto(2) on a packet socket whose interface was deleted (by name, resp. by index)."""
LIMITED_BROADCAST = IPv4Address("255.255.255.255")
QUEUE_SIZE = 64
"""Replies kept for a reader that has not taken them (the oldest goes first)."""

# Classic BPF for a cooked IPv4 packet: UDP, not a fragment, destination port 68.
_BPF_DHCP_CLIENT = [
    (0x30, 0, 0, 9),  # ldb [9]            protocol
    (0x15, 0, 6, 17),  # jeq #17 (UDP)     else drop
    (0x28, 0, 0, 6),  # ldh [6]            flags + fragment offset
    (0x45, 4, 0, 0x1FFF),  # jset #0x1fff  fragment -> drop
    (0xB1, 0, 0, 0),  # ldxb 4*([0]&0xf)   IP header length
    (0x48, 0, 0, 2),  # ldh [x+2]          UDP destination port
    (0x15, 0, 1, codec.CLIENT_PORT),
    (0x06, 0, 0, 0x40000),  # accept
    (0x06, 0, 0, 0),  # drop
]


def _attach_filter(sock: socket.socket, program: list[tuple[int, int, int, int]]) -> None:
    raw = b"".join(struct.pack("HBBI", *ins) for ins in program)
    buf = ctypes.create_string_buffer(raw)
    fprog = struct.pack("HL", len(program), ctypes.addressof(buf))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)


def _checksum_ready(ancdata: list[tuple[int, int, bytes]]) -> bool:
    """False when the kernel says the UDP checksum was left to offload (veth, local)."""
    for level, kind, data in ancdata:
        if level == SOL_PACKET and kind == PACKET_AUXDATA and len(data) >= 4:
            return not struct.unpack_from("I", data)[0] & TP_STATUS_CSUMNOTREADY
    return True


class ReplyQueue(Protocol[T]):
    """What a socket needs of its queue of replies: Replies, or an asyncio.Queue."""

    def qsize(self) -> int: ...
    def empty(self) -> bool: ...
    def full(self) -> bool: ...
    def put_nowait(self, item: T, /) -> None: ...
    def get_nowait(self) -> T: ...
    async def get(self) -> T: ...


class Replies(Generic[T]):
    """The replies a socket read and its reader has not taken yet: a FIFO of at most
    `maxsize`, the oldest dropped by the caller when full (as DhcpSocket._on_packet does).

    The subset of asyncio.Queue's API the sockets use (put_nowait, get_nowait, get, empty,
    full, qsize), at a fraction of its memory: a Queue is three deques and an Event, about
    3 KiB for every socket of every container, kept for as long as the container runs; this
    is one object, with a list only while replies wait and a future only while a reader
    does. Any number of readers may wait (each wakes and the first takes the reply).
    """

    __slots__ = ("_items", "_maxsize", "_waiters")

    def __init__(self, maxsize: int) -> None:
        self._maxsize = maxsize
        self._items: list[T] | None = None
        self._waiters: list[asyncio.Future[None]] | None = None

    def qsize(self) -> int:
        return len(self._items) if self._items is not None else 0

    def empty(self) -> bool:
        return not self._items

    def full(self) -> bool:
        return self.qsize() >= self._maxsize

    def put_nowait(self, item: T) -> None:
        """Add a reply (the caller makes room first when full: asyncio.QueueFull otherwise)."""
        if self._items is None:
            self._items = []
        elif len(self._items) >= self._maxsize:
            raise asyncio.QueueFull
        self._items.append(item)
        for waiter in self._waiters or ():
            if not waiter.done():
                waiter.set_result(None)

    def get_nowait(self) -> T:
        """The oldest reply; asyncio.QueueEmpty if there is none."""
        if not self._items:
            raise asyncio.QueueEmpty
        item = self._items.pop(0)
        if not self._items:
            self._items = None
        return item

    async def get(self) -> T:
        """The oldest reply, waiting for one."""
        while not self._items:
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            waiters = self._waiters
            if waiters is None:
                waiters = self._waiters = []
            waiters.append(waiter)
            try:
                await waiter
            finally:
                waiters.remove(waiter)
                if not waiters and self._waiters is waiters:
                    self._waiters = None
        return self.get_nowait()


class DhcpSocket:
    """One interface's DHCP client sockets: a packet socket, plus a UDP sink on port 68.

    The sink exists only so unicast replies to the leased address do not make the
    kernel answer the server with ICMP port-unreachable; its data is discarded.
    """

    # One per running container: no __dict__.
    __slots__ = ("_loop", "_pkt", "_queue", "_sink", "ifindex", "ifname", "mac")

    def __init__(self, ifname: str, ifindex: int, mac: bytes, with_sink: bool) -> None:
        self.ifname = ifname
        self.ifindex = ifindex
        self.mac = mac
        # Protocol 0 here, ETH_P_IP at bind: see acd/socket.py (binding a socket made with
        # a protocol waits for an RCU grace period, ~8 ms).
        self._pkt = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, 0)
        self._sink: socket.socket | None = None
        try:
            _attach_filter(self._pkt, _BPF_DHCP_CLIENT)
            self._pkt.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
            self._pkt.bind((ifname, ETH_P_IP))
            self._pkt.setblocking(False)
            if with_sink:
                sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                self._sink = sink
                sink.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sink.setsockopt(socket.SOL_SOCKET, SO_BINDTODEVICE, ifname.encode())
                sink.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
                # Bound to the one device above (SO_BINDTODEVICE): port 68 there only.
                sink.bind(("0.0.0.0", codec.CLIENT_PORT))  # noqa: S104
                sink.setblocking(False)
        except BaseException:
            self.close()
            raise
        self._queue: ReplyQueue[tuple[codec.DhcpMessage, bytes]] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self) -> None:
        """Begin reading on the running loop; call from the loop's thread."""
        self._loop = asyncio.get_running_loop()
        self._queue = Replies(QUEUE_SIZE)
        self._loop.add_reader(self._pkt.fileno(), self._on_packet)
        if self._sink is not None:
            self._loop.add_reader(self._sink.fileno(), self._drain_sink)

    def _drain_sink(self) -> None:
        """Discard one datagram (the rest of it too: a 1-byte read of a datagram drops it
        whole). One per wake-up, so the usual single reply costs one recv and no
        exception; the reader is level-triggered, so more waiting wake it again."""
        assert self._sink is not None
        with contextlib.suppress(OSError):
            self._sink.recv(1)

    def _on_packet(self) -> None:
        assert self._queue is not None
        while True:
            try:
                data, ancdata, _flags, addr = self._pkt.recvmsg(4096, 64)
            except BlockingIOError:
                return
            except OSError as err:
                LOG.debug("%s: packet socket read failed: %s", self.ifname, err)
                return
            dgram = udp4.parse_udp_ipv4(data, verify_udp_checksum=_checksum_ready(ancdata))
            if dgram is None or dgram.dport != codec.CLIENT_PORT:
                continue
            try:
                msg = codec.DhcpMessage.decode(dgram.payload)
            except codec.CodecError as err:
                LOG.debug("%s: ignoring malformed DHCP packet: %s", self.ifname, err)
                continue
            if msg.op != 2 or msg.chaddr != self.mac:
                continue
            src_mac = bytes(addr[4][:6]) if len(addr) > 4 else BROADCAST_MAC
            if self._queue.full():
                self._queue.get_nowait()
            self._queue.put_nowait((msg, src_mac))

    async def recv(self) -> tuple[codec.DhcpMessage, bytes]:
        """Next DHCP reply for our MAC, with the MAC of the host that sent it."""
        assert self._queue is not None, "start() first"
        return await self._queue.get()

    def drain(self) -> None:
        """Forget replies already queued (e.g. stale ones from a previous exchange)."""
        assert self._queue is not None
        while not self._queue.empty():
            self._queue.get_nowait()

    def send(
        self,
        msg: codec.DhcpMessage,
        *,
        src: IPv4Address = ANY,
        dst: IPv4Address = LIMITED_BROADCAST,
        dst_mac: bytes = BROADCAST_MAC,
    ) -> None:
        """Send one message from port 68 to port 67, framed by hand.

        InterfaceGone if the interface no longer exists; OSError for other failures.
        """
        frame = udp4.build_udp_ipv4(
            src=src, dst=dst, sport=codec.CLIENT_PORT, dport=codec.SERVER_PORT,
            payload=msg.encode(),
        )
        try:
            self._pkt.sendto(frame, (self.ifname, ETH_P_IP, 0, 0, dst_mac))
        except OSError as err:
            if err.errno in GONE_ERRNOS:
                raise InterfaceGone(f"{self.ifname} is gone ({err.strerror})") from err
            raise

    def close(self, *, soon: bool = False) -> None:
        """Stop reading and close both sockets; safe to call twice. With `soon` the packet
        socket's release (an RCU grace period in the kernel) runs in a worker thread
        (wire/closing.py), so the caller does not wait for it."""
        for sock in (self._pkt, self._sink):
            if sock is None or sock.fileno() < 0:
                continue
            if self._loop is not None:
                with contextlib.suppress(Exception):
                    self._loop.remove_reader(sock.fileno())
            if soon and sock is self._pkt:
                close_soon(sock)
            else:
                sock.close()


def open_dhcp_socket(ifname: str, *, with_sink: bool) -> DhcpSocket:
    """Open the sockets for `ifname` in the calling thread's namespace (blocking)."""
    ifindex = socket.if_nametoindex(ifname)
    mac = read_mac(ifname)
    return DhcpSocket(ifname, ifindex, mac, with_sink)


def read_mac(ifname: str) -> bytes:
    """MAC address of `ifname` in the calling thread's namespace (blocking)."""
    # SIOCGIFHWADDR on a socket made in this thread's namespace: sysfs would show
    # the namespace of whoever mounted it, not ours.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        req = struct.pack("256s", ifname.encode()[:15])
        res = fcntl.ioctl(s.fileno(), 0x8927, req)
        return res[18:24]


def send_release_as(bridge: str, mac: bytes, lease: Lease, client_id: bytes) -> None:
    """DHCPRELEASE (RFC 2131 4.4.6) into `bridge` with `mac` as the Ethernet source.

    For an endpoint whose interface no longer exists: the frame is what that interface
    would have sent, so the server matches it to the lease (blocking; call in a thread).
    """
    msg = codec.release(xid=int.from_bytes(os.urandom(4), "big"), chaddr=mac,
                        client_id=client_id, ciaddr=lease.address.ip, server_id=lease.server_id)
    packet = udp4.build_udp_ipv4(src=lease.address.ip, dst=lease.server_id,
                                 sport=codec.CLIENT_PORT, dport=codec.SERVER_PORT,
                                 payload=msg.encode())
    dst_mac = lease.server_mac or BROADCAST_MAC
    frame = dst_mac + mac + struct.pack("!H", ETH_P_IP) + packet
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0) as sock:  # see acd/socket.py
        sock.bind((bridge, ETH_P_IP))
        sock.send(frame)
