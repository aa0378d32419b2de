"""lan_looks.LanLooks: one look at a LAN interface serves a burst of CreateEndpoints."""

from __future__ import annotations

import asyncio

import pytest

from net_dhcp import lan_looks
from net_dhcp.attach.base import Attachment
from net_dhcp.netlink import BridgeInfo


class CountingLan(Attachment):
    """An attachment whose info() counts its calls and waits for `release` (set: at once)."""

    kind = "bridge"

    def __init__(self, lan: str, *, fail: bool = False) -> None:
        super().__init__(lan)
        self.calls = 0
        self.fail = fail
        self.release = asyncio.Event()
        self.release.set()

    async def info(self, *, with_routes: bool = True) -> BridgeInfo:
        self.calls += 1
        await self.release.wait()
        if self.fail:
            raise OSError(f"bridge {self.lan} is gone")
        return BridgeInfo(self.lan, 7, (), None, ())


@pytest.mark.asyncio
async def test_callers_during_a_look_share_it() -> None:
    looks = lan_looks.LanLooks()
    att = CountingLan("br0")
    att.release.clear()
    waiters = [asyncio.create_task(looks.info(att)) for _ in range(5)]
    await asyncio.sleep(0)
    att.release.set()
    infos = await asyncio.gather(*waiters)
    assert att.calls == 1
    assert {i.name for i in infos} == {"br0"}


@pytest.mark.asyncio
async def test_a_fresh_result_is_reused_and_a_stale_one_is_not(
        monkeypatch: pytest.MonkeyPatch) -> None:
    looks = lan_looks.LanLooks()
    att = CountingLan("br0")
    await looks.info(att)
    await looks.info(att)
    assert att.calls == 1
    other = CountingLan("br1")  # another LAN interface: a look of its own
    await looks.info(other)
    assert other.calls == 1
    monkeypatch.setattr(lan_looks, "FRESH_S", 0.0)
    await looks.info(att)
    assert att.calls == 2


@pytest.mark.asyncio
async def test_a_failed_look_is_not_kept() -> None:
    looks = lan_looks.LanLooks()
    att = CountingLan("br0", fail=True)
    for _ in range(2):
        with pytest.raises(OSError, match="gone"):
            await looks.info(att)
    assert att.calls == 2


@pytest.mark.asyncio
async def test_cancelling_one_caller_leaves_the_look_to_the_others() -> None:
    looks = lan_looks.LanLooks()
    att = CountingLan("br0")
    att.release.clear()
    first = asyncio.create_task(looks.info(att))
    second = asyncio.create_task(looks.info(att))
    await asyncio.sleep(0)
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    att.release.set()
    assert (await second).name == "br0"
    assert att.calls == 1
