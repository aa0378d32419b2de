"""linkdump.py: the raw rtnetlink dumps (the periodic checks' link names, the keeper's look
for the container's interface) instead of pyroute2's."""

from __future__ import annotations

import errno
import ipaddress
import socket
import struct

import pytest

from net_dhcp import linkdump, rtnl


def attr(rta_type: int, value: bytes) -> bytes:
    length = 4 + len(value)
    return struct.pack("=HH", length, rta_type) + value + b"\0" * (-length % 4)


def newlink(index: int, name: str | None, master: int | None = None,
            extra: bytes = b"", *, flags: int = 0, mac: bytes | None = None,
            seq: int = 1) -> bytes:
    body = struct.pack("=BxHiII", 0, 1, index, flags, 0) + extra
    if mac is not None:
        body += attr(rtnl.IFLA_ADDRESS, mac)
    if name is not None:
        body += attr(rtnl.IFLA_IFNAME, name.encode() + b"\0")
    if master is not None:
        body += attr(rtnl.IFLA_MASTER, struct.pack("=I", master))
    return struct.pack("=IHHII", 16 + len(body), rtnl.RTM_NEWLINK, 2, seq, 0) + body


def newaddr(index: int, address: str, prefixlen: int, *, family: int = socket.AF_INET,
            seq: int = 1) -> bytes:
    body = struct.pack("=BBBBI", family, prefixlen, 0, 0, index)
    body += attr(8, b"eth0\0")  # IFA_LABEL, skipped
    body += attr(rtnl.IFA_ADDRESS, ipaddress.ip_address(address).packed)
    return struct.pack("=IHHII", 16 + len(body), rtnl.RTM_NEWADDR, 2, seq, 0) + body


def done(seq: int = 1) -> bytes:
    return struct.pack("=IHHIIi", 20, rtnl.NLMSG_DONE, 2, seq, 0, 0)


def test_names_and_masters_are_read_and_other_attributes_skipped() -> None:
    stats_like = attr(23, b"\x01" * 37)  # an odd length: the next attribute is aligned
    data = (newlink(1, "lo") + newlink(7, "ndbr1") + newlink(9, "ndh1", master=7,
            extra=stats_like) + newlink(10, "ndh2", master=3))
    links: dict[int, linkdump.Link] = {}
    assert linkdump.parse_links(data, links) is False
    assert {i: (li.name, li.master) for i, li in links.items()} == {
        1: ("lo", 0), 7: ("ndbr1", 0), 9: ("ndh1", 7), 10: ("ndh2", 3)}
    assert linkdump.parse_links(done(), links) is True


def test_flags_and_mac_are_read() -> None:
    links: dict[int, linkdump.Link] = {}
    linkdump.parse_links(newlink(4, "eth0", flags=0x1003, mac=b"\x02\x42\xac\x11\x00\x02"),
                         links)
    assert links[4] == linkdump.Link(4, "eth0", 0, 0x1003, b"\x02\x42\xac\x11\x00\x02")


def test_ipv4_addresses_are_read_and_other_families_skipped() -> None:
    data = (newaddr(4, "10.1.2.3", 24) + newaddr(4, "fe80::1", 64, family=socket.AF_INET6)
            + newaddr(1, "127.0.0.1", 8))
    out: list[tuple[int, ipaddress.IPv4Interface]] = []
    assert linkdump.parse_addresses(data + done(), out) is True
    assert out == [(4, ipaddress.IPv4Interface("10.1.2.3/24")),
                   (1, ipaddress.IPv4Interface("127.0.0.1/8"))]


def test_replies_to_another_request_are_skipped() -> None:
    """What an abandoned look left in the socket (request 6) does not answer request 7,
    its NLMSG_DONE included."""
    links: dict[int, linkdump.Link] = {}
    stale = newlink(3, "old", seq=6) + done(seq=6)
    assert linkdump.parse_links(stale + newlink(4, "eth0", seq=7), links, 7) is False
    assert list(links) == [4]
    assert linkdump.parse_links(done(seq=7), links, 7) is True


def test_a_message_running_past_the_datagram_is_an_error() -> None:
    msg = newlink(3, "eth0")
    with pytest.raises(OSError, match="truncated"):
        linkdump.parse_links(msg[:-4], {})


def test_a_netlink_error_is_raised_with_its_errno() -> None:
    err = struct.pack("=IHHIIi", 36, rtnl.NLMSG_ERROR, 0, 1, 0, -errno.EPERM) + b"\0" * 16
    with pytest.raises(OSError, match="RTM_GETLINK") as info:
        linkdump.parse_links(err, {})
    assert info.value.errno == errno.EPERM


def test_the_live_dump_agrees_with_the_kernel_name_index() -> None:
    """Reads this host's links (read-only): every name maps back to its index (a link other
    tests delete meanwhile is skipped; enough others are checked)."""
    links = linkdump.dump_links()
    checked = 0
    for index, link in links.items():
        try:
            now = socket.if_nametoindex(link.name)
        except OSError:
            continue  # deleted since the dump
        checked += 1
        assert now == index, link.name
    assert checked >= 1
    assert socket.if_nametoindex("lo") in links
    assert "lo" in linkdump.names("lo")
