"""The only owner of ARP sockets; `open_arp_socket` must run inside the target network namespace."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Callable

from ..dhcp4.sockets import BROADCAST_MAC, read_mac
from ..wire.closing import close_soon
from ..wire.common import CodecError
from . import arp_codec

ETH_P_ARP = 0x0806


class ArpSocket:
    """A packet socket for RFC 5227 probes on one interface."""

    def __init__(self, ifname: str, mac: bytes) -> None:
        self.ifname = ifname
        self.mac = mac
        # Protocol 0 here, ETH_P_ARP at bind: a packet socket made with a protocol is already
        # hooked on every interface, and binding it then waits for an RCU grace period
        # (synchronize_net, ~8 ms measured) on the request path.
        self._sock = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, 0)
        try:
            self._sock.bind((ifname, ETH_P_ARP))
            self._sock.setblocking(False)
        except BaseException:
            self._sock.close()
            raise

    def send(self, pkt: arp_codec.ArpPacket) -> None:
        """Broadcast one ARP packet."""
        self._sock.sendto(pkt.encode(), (self.ifname, ETH_P_ARP, 0, 0, BROADCAST_MAC))

    async def watch(
        self, on_packet: Callable[[arp_codec.ArpPacket], None], seconds: float
    ) -> None:
        """Feed every ARP packet seen for `seconds` to `on_packet`."""
        loop = asyncio.get_running_loop()

        def readable() -> None:
            while True:
                try:
                    data = self._sock.recv(256)
                except (BlockingIOError, OSError):
                    return
                with contextlib.suppress(CodecError):
                    on_packet(arp_codec.ArpPacket.decode(data))

        loop.add_reader(self._sock.fileno(), readable)
        try:
            await asyncio.sleep(seconds)
        finally:
            loop.remove_reader(self._sock.fileno())

    def close(self, *, soon: bool = False) -> None:
        """Close the socket; with `soon` in a worker thread (wire/closing.py: the kernel
        waits for an RCU grace period), so the caller does not wait."""
        if soon:
            close_soon(self._sock)
        else:
            self._sock.close()


def open_arp_socket(ifname: str) -> ArpSocket:
    """Open an ARP socket for `ifname` in the calling thread's namespace (blocking)."""
    return ArpSocket(ifname, read_mac(ifname))

