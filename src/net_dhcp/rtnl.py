"""The rtnetlink wire format, for the raw requests on hot paths (linkdump.py reads links and
addresses, linkmake.py makes a container's veth pair): message and attribute layout,
request numbering, and a request's acknowledgement.

pyroute2 (netlink.py) stays the way for everything else: it decodes every attribute of every
message and runs an event loop per call, about a millisecond of CPU each, which only the
paths run per container start or per look are worth avoiding.
"""

from __future__ import annotations

import itertools
import os
import socket
import struct
from collections.abc import Iterator

NETLINK_ROUTE = 0
RTM_NEWLINK = 16
RTM_DELLINK = 17
RTM_GETLINK = 18
RTM_NEWADDR = 20
RTM_GETADDR = 22
NLMSG_ERROR = 2
NLMSG_DONE = 3
NLM_F_REQUEST = 0x1
NLM_F_ACK = 0x4
NLM_F_EXCL = 0x200
NLM_F_CREATE = 0x400
NLM_F_DUMP = 0x300
IFLA_ADDRESS = 1
IFLA_IFNAME = 3
IFLA_MASTER = 10
IFLA_OPERSTATE = 16
IFLA_LINKINFO = 18
IFLA_EXT_MASK = 29
IFLA_INFO_KIND = 1
IFLA_INFO_DATA = 2
RTEXT_FILTER_SKIP_STATS = 1 << 3
IFA_ADDRESS = 1
IFF_UP = 0x1
IFF_LOOPBACK = 0x8
NLA_F_NESTED = 1 << 15

NLMSGHDR = struct.Struct("=IHHII")  # length, type, flags, sequence, port
IFINFOMSG = struct.Struct("=BxHiII")  # family, type, index, flags, change
IFADDRMSG = struct.Struct("=BBBBI")  # family, prefixlen, flags, scope, index
RTATTR = struct.Struct("=HH")  # length, type
U32 = struct.Struct("=I")
_ERRNO = struct.Struct("=i")
RECV_SIZE = 1 << 16


class RtnlError(OSError):
    """The kernel refused a request, or its reply could not be read; `errno` is the
    kernel's (None for a reply that could not be read)."""


def align(n: int) -> int:
    return (n + 3) & ~3


def attr(kind: int, value: bytes) -> bytes:
    """One attribute, padded to its alignment."""
    length = RTATTR.size + len(value)
    return RTATTR.pack(length, kind) + value + b"\0" * (align(length) - length)


def nested(kind: int, *attrs: bytes) -> bytes:
    return attr(kind | NLA_F_NESTED, b"".join(attrs))


def message(msg_type: int, flags: int, seq: int, body: bytes) -> bytes:
    return NLMSGHDR.pack(NLMSGHDR.size + len(body), msg_type, flags, seq, 0) + body


def messages(data: bytes, what: str, seq: int | None) -> Iterator[tuple[int, int, int]]:
    """(type, body offset, end) of each message in `data` answering request `seq` (None:
    any), up to and with NLMSG_DONE (whose type ends a dump) or an acknowledgement (an
    NLMSG_ERROR of 0). RtnlError for a truncated message or a netlink error."""
    offset, end = 0, len(data)
    while offset + NLMSGHDR.size <= end:
        length, msg_type, _flags, msg_seq, _port = NLMSGHDR.unpack_from(data, offset)
        if length < NLMSGHDR.size or offset + length > end:
            raise RtnlError(f"truncated netlink message ({length} octets at {offset})")
        if seq is not None and msg_seq != seq:  # the rest of an earlier, abandoned request
            offset += align(length)
            continue
        if msg_type == NLMSG_ERROR:
            (err,) = _ERRNO.unpack_from(data, offset + NLMSGHDR.size)
            if err:
                raise RtnlError(-err, f"{what}: {os.strerror(-err)}")
        yield msg_type, offset + NLMSGHDR.size, offset + length
        if msg_type in (NLMSG_DONE, NLMSG_ERROR):
            return
        offset += align(length)


def attrs(data: bytes, pos: int, stop: int) -> Iterator[tuple[int, int, int]]:
    """(type, value offset, value end) of each attribute from `pos` to `stop` (the nested
    flag cleared from the type)."""
    while pos + RTATTR.size <= stop:
        rta_len, rta_type = RTATTR.unpack_from(data, pos)
        if rta_len < RTATTR.size or pos + rta_len > stop:
            return
        yield rta_type & ~NLA_F_NESTED, pos + RTATTR.size, pos + rta_len
        pos += align(rta_len)


def name_at(data: bytes, start: int, end: int) -> str:
    return data[start:end].split(b"\0", 1)[0].decode("utf-8", "replace")


def open_socket() -> socket.socket:
    """A blocking rtnetlink socket in the calling thread's namespace."""
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC,
                         NETLINK_ROUTE)
    try:
        sock.bind((0, 0))
    except BaseException:
        sock.close()
        raise
    return sock


_SEQ = itertools.count(1)


def next_seq() -> int:
    """A request number, one per request in this process: a reply is told from an
    older one's."""
    return next(_SEQ) & 0xFFFFFFFF


def request(sock: socket.socket, msg_type: int, flags: int, body: bytes, what: str) -> bytes:
    """Send one request and return the reply that answers it: its one message (for a
    plain get) or its acknowledgement. RtnlError if the kernel refused it; OSError if the
    socket failed."""
    seq = next_seq()
    sock.send(message(msg_type, NLM_F_REQUEST | flags, seq, body))
    while True:
        data = sock.recv(RECV_SIZE)
        for msg_type_seen, start, stop in messages(data, what, seq):
            if msg_type_seen != NLMSG_DONE:
                return data[start - NLMSGHDR.size:stop]
