"""linkops.py and rtnl.py: the raw requests CreateEndpoint makes its veth pair with, checked
on bytes (what is sent, how replies and refusals are read). The same requests against the
kernel are in tests/integration/test_veth_links.py."""

from __future__ import annotations

import errno
import socket
import struct
from typing import cast

import pytest

from net_dhcp import linkops, rtnl

HOST_MAC = bytes.fromhex("0242ac110002")


class FakeSocket:
    """Records what is sent; answers with the replies given, each stamped with the
    sequence number of the last request (or `seq_offset` off it: another request's)."""

    def __init__(self, *replies: tuple[int, bytes], seq_offset: int = 0) -> None:
        self.sent: list[bytes] = []
        self.replies = list(replies)
        self.seq_offset = seq_offset

    def send(self, data: bytes) -> int:
        self.sent.append(data)
        return len(data)

    def recv(self, _size: int) -> bytes:
        msg_type, body = self.replies.pop(0)
        (seq,) = struct.unpack_from("=I", self.sent[-1], 8)
        return rtnl.message(msg_type, 0, seq + self.seq_offset, body)


def real(fake: FakeSocket) -> socket.socket:
    """The fake, typed as what linkops takes."""
    return cast(socket.socket, fake)


def ack(error: int = 0) -> tuple[int, bytes]:
    return rtnl.NLMSG_ERROR, struct.pack("=i", -error) + b"\0" * 16


def newlink(index: int, name: str, *, kind: str | None = None, operstate: int = 6,
            mac: bytes = HOST_MAC) -> tuple[int, bytes]:
    body = rtnl.IFINFOMSG.pack(socket.AF_UNSPEC, 1, index, 0x1003, 0)
    body += rtnl.attr(rtnl.IFLA_IFNAME, name.encode() + b"\0")
    body += rtnl.attr(rtnl.IFLA_ADDRESS, mac)
    body += rtnl.attr(rtnl.IFLA_OPERSTATE, bytes([operstate]))
    if kind is not None:
        body += rtnl.nested(rtnl.IFLA_LINKINFO,
                            rtnl.attr(rtnl.IFLA_INFO_KIND, kind.encode() + b"\0"))
    return rtnl.RTM_NEWLINK, body


def attrs_of(data: bytes, pos: int, stop: int) -> dict[int, bytes]:
    return {kind: data[start:end] for kind, start, end in rtnl.attrs(data, pos, stop)}


def test_the_pair_is_one_request_with_the_host_end_up_on_its_bridge() -> None:
    sock = FakeSocket(ack())
    linkops.add_veth(real(sock), "dhabc", "dcabc", master=7, mac="02:42:AC:11:00:09")
    (msg,) = sock.sent
    length, msg_type, flags, _seq, _port = rtnl.NLMSGHDR.unpack_from(msg)
    assert (length, msg_type) == (len(msg), rtnl.RTM_NEWLINK)
    assert flags == (rtnl.NLM_F_REQUEST | rtnl.NLM_F_ACK | rtnl.NLM_F_CREATE
                     | rtnl.NLM_F_EXCL)
    body = rtnl.NLMSGHDR.size
    _fam, _type, index, if_flags, change = rtnl.IFINFOMSG.unpack_from(msg, body)
    assert (index, if_flags, change) == (0, rtnl.IFF_UP, rtnl.IFF_UP)
    top = attrs_of(msg, body + rtnl.IFINFOMSG.size, len(msg))
    assert top[rtnl.IFLA_IFNAME] == b"dhabc\0"
    assert top[rtnl.IFLA_MASTER] == struct.pack("=I", 7)
    info = top[rtnl.IFLA_LINKINFO]
    info_attrs = attrs_of(info, 0, len(info))
    assert info_attrs[rtnl.IFLA_INFO_KIND] == b"veth\0"
    data = info_attrs[rtnl.IFLA_INFO_DATA]
    peer = attrs_of(data, 0, len(data))[linkops.VETH_INFO_PEER]
    # The peer is made down: the kernel refuses IFF_UP in the same request (ENOTCONN).
    assert rtnl.IFINFOMSG.unpack_from(peer)[2:] == (0, 0, 0)
    peer_attrs = attrs_of(peer, rtnl.IFINFOMSG.size, len(peer))
    assert peer_attrs[rtnl.IFLA_IFNAME] == b"dcabc\0"
    assert peer_attrs[rtnl.IFLA_ADDRESS] == bytes.fromhex("0242ac110009")


def test_without_a_mac_the_kernel_chooses_it() -> None:
    sock = FakeSocket(ack())
    linkops.add_veth(real(sock), "dha", "dca", master=3, mac=None)
    assert struct.pack("=HH", 10, rtnl.IFLA_ADDRESS) not in sock.sent[0]


def test_a_refusal_is_an_oserror_with_the_kernels_errno_and_what_was_asked() -> None:
    sock = FakeSocket(ack(errno.EEXIST))
    with pytest.raises(OSError, match="create veth dha/dca") as info:
        linkops.add_veth(real(sock), "dha", "dca", master=3, mac=None)
    assert info.value.errno == errno.EEXIST


def test_set_up_and_delete_ask_for_an_acknowledgement() -> None:
    sock = FakeSocket(ack(), ack(errno.ENODEV))
    linkops.set_up(real(sock), 12)
    _fam, _type, index, flags, change = rtnl.IFINFOMSG.unpack_from(sock.sent[0], 16)
    assert (index, flags, change) == (12, rtnl.IFF_UP, rtnl.IFF_UP)
    with pytest.raises(OSError, match="delete dhgone") as info:
        linkops.delete(real(sock), "dhgone")
    assert info.value.errno == errno.ENODEV
    _len, msg_type, flags, _seq, _port = rtnl.NLMSGHDR.unpack_from(sock.sent[1])
    assert msg_type == rtnl.RTM_DELLINK
    assert flags & rtnl.NLM_F_ACK


def test_one_link_is_read_with_its_kind_state_and_mac() -> None:
    sock = FakeSocket(newlink(5, "br-lan", kind="bridge", operstate=2))
    link = linkops.get(real(sock), 5)
    assert link == linkops.LinkState(5, "br-lan", "bridge", "DOWN", 0x1003, "02:42:ac:11:00:02")
    sock = FakeSocket(newlink(6, "eth0"))
    assert linkops.get(real(sock), 6).kind is None


def test_a_reply_to_another_request_is_skipped() -> None:
    """What an abandoned request left on the socket is not taken for this one's reply."""

    class Stale(FakeSocket):
        def recv(self, size: int) -> bytes:
            self.seq_offset = -1 if len(self.replies) == 2 else 0
            return super().recv(size)

    sock = Stale(ack(errno.EPERM), newlink(9, "dh9", operstate=6))
    assert linkops.get(real(sock), 9).operstate == "UP"
