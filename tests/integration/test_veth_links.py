"""netlink's veth work made with raw rtnetlink requests (linkops.py), against the kernel.
create_veth: the pair as CreateEndpoint needs it, a leftover of a crashed attempt, a wrong
bridge, and a pair half made when a step fails. set_up: the link can send when it returns.
delete_link: the pair is gone, and a link already gone is no error (nor for set_up).
Whether a new pair's first DISCOVER is answered is in test_link_watch.py; the request bytes
are in tests/unit/test_linkops.py."""

from __future__ import annotations

import errno
import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from net_dhcp import linkops, netlink, rtnl
from net_dhcp.errors import NetlinkError, OptionError
from tests.conftest import LanFactory, require_root
from tests.lab import random_mac, sh


def _link(name: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = json.loads(sh("ip", "-j", "-d", "link", "show", name).stdout)
    return found[0]


def _port_state(name: str) -> str:
    return Path("/sys/class/net", name, "brport", "state").read_text().strip()


def _accept_dad(name: str) -> str | None:
    """The interface's accept_dad, None when IPv6 is off on this host."""
    try:
        return Path("/proc/sys/net/ipv6/conf", name, "accept_dad").read_text().strip()
    except FileNotFoundError:
        return None


def _exists(name: str) -> bool:
    return Path("/sys/class/net", name).exists()


def _any_exists(names: tuple[str, str]) -> bool:
    return any(_exists(name) for name in names)


def _operstate(name: str) -> str:
    return Path("/sys/class/net", name, "operstate").read_text().strip()


@pytest.fixture
def names() -> Iterator[tuple[str, str]]:
    """Unique (host end, container end) names; the pair is deleted after the test."""
    require_root()
    tag = secrets.token_hex(5)
    host_if, cont_if = f"dh{tag}", f"dc{tag}"
    try:
        yield host_if, cont_if
    finally:
        for name in (host_if, cont_if):
            sh("ip", "link", "del", name, check=False)


@pytest.mark.asyncio
async def test_the_pair_is_up_on_the_bridge_with_the_mac_asked_for(
        lan: LanFactory, names: tuple[str, str]) -> None:
    lab = lan(dhcp=False)
    host_if, cont_if = names
    mac = random_mac().upper()
    assert await netlink.create_veth(host_if, cont_if, lab.bridge, mac,
                                     replace_leftover=False) == mac.lower()
    host, cont = _link(host_if), _link(cont_if)
    assert host["master"] == lab.bridge
    assert host["linkinfo"]["info_kind"] == "veth"
    assert (host["operstate"], cont["operstate"]) == ("UP", "UP")
    assert cont["address"] == mac.lower()
    assert _port_state(host_if) == netlink.BR_STATE_FORWARDING


@pytest.mark.asyncio
async def test_without_a_mac_the_kernels_is_returned(
        lan: LanFactory, names: tuple[str, str]) -> None:
    lab = lan(dhcp=False)
    host_if, cont_if = names
    mac = await netlink.create_veth(host_if, cont_if, lab.bridge, None,
                                    replace_leftover=False)
    assert mac == _link(cont_if)["address"]


@pytest.mark.asyncio
async def test_a_leftover_pair_is_replaced_only_when_asked(
        lan: LanFactory, names: tuple[str, str]) -> None:
    lab = lan(dhcp=False)
    host_if, cont_if = names
    await netlink.create_veth(host_if, cont_if, lab.bridge, random_mac(), replace_leftover=False)
    with pytest.raises(NetlinkError, match="File exists"):
        await netlink.create_veth(host_if, cont_if, lab.bridge, random_mac(),
                                  replace_leftover=False)
    again = random_mac()
    await netlink.create_veth(host_if, cont_if, lab.bridge, again, replace_leftover=True)
    assert _link(cont_if)["address"] == again
    assert _link(host_if)["master"] == lab.bridge


@pytest.mark.asyncio
async def test_a_missing_bridge_or_another_kind_of_link_is_an_option_error(
        lan: LanFactory, names: tuple[str, str]) -> None:
    lab = lan(dhcp=False)
    host_if, cont_if = names
    with pytest.raises(OptionError, match="does not exist: create it first"):
        await netlink.create_veth(host_if, cont_if, f"ndx{secrets.token_hex(3)}",
                                  random_mac(), replace_leftover=False)
    with pytest.raises(OptionError, match="is a veth, not a bridge"):
        await netlink.create_veth(host_if, cont_if, lab.server_veth, random_mac(),
                                  replace_leftover=False)
    assert not _any_exists(names)


@pytest.mark.asyncio
async def test_a_pair_half_made_is_deleted(lan: LanFactory, names: tuple[str, str],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    lab = lan(dhcp=False)
    host_if, cont_if = names

    def refuse(*_args: object) -> None:
        raise rtnl.RtnlError(errno.EPERM, "refused by the test")

    monkeypatch.setattr(linkops, "set_up", refuse)
    with pytest.raises(NetlinkError, match="refused by the test"):
        await netlink.create_veth(host_if, cont_if, lab.bridge, random_mac(),
                                  replace_leftover=False)
    assert not _any_exists(names)


@pytest.mark.asyncio
async def test_no_dad_turns_dad_off_before_the_container_end_comes_up(
        lan: LanFactory, names: tuple[str, str]) -> None:
    lab = lan(dhcp=False)
    host_if, cont_if = names
    await netlink.create_veth(host_if, cont_if, lab.bridge, random_mac(),
                              replace_leftover=False, no_dad=True)
    assert _accept_dad(cont_if) in ("0", None)
    assert _link(cont_if)["operstate"] == "UP"


@pytest.mark.asyncio
async def test_set_up_returns_once_the_link_can_send(names: tuple[str, str]) -> None:
    host_if, cont_if = names
    sh("ip", "link", "add", host_if, "type", "veth", "peer", "name", cont_if)
    sh("ip", "link", "set", cont_if, "up")
    assert _link(host_if)["operstate"] == "DOWN"
    await netlink.set_up(host_if)
    # Not "up" in flags only: the kernel's link watch has run, the queue passes frames
    # (read at once, in this process).
    assert _operstate(host_if) == "up"


@pytest.mark.asyncio
async def test_set_up_of_a_missing_link_does_nothing(names: tuple[str, str]) -> None:
    await netlink.set_up(names[0])
    assert not _exists(names[0])


@pytest.mark.asyncio
async def test_delete_link_takes_the_pair_and_says_whether_it_was_there(
        names: tuple[str, str]) -> None:
    host_if, cont_if = names
    sh("ip", "link", "add", host_if, "type", "veth", "peer", "name", cont_if)
    assert await netlink.delete_link(host_if) is True
    assert not _any_exists(names)
    assert await netlink.delete_link(host_if) is False
    assert await netlink.delete_link(cont_if) is False
