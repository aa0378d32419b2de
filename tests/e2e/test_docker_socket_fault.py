"""The Docker socket missing when the plugin starts: a defined outcome, for real.

The plugin serves dockerd's calls without the Docker API (nothing on a request's path asks
Docker), says once and clearly that the API is unreachable and what it costs, retries, and
says so when the API answers; from then on it does what only the API makes possible (here:
learning the container's host name for its DHCP renewals).
"""

from __future__ import annotations

import secrets
from pathlib import Path

from tests.conftest import DockerCleanup, LanFactory, PluginFactory
from tests.lab import sh


def test_docker_socket_missing_at_start(fresh_plugin: PluginFactory, lan: LanFactory,
                                        docker_cleanup: DockerCleanup, image: str) -> None:
    sock = Path(f"/run/net-dhcp-late-docker-{secrets.token_hex(3)}.sock")
    plugin = fresh_plugin("--docker-socket", str(sock))
    try:
        plugin.wait_for_log(rf"WARNING .*cannot reach the Docker API at {sock} .*plugin "
                            r"requests are still served.*--docker-socket", timeout=15)
        lab = lan()
        net = docker_cleanup.net_create(lab.bridge, driver=plugin.name)
        c = docker_cleanup.run(image, "sleep", "300", network=net, detach=True,
                               args=["--hostname", "late1"])
        out = docker_cleanup.docker("exec", c.name, "ip", "-4", "-o", "addr", "show",
                                    "eth0").stdout
        ip = out.split()[3].split("/")[0]
        assert lab.in_range(ip), out

        offset = plugin.log_offset()
        # dockerd's socket (the engine under test's) appears at that path
        sock.symlink_to(docker_cleanup.engine.socket_path)
        plugin.wait_for_log(rf"INFO .*Docker API at {sock} answers", timeout=20, since=offset)
        plugin.wait_for_log(r"belongs to container \w+ \(host name late1\)", timeout=20,
                            since=offset)
        assert plugin.log(offset).count("cannot reach the Docker API") == 0
        docker_cleanup.docker("rm", "-f", c.name)
        assert sh("ip", "-o", "link", "show", "master", lab.bridge).stdout.count(": dh") == 0
    finally:
        sock.unlink(missing_ok=True)
