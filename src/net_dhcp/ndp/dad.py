"""Duplicate address detection for a DHCPv6 address (RFC 4862 5.4), shortened to fit a
container start as acd/probe.py does for IPv4.

Docker configures the address it gets from us without DAD (IFA_F_NODAD), so the kernel
never checks it: we do, before replying to CreateEndpoint. A Neighbor Solicitation for the
address goes from :: to its solicited-node multicast group (RFC 4861 4.3, RFC 4291 2.7.1);
a host that owns the address answers with a Neighbor Advertisement to all-nodes
(RFC 4861 7.2.4), which we listen for on a raw ICMPv6 socket bound to the interface.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
from ipaddress import IPv6Address

from ..dhcp4.sockets import read_mac
from ..netlink import run_in_netns
from ..wire.closing import close_soon
from . import ra_codec
from .socket import ETH_P_IPV6, HOP_LIMIT, filter_passing_only, hop_limit_of

LOG = logging.getLogger(__name__)

NEIGHBOR_SOLICIT = 135
NEIGHBOR_ADVERT = 136
# RFC 4862 waits RetransTimer (1 s) after DupAddrDetectTransmits (1) solicitations; a host
# on a LAN answers within milliseconds, so two solicitations 10 ms apart and 40 ms of
# listening keep a container's start fast.
PROBE_NUM = 2
PROBE_INTERVAL_S = 0.01
PROBE_LISTEN_S = 0.04
_UNSPECIFIED = IPv6Address("::")


def solicited_node(ip: IPv6Address) -> IPv6Address:
    """ff02::1:ffXX:XXXX, the group of every address ending in `ip`'s last 24 bits."""
    return IPv6Address(b"\xff\x02" + bytes(9) + b"\x01\xff" + ip.packed[13:])


def neighbor_solicit(target: IPv6Address) -> bytes:
    """An NS for `target` with no options (from ::, RFC 4861 4.3); checksum left 0."""
    return struct.pack("!BBHI", NEIGHBOR_SOLICIT, 0, 0, 0) + target.packed


def advert_target(icmp: bytes) -> IPv6Address | None:
    """The target of a Neighbor Advertisement, or None if `icmp` is not a well-formed one."""
    if len(icmp) < 24 or icmp[0] != NEIGHBOR_ADVERT or icmp[1] != 0:
        return None
    return IPv6Address(icmp[8:24])


class DadSocket:
    """Neighbor Advertisements in (raw ICMPv6, hop limit checked), solicitations out
    (a packet socket: the kernel sends nothing from ::)."""

    def __init__(self, ifname: str, mac: bytes) -> None:
        self.ifname = ifname
        self.mac = mac
        self._icmp = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
        self._pkt: socket.socket | None = None
        try:
            self._icmp.setsockopt(socket.IPPROTO_ICMPV6, 1,
                                  filter_passing_only(NEIGHBOR_ADVERT))
            self._icmp.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, ifname.encode())
            self._icmp.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVHOPLIMIT, 1)
            self._icmp.setblocking(False)
            self._pkt = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
            self._pkt.bind((ifname, 0))
        except BaseException:
            self.close()
            raise

    def solicit(self, target: IPv6Address) -> None:
        group = solicited_node(target)
        packet = ra_codec.ipv6_icmp_packet(_UNSPECIFIED, group, neighbor_solicit(target))
        dst_mac = b"\x33\x33" + group.packed[12:]
        assert self._pkt is not None
        self._pkt.send(dst_mac + self.mac + struct.pack("!H", ETH_P_IPV6) + packet)

    def claimed(self, target: IPv6Address) -> bool:
        """Whether an advertisement for `target` is queued (reads everything queued)."""
        found = False
        with contextlib.suppress(BlockingIOError):
            while True:
                data, anc, _flags, _addr = self._icmp.recvmsg(2048, 64)
                if hop_limit_of(anc) == HOP_LIMIT and advert_target(data) == target:
                    found = True
        return found

    def close(self) -> None:
        for sock in (self._icmp, self._pkt):
            if sock is not None and sock.fileno() >= 0:
                if sock is self._pkt:
                    close_soon(sock)  # a packet socket: see wire/closing.py
                else:
                    sock.close()


def open_dad_socket(ifname: str) -> DadSocket:
    """Open in the calling thread's namespace (blocking)."""
    return DadSocket(ifname, read_mac(ifname))


async def in_use6(ifname: str, netns: str | None, ip: IPv6Address) -> bool:
    """Probe `ip` from `ifname`; True if another host advertises it."""
    sock = await run_in_netns(netns, lambda: open_dad_socket(ifname))
    try:
        for i in range(PROBE_NUM):
            sock.solicit(ip)
            await asyncio.sleep(PROBE_INTERVAL_S if i < PROBE_NUM - 1 else PROBE_LISTEN_S)
            if sock.claimed(ip):
                LOG.warning("%s is in use on the LAN (neighbor advertisement)", ip)
                return True
        return False
    finally:
        sock.close()
