"""The only owner of Router Discovery sockets; `open_ra_socket` must run inside the target
network namespace (see netlink.run_in_netns), everything else runs on the event loop.

Router Advertisements arrive on a raw ICMPv6 socket bound to one interface that lets only type
134 through and reports each packet's hop limit, so that RFC 4861 6.1.2's "hop limit 255"
check (proof that the RA was not forwarded from off-link) is ours to make. Solicitations go
out of that socket too, from the source address the kernel picks (our link-local address) and
with our MAC in them. Right after link-up the link-local address is still tentative (DAD, about
2 s on Linux by default) and the kernel refuses to pick any source (EADDRNOTAVAIL); RFC 4861
6.3.7 then allows a Solicitation from the unspecified address without the MAC option, which the
kernel's IPv6 stack will not send for us, so it goes out of a packet socket framed by hand. The
router answers that one to all-nodes (RFC 4861 6.2.6), which our socket receives even while the
address is tentative. With IPv6 disabled on the interface (net.ipv6.conf.IF.disable_ipv6=1) there
is no address either, the Solicitations still go out from ::, but the kernel drops every IPv6
packet that comes in before our socket sees it: `solicit_router` then ends with None.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import logging
import socket
import struct
from dataclasses import dataclass
from ipaddress import IPv6Address

from ..dhcp4.sockets import GONE_ERRNOS, read_mac
from ..errors import InterfaceGone
from ..wire.closing import close_soon
from . import ra_codec

LOG = logging.getLogger(__name__)

#: How often `solicit_router` repeats its Solicitation (RFC 4861 10 says 4 s, for a host that
#: has all the time in the world; ours wait for a container's start, so they ask faster).
RS_INTERVAL_S = 1.0
ICMP6_FILTER = 1  # <netinet/icmp6.h>; IPPROTO_ICMPV6 level
ETH_P_IPV6 = 0x86DD
HOP_LIMIT = 255  # RFC 4861: every ND message is sent with, and accepted only at, 255
_ALL_ROUTERS_MAC = bytes.fromhex("333300000002")  # RFC 2464 7: 33:33 + the group's last 32 bits
_UNSPECIFIED = IPv6Address("::")
_RECV_BUFSIZE = 16384
#: While the link is not yet running, how often to look again before the first Solicitation.
_LINK_POLL_S = 0.05
_SIOCGIFNAME = 0x8910
_SIOCGIFFLAGS = 0x8913
_IFF_RUNNING = 0x40
_DEADLINE_SLACK_S = 0.005
_CMSG_BUFSIZE = 64
# if_inet6 flags (<linux/if_addr.h>)
_IFA_F_OPTIMISTIC = 0x04
_IFA_F_DADFAILED = 0x08
_IFA_F_TENTATIVE = 0x40
_SCOPE_LINK = 0x20


def filter_passing_only(icmp_type: int) -> bytes:
    """A Linux struct icmp6_filter (256 bits, a set bit blocks its type) passing one type."""
    words = [0xFFFFFFFF] * 8
    words[icmp_type >> 5] &= ~(1 << (icmp_type & 31)) & 0xFFFFFFFF
    return struct.pack("8I", *words)


class RaSocket:
    """Router Discovery on one interface: RAs in, RSs out (see the module docstring)."""

    def __init__(self, ifname: str, ifindex: int, mac: bytes) -> None:
        self.ifname = ifname
        self.ifindex = ifindex
        self.mac = mac
        #: Solicitations sent from our own address (with our MAC) and from :: (without).
        self.sent = 0
        self.sent_unspecified = 0
        self._icmp = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
        self._pkt: socket.socket | None = None
        try:
            icmp = self._icmp
            icmp.setsockopt(socket.IPPROTO_ICMPV6, ICMP6_FILTER,
                            filter_passing_only(ra_codec.ICMPV6_ROUTER_ADVERT))
            icmp.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, ifname.encode())
            icmp.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, HOP_LIMIT)
            icmp.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, HOP_LIMIT)
            icmp.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, ifindex)
            icmp.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_LOOP, 0)
            icmp.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVHOPLIMIT, 1)
            icmp.setblocking(False)
            # Send-only: protocol 0 registers no receive hook. Bound by index at open time, so
            # a later rename (Docker's veth -> eth0) does not matter.
            self._pkt = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
            self._pkt.bind((ifname, 0))
            self._pkt.setblocking(False)
        except BaseException:
            self.close()
            raise

    def fileno(self) -> int:
        return self._icmp.fileno()

    def link_running(self) -> bool:
        """True if the interface is operationally up (IFF_RUNNING). Right after link-up it is
        not until the kernel's link watcher has run (a work item: normally at once, batched up
        to 1 s apart); until then the device has no transmit queue and what we send is dropped
        without an error. Asked through our own socket, so in the namespace the socket lives in,
        and by index (renames do not matter)."""
        assert self._pkt is not None
        try:
            fd = self._pkt.fileno()
            name = fcntl.ioctl(fd, _SIOCGIFNAME, struct.pack("16si20x", b"", self.ifindex))[:16]
            reply = fcntl.ioctl(fd, _SIOCGIFFLAGS, name + bytes(24))
        except OSError:
            return True  # gone or odd: let the send say what is wrong
        return bool(struct.unpack_from("H", reply, 16)[0] & _IFF_RUNNING)

    def send_solicit(self) -> bool:
        """Send one Router Solicitation to ff02::2; True if it had to go from :: (see the module
        docstring). InterfaceGone if the interface is gone; OSError for other failures."""
        rs = ra_codec.router_solicit(self.mac)
        try:
            try:
                self._icmp.sendto(rs, (str(ra_codec.ALL_ROUTERS), 0, 0, self.ifindex))
            except OSError as err:
                if err.errno != errno.EADDRNOTAVAIL:
                    raise
            else:
                self.sent += 1
                return False
            assert self._pkt is not None
            packet = ra_codec.ipv6_icmp_packet(_UNSPECIFIED, ra_codec.ALL_ROUTERS,
                                               ra_codec.router_solicit(None))
            frame = _ALL_ROUTERS_MAC + self.mac + struct.pack("!H", ETH_P_IPV6) + packet
            self._pkt.send(frame)
        except OSError as err:
            if err.errno in GONE_ERRNOS:
                raise InterfaceGone(f"{self.ifname} is gone ({err.strerror})") from err
            raise
        self.sent_unspecified += 1
        return True

    def receive(self) -> ra_codec.RouterAdvert | None:
        """Read one queued packet: its RA, or None if it was dropped (logged at debug level).
        BlockingIOError when nothing is queued."""
        data, ancdata, flags, addr = self._icmp.recvmsg(_RECV_BUFSIZE, _CMSG_BUFSIZE)
        if flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC):
            LOG.debug("%s: dropping a truncated packet (%d octets)", self.ifname, len(data))
            return None
        source = IPv6Address(str(addr[0]).split("%", 1)[0])
        hops = hop_limit_of(ancdata)
        if hops != HOP_LIMIT:
            LOG.debug("%s: dropping a router advertisement from %s with hop limit %s, not 255",
                      self.ifname, source, hops)
            return None
        try:
            return ra_codec.decode_ra(data, source=source)
        except ra_codec.NdpCodecError as err:
            LOG.debug("%s: dropping a malformed router advertisement from %s: %s",
                      self.ifname, source, err)
            return None

    def close(self) -> None:
        """Close both sockets; safe to call twice."""
        for sock in (self._icmp, self._pkt):
            if sock is not None and sock.fileno() >= 0:
                if sock is self._pkt:
                    close_soon(sock)  # a packet socket: see wire/closing.py
                else:
                    sock.close()


def hop_limit_of(ancdata: list[tuple[int, int, bytes]]) -> int | None:
    for level, kind, data in ancdata:
        if level == socket.IPPROTO_IPV6 and kind == socket.IPV6_HOPLIMIT and len(data) >= 4:
            return int(struct.unpack_from("i", data)[0])
    return None


def open_ra_socket(ifname: str) -> RaSocket:
    """Open a Router Discovery socket on `ifname` in the calling thread's namespace
    (blocking)."""
    return RaSocket(ifname, socket.if_nametoindex(ifname), read_mac(ifname))


async def solicit_router(
    sock: RaSocket, timeout_s: float, *, interval_s: float = RS_INTERVAL_S,
    sent: asyncio.Event | None = None,
) -> ra_codec.RouterAdvert | None:
    """Solicit at once and every `interval_s` until the first valid RA arrives (returned) or
    `timeout_s` passes (None). An RA already queued on the socket counts. While the link is not
    running yet (just brought up) the first Solicitation waits for it, looking every 50 ms.
    InterfaceGone if the interface disappears; other send failures are logged and retried at
    the next interval. `sent` is set once the first Solicitation has been tried."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    got: asyncio.Future[ra_codec.RouterAdvert] = loop.create_future()

    def readable() -> None:
        while not got.done():
            try:
                ra = sock.receive()
            except BlockingIOError:
                return
            except OSError as err:
                LOG.debug("%s: reading router advertisements failed: %s", sock.ifname, err)
                return
            if ra is not None:
                got.set_result(ra)

    loop.add_reader(sock.fileno(), readable)
    try:
        while True:
            wait_s = interval_s
            if not sock.link_running():
                LOG.debug("%s: link not running yet, holding the router solicitation back",
                          sock.ifname)
                wait_s = _LINK_POLL_S
            else:
                try:
                    if sock.send_solicit():
                        LOG.debug("%s: sent a router solicitation from :: (no usable source "
                                  "address: the link-local one is still tentative, or there is "
                                  "none)", sock.ifname)
                except InterfaceGone:
                    raise
                except OSError as err:
                    LOG.debug("%s: router solicitation not sent: %s", sock.ifname, err)
                if sent is not None:
                    sent.set()
            remaining = deadline - loop.time()
            await asyncio.wait({got}, timeout=max(0.0, min(wait_s, remaining)))
            if got.done():
                return got.result()
            # The loop may wake a timer a hair early: that is the deadline, not another round.
            if deadline - loop.time() <= _DEADLINE_SLACK_S:
                return None
    finally:
        with contextlib.suppress(Exception):
            loop.remove_reader(sock.fileno())
        got.cancel()


@dataclass(frozen=True)
class LinkLocal:
    """An interface's IPv6 link-local address and its DAD state."""

    address: IPv6Address
    tentative: bool  # DAD still running: not usable as a source yet, unless optimistic
    optimistic: bool  # RFC 4429: usable during DAD (off by default on Linux)
    dad_failed: bool  # another host has it: the interface gets no link-local address


def read_link_local(ifname: str) -> LinkLocal | None:
    """The link-local address of `ifname` in the calling thread's namespace (blocking): the
    first usable one, else the first; None if it has none (IPv6 disabled, or no link yet)."""
    # /proc/thread-self/net is this thread's namespace; /proc/net (self) would be the process's.
    with open("/proc/thread-self/net/if_inet6", encoding="ascii") as f:
        lines = f.read().splitlines()
    found: list[LinkLocal] = []
    for line in lines:
        fields = line.split()
        if len(fields) != 6 or fields[5] != ifname or int(fields[3], 16) != _SCOPE_LINK:
            continue
        flags = int(fields[4], 16)
        found.append(LinkLocal(
            address=IPv6Address(int(fields[0], 16)),
            tentative=bool(flags & _IFA_F_TENTATIVE),
            optimistic=bool(flags & _IFA_F_OPTIMISTIC),
            dad_failed=bool(flags & _IFA_F_DADFAILED),
        ))
    usable = [ll for ll in found if not ll.dad_failed and (ll.optimistic or not ll.tentative)]
    if usable:
        return usable[0]
    return found[0] if found else None
