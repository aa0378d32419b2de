"""The only owner of DHCPv6 client sockets.

A UDP socket on port 546 bound to one interface (SO_BINDTODEVICE, so one per interface can
coexist, and a host DHCPv6 client on the same port does not matter with SO_REUSEADDR);
messages go to All_DHCP_Relay_Agents_and_Servers (ff02::1:2) port 547 from the interface's
link-local address, which the kernel picks. Right after link-up that address is still in
DAD and sending fails with EADDRNOTAVAIL: `send` waits for it (up to LINK_LOCAL_WAIT_S)
rather than failing. Open in a thread inside the target namespace (netlink.run_in_netns);
everything else runs on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
import struct

from ..dhcp4.sockets import GONE_ERRNOS, Replies, ReplyQueue, read_mac
from ..errors import InterfaceGone
from . import codec

LOG = logging.getLogger(__name__)

SO_BINDTODEVICE = 25
LINK_LOCAL_WAIT_S = 5.0
"""How long a send waits for the link-local address to leave DAD (1 s with defaults)."""
QUEUE_SIZE = 64
REPLY_TYPES = frozenset({codec.MessageType.ADVERTISE, codec.MessageType.REPLY})


class Dhcp6Socket:
    """One interface's DHCPv6 client socket; `client_id` is the DUID it speaks for."""

    # One per running container on an IPv6 network: no __dict__.
    __slots__ = ("_loop", "_queue", "_sock", "client_id", "ifindex", "ifname", "mac")

    def __init__(self, ifname: str, ifindex: int, mac: bytes) -> None:
        self.ifname = ifname
        self.ifindex = ifindex
        self.mac = mac
        self.client_id = codec.duid_ll(mac)
        self._sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        try:
            self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self._sock.setsockopt(socket.SOL_SOCKET, SO_BINDTODEVICE, ifname.encode())
            self._sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF,
                                  struct.pack("@I", ifindex))
            self._sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_LOOP, 0)
            self._sock.bind(("::", codec.CLIENT_PORT, 0, 0))
            self._sock.setblocking(False)
        except BaseException:
            self._sock.close()
            raise
        self._queue: ReplyQueue[codec.Message6] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self) -> None:
        """Begin reading on the running loop; call from the loop's thread."""
        self._loop = asyncio.get_running_loop()
        self._queue = Replies(QUEUE_SIZE)
        self._loop.add_reader(self._sock.fileno(), self._on_readable)

    def _on_readable(self) -> None:
        assert self._queue is not None
        while True:
            try:
                data, _addr = self._sock.recvfrom(4096)
            except BlockingIOError:
                return
            except OSError as err:
                LOG.debug("%s: DHCPv6 socket read failed: %s", self.ifname, err)
                return
            try:
                msg = codec.Message6.decode(data)
                ours = msg.msg_type in REPLY_TYPES and msg.client_id == self.client_id
            except codec.CodecError as err:
                LOG.debug("%s: ignoring a malformed DHCPv6 message: %s", self.ifname, err)
                continue
            if not ours:
                continue
            if self._queue.full():
                self._queue.get_nowait()
            self._queue.put_nowait(msg)

    async def recv(self) -> codec.Message6:
        """Next Advertise or Reply addressed to our DUID."""
        assert self._queue is not None, "start() first"
        return await self._queue.get()

    def drain(self) -> None:
        """Forget replies already queued."""
        assert self._queue is not None
        while not self._queue.empty():
            self._queue.get_nowait()

    async def send(self, msg: codec.Message6) -> None:
        """Send to ff02::1:2 port 547, waiting for the link-local address if it is still
        tentative. InterfaceGone if the interface no longer exists; OSError otherwise."""
        data = msg.encode()
        dest = (str(codec.ALL_SERVERS), codec.SERVER_PORT, 0, self.ifindex)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + LINK_LOCAL_WAIT_S
        delay = 0.02
        while True:
            try:
                self._sock.sendto(data, dest)
            except OSError as err:
                if err.errno in GONE_ERRNOS:
                    raise InterfaceGone(f"{self.ifname} is gone ({err.strerror})") from err
                if err.errno != errno.EADDRNOTAVAIL or loop.time() >= deadline:
                    raise
            else:
                return
            LOG.debug("%s: link-local address not ready (DAD); waiting %.2fs", self.ifname,
                      delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.25)

    def close(self) -> None:
        """Stop reading and close; safe to call twice."""
        if self._sock.fileno() < 0:
            return
        if self._loop is not None:
            with contextlib.suppress(Exception):
                self._loop.remove_reader(self._sock.fileno())
        self._sock.close()


def open_dhcp6_socket(ifname: str) -> Dhcp6Socket:
    """Open the socket for `ifname` in the calling thread's namespace (blocking)."""
    return Dhcp6Socket(ifname, socket.if_nametoindex(ifname), read_mac(ifname))
