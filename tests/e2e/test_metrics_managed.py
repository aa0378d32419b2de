"""The managed plugin's METRICS_ADDR setting, for real: built by scripts/build-plugin.sh
(prometheus_client among its wheels), `docker plugin create`d, set to a TCP port on the
host's loopback (the plugin uses the host's network), enabled; a container's start and stop
move its counters. Without the setting the plugin listens on no port."""

from __future__ import annotations

import contextlib
import platform
import secrets
import shutil
import tempfile
from pathlib import Path

import pytest

from tests.conftest import DockerCleanup, LanFactory
from tests.e2e.test_managed_plugin import (
    DOCKER_ARCH,
    build_plugin_dir,
    engine_netns_dir,
    engine_socket,
    free_port,
    variant,
    version,
)
from tests.e2e.test_metrics import answers, get, scrape
from tests.lab import DockerdHandle, LabError, wait_until


def test_managed_plugin_metrics_addr_setting(
        dockerd: DockerdHandle, lan: LanFactory, docker_cleanup: DockerCleanup,
        image: str) -> None:
    arch = DOCKER_ARCH.get(platform.machine())
    if arch is None:
        pytest.skip(f"no plugin build for {platform.machine()}")
    dc = docker_cleanup
    work = Path(tempfile.mkdtemp(prefix="net-dhcp-metrics-managed-"))
    ref = f"net-dhcp-metrics-t{secrets.token_hex(3)}:{version()}-linux-{arch}"
    created = False

    def remove_plugin() -> None:
        # Containers and networks first, while the plugin still answers for them.
        problems = dc.cleanup()
        if created:
            with contextlib.suppress(LabError):
                dc.docker("plugin", "rm", "-f", ref, check=False)
        assert not problems, problems

    with contextlib.ExitStack() as stack:
        stack.callback(shutil.rmtree, work, True)
        built = build_plugin_dir(arch)
        netns_dir = engine_netns_dir(dc, image)
        stack.callback(remove_plugin)
        dc.docker("plugin", "create", ref,
                  str(variant(built, work / "plugin", secrets.token_hex(4))))
        created = True
        port = free_port()
        dc.docker("plugin", "set", ref, f"netns.source={netns_dir}",
                  f"docker-socket.source={engine_socket(dockerd)}",
                  f"METRICS_ADDR=127.0.0.1:{port}")
        dc.docker("plugin", "enable", ref)
        wait_until(lambda: answers(port), 15, f"the plugin's metrics on 127.0.0.1:{port}")
        lab = lan()
        net = dc.net_create(lab.bridge, driver=ref)
        assert get(scrape(port), "net_dhcp_networks") == 1
        dc.run(image, "true", network=net)  # --rm: started, stopped, removed
        wait_until(lambda: get(scrape(port), "net_dhcp_releases_total", family="4") == 1,
                   20, "the release counted")
        end = scrape(port)
        assert get(end, "net_dhcp_acquisitions_total", family="4", origin="create") == 1
        assert get(end, "net_dhcp_acquisition_seconds_count", family="4",
                   origin="create") == 1

        # Off again (the default): the port is closed.
        dc.docker("network", "rm", net)
        dc.docker("plugin", "disable", ref)
        dc.docker("plugin", "set", ref, "METRICS_ADDR=")
        dc.docker("plugin", "enable", ref)
        dc.net_create(lab.bridge, driver=ref)  # the plugin answers again
        assert not answers(port)
