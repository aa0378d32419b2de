"""Shared fixtures built on :mod:`tests.lab`.

Session scope: ``dockerd`` (reused if one answers, else started and stopped at the end),
``image`` (the busybox test image), ``plugin`` (one :class:`tests.lab.Plugin` for the session;
a test that stops or kills it must start it again, or make its own ``Plugin``).
Function scope: ``lan`` (a factory: ``lan(**DhcpLan kwargs) -> DhcpLan``, all closed and checked
for leaks at teardown), ``docker_cleanup`` (``net_create(...)`` and ``run(...)`` helpers whose
networks and containers are removed at teardown).

Two engines: every test under tests/e2e runs on each engine of
:func:`tests.lab.selected_engines` (Docker 20.10, the system's daemon, and Docker 28.5, the
private daemon of :func:`tests.lab.ensure_docker28`; ``NET_DHCP_ENGINES=20.10`` or ``28.5`` picks
one), through a session-scoped parameter of ``dockerd`` (ids ``docker20``, ``docker28``): all
20.10 tests run first, then all 28.5 ones, and ``docker_cleanup``, ``image``, ``plugin`` and
``fresh_plugin`` follow the engine (its socket, its CLI, ``--docker-socket`` for the plugin).
Other tiers use 20.10. Daemons the session started are stopped at its end.

Nothing here is autouse: tests under tests/unit need neither root nor docker. Fixtures that
need root skip when not root; missing tools fail loudly (scripts/setup.sh installs them).
Tests under tests/integration and tests/e2e get the ``integration`` / ``e2e`` marker.
"""

from __future__ import annotations

import os
import secrets
import subprocess
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from tests.lab import (
    ENGINE20,
    DhcpLan,
    DockerdHandle,
    Engine,
    LabError,
    Plugin,
    docker,
    ensure_engine,
    ensure_image,
    selected_engines,
    tail,
)

_HERE = Path(__file__).resolve().parent
PLUGIN_TEST_ARGS = ("--renew-retry-min", "2", "--renew-retry-max", "3", "--sweep-interval", "5")


def require_root() -> None:
    """Skip the calling test unless running as root."""
    if os.geteuid() != 0:
        pytest.skip("needs root (bridges, network namespaces, iptables, dnsmasq, dockerd)")


def _is_e2e(path: object) -> bool:
    return (_HERE / "e2e") in Path(str(path)).resolve().parents


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Every end-to-end test that uses a dockerd runs once per selected engine."""
    if "dockerd" in metafunc.fixturenames and _is_e2e(metafunc.definition.path):
        engines = selected_engines()
        metafunc.parametrize("dockerd", engines, indirect=True, scope="session",
                             ids=[e.id for e in engines])


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        path = Path(str(item.path)).resolve()
        for tier in ("integration", "e2e"):
            if (_HERE / tier) in path.parents and not item.get_closest_marker(tier):
                item.add_marker(getattr(pytest.mark, tier))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
        item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    """On failure, attach the logs of the lab pieces the test used."""
    report = yield
    if report.when == "teardown" or not report.failed:
        return report
    funcargs: dict[str, Any] = getattr(item, "funcargs", {})
    plugin = funcargs.get("plugin")
    if isinstance(plugin, Plugin):
        report.sections.append(("plugin log (tail)", tail(plugin.log(), 60)))
        report.sections.append(("plugin output (tail)", tail(plugin.output(), 30)))
    factory = funcargs.get("lan")
    if isinstance(factory, LanFactory):
        for lab in factory.labs:
            report.sections.append((f"dnsmasq log {lab.bridge} (tail)", tail(lab.log(), 40)))
    handle = funcargs.get("dockerd")
    if isinstance(handle, DockerdHandle) and handle.started:
        report.sections.append(("dockerd log (tail)", handle.log_tail(40)))
    return report


# --------------------------------------------------------------------------- session


class EngineDaemons:
    """The session's daemons, one per engine, each started (or found running) on first use;
    ``close()`` stops those the session started."""

    def __init__(self) -> None:
        self.handles: dict[str, DockerdHandle] = {}

    def get(self, engine: Engine) -> DockerdHandle:
        if engine.name not in self.handles:
            self.handles[engine.name] = ensure_engine(engine)
        return self.handles[engine.name]

    def close(self) -> None:
        for handle in reversed(list(self.handles.values())):
            handle.stop()
        self.handles.clear()


@pytest.fixture(scope="session")
def engine_daemons() -> Iterator[EngineDaemons]:
    """Every engine's daemon the session used; those it started are stopped at its end."""
    daemons = EngineDaemons()
    try:
        yield daemons
    finally:
        daemons.close()


@pytest.fixture(scope="session")
def dockerd(request: pytest.FixtureRequest, engine_daemons: EngineDaemons) -> DockerdHandle:
    """The engine's dockerd: Docker 20.10 on the default socket, or (tests/e2e, parametrized)
    the private 28.5 daemon; started if none answers, then stopped at the session's end."""
    require_root()
    engine: Engine = getattr(request, "param", ENGINE20)
    return engine_daemons.get(engine)


def docker_socket_args(handle: DockerdHandle) -> list[str]:
    """``--docker-socket PATH`` for a plugin of a daemon on another than the default socket."""
    return [] if handle.host is None else ["--docker-socket", str(handle.engine.socket_path)]


@pytest.fixture(scope="session")
def image(dockerd: DockerdHandle) -> str:
    """The busybox test image (``docker import``-ed if missing)."""
    return ensure_image(host=dockerd.host)


@pytest.fixture(scope="session")
def plugin(dockerd: DockerdHandle) -> Iterator[Plugin]:
    """The plugin under test, one per session and engine; its name is the Docker driver name.
    It asks the engine's daemon for what only the Docker API knows (host names, live
    endpoints)."""
    require_root()
    # Short retransmission and sweep intervals so renewal and clean-up tests finish fast.
    p = Plugin(extra_args=[*PLUGIN_TEST_ARGS, *docker_socket_args(dockerd)])
    try:
        p.start()
        yield p
    finally:
        p.close()


# --------------------------------------------------------------------------- function


PluginFactory = Callable[..., Plugin]


@pytest.fixture
def fresh_plugin(dockerd: DockerdHandle) -> Iterator[PluginFactory]:
    """``fresh_plugin(*extra_args)`` starts a plugin of the test's own (a new driver name,
    state dir and log) with the session's test arguments and the engine's Docker socket
    (a ``--docker-socket`` in ``extra_args`` comes later and wins); all are closed at teardown.

    List it before ``docker_cleanup`` so the plugin outlives the containers' removal.
    """
    require_root()
    made: list[Plugin] = []

    def make(*extra_args: str) -> Plugin:
        p = Plugin(extra_args=[*PLUGIN_TEST_ARGS, *docker_socket_args(dockerd), *extra_args])
        made.append(p)
        p.start()
        return p

    try:
        yield make
    finally:
        for p in made:
            p.close()


class LanFactory:
    """``lan(**kwargs)`` makes a :class:`DhcpLan`; every lab is closed at teardown."""

    def __init__(self) -> None:
        self.labs: list[DhcpLan] = []

    def __call__(self, **kwargs: Any) -> DhcpLan:
        lab = DhcpLan(**kwargs)
        self.labs.append(lab)
        return lab

    def close(self) -> list[str]:
        problems: list[str] = []
        for lab in reversed(self.labs):
            problems += lab.close()
        return problems


@pytest.fixture
def lan() -> Iterator[LanFactory]:
    """A factory of DHCP LANs (bridge + dnsmasq namespace), torn down after the test."""
    require_root()
    factory = LanFactory()
    try:
        yield factory
    finally:
        problems = factory.close()
    if problems:
        pytest.fail("lab teardown left problems:\n" + "\n".join(problems))


class DockerCleanup:
    """Creates Docker networks and containers for a test and removes them afterwards."""

    def __init__(self, default_driver: Callable[[], str], host: str | None = None,
                 engine: Engine = ENGINE20) -> None:
        self._default_driver = default_driver
        self.host = host
        self.engine = engine
        self.networks: list[str] = []
        self.containers: list[str] = []

    def docker(self, *args: str, check: bool = True,
               timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
        return docker(*args, check=check, timeout=timeout, host=self.host)

    def track_network(self, name: str) -> str:
        if name not in self.networks:
            self.networks.append(name)
        return name

    def track_container(self, name: str) -> str:
        if name not in self.containers:
            self.containers.append(name)
        return name

    def net_create(self, bridge: str | None = None, *, name: str | None = None,
                   driver: str | None = None, options: Mapping[str, str] | None = None,
                   ipam_null: bool = True, args: Sequence[str] = (),
                   check: bool = True) -> str:
        """``docker network create -d DRIVER [--ipam-driver null] [-o bridge=BR] ...``.

        ``driver`` defaults to the session plugin's name. Returns the network name (tracked
        even if creation fails, so a half-made network is still removed).
        """
        name = self.track_network(name or f"nd-net-{secrets.token_hex(3)}")
        cmd = ["network", "create", "-d", driver or self._default_driver()]
        if ipam_null:
            cmd += ["--ipam-driver", "null"]
        if bridge:
            cmd += ["-o", f"bridge={bridge}"]
        for k, v in (options or {}).items():
            cmd += ["-o", f"{k}={v}"]
        self.docker(*cmd, *args, name, check=check)
        return name

    def run(self, image: str, *cmd: str, network: str | None = None, name: str | None = None,
            mac: str | None = None, detach: bool = False, rm: bool | None = None,
            init: bool = True, args: Sequence[str] = (), check: bool = True,
            timeout: float = 120.0) -> ContainerRun:
        """``docker run`` a container (tracked for removal); ``rm`` defaults to not ``detach``.

        ``mac`` with ``network``: ``--network NET --mac-address MAC`` on 20.10 (API 1.41, where
        the 28 CLI refuses that pair), ``--network name=NET,mac-address=MAC`` on engines with
        a MAC per network (API >= 1.44)."""
        name = self.track_container(name or f"nd-ctr-{secrets.token_hex(4)}")
        argv = ["run", "--name", name]
        if detach:
            argv.append("-d")
        if rm if rm is not None else not detach:
            argv.append("--rm")
        if init:
            argv.append("--init")
        if network and mac and self.engine.mac_per_network:
            argv += ["--network", f"name={network},mac-address={mac}"]
        else:
            if network:
                argv += ["--network", network]
            if mac:
                argv += ["--mac-address", mac]
        res = self.docker(*argv, *args, image, *cmd, check=check, timeout=timeout)
        return ContainerRun(res.args, res.returncode, res.stdout, res.stderr, name=name)

    def cleanup(self) -> list[str]:
        problems: list[str] = []
        for c in reversed(self.containers):
            try:
                res = self.docker("rm", "-f", "-v", c, check=False, timeout=60)
                if res.returncode != 0 and "No such container" not in res.stderr:
                    problems.append(f"docker rm -f {c}: {res.stderr.strip()}")
            except LabError as err:
                problems.append(str(err))
        for n in reversed(self.networks):
            try:
                res = self.docker("network", "rm", n, check=False, timeout=60)
                if res.returncode != 0 and "not found" not in res.stderr \
                        and "No such network" not in res.stderr:
                    problems.append(f"docker network rm {n}: {res.stderr.strip()}")
            except LabError as err:
                problems.append(str(err))
        return problems


class ContainerRun(subprocess.CompletedProcess[str]):
    """A ``docker run`` result that also knows the container's name."""

    def __init__(self, args: Any, returncode: int, stdout: str, stderr: str, *,
                 name: str) -> None:
        super().__init__(args, returncode, stdout, stderr)
        self.name = name


@pytest.fixture
def docker_cleanup(request: pytest.FixtureRequest, dockerd: DockerdHandle,
                   lan: LanFactory) -> Iterator[DockerCleanup]:
    """Track the networks/containers a test makes; remove them (containers first) afterwards.

    Depends on ``lan`` so that containers and networks go before the labs' bridges do.
    """

    def default_driver() -> str:
        p = request.getfixturevalue("plugin")
        assert isinstance(p, Plugin)
        return p.name

    tracker = DockerCleanup(default_driver, host=dockerd.host, engine=dockerd.engine)
    try:
        yield tracker
    finally:
        problems = tracker.cleanup()
    if problems:
        pytest.fail("docker cleanup failed:\n" + "\n".join(problems))
