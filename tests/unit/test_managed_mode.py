"""What differs when the plugin runs as a managed (v2) plugin: its driver name is the plugin
reference Docker lists (not its socket file's name), and Docker's sandbox paths are looked up
under the folder where the host's netns folder is mounted inside the plugin."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from net_dhcp import managed, reconcile, sandbox


class FakeDocker:
    def __init__(self, plugins: list[dict[str, Any]]) -> None:
        self._plugins = plugins

    async def plugins(self) -> list[dict[str, Any]]:
        return self._plugins

    async def close(self) -> None:
        pass


def plugin(name: str, *, enabled: bool = True, sock: str = "net-dhcp.sock",
           types: tuple[str, ...] = ("docker.networkdriver/1.0",)) -> dict[str, Any]:
    return {"Name": name, "Enabled": enabled,
            "Config": {"Interface": {"Socket": sock, "Types": list(types)}}}


@pytest.mark.asyncio
async def test_a_managed_plugin_is_known_by_its_reference() -> None:
    rec = reconcile.Reconciler(object(), driver_name=None,  # type: ignore[arg-type]
                               socket_name="net-dhcp.sock", docker_socket=None,
                               sweep_interval_s=60)
    rec.docker = FakeDocker([  # type: ignore[assignment]
        plugin("me/net-dhcp:0.3.0-linux-amd64"),
        plugin("me/net-dhcp:old", enabled=False),
        plugin("other/volume:1", types=("docker.volumedriver/1.0",)),
        plugin("other/net:1", sock="other.sock"),
    ])
    assert await rec.driver_names() == {"me/net-dhcp:0.3.0-linux-amd64"}


@pytest.mark.asyncio
async def test_a_legacy_plugin_is_known_by_its_socket_name() -> None:
    rec = reconcile.Reconciler(object(), driver_name="net-dhcp",  # type: ignore[arg-type]
                               socket_name="net-dhcp.sock", docker_socket=None,
                               sweep_interval_s=60)
    rec.docker = FakeDocker([plugin("me/net-dhcp:1")])  # type: ignore[assignment]
    assert await rec.driver_names() == {"net-dhcp"}


def test_sandbox_paths_map_into_the_mounted_netns_folder() -> None:
    key = "/run/docker-alt/netns/81f8f73127c6"
    assert sandbox.local_path(key, None) == key
    assert sandbox.local_path(key, Path("/var/run/docker/netns")) == \
        "/var/run/docker/netns/81f8f73127c6"
    assert sandbox.local_path("", Path("/x")) == ""
    assert sandbox.local_path(None, Path("/x")) is None


PLUGIN_ID = "4f" * 32
MOUNTINFO = f"""\
22 1 0:21 / / rw,relatime - overlay overlay rw
41 22 0:24 /docker/plugins/{PLUGIN_ID} /run/docker/plugins rw,nosuid - tmpfs tmpfs rw
42 22 0:24 /docker/netns /run/host-netns rw shared:5 - tmpfs tmpfs rw
"""


def test_a_managed_plugin_finds_its_own_id_in_mountinfo() -> None:
    assert managed.own_plugin_id(MOUNTINFO) == PLUGIN_ID
    assert managed.own_plugin_id("22 1 0:21 / / rw - overlay overlay rw\n") is None


@pytest.mark.asyncio
async def test_with_its_own_id_a_managed_plugin_claims_only_its_own_networks() -> None:
    rec = reconcile.Reconciler(object(), driver_name=None,  # type: ignore[arg-type]
                               socket_name="net-dhcp.sock", docker_socket=None,
                               sweep_interval_s=60, plugin_id=PLUGIN_ID)
    rec.docker = FakeDocker([  # type: ignore[assignment]
        {**plugin("me/net-dhcp:2"), "Id": "0a" * 32},  # another enabled copy: not ours
        {**plugin("me/net-dhcp:1"), "Id": PLUGIN_ID},
    ])
    assert await rec.driver_names() == {"me/net-dhcp:1"}
