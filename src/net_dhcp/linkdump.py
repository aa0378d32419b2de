"""The host's interface names and bridge masters, read with one raw RTM_GETLINK dump.

The periodic checks (reconcile.py: bridges there, veths on them, strays) need only each
link's name and master. pyroute2 decodes every attribute of every link: 175 ms of CPU per
dump at 400 interfaces, most of the plugin's idle CPU with many containers. Here the
kernel is asked to leave the statistics out (IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS) and
only two attributes are read: about 30 times less. The calling thread's namespace.
"""

from __future__ import annotations

import os
import socket
import struct

NETLINK_ROUTE = 0
RTM_NEWLINK = 16
RTM_GETLINK = 18
NLMSG_ERROR = 2
NLMSG_DONE = 3
NLM_F_REQUEST = 0x1
NLM_F_DUMP = 0x300
IFLA_IFNAME = 3
IFLA_MASTER = 10
IFLA_EXT_MASK = 29
RTEXT_FILTER_SKIP_STATS = 1 << 3

_NLMSGHDR = struct.Struct("=IHHII")  # length, type, flags, sequence, port
_IFINFOMSG = struct.Struct("=BxHiII")  # family, type, index, flags, change
_RTATTR = struct.Struct("=HH")  # length, type
_U32 = struct.Struct("=I")
_ERRNO = struct.Struct("=i")
_RECV_SIZE = 1 << 16


def _align(n: int) -> int:
    return (n + 3) & ~3


def _request(seq: int) -> bytes:
    attr = _RTATTR.pack(8, IFLA_EXT_MASK) + _U32.pack(RTEXT_FILTER_SKIP_STATS)
    body = _IFINFOMSG.pack(socket.AF_UNSPEC, 0, 0, 0, 0) + attr
    return _NLMSGHDR.pack(_NLMSGHDR.size + len(body), RTM_GETLINK,
                          NLM_F_REQUEST | NLM_F_DUMP, seq, 0) + body


def parse_links(data: bytes, links: dict[int, tuple[str, int]]) -> bool:
    """Add the (name, master index or 0) of each RTM_NEWLINK in `data` to `links` by index;
    True once the dump's NLMSG_DONE is seen. OSError for a netlink error message."""
    offset, end = 0, len(data)
    while offset + _NLMSGHDR.size <= end:
        length, msg_type, _flags, _seq, _port = _NLMSGHDR.unpack_from(data, offset)
        if length < _NLMSGHDR.size or offset + length > end:
            raise OSError(f"truncated netlink message ({length} octets at {offset})")
        if msg_type == NLMSG_DONE:
            return True
        if msg_type == NLMSG_ERROR:
            (err,) = _ERRNO.unpack_from(data, offset + _NLMSGHDR.size)
            if err:
                raise OSError(-err, f"RTM_GETLINK dump: {os.strerror(-err)}")
        elif msg_type == RTM_NEWLINK:
            body = offset + _NLMSGHDR.size
            _fam, _type, index, _iff, _change = _IFINFOMSG.unpack_from(data, body)
            name, master = "", 0
            pos, stop = body + _IFINFOMSG.size, offset + length
            while pos + _RTATTR.size <= stop:
                rta_len, rta_type = _RTATTR.unpack_from(data, pos)
                if rta_len < _RTATTR.size:
                    break
                value = pos + _RTATTR.size
                if rta_type == IFLA_IFNAME:
                    name = data[value : pos + rta_len].split(b"\0", 1)[0].decode(
                        "utf-8", "replace")
                elif rta_type == IFLA_MASTER and rta_len >= _RTATTR.size + 4:
                    (master,) = _U32.unpack_from(data, value)
                pos += _align(rta_len)
            links[index] = (name, master)
        offset += _align(length)
    return False


def dump_links() -> dict[int, tuple[str, int]]:
    """Every interface of the calling thread's namespace: index -> (name, master index, 0
    for none). Blocking; OSError if netlink fails."""
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC,
                       NETLINK_ROUTE) as sock:
        sock.bind((0, 0))
        sock.send(_request(1))
        links: dict[int, tuple[str, int]] = {}
        while not parse_links(sock.recv(_RECV_SIZE), links):
            pass
        return links


def names(prefix: str, masters: set[str] | None = None) -> list[str]:
    """Names starting with `prefix`, and (with `masters`) enslaved to one of those."""
    links = dump_links()
    out = []
    for name, master in links.values():
        if not name.startswith(prefix):
            continue
        if masters is not None and links.get(master, ("", 0))[0] not in masters:
            continue
        out.append(name)
    return out
