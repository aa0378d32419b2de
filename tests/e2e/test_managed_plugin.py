"""Issue 9, part 1: the managed (v2) plugin, published through a registry and upgraded in use.

One test walks what a user and a maintainer do: build the plugin (scripts/build-plugin.sh,
cached), `docker plugin create` and `push` two tags to Debian's docker-registry on 127.0.0.1,
remove them, `docker plugin install` the first from the registry, get a lease, change
LOG_LEVEL (disable, set, enable) and read the log file, then `docker plugin upgrade` to the
second tag while a container on its network runs, and see the new version renew that
container's lease from the state the old one left.

Docker allows an upgrade only while the plugin is disabled, and refuses `disable` while a
network uses the plugin; `disable -f` is the way (plugin/README.md). The test checks both
refusals, so a Docker that changes either rule fails it.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import platform
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
import tomllib
import urllib.error
import urllib.request
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import DockerCleanup, LanFactory
from tests.lab import REPO_ROOT, DockerdHandle, LabError, random_mac, sh, tail, tool, wait_until

BUILD_SCRIPT = REPO_ROOT / "scripts" / "build-plugin.sh"
BUILD_TIMEOUT_S = 900.0
"""A clean build downloads Debian's python3 and the wheels (11 s here); cached: 3 s."""
LOG_IN_ROOTFS = "var/log/net-dhcp.log"
MARKER = "opt/net-dhcp/TEST-BUILD"
"""A file that makes each test build's rootfs unique: `docker plugin create` refuses a rootfs
whose content another installed plugin already has ("content sha256:...: already exists")."""
DOCKER_ARCH = {"x86_64": "amd64", "i686": "386", "aarch64": "arm64-v8", "armv7l": "arm-v7"}


def version() -> str:
    with (REPO_ROOT / "pyproject.toml").open("rb") as f:
        return str(tomllib.load(f)["project"]["version"])


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def addr_of(output: str) -> str:
    m = re.search(r"inet (\d+\.\d+\.\d+\.\d+)/\d+", output)
    assert m, f"no IPv4 address in:\n{output}"
    return m.group(1)


def ensure_registry_binary() -> str:
    """Debian's docker-registry (distribution 2.8), installed if missing."""
    if shutil.which("docker-registry") is None:
        install = ("apt-get", "install", "-y", "-qq", "--no-install-recommends",
                   "docker-registry")
        env = {"DEBIAN_FRONTEND": "noninteractive"}
        if sh(*install, check=False, timeout=600, env=env).returncode != 0:
            sh("apt-get", "update", "-qq", timeout=600)  # a machine that never ran it
            sh(*install, timeout=600, env=env)
    return tool("docker-registry")


@contextlib.contextmanager
def local_registry(workdir: Path) -> Iterator[str]:
    """A docker-registry on 127.0.0.1 (Docker pushes there without TLS); yields HOST:PORT."""
    port = free_port()
    (workdir / "data").mkdir(parents=True)
    config = workdir / "config.yml"
    config.write_text(
        "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n"
        f"    rootdirectory: {workdir / 'data'}\n  delete:\n    enabled: true\n"
        f"http:\n  addr: 127.0.0.1:{port}\n")
    log = workdir / "registry.log"
    with log.open("ab") as out:
        proc = subprocess.Popen([ensure_registry_binary(), "serve", str(config)],
                                stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                start_new_session=True)
    try:
        def answers() -> bool:
            if proc.poll() is not None:
                raise LabError(f"docker-registry exited {proc.returncode}:\n"
                               f"{tail(log.read_text(errors='replace'), 20)}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=2):
                    return True
            except (urllib.error.URLError, OSError):
                return False
        wait_until(answers, 30, f"docker-registry on 127.0.0.1:{port}", interval=0.2)
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def registry_tags(registry: str, repo: str) -> set[str]:
    with urllib.request.urlopen(f"http://{registry}/v2/{repo}/tags/list", timeout=10) as r:
        return set(json.load(r).get("tags") or [])


def _mounts() -> list[tuple[int, int, str]]:
    """(mount id, parent id, mount point) of every mount, in mount order."""
    out = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        f = line.split()
        out.append((int(f[0]), int(f[1]), f[4].replace("\\040", " ")))
    return out


def _tree(path: str) -> set[int]:
    """The ids of the top mount at `path` and of every mount below it."""
    mounts = _mounts()
    tops = [mid for mid, _, target in mounts if target == path]
    if not tops:
        return set()
    found = {tops[-1]}
    grew = True
    while grew:
        below = {mid for mid, parent, _ in mounts if parent in found}
        grew = not below <= found
        found |= below
    return found


@contextlib.contextmanager
def shared_mount(path: str) -> Iterator[None]:
    """Make `path` a shared mount for the block, as plugin/README.md tells users to.

    The plugin mounts Docker's netns folder rbind,rslave: namespaces Docker mounts there
    later reach the plugin only if the host side is shared (systemd hosts share `/`; this one
    does not). Undoes only what it did: the bind mount and the copies `--rbind` made of the
    namespaces already mounted there. If containers not ours have since mounted theirs in it,
    the bind mount stays (unmounting it would hide them), with a warning.
    """
    path = os.path.realpath(path)
    res = sh("findmnt", "-n", "-o", "TARGET,PROPAGATION", "--target", path, check=False)
    target, _, propagation = res.stdout.strip().partition(" ")
    if "shared" in propagation:
        yield  # already propagates (e.g. a systemd host)
        return
    if os.path.realpath(target) == path:
        sh("mount", "--make-shared", path)
        try:
            yield
        finally:
            sh("mount", f"--make-{propagation.split(',')[0] or 'private'}", path, check=False)
        return
    sh("mount", "--rbind", path, path)
    ours = _tree(path)
    try:
        sh("mount", "--make-shared", path)
        yield
    finally:
        others = _tree(path) - ours
        if others:
            warnings.warn(f"left the shared bind mount {path}: {len(others)} namespace(s) of "
                          "other containers were mounted in it meanwhile", stacklevel=1)
        else:
            sh("umount", "--recursive", path)


def engine_socket(dockerd: DockerdHandle) -> str:
    host = dockerd.host or "unix:///var/run/docker.sock"
    assert host.startswith("unix://"), host
    return host.removeprefix("unix://")


def engine_netns_dir(dc: DockerCleanup, image: str) -> str:
    """The engine's <exec-root>/netns, from a throwaway container's SandboxKey."""
    probe = dc.run(image, "sleep", "60", network="none", detach=True)
    try:
        key = dc.docker("inspect", "-f", "{{.NetworkSettings.SandboxKey}}", probe.name).stdout
    finally:
        dc.docker("rm", "-f", probe.name, check=False)
    assert key.strip(), "the probe container has no SandboxKey"
    return str(Path(key.strip()).parent)


_BUILT: dict[str, Path] = {}
"""One build per architecture and test session: the tests that need the plugin folder
copy it (`variant`) and never change it."""


def build_plugin_dir(arch: str) -> Path:
    """scripts/build-plugin.sh --no-create: <folder>/<version>-linux-<arch>/ (the Debian
    base and wheels are cached in build/plugin/cache, shared with `make plugin`). Built
    once per session into a folder removed when the session ends."""
    cached = _BUILT.get(arch)
    if cached is not None and (cached / "config.json").is_file():
        return cached
    out = Path(tempfile.mkdtemp(prefix="net-dhcp-plugin-build-"))
    atexit.register(shutil.rmtree, out, True)
    built = _build_plugin_dir(arch, out)
    _BUILT[arch] = built
    return built


def _build_plugin_dir(arch: str, out: Path) -> Path:
    res = subprocess.run(["bash", str(BUILD_SCRIPT), "--no-create", "--out", str(out), arch],
                         cwd=REPO_ROOT, capture_output=True, text=True,
                         timeout=BUILD_TIMEOUT_S, check=False)
    if res.returncode != 0:
        pytest.fail(f"build-plugin.sh failed ({res.returncode}):\n{tail(res.stderr, 30)}")
    built = out / f"{version()}-linux-{arch}"
    assert (built / "config.json").is_file()
    assert (built / "rootfs" / "opt" / "net-dhcp" / "bin" / "python").is_symlink()
    return built


def variant(built: Path, dest: Path, mark: str) -> Path:
    """A copy of the built plugin folder (hard links) whose rootfs holds `mark`."""
    dest.mkdir(parents=True)
    shutil.copy2(built / "config.json", dest / "config.json")
    if sh("cp", "-al", str(built / "rootfs"), str(dest / "rootfs"), check=False).returncode:
        sh("cp", "-a", str(built / "rootfs"), str(dest / "rootfs"))
    (dest / "rootfs" / MARKER).write_text(mark + "\n")
    return dest


def test_managed_plugin_from_a_registry_upgraded_in_use(
        dockerd: DockerdHandle, lan: LanFactory, docker_cleanup: DockerCleanup,
        image: str) -> None:
    started = time.monotonic()
    arch = DOCKER_ARCH.get(platform.machine())
    if arch is None:
        pytest.skip(f"no plugin build for {platform.machine()}")
    dc = docker_cleanup
    lab = lan(t1=6, t2=10)  # the upgraded plugin's first renewal comes within seconds
    token = secrets.token_hex(4)
    work = Path(tempfile.mkdtemp(prefix="net-dhcp-managed-"))
    tag1 = f"{version()}-linux-{arch}"
    tag2 = f"{version()}-upgrade-linux-{arch}"
    refs: list[str] = []  # every plugin reference this test may have left in Docker
    plugin_id = ""
    data_root = Path(dc.docker("info", "-f", "{{.DockerRootDir}}").stdout.strip())

    def inspect(ref: str) -> dict[str, Any]:
        out = json.loads(dc.docker("plugin", "inspect", ref).stdout)
        assert isinstance(out, list)
        assert isinstance(out[0], dict)
        return out[0]

    def plugin_path(*parts: str) -> Path:
        return data_root / "plugins" / plugin_id / Path(*parts)

    def log() -> str:
        try:
            return plugin_path("rootfs", LOG_IN_ROOTFS).read_text(errors="replace")
        except OSError:
            return ""

    def wait_log(pattern: str, timeout: float) -> None:
        wait_until(lambda: re.search(pattern, log()) is not None, timeout,
                   f"/{pattern}/ in the plugin's log",
                   detail=lambda: "--- plugin log (tail) ---\n" + tail(log(), 30))

    problems: list[str] = []
    try:
        built = build_plugin_dir(arch)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    build_s = time.monotonic() - started

    def cleanup() -> None:
        # Containers and networks first, while the plugin still answers Leave/DeleteEndpoint.
        if plugin_id:
            with contextlib.suppress(LabError):
                dc.docker("plugin", "enable", refs[0], check=False)
        problems.extend(dc.cleanup())
        for r in refs:
            with contextlib.suppress(LabError):
                dc.docker("plugin", "rm", "-f", r, check=False)

    # Undone in reverse: Docker objects, then the mount, the registry, the folders.
    with contextlib.ExitStack() as stack:
        stack.callback(shutil.rmtree, work, True)
        netns_dir = engine_netns_dir(dc, image)
        registry = stack.enter_context(local_registry(work / "registry"))
        stack.enter_context(shared_mount(netns_dir))
        stack.callback(cleanup)
        repo = f"{registry}/net-dhcp"
        ref, ref2 = f"{repo}:{tag1}", f"{repo}:{tag2}"

        # Publish two tags, as `make plugin-push` does, and keep nothing local.
        for r, n in ((ref, 1), (ref2, 2)):
            refs.append(r)
            dc.docker("plugin", "create", r, str(variant(built, work / f"v{n}",
                                                           f"{n} {token}")))
            dc.docker("plugin", "push", r, timeout=300)
            dc.docker("plugin", "rm", r)
        assert registry_tags(registry, "net-dhcp") == {tag1, tag2}
        assert dc.docker("plugin", "inspect", ref, check=False).returncode != 0

        # Install from the registry; the engine's own netns folder and socket are set.
        mounts = (f"netns.source={netns_dir}", f"docker-socket.source={engine_socket(dockerd)}")
        dc.docker("plugin", "install", "--grant-all-permissions", ref, *mounts, timeout=300)
        info = inspect(ref)
        plugin_id = str(info["Id"])
        assert info["Enabled"] is True
        assert plugin_path("rootfs", MARKER).read_text().split() == ["1", token]

        # The driver name is the plugin reference; a container gets a lease on the LAN.
        net1 = dc.net_create(lab.bridge, driver=ref)
        out = dc.run(image, "ip", "-4", "-o", "addr", "show", "eth0", network=net1).stdout
        assert lab.in_range(addr_of(out))
        wait_log(r"INFO net_dhcp\.driver: endpoint \w+: " + re.escape(addr_of(out)), 10)

        # Settings change only while disabled, and a network in use blocks `disable`.
        res = dc.docker("plugin", "disable", ref, check=False)
        assert res.returncode != 0
        assert "in use" in res.stderr
        dc.docker("network", "rm", net1)
        dc.docker("plugin", "disable", ref)
        dc.docker("plugin", "set", ref, "LOG_LEVEL=debug")
        dc.docker("plugin", "enable", ref)
        assert "LOG_LEVEL=debug" in inspect(ref)["Settings"]["Env"]

        # A container that keeps its lease across the upgrade; DEBUG lines now.
        net2 = dc.net_create(lab.bridge, driver=ref)
        mac = random_mac()
        keeper = dc.run(image, "sleep", "600", network=net2, mac=mac, detach=True)
        ip = addr_of(dc.docker("exec", keeper.name, "ip", "-4", "addr", "show",
                               "eth0").stdout)
        assert lab.in_range(ip)
        assert lab.wait_for_lease(mac=mac).ip == ip
        # Keeping it means working in the container's namespace: the netns mount propagates.
        wait_log(r"keeping " + re.escape(ip) + r"/\d+ on eth0 in /run/host-netns/", 10)
        wait_log(r"\d DEBUG net_dhcp\.", 10)
        if dockerd.log_file is not None:  # standard error reaches dockerd's log too
            wait_until(lambda: f"plugin={plugin_id}" in dockerd.log_tail(400), 10,
                       "the plugin's standard error in dockerd's log")

        # Upgrade: Docker wants the plugin disabled; with a network in use only -f does.
        res = dc.docker("plugin", "disable", ref, check=False)
        assert res.returncode != 0
        assert "in use" in res.stderr
        dc.docker("plugin", "disable", "-f", ref)
        assert not inspect(ref)["Enabled"]
        state = plugin_path("propagated-mount", "net-dhcp.sqlite3")
        assert state.is_file(), "no state in the propagated mount"
        dc.docker("plugin", "upgrade", "--skip-remote-check", "--grant-all-permissions",
                  ref, ref2, timeout=300)
        after = inspect(ref)
        assert after["Id"] == plugin_id  # same plugin, same name, settings kept
        assert after["Name"] == ref
        assert after["PluginReference"] == ref2
        assert "LOG_LEVEL=debug" in after["Settings"]["Env"]
        assert plugin_path("rootfs", MARKER).read_text().split() == ["2", token]
        assert state.is_file(), "the upgrade lost the state"
        assert log() == "", "the new rootfs already has a log"
        # Docker shows the mount settings kept, but starts the upgraded plugin with the new
        # config's default sources (seen on 28.5; 20.10 has the same code): set them again.
        dc.docker("plugin", "set", ref, *mounts)
        before = {le.mac: le.expiry for le in lab.leases()}[mac]
        dc.docker("plugin", "enable", ref)

        # The new version re-adopts the endpoint from the kept state and renews it.
        wait_log(r"loaded 1 network\(s\) and 1 endpoint\(s\)", 15)
        wait_log(r"re-adopting " + re.escape(ip), 15)
        wait_log(r"lease on " + re.escape(ip) + r"/\d+ renewed", 30)
        wait_log(r"\d DEBUG net_dhcp\.", 10)  # LOG_LEVEL survived the upgrade
        wait_until(lambda: any(le.mac == mac and le.ip == ip and le.expiry > before
                               for le in lab.leases()), 10,
                   "dnsmasq to extend the kept lease")
        assert addr_of(dc.docker("exec", keeper.name, "ip", "-4", "addr", "show",
                                 "eth0").stdout) == ip
        # The network still works for new containers on the upgraded plugin.
        out = dc.run(image, "ip", "-4", "-o", "addr", "show", "eth0", network=net2).stdout
        assert lab.in_range(addr_of(out))
        print(f"build {build_s:.1f} s, whole test {time.monotonic() - started:.1f} s")
    assert not problems, problems

