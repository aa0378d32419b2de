"""linkdump.py: the raw RTM_GETLINK dump the periodic checks use instead of pyroute2's."""

from __future__ import annotations

import errno
import struct

import pytest

from net_dhcp import linkdump


def attr(rta_type: int, value: bytes) -> bytes:
    length = 4 + len(value)
    return struct.pack("=HH", length, rta_type) + value + b"\0" * (-length % 4)


def newlink(index: int, name: str | None, master: int | None = None,
            extra: bytes = b"") -> bytes:
    body = struct.pack("=BxHiII", 0, 1, index, 0, 0) + extra
    if name is not None:
        body += attr(linkdump.IFLA_IFNAME, name.encode() + b"\0")
    if master is not None:
        body += attr(linkdump.IFLA_MASTER, struct.pack("=I", master))
    return struct.pack("=IHHII", 16 + len(body), linkdump.RTM_NEWLINK, 2, 1, 0) + body


def done() -> bytes:
    return struct.pack("=IHHIIi", 20, linkdump.NLMSG_DONE, 2, 1, 0, 0)


def test_names_and_masters_are_read_and_other_attributes_skipped() -> None:
    stats_like = attr(23, b"\x01" * 37)  # an odd length: the next attribute is aligned
    data = (newlink(1, "lo") + newlink(7, "ndbr1") + newlink(9, "ndh1", master=7,
            extra=stats_like) + newlink(10, "ndh2", master=3))
    links: dict[int, tuple[str, int]] = {}
    assert linkdump.parse_links(data, links) is False
    assert links == {1: ("lo", 0), 7: ("ndbr1", 0), 9: ("ndh1", 7), 10: ("ndh2", 3)}
    assert linkdump.parse_links(done(), links) is True


def test_a_message_running_past_the_datagram_is_an_error() -> None:
    msg = newlink(3, "eth0")
    with pytest.raises(OSError, match="truncated"):
        linkdump.parse_links(msg[:-4], {})


def test_a_netlink_error_is_raised_with_its_errno() -> None:
    err = struct.pack("=IHHIIi", 36, linkdump.NLMSG_ERROR, 0, 1, 0, -errno.EPERM) + b"\0" * 16
    with pytest.raises(OSError, match="RTM_GETLINK") as info:
        linkdump.parse_links(err, {})
    assert info.value.errno == errno.EPERM


def test_the_live_dump_agrees_with_the_kernel_name_index() -> None:
    """Reads this host's links (read-only): every name maps back to its index (a link other
    tests delete meanwhile is skipped; enough others are checked)."""
    import socket

    links = linkdump.dump_links()
    checked = 0
    for index, (name, _master) in links.items():
        try:
            now = socket.if_nametoindex(name)
        except OSError:
            continue  # deleted since the dump
        checked += 1
        assert now == index, name
    assert checked >= 1
    assert socket.if_nametoindex("lo") in links
    assert "lo" in linkdump.names("lo")
