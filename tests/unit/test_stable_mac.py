"""stable_mac: which identity a container has, its MAC, and when CreateEndpoint may use it."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import pytest

from net_dhcp import stable_mac
from net_dhcp.config import NetworkOptions
from net_dhcp.errors import OptionError
from net_dhcp.stable_mac import PendingStarts, identity, mac_for

COMPOSE = {stable_mac.COMPOSE_PROJECT: "home", stable_mac.COMPOSE_SERVICE: "web",
           stable_mac.COMPOSE_NUMBER: "2"}


def test_identity_prefers_compose_labels_over_the_name() -> None:
    # Compose gives a re-created container a temporary name; its labels stay.
    assert identity("/3f2a_home-web-2", COMPOSE) == "compose:home/web/2"
    assert identity("/web", {}) == "name:web"
    assert identity("", {}) is None
    only_project = {stable_mac.COMPOSE_PROJECT: "home"}
    assert identity("/x", only_project) == "name:x"


def test_the_mac_is_locally_administered_unicast_and_per_lan() -> None:
    mac = mac_for("br0", "name:web")
    first = int(mac.split(":")[0], 16)
    assert first & 0x02
    assert not first & 0x01
    assert mac == mac_for("br0", "name:web")
    assert mac != mac_for("br1", "name:web")
    assert mac != mac_for("br0", "name:web2")


def test_the_option_defaults_on_and_can_be_turned_off() -> None:
    assert NetworkOptions.from_generic({"bridge": "br0"}).stable_mac is True
    assert NetworkOptions.from_generic({"bridge": "br0", "stable_mac": "false"}).stable_mac \
        is False
    with pytest.raises(OptionError, match="stable_mac"):
        NetworkOptions.from_generic({"bridge": "br0", "stable_mac": "sometimes"})
    # State written before the option existed: on.
    assert NetworkOptions.from_json('{"bridge": "br0"}').stable_mac is True


async def _found(name: str, labels: Mapping[str, str], nets: set[str]
                 ) -> tuple[str, Mapping[str, str], set[str]]:
    return name, labels, nets


@pytest.mark.asyncio
async def test_one_container_waiting_on_the_network_is_the_answer() -> None:
    starts = PendingStarts()
    assert await starts.sole({"net1"}) is None
    starts.look_up("c1", lambda: _found("/web", {}, {"mynet", "net1"}))
    assert await starts.sole({"net1"}) == "name:web"
    assert await starts.sole({"mynet"}) == "name:web"  # known by name too
    assert await starts.sole({"other"}) is None
    starts.started("c1")
    assert await starts.sole({"net1"}) is None


@pytest.mark.asyncio
async def test_two_containers_starting_on_one_network_are_ambiguous() -> None:
    starts = PendingStarts()
    starts.look_up("c1", lambda: _found("/a", {}, {"net1"}))
    starts.look_up("c2", lambda: _found("/b", {}, {"net1", "net2"}))
    assert await starts.sole({"net1"}) is None
    assert await starts.sole({"net2"}) == "name:b"
    starts.started("c2")
    assert await starts.sole({"net1"}) == "name:a"


@pytest.mark.asyncio
async def test_a_created_container_that_never_starts_is_forgotten() -> None:
    now = [100.0]
    starts = PendingStarts(clock=lambda: now[0])
    starts.look_up("c1", lambda: _found("/web", {}, {"net1"}))
    assert await starts.sole({"net1"}) == "name:web"
    now[0] += stable_mac.PENDING_S + 1
    assert await starts.sole({"net1"}) is None


@pytest.mark.asyncio
async def test_a_lookup_in_flight_is_waited_for_and_a_failed_one_counts_as_none() -> None:
    starts = PendingStarts()
    gate = asyncio.Event()

    async def slow() -> tuple[str, Mapping[str, str], set[str]]:
        await gate.wait()
        return "/web", {}, {"net1"}

    async def broken() -> tuple[str, Mapping[str, str], set[str]]:
        raise OSError("Docker went away")

    starts.look_up("c1", slow)
    starts.look_up("c2", broken)
    asyncio.get_running_loop().call_later(0.05, gate.set)
    assert await starts.sole({"net1"}) == "name:web"
    await starts.close()


@pytest.mark.asyncio
async def test_a_lookup_that_does_not_answer_is_not_waited_for_long() -> None:
    starts = PendingStarts()
    never = asyncio.Event()

    async def hangs() -> tuple[str, Mapping[str, str], set[str]]:
        await never.wait()
        raise AssertionError("unreachable")

    starts.look_up("c1", hangs)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    assert await starts.sole({"net1"}) is None
    assert loop.time() - t0 < stable_mac.LOOKUP_WAIT_S * 3
    await starts.close()


@pytest.mark.asyncio
async def test_a_compose_recreate_is_one_identity_twice() -> None:
    """--force-recreate: the old container stops (recorded at `die`) and its replacement is
    created (recorded at `create`): two containers, one identity, so no ambiguity."""
    starts = PendingStarts()
    starts.look_up("old", lambda: _found("/home-web-2", COMPOSE, {"net1"}))
    starts.look_up("new", lambda: _found("/3f2a_home-web-2", COMPOSE, {"net1"}))
    assert await starts.sole({"net1"}) == "compose:home/web/2"
    # A second event for one container replaces the first look-up.
    starts.look_up("new", lambda: _found("/other", {}, {"net1"}))
    assert await starts.sole({"net1"}) is None


@pytest.mark.asyncio
async def test_an_ambiguous_network_does_not_wait_for_more_lookups() -> None:
    """A burst: two identities already recorded, more being looked up: no answer can come
    of waiting, so none is waited for."""
    starts = PendingStarts()
    starts.look_up("c1", lambda: _found("/a", {}, {"net1"}))
    starts.look_up("c2", lambda: _found("/b", {}, {"net1"}))
    assert await starts.sole({"net1"}) is None
    never = asyncio.Event()

    async def hangs() -> tuple[str, Mapping[str, str], set[str]]:
        await never.wait()
        raise AssertionError("unreachable")

    starts.look_up("c3", hangs)
    assert await asyncio.wait_for(starts.sole({"net1"}), stable_mac.LOOKUP_WAIT_S / 4) is None
    await starts.close()
