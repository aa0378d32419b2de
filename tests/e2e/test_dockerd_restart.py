"""Issue 4 (part): dockerd restarts, with a private dockerd of the test's own.

The private daemon has its own --data-root, --exec-root, -H socket and pid file, a bridge
this test made (--bridge, --iptables=false: it must never touch docker0 or the host's
rules), and is stopped and unmounted in `finally`. It is a daemon of the engine under test
(Docker 20.10 or 28.5, see tests/conftest.py), driven with that engine's CLI.
"""

from __future__ import annotations

import contextlib
import re
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import LanFactory, PluginFactory
from tests.e2e.test_lifecycle import T1, T2
from tests.e2e.test_plugin import SHOW, addr_of, our_veths
from tests.lab import (
    ENGINE20,
    IMAGE,
    DockerdHandle,
    Engine,
    docker,
    docker_client,
    ensure_dockerd,
    pick_subnet,
    random_mac,
    sh,
    wait_until,
)

RESTART_BOUND_S = 30.0


class PrivateDockerd:
    def __init__(self, live_restore: bool, engine: Engine = ENGINE20) -> None:
        self.engine = engine
        self.base = Path(tempfile.mkdtemp(prefix="nd-dockerd-"))
        self.bridge = "ndpd" + secrets.token_hex(3)
        self.sock = self.base / "docker.sock"
        self.host = f"unix://{self.sock}"
        self.args = ["--data-root", str(self.base / "data"), "--exec-root",
                     str(self.base / "exec"), "--pidfile", str(self.base / "docker.pid"),
                     "--bridge", self.bridge, "--iptables=false", "--ip-masq=false"]
        if engine is not ENGINE20:
            # Docker 28 also writes ip6tables rules and forwarding settings unless told not to.
            self.args += ["--ip6tables=false", "--ip-forward=false"]
        if live_restore:
            self.args.append("--live-restore")
        self.handle: DockerdHandle | None = None
        self.then_plain = False
        """Restart without --live-restore after a live-restore run: Docker then re-creates
        the endpoints and never tears the old ones down."""

    def start(self) -> float:
        t = time.monotonic()
        self.handle = ensure_dockerd(timeout=90, host=self.host, extra_args=self.args,
                                     engine=self.engine)
        return time.monotonic() - t

    def stop(self) -> None:
        if self.handle is not None:
            self.handle.stop()
            self.handle = None

    def docker(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return docker(*args, host=self.host, check=check)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            for c in self.docker("ps", "-aq", check=False).stdout.split():
                self.docker("rm", "-f", c, check=False)
        self.stop()
        mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()
                  if line.split()[1].startswith(str(self.base))]
        for m in sorted(mounts, key=len, reverse=True):
            sh("umount", "-l", m, check=False)
        sh("ip", "link", "del", self.bridge, check=False)
        shutil.rmtree(self.base, ignore_errors=True)


@pytest.fixture(params=["no-live-restore", "live-restore", "live-then-plain"])
def private(request: pytest.FixtureRequest, image: str,
            dockerd: DockerdHandle) -> Iterator[PrivateDockerd]:
    d = PrivateDockerd(live_restore=request.param != "no-live-restore", engine=dockerd.engine)
    d.then_plain = request.param == "live-then-plain"
    try:
        subnet = pick_subnet()
        sh("ip", "link", "add", d.bridge, "type", "bridge")
        sh("ip", "addr", "add", f"{subnet.network_address + 1}/{subnet.prefixlen}", "dev",
           d.bridge)
        d.start()
        # The image comes from the engine's shared daemon, through the engine's CLI.
        saved = subprocess.run([docker_client(dockerd.host),
                                *(["-H", dockerd.host] if dockerd.host else []), "save", image],
                               capture_output=True, check=True)
        subprocess.run([docker_client(d.host), "-H", d.host, "load"], input=saved.stdout,
                       capture_output=True, check=True)
        yield d
    finally:
        d.close()


def test_dockerd_restart_with_a_restart_always_container(
        fresh_plugin: PluginFactory, lan: LanFactory, private: PrivateDockerd) -> None:
    live = "--live-restore" in private.args and not private.then_plain
    lab = lan(t1=T1, t2=T2)
    p = fresh_plugin("--docker-socket", str(private.sock))
    net = "nd-rs-" + secrets.token_hex(3)
    private.docker("network", "create", "-d", p.name, "--ipam-driver", "null",
                   "-o", f"bridge={lab.bridge}", net)
    mac = random_mac()
    name = "nd-rs-c" + secrets.token_hex(3)
    private.docker("run", "-d", "--init", "--name", name, "--restart", "always",
                   "--network", net, "--mac-address", mac, IMAGE, "sleep", "600")
    ip = addr_of(private.docker("exec", name, "sh", "-c", SHOW).stdout)[0]
    private.stop()
    if private.then_plain:
        private.args.remove("--live-restore")
    mark, since = p.log_offset(), lab.log_offset()
    took = private.start()
    # dockerd re-creates (or keeps) the container while it is still starting, before
    # its API answers: a plugin that asked the API from a request would hang it here.
    assert took < RESTART_BOUND_S, f"dockerd took {took:.1f}s to come back"

    def running() -> bool:
        out = private.docker("inspect", "-f", "{{.State.Running}}", name, check=False)
        return out.stdout.strip() == "true"

    wait_until(running, RESTART_BOUND_S, f"{name} to run again")
    after = addr_of(private.docker("exec", name, "sh", "-c", SHOW).stdout)[0]
    assert after == ip  # same MAC, same address from the server
    lab.wait_for_log(rf"DHCPACK\(\w+\) {re.escape(ip)} {mac}", timeout=T2 * 3,
                     since=since)
    calls = re.findall(r"-> NetworkDriver\.(\w+)", p.log(mark))
    if live:
        # Live restore: Docker replays nothing; the plugin just kept renewing.
        assert not {"CreateEndpoint", "Join", "Leave", "DeleteEndpoint"} & set(calls)
        assert "DHCPRELEASE" not in lab.log(since)
    else:
        assert "CreateEndpoint" in calls
        assert "Join" in calls
    # Exactly one endpoint is left for the one running container: nothing leaked.
    wait_until(lambda: len(our_veths(lab.bridge)) == 1, 90, "one veth on the LAN bridge")
    if private.then_plain:
        # The old endpoint was collected by the plugin, not torn down by Docker, and
        # its lease (same MAC as the new endpoint's) was not released.
        assert not re.search(r"-> NetworkDriver\.(Leave|DeleteEndpoint)", p.log(mark))
        p.wait_for_log(r"sweep: endpoint \w+ is unknown to Docker|veth \w+ is gone|"
                       r"its container stopped while", timeout=60, since=mark)
        assert not re.search(rf"DHCPRELEASE\(\w+\) {re.escape(ip)} {mac}",
                             lab.log(since))
    private.docker("rm", "-f", name)
    wait_until(lambda: our_veths(lab.bridge) == [], 30, "no veth on the LAN bridge")
    private.docker("network", "rm", net)
