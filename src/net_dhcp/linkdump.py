"""Raw rtnetlink dumps that read only the few attributes a hot path needs (pyroute2
decodes every attribute of every message, and makes an event loop per IPRoute).

- The host's interface names and bridge masters (`names`), for the periodic checks
  (reconcile.py: bridges there, veths on them, strays). pyroute2 took 175 ms of CPU per
  dump at 400 interfaces, most of the plugin's idle CPU with many containers. Here the
  kernel is asked to leave the statistics out (IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS) and
  only two attributes are read: about 30 times less.
- Whether the container's interface is ready (`ready_link`), looked at on each link or
  address change in its namespace while the keeper waits for Docker to configure it: a
  link dump and an IPv4 address dump on a socket opened there once (`open_query`), in a
  worker thread, with no setns, no new thread and no pyroute2 per look.

Each reads the namespace its socket was opened in (`dump_links`: the calling thread's).
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Interface

from . import rtnl
from .dhcp4.codec import mac_from_str
from .rtnl import (
    IFA_ADDRESS,
    IFADDRMSG,
    IFF_UP,
    IFINFOMSG,
    IFLA_ADDRESS,
    IFLA_EXT_MASK,
    IFLA_IFNAME,
    IFLA_MASTER,
    NLM_F_DUMP,
    NLM_F_REQUEST,
    NLMSG_DONE,
    RTEXT_FILTER_SKIP_STATS,
    RTM_GETADDR,
    RTM_GETLINK,
    RTM_NEWADDR,
    RTM_NEWLINK,
    U32,
)

QUERY_TIMEOUT_S = 2.0
"""A look's socket never blocks its worker thread for longer (the kernel answers a dump
at once, from its own queue)."""


def _link_request(seq: int) -> bytes:
    body = IFINFOMSG.pack(socket.AF_UNSPEC, 0, 0, 0, 0) + rtnl.attr(
        IFLA_EXT_MASK, U32.pack(RTEXT_FILTER_SKIP_STATS))
    return rtnl.message(RTM_GETLINK, NLM_F_REQUEST | NLM_F_DUMP, seq, body)


def _addr_request(seq: int) -> bytes:
    body = IFADDRMSG.pack(socket.AF_INET, 0, 0, 0, 0)
    return rtnl.message(RTM_GETADDR, NLM_F_REQUEST | NLM_F_DUMP, seq, body)


@dataclass(frozen=True)
class Link:
    """What the looks read of one RTM_NEWLINK."""

    index: int
    name: str
    master: int
    flags: int
    mac: bytes


def _parse(data: bytes, what: str, want: int, seq: int | None,
           handle: Callable[[int, int], None]) -> bool:
    """handle(body offset, end) for each message of type `want` in `data` answering `seq`;
    True once the dump's NLMSG_DONE is seen."""
    for msg_type, body, stop in rtnl.messages(data, what, seq):
        if msg_type == NLMSG_DONE:
            return True
        if msg_type == want:
            handle(body, stop)
    return False


def parse_links(data: bytes, links: dict[int, Link], seq: int | None = None) -> bool:
    """Add each RTM_NEWLINK in `data` (answering request `seq`) to `links` by index; True
    once the dump's NLMSG_DONE is seen. OSError for a netlink error message."""

    def link(body: int, stop: int) -> None:
        _fam, _type, index, flags, _change = IFINFOMSG.unpack_from(data, body)
        name, master, mac = "", 0, b""
        for rta_type, start, end in rtnl.attrs(data, body + IFINFOMSG.size, stop):
            if rta_type == IFLA_IFNAME:
                name = rtnl.name_at(data, start, end)
            elif rta_type == IFLA_MASTER and end - start >= 4:
                (master,) = U32.unpack_from(data, start)
            elif rta_type == IFLA_ADDRESS:
                mac = data[start:end]
        links[index] = Link(index, name, master, flags, mac)

    return _parse(data, "RTM_GETLINK dump", RTM_NEWLINK, seq, link)


def parse_addresses(data: bytes, out: list[tuple[int, IPv4Interface]],
                    seq: int | None = None) -> bool:
    """Add (interface index, address) for each IPv4 RTM_NEWADDR in `data` (answering
    request `seq`) to `out`; True once NLMSG_DONE is seen. OSError for a netlink error."""

    def address(body: int, stop: int) -> None:
        family, prefixlen, _flags, _scope, index = IFADDRMSG.unpack_from(data, body)
        if family != socket.AF_INET:
            return
        for rta_type, start, end in rtnl.attrs(data, body + IFADDRMSG.size, stop):
            if rta_type == IFA_ADDRESS and end - start == 4:
                out.append((index, IPv4Interface((IPv4Address(data[start:end]), prefixlen))))

    return _parse(data, "RTM_GETADDR dump", RTM_NEWADDR, seq, address)


def _dump(sock: socket.socket, request: Callable[[int], bytes],
          parse: Callable[[bytes, int], bool]) -> None:
    seq = rtnl.next_seq()
    sock.send(request(seq))
    while not parse(sock.recv(rtnl.RECV_SIZE), seq):
        pass


def _links(sock: socket.socket) -> dict[int, Link]:
    links: dict[int, Link] = {}
    _dump(sock, _link_request, lambda data, seq: parse_links(data, links, seq))
    return links


def dump_links() -> dict[int, Link]:
    """Every interface of the calling thread's namespace, by index. Blocking; OSError if
    netlink fails."""
    with rtnl.open_socket() as sock:
        return _links(sock)


def names(prefix: str, masters: set[str] | None = None) -> list[str]:
    """Names starting with `prefix`, and (with `masters`) enslaved to one of those."""
    links = dump_links()
    out = []
    for link in links.values():
        if not link.name.startswith(prefix):
            continue
        if masters is not None and (
                link.master not in links or links[link.master].name not in masters):
            continue
        out.append(link.name)
    return out


def open_query() -> socket.socket:
    """A blocking rtnetlink socket in the calling thread's namespace for `ready_link`;
    its looks read that namespace whichever thread makes them."""
    sock = rtnl.open_socket()
    sock.settimeout(QUERY_TIMEOUT_S)
    return sock


def ready_link(sock: socket.socket, mac: str, address: IPv4Interface,
               not_named: str | None) -> tuple[int, str] | None:
    """(index, name) of the interface with this MAC in `sock`'s namespace once it is up,
    has `address` and is not named `not_named`; else None. Blocking: a link dump, and an
    address dump once such a link is there. One look at a time per socket."""
    want = mac_from_str(mac)
    link = next((li for li in _links(sock).values() if li.mac == want), None)
    if link is None or not link.flags & IFF_UP or link.name == not_named:
        return None
    addresses: list[tuple[int, IPv4Interface]] = []
    _dump(sock, _addr_request, lambda data, seq: parse_addresses(data, addresses, seq))
    return (link.index, link.name) if (link.index, address) in addresses else None
