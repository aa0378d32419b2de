"""The test lab: a real LAN with a DHCP server, a real dockerd, and the plugin, on one machine.

Used by the pytest fixtures in ``tests/conftest.py`` and from the command line::

    python -m tests.lab demo      # dockerd, image, LAN, plugin, two `docker run`s; teardown
    python -m tests.lab lan       # hold a LAN (bridge + dnsmasq) until Ctrl-C, for manual testing
    python -m tests.lab image     # build the busybox test image if it is missing (--engine 28.5)
    python -m tests.lab docker28  # start the private Docker 28.5 daemon (left running)
    python -m tests.lab docker28-stop  # stop it, unmount what it mounted, delete its bridge
    python -m tests.lab cleanup   # remove lab bridges/namespaces/rules a crashed run left behind

Everything needs root except importing this module. Commands (``ip``, ``iptables``, ``dnsmasq``,
``docker``, busybox) run as subprocesses: this is test code, not product code.

Public API
----------
``sh(*args, check=True, timeout=60.0, input=None, env=None) -> CompletedProcess[str]``
    Run a command (text, captured). A failure raises :class:`CommandError` carrying stderr.
``docker(*args, check=True, timeout=120.0, host=None, input=None) -> CompletedProcess[str]``
    The Docker CLI for ``host`` (``docker_client(host)``): :data:`DOCKER` is ``/usr/bin/docker``
    (the 20.10 client that matches Debian's dockerd and accepts ``--mac-address`` with
    ``--network``) when it exists; :data:`DOCKER28_HOST` gets the unpacked 28.5 client, and
    ``register_docker_client(host, client)`` names the client for another private daemon.
``ensure_dockerd(timeout=60.0, *, host=None, extra_args=(), engine=None) -> DockerdHandle``
    Reuse the dockerd on the default socket (or ``host``), or start one; ``handle.stop()``
    stops only a dockerd this call started. ``handle.started``, ``handle.host``,
    ``handle.engine``, ``handle.log_file``, ``handle.log_tail()``. Never starts a second
    default dockerd. ``engine`` (default :data:`ENGINE20`) picks the dockerd binary and PATH.
Engines: ``Engine(name, id, dockerd, client, host, bin_dirs, mac_per_network)``;
    :data:`ENGINE20` (the system's dockerd 20.10 on the default socket, id ``docker20``) and
    :data:`ENGINE28` (Docker 28.5 from Debian forky, unpacked by scripts/docker28.sh into
    :data:`DOCKER28_ROOT`, id ``docker28``); ``engine(name)``, ``selected_engines()`` (from
    ``NET_DHCP_ENGINES``, e.g. ``20.10`` or ``28.5``; default both), ``ensure_engine(engine)``,
    ``engine.socket_path``, ``engine.docker_host`` (for DOCKER_HOST). :data:`COMPOSE_V1`
    (bookworm's 1.29) and :data:`COMPOSE_V2` (forky's 2.40).
``ensure_docker28(timeout=90.0) -> DockerdHandle``
    The shared 28.5 daemon on :data:`DOCKER28_HOST`, reused if running, else started with
    its own data root, exec root, pid file, config file and bridge (``docker28_args()``), its
    own containerd 2.1 and the system's runc; ``stop_docker28()`` stops one by its pid file.
``ensure_image(name=IMAGE, *, host=None) -> str``
    Build the busybox image with ``docker import`` if it is missing (or from an older lab),
    in the daemon on ``host``.
    Its ``sleep`` as PID 1 ignores SIGTERM: run containers with ``--init`` or stop with ``-t 1``.
``DhcpLan(*, subnet=None, dhcp=True, host_ip=False, forward_rule=True, lease="2m", t1=None,
t2=None, reservations=None, range_start=None, range_end=None, router=None, extra_args=())``
    A context manager (setup happens in the constructor). A unique bridge ``ndbr<6 hex>``; a
    namespace ``nd-<6 hex>`` whose veth (``lan0``) holds ``<subnet>.1`` and runs dnsmasq
    exactly as docs/lab-notes.md says (``--no-ping``, range ``.100``-``.200``, router ``.1``);
    optionally ``<subnet>.2`` on the bridge for the host (``host_ip=True``); the rule
    ``iptables -I FORWARD 1 -i BR -o BR -j ACCEPT`` (``forward_rule=True``) that Docker's FORWARD
    DROP policy needs. ``subnet`` defaults to a random free ``10.x.y.0/24``.

    Attributes: ``id``, ``bridge``, ``netns``, ``server_veth``, ``server_if``, ``subnet``
    (IPv4Network), ``prefixlen``, ``server_ip``, ``router``, ``host_address`` (or None),
    ``range_start``, ``range_end``, ``lease``, ``t1``, ``t2``, ``reservations``, ``workdir``,
    ``lease_file``, ``log_file``, ``pid_file``, ``hosts``.

    Methods: ``address(n) -> str`` (the n-th address of the subnet); ``leases() -> list[Lease]``
    (``Lease(expiry, mac, ip, hostname)``, a NamedTuple; hostname None for ``*``);
    ``wait_for_lease(*, mac=None, ip=None, timeout=15.0) -> Lease``; ``log() -> str``;
    ``log_offset() -> int``; ``wait_for_log(pattern, timeout=30.0, since=None) -> re.Match``;
    ``dnsmasq_running() -> bool``; ``stop_dnsmasq()``; ``start_dnsmasq(*, range_start=,
    range_end=, lease=, t1=, t2=, reservations=, router=, extra_args=, clear_leases=False)``
    (overrides persist for later restarts); ``add_host(ip=None, mac=None) -> LanHost``;
    ``close() -> list[str]`` (best effort, idempotent; returns the problems it met).

    IPv6 (all optional, off by default): ``DhcpLan(..., ipv6=False, prefix6=None,
    reservations6=None, ra_interval=None)``. With ``ipv6=True`` the LAN is dual-stack: a ULA
    ``/64`` unique to the lab (``prefix6``, default :func:`pick_prefix6`), ``<prefix6>::1/64`` on
    the server's ``lan0`` (DAD off there, so it and the link-local address are usable at once),
    and dnsmasq also gets ``--enable-ra``, ``--dhcp-range=<prefix6>::100,<prefix6>::1ff,64,
    <lease>`` and ``--dhcp-host=<mac>,[<v6>]`` per ``reservations6`` entry (MAC -> IPv6; one
    option ``--dhcp-host=<mac>,<v4>,[<v6>]`` when the MAC has an IPv4 reservation too);
    ``ra_interval`` (seconds) adds ``--ra-param=lan0,<ra_interval>``. The lab's bridge gets
    ``accept_ra=0`` so the host never takes the lab's RA as a default route. Attributes
    ``ipv6``, ``prefix6`` (IPv6Network or None), ``server_ip6``, ``range6_start``,
    ``range6_end``, ``reservations6``, ``ra_interval``; ``server_link_local`` (a property read
    from the server namespace); ``address6(n)``, ``in_range6(ip)``, ``leases6() ->
    list[Lease6]`` (``Lease6(expiry, iaid, ip, hostname, duid)``), ``wait_for_lease6(*, ip=None,
    duid=None, timeout=15.0)``; ``start_dnsmasq(..., reservations6=)``. ``leases()`` lists the
    IPv4 leases only (the lease file's lines before its ``duid`` line).
``LanHost``: another machine on the LAN: its own namespace (``netns``) with ``eth0`` on the
    bridge, ``mac``, ``ip`` (or None), ``veth`` (host side). ``exec(*cmd)``, ``ping(ip)``,
    ``dhcp(timeout=20.0, hostname=None, configure=True) -> str`` (busybox udhcpc; returns the
    leased IP and, with ``configure``, puts it on ``eth0``). ``str(host)`` is its namespace.
``Plugin(name=None, *, state_dir=None, log_level="trace", extra_args=(), env=None)``
    Runs the plugin from this checkout: ``python -m net_dhcp serve --socket
    /run/docker/plugins/<name>.sock --state-dir <dir> --log-file <dir>/plugin.log`` with
    ``LOG_LEVEL=<log_level>``; the name (default ``net-dhcp-t<6 hex>``) is the Docker driver
    name. ``start(timeout=30.0)``, ``stop(timeout=10.0) -> int | None``, ``kill()``,
    ``restart()``, ``running``, ``log()``, ``output()`` (stdout and stderr), ``log_offset()``,
    ``wait_for_log(pattern, timeout=30.0, since=None)``, ``call(method, payload=None)`` (a raw
    POST to the socket), ``close()`` (stop, remove the socket file and the temp dir).
``lab_leftovers() -> list[str]`` and ``cleanup_leftovers() -> list[str]``: objects with lab names.
Also: ``pick_subnet()`` (a free random 10.x.y.0/24), ``pick_prefix6()`` (a free random ULA
/64), ``random_mac()`` (locally administered), ``DhcpLan.in_range(ip)``,
``DhcpLan.server_exec(*cmd)`` (in the server namespace),
``DhcpLan.names()`` (links and namespaces it made), ``Plugin.command()``, ``Plugin.diagnostics()``.
A new ``Plugin(state_dir=old.state_dir)`` starts a fresh process on an earlier plugin's state.

Set ``NET_DHCP_LAB_KEEP=1`` to keep temp dirs (dnsmasq and plugin logs) after teardown.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import http.client
import ipaddress
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, NamedTuple

REPO_ROOT = Path(__file__).resolve().parent.parent
DOCKER = "/usr/bin/docker" if os.path.exists("/usr/bin/docker") else "docker"
BUSYBOX = "/bin/busybox"
IMAGE = "net-dhcp-test-busybox:latest"
# Bump when the image's contents change: an image with another label is rebuilt.
IMAGE_VERSION = "1"
IMAGE_LABEL = "net-dhcp.lab.image-version"
PLUGIN_DIR = Path("/run/docker/plugins")
DOCKER_PID_FILE = Path("/var/run/docker.pid")
KEEP_ENV = "NET_DHCP_LAB_KEEP"

# Docker 28.5 beside the system's 20.10: unpacked by scripts/docker28.sh (same variable), run as
# a private daemon with paths of its own (see ensure_docker28).
DOCKER28_DIR = Path(os.environ.get("NET_DHCP_DOCKER28_DIR", "/var/cache/net-dhcp-docker28"))
DOCKER28_ROOT = DOCKER28_DIR / "root"
DOCKER28_SOCKET = Path("/run/net-dhcp-docker28.sock")
DOCKER28_HOST = f"unix://{DOCKER28_SOCKET}"
DOCKER28_DATA_ROOT = Path("/var/lib/net-dhcp-docker28")
DOCKER28_EXEC_ROOT = Path("/run/net-dhcp-docker28")
DOCKER28_PID_FILE = Path("/run/net-dhcp-docker28.pid")
DOCKER28_BRIDGE = "nd28br0"
DEFAULT_DOCKER_SOCKET = Path("/var/run/docker.sock")
COMPOSE_V1 = "/usr/bin/docker-compose"  # bookworm's docker-compose 1.29 (scripts/setup.sh)
COMPOSE_V2 = str(DOCKER28_ROOT / "usr/bin/docker-compose")  # forky's 2.40 (scripts/docker28.sh)
ENGINES_ENV = "NET_DHCP_ENGINES"

BRIDGE_PREFIX = "ndbr"
NETNS_PREFIX = "nd-"
VETH_PREFIXES = ("ndsv", "ndh")
_SBIN_DIRS = ("/usr/local/sbin", "/usr/sbin", "/sbin")
_TAKEN_SUBNETS: set[ipaddress.IPv4Network] = set()
_TAKEN_PREFIXES6: set[ipaddress.IPv6Network] = set()


class LabError(RuntimeError):
    """The lab could not do what a test asked; the message says why."""


class CommandError(LabError):
    """A command failed; carries its argv, exit status and output."""

    def __init__(self, cmd: Sequence[str], returncode: int | None, stdout: str, stderr: str,
                 note: str = "") -> None:
        self.cmd = list(cmd)
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        status = "timed out" if returncode is None else f"exited {returncode}"
        msg = f"`{' '.join(self.cmd)}` {status}{note}"
        if stderr.strip():
            msg += f"\n--- stderr ---\n{tail(stderr, 30)}"
        if stdout.strip():
            msg += f"\n--- stdout ---\n{tail(stdout, 15)}"
        super().__init__(msg)


# --------------------------------------------------------------------------- helpers


def tail(text: str, lines: int = 40) -> str:
    """The last ``lines`` lines of ``text``."""
    return "\n".join(text.rstrip("\n").splitlines()[-lines:])


def is_root() -> bool:
    return os.geteuid() == 0


def keep_temp() -> bool:
    return os.environ.get(KEEP_ENV) == "1"


def tool(name: str) -> str:
    """Absolute path of a command, looking in the sbin dirs too (PATH may lack them)."""
    found = shutil.which(name)
    if found:
        return found
    for d in _SBIN_DIRS:
        cand = os.path.join(d, name)
        if os.access(cand, os.X_OK):
            return cand
    raise LabError(f"command {name!r} not found: run scripts/setup.sh (as root) to install it")


def _text(data: str | bytes | None) -> str:
    if data is None:
        return ""
    if isinstance(data, bytes):
        return data.decode(errors="replace")
    return data


def sh(*args: str, check: bool = True, timeout: float = 60.0, input: str | None = None,
       env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run a command, text in and out, captured; raise CommandError on failure if ``check``."""
    argv = [tool(args[0]) if "/" not in args[0] else args[0], *args[1:]]
    full_env = None if env is None else {**os.environ, **env}
    try:
        res = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                             input=input, env=full_env, check=False)
    except subprocess.TimeoutExpired as err:
        raise CommandError(argv, None, _text(err.stdout), _text(err.stderr),
                           f" after {timeout:g} s") from err
    if check and res.returncode != 0:
        raise CommandError(argv, res.returncode, res.stdout, res.stderr)
    return res


def docker(*args: str, check: bool = True, timeout: float = 120.0, host: str | None = None,
           input: str | None = None) -> subprocess.CompletedProcess[str]:
    """The Docker CLI for ``host`` (:func:`docker_client`: :data:`DOCKER`, or the 28.5 client
    for the 28.5 daemon); ``host`` is passed as ``-H``."""
    prefix = [docker_client(host)]
    if host:
        prefix += ["-H", host]
    return sh(*prefix, *args, check=check, timeout=timeout, input=input)


def wait_until(predicate: Callable[[], bool], timeout: float, what: str,
               interval: float = 0.1, detail: Callable[[], str] | None = None) -> None:
    """Poll ``predicate`` until true; raise LabError naming ``what`` on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return
        if time.monotonic() >= deadline:
            extra = f"\n{detail()}" if detail else ""
            raise LabError(f"timed out after {timeout:g} s waiting for {what}{extra}")
        time.sleep(interval)


def _wait_for_text(read: Callable[[int], str], pattern: str | re.Pattern[str], timeout: float,
                   since: int, what: str) -> re.Match[str]:
    rx = re.compile(pattern, re.MULTILINE) if isinstance(pattern, str) else pattern
    deadline = time.monotonic() + timeout
    while True:
        text = read(since)
        m = rx.search(text)
        if m:
            return m
        if time.monotonic() >= deadline:
            raise LabError(f"timed out after {timeout:g} s waiting for {rx.pattern!r} in {what}"
                           f"\n--- {what} (tail) ---\n{tail(text, 40)}")
        time.sleep(0.05)


def _read_from(path: Path, offset: int = 0) -> str:
    try:
        with path.open("rb") as f:
            f.seek(offset)
            return f.read().decode(errors="replace")
    except FileNotFoundError:
        return ""


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def random_mac() -> str:
    """A random locally administered unicast MAC."""
    b = bytearray(secrets.token_bytes(6))
    b[0] = (b[0] & 0xFC) | 0x02
    return ":".join(f"{x:02x}" for x in b)


@contextlib.contextmanager
def scratch_netns(tag: str) -> Iterator[str]:
    """A new, empty network namespace (its name: NETNS_PREFIX, `tag`, random, so `cleanup`
    finds it after a crash), deleted after the block."""
    name = f"{NETNS_PREFIX}{tag}-{secrets.token_hex(4)}"
    sh("ip", "netns", "add", name)
    try:
        yield name
    finally:
        sh("ip", "netns", "del", name, check=False)


def _link_names(netns: str | None = None) -> list[str]:
    cmd = ["ip", *(["-n", netns] if netns else []), "-j", "link", "show"]
    out = sh(*cmd).stdout
    return [str(link["ifname"]) for link in json.loads(out or "[]")]


def _netns_names() -> list[str]:
    out = sh("ip", "-j", "netns", "list").stdout.strip()
    return [str(ns["name"]) for ns in json.loads(out or "[]")]


def _forward_rules() -> list[str]:
    return sh("iptables", "-w", "-S", "FORWARD").stdout.splitlines()


def _used_networks() -> list[ipaddress.IPv4Network]:
    used: list[ipaddress.IPv4Network] = []
    for route in json.loads(sh("ip", "-4", "-j", "route", "show", "table", "all").stdout or "[]"):
        dst = route.get("dst")
        if not dst or dst == "default":
            continue
        used.append(ipaddress.IPv4Network(dst if "/" in dst else f"{dst}/32", strict=False))
    for link in json.loads(sh("ip", "-4", "-j", "addr", "show").stdout or "[]"):
        for a in link.get("addr_info", []):
            used.append(ipaddress.IPv4Network(f"{a['local']}/{a['prefixlen']}", strict=False))
    return used


def pick_subnet() -> ipaddress.IPv4Network:
    """A random 10.x.y.0/24 that overlaps no route or address of this host (nor another lab)."""
    used = _used_networks()
    for _ in range(500):
        cand = ipaddress.IPv4Network(
            f"10.{secrets.randbelow(254) + 1}.{secrets.randbelow(256)}.0/24")
        if cand in _TAKEN_SUBNETS or any(cand.overlaps(u) for u in used):
            continue
        _TAKEN_SUBNETS.add(cand)
        return cand
    raise LabError("no free 10.x.y.0/24 subnet found (does a route cover all of 10.0.0.0/8?)")


def _used_networks6() -> list[ipaddress.IPv6Network]:
    used: list[ipaddress.IPv6Network] = []
    found: list[str] = []
    for route in json.loads(sh("ip", "-6", "-j", "route", "show", "table", "all").stdout or "[]"):
        dst = route.get("dst")
        if dst and dst != "default":
            found.append(dst if "/" in dst else f"{dst}/128")
    for link in json.loads(sh("ip", "-6", "-j", "addr", "show").stdout or "[]"):
        found += [f"{a['local']}/{a['prefixlen']}" for a in link.get("addr_info", [])]
    for net in found:
        with contextlib.suppress(ValueError):
            used.append(ipaddress.IPv6Network(net, strict=False))
    return used


def pick_prefix6() -> ipaddress.IPv6Network:
    """A random ULA /64 (fd00::/8, RFC 4193) that overlaps no IPv6 route or address of this host
    (nor another lab of this process)."""
    used = _used_networks6()
    for _ in range(100):
        bits = (0xFD << 56 | secrets.randbits(56)) << 64
        cand = ipaddress.IPv6Network((bits, 64))
        if cand in _TAKEN_PREFIXES6 or any(cand.overlaps(u) for u in used):
            continue
        _TAKEN_PREFIXES6.add(cand)
        return cand
    raise LabError("no free ULA /64 found (does a route cover all of fd00::/8?)")


# --------------------------------------------------------------------------- the LAN


class Lease(NamedTuple):
    """One line of dnsmasq's lease file."""

    expiry: int
    mac: str
    ip: str
    hostname: str | None


class Lease6(NamedTuple):
    """One IPv6 line of dnsmasq's lease file (after its ``duid <server DUID>`` line)."""

    expiry: int
    iaid: str
    ip: str
    hostname: str | None
    duid: str


_UDHCPC_SCRIPT = """#!/bin/sh
# Written by tests/lab.py: record what busybox udhcpc was given; configure nothing.
case "$1" in
  bound|renew) echo "ip=$ip mask=$mask router=$router lease=$lease" > "$LAB_UDHCPC_OUT" ;;
esac
exit 0
"""


@dataclass
class LanHost:
    """Another machine on the lab LAN: a namespace with ``eth0`` on the bridge."""

    lab: DhcpLan = field(repr=False)
    netns: str
    veth: str
    mac: str
    ip: str | None = None
    ifname: str = "eth0"

    def __str__(self) -> str:
        return self.netns

    def exec(self, *cmd: str, check: bool = True, timeout: float = 60.0,
             env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        """Run a command inside this host's namespace."""
        return sh("ip", "netns", "exec", self.netns, *cmd, check=check, timeout=timeout, env=env)

    def ping(self, ip: str, count: int = 1, wait_s: int = 2,
             check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.exec(BUSYBOX, "ping", "-c", str(count), "-W", str(wait_s), ip, check=check)

    def dhcp(self, timeout: float = 20.0, hostname: str | None = None,
             configure: bool = True) -> str:
        """Get a lease with busybox udhcpc on ``eth0``; return the IP (and configure it)."""
        script = self.lab.workdir / "udhcpc.sh"
        if not script.exists():
            script.write_text(_UDHCPC_SCRIPT)
            script.chmod(0o755)
        out = self.lab.workdir / f"udhcpc-{self.netns}.out"
        out.unlink(missing_ok=True)
        cmd = [BUSYBOX, "udhcpc", "-f", "-q", "-n", "-i", self.ifname, "-t", "5", "-T", "1",
               "-A", "1", "-s", str(script)]
        if hostname:
            cmd += ["-x", f"hostname:{hostname}"]
        res = self.exec(*cmd, check=False, timeout=timeout, env={"LAB_UDHCPC_OUT": str(out)})
        if res.returncode != 0 or not out.exists():
            raise LabError(f"udhcpc in {self.netns} got no lease (exit {res.returncode})\n"
                           f"{tail(res.stderr + res.stdout, 20)}\n--- dnsmasq log (tail) ---\n"
                           f"{tail(self.lab.log(), 20)}")
        fields = dict(kv.split("=", 1) for kv in out.read_text().split())
        ip = fields["ip"]
        if configure:
            mask = fields.get("mask") or str(self.lab.prefixlen)
            sh("ip", "-n", self.netns, "addr", "replace", f"{ip}/{mask}", "dev", self.ifname)
            self.ip = ip
        return ip


class _LogFile:
    """A log file that tests read and wait on; subclasses set ``log_file`` and ``log_name``."""

    log_file: Path
    log_name: str

    def log(self, since: int = 0) -> str:
        return _read_from(self.log_file, since)

    def log_offset(self) -> int:
        return _size(self.log_file)

    def wait_for_log(self, pattern: str | re.Pattern[str], timeout: float = 30.0,
                     since: int | None = None) -> re.Match[str]:
        """Poll the log (from byte offset ``since``) until ``pattern`` matches."""
        return _wait_for_text(self.log, pattern, timeout, since or 0, self.log_name)


class DhcpLan(_LogFile):
    """A LAN stand-in: bridge + dnsmasq in its own namespace; see the module docstring."""

    log_name = "dnsmasq log"

    def __init__(self, *, subnet: str | ipaddress.IPv4Network | None = None, dhcp: bool = True,
                 host_ip: bool = False, forward_rule: bool = True, lease: str = "2m",
                 t1: int | None = None, t2: int | None = None,
                 reservations: Mapping[str, str] | None = None,
                 range_start: str | None = None, range_end: str | None = None,
                 router: str | None = None, extra_args: Sequence[str] = (),
                 ipv6: bool = False, prefix6: str | ipaddress.IPv6Network | None = None,
                 reservations6: Mapping[str, str] | None = None,
                 ra_interval: int | None = None, rapid_commit: bool = False) -> None:
        self.id = secrets.token_hex(3)
        self.bridge = f"{BRIDGE_PREFIX}{self.id}"
        self.netns = f"{NETNS_PREFIX}{self.id}"
        self.server_veth = f"ndsv{self.id}"
        self.server_if = "lan0"
        self.subnet = (ipaddress.IPv4Network(subnet) if subnet is not None else pick_subnet())
        self.prefixlen = self.subnet.prefixlen
        self.server_ip = self.address(1)
        self.router = router or self.server_ip
        self.host_address = self.address(2) if host_ip else None
        self.range_start = range_start or self.address(100)
        self.range_end = range_end or self.address(200)
        self.lease = lease
        self.t1 = t1
        self.t2 = t2
        self.rapid_commit = rapid_commit  # dnsmasq --dhcp-rapid-commit (RFC 4039)
        self.reservations: dict[str, str] = dict(reservations or {})
        self.extra_args: list[str] = list(extra_args)
        self.ipv6 = ipv6
        self.prefix6: ipaddress.IPv6Network | None = None
        if ipv6:
            self.prefix6 = (ipaddress.IPv6Network(prefix6) if prefix6 is not None
                            else pick_prefix6())
            if self.prefix6.prefixlen != 64:
                _TAKEN_PREFIXES6.discard(self.prefix6)
                raise LabError(f"prefix6 must be a /64 (dnsmasq's minimum), got {self.prefix6}")
        self.server_ip6 = self.address6(1) if ipv6 else None
        self.range6_start = self.address6(0x100) if ipv6 else None
        self.range6_end = self.address6(0x1FF) if ipv6 else None
        self.reservations6: dict[str, str] = dict(reservations6 or {})
        self.ra_interval = ra_interval
        self.hosts: list[LanHost] = []
        self.workdir = Path(tempfile.mkdtemp(prefix=f"net-dhcp-lab-{self.id}-"))
        self.lease_file = self.workdir / "dnsmasq.leases"
        self.log_file = self.workdir / "dnsmasq.log"
        self.pid_file = self.workdir / "dnsmasq.pid"
        self.stderr_file = self.workdir / "dnsmasq.stderr"
        self._dnsmasq: subprocess.Popen[bytes] | None = None
        self._rule: list[str] | None = None
        self._created_bridge = False
        self._created_netns = False
        self._closed = False
        try:
            self._setup(forward_rule)
            if dhcp:
                self.start_dnsmasq()
        except BaseException:
            self.close()
            raise

    # -- setup / teardown

    def _setup(self, forward_rule: bool) -> None:
        if not is_root():
            raise LabError("DhcpLan needs root (bridges, namespaces, iptables)")
        sh("ip", "link", "add", self.bridge, "type", "bridge")
        self._created_bridge = True
        if self.ipv6:
            # The host must not take the lab's RA (a default route via the lab) on the bridge.
            Path(f"/proc/sys/net/ipv6/conf/{self.bridge}/accept_ra").write_text("0\n")
        sh("ip", "link", "set", self.bridge, "up")
        sh("ip", "netns", "add", self.netns)
        self._created_netns = True
        sh("ip", "link", "add", self.server_veth, "type", "veth",
           "peer", "name", self.server_if, "netns", self.netns)
        sh("ip", "link", "set", self.server_veth, "master", self.bridge, "up")
        sh("ip", "-n", self.netns, "link", "set", "lo", "up")
        sh("ip", "-n", self.netns, "addr", "add", f"{self.server_ip}/{self.prefixlen}",
           "dev", self.server_if)
        if self.server_ip6 is not None:
            # No DAD on the server: its link-local and global addresses are usable (by dnsmasq's
            # RA and DHCPv6) the moment the link is up; and it is a router, not an RA client:
            # forwarding on, as on a LAN's router, so a Router Solicitation's source MAC goes
            # into its neighbour cache (RFC 4861 6.2.6), where dnsmasq looks up a DHCPv6
            # client's MAC. Nothing is routed: the namespace has no other link.
            for key, value in (("accept_dad", 0), ("accept_ra", 0), ("forwarding", 1)):
                self.server_exec(tool("sysctl"), "-q", "-w",
                                 f"net.ipv6.conf.{self.server_if}.{key}={value}")
            sh("ip", "-n", self.netns, "addr", "add", f"{self.server_ip6}/64", "dev",
               self.server_if, "nodad")
        sh("ip", "-n", self.netns, "link", "set", self.server_if, "up")
        if self.host_address:
            sh("ip", "addr", "add", f"{self.host_address}/{self.prefixlen}", "dev", self.bridge)
        if forward_rule:
            rule = ["FORWARD", "-i", self.bridge, "-o", self.bridge, "-j", "ACCEPT"]
            sh("iptables", "-w", "-I", rule[0], "1", *rule[1:])
            self._rule = rule

    def close(self) -> list[str]:
        """Tear everything down, best effort; return (and print) the problems met."""
        if self._closed:
            return []
        self._closed = True
        problems: list[str] = []

        def step(what: str, fn: Callable[[], object]) -> None:
            try:
                fn()
            except Exception as err:  # noqa: BLE001 - teardown goes on whatever fails
                problems.append(f"{what}: {err}")

        step("stop dnsmasq", self.stop_dnsmasq)
        for host in self.hosts:
            step(f"delete veth {host.veth}", functools.partial(self._del_link, host.veth))
            step(f"delete netns {host.netns}", functools.partial(self._del_netns, host.netns))
        if self._created_netns:
            step(f"delete veth {self.server_veth}", lambda: self._del_link(self.server_veth))
            step(f"delete netns {self.netns}", lambda: self._del_netns(self.netns))
        if self._created_bridge:
            step(f"delete bridge {self.bridge}", lambda: self._del_link(self.bridge))
        if self._rule is not None:
            rule = self._rule
            step("delete iptables rule", lambda: sh("iptables", "-w", "-D", *rule))
        _TAKEN_SUBNETS.discard(self.subnet)
        if self.prefix6 is not None:
            _TAKEN_PREFIXES6.discard(self.prefix6)
        if keep_temp():
            print(f"lab {self.id}: kept {self.workdir}", file=sys.stderr)
        else:
            step("remove workdir", lambda: shutil.rmtree(self.workdir))
        for p in problems:
            print(f"lab {self.id} teardown: {p}", file=sys.stderr)
        return problems

    @staticmethod
    def _del_link(name: str) -> None:
        res = sh("ip", "link", "del", name, check=False)
        if res.returncode != 0 and "Cannot find device" not in res.stderr:
            raise CommandError(["ip", "link", "del", name], res.returncode, res.stdout,
                               res.stderr)

    @staticmethod
    def _del_netns(name: str) -> None:
        for pid in sh("ip", "netns", "pids", name, check=False).stdout.split():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid), signal.SIGKILL)
        res = sh("ip", "netns", "del", name, check=False)
        if res.returncode != 0 and "No such file" not in res.stderr:
            raise CommandError(["ip", "netns", "del", name], res.returncode, res.stdout,
                               res.stderr)

    def __enter__(self) -> DhcpLan:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<DhcpLan {self.bridge} {self.subnet} netns={self.netns}>"

    # -- addresses

    def address(self, n: int) -> str:
        """The n-th address of the subnet (1 = the server)."""
        return str(self.subnet.network_address + n)

    def in_range(self, ip: str) -> bool:
        a = ipaddress.IPv4Address(ip)
        return (ipaddress.IPv4Address(self.range_start) <= a
                <= ipaddress.IPv4Address(self.range_end))

    def address6(self, n: int) -> str:
        """The n-th address of the IPv6 prefix (1 = the server); LabError without ``ipv6``."""
        if self.prefix6 is None:
            raise LabError("this lab has no IPv6 (DhcpLan(ipv6=True))")
        return str(self.prefix6.network_address + n)

    def in_range6(self, ip: str) -> bool:
        """True if ``ip`` is in dnsmasq's DHCPv6 pool (``<prefix6>::100``-``::1ff``)."""
        if self.range6_start is None or self.range6_end is None:
            return False
        a = ipaddress.IPv6Address(ip)
        return (ipaddress.IPv6Address(self.range6_start) <= a
                <= ipaddress.IPv6Address(self.range6_end))

    @property
    def server_link_local(self) -> str:
        """The link-local address of the server's ``lan0`` (the RA's source), read from its
        namespace."""
        out = sh("ip", "-n", self.netns, "-6", "-j", "addr", "show", "dev", self.server_if,
                 "scope", "link").stdout
        for link in json.loads(out or "[]"):
            for a in link.get("addr_info", []):
                if a.get("family") == "inet6" and a.get("scope") == "link":
                    return str(a["local"])
        raise LabError(f"{self.server_if} in {self.netns} has no IPv6 link-local address")

    @contextlib.contextmanager
    def router_advert_storm(self, every_s: float = 0.001) -> Iterator[None]:
        """While in the block, the server's ``lan0`` sends a Router Advertisement (router
        lifetime 1800 s, no options) to all-nodes every `every_s`: an RA is on the LAN at
        any moment a container's interface comes up. Only inside the lab's namespace."""
        code = (
            "import socket, struct, time\n"
            "ra = struct.pack('!BBHBBHII', 134, 0, 0, 64, 0x80, 1800, 0, 0)\n"
            "s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)\n"
            f"s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, b'{self.server_if}')\n"
            "s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)\n"
            f"to = ('ff02::1', 0, 0, socket.if_nametoindex('{self.server_if}'))\n"
            "s.sendto(ra, to)\n"
            "print('sending', flush=True)\n"
            "while True:\n"
            f"    time.sleep({every_s})\n"
            "    s.sendto(ra, to)\n"
        )
        proc = subprocess.Popen(["ip", "netns", "exec", self.netns, sys.executable, "-c", code],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            assert proc.stdout is not None
            assert proc.stderr is not None
            if proc.stdout.readline() != b"sending\n":  # the first RA went, or it died
                proc.wait(timeout=10)
                raise LabError(f"the RA sender exited {proc.returncode}: "
                               f"{_text(proc.stderr.read())}")
            yield
        finally:
            proc.kill()
            proc.wait(timeout=10)
            for pipe in (proc.stdout, proc.stderr):
                if pipe is not None:
                    pipe.close()

    # -- dnsmasq

    def dnsmasq_args(self) -> list[str]:
        mask = str(self.subnet.netmask)
        args = [
            tool("dnsmasq"), "--keep-in-foreground", "--conf-file=/dev/null", "--port=0",
            f"--interface={self.server_if}", "--bind-interfaces", "--except-interface=lo",
            f"--dhcp-range={self.range_start},{self.range_end},{mask},{self.lease}",
            f"--dhcp-option=option:router,{self.router}", "--dhcp-authoritative",
            f"--dhcp-leasefile={self.lease_file}", f"--pid-file={self.pid_file}", "--log-dhcp",
            f"--log-facility={self.log_file}", "--user=root", "--no-ping",
        ]
        if self.t1 is not None:
            args.append(f"--dhcp-option=option:T1,{self.t1}")
        if self.t2 is not None:
            args.append(f"--dhcp-option=option:T2,{self.t2}")
        if self.rapid_commit:
            args.append("--dhcp-rapid-commit")
        if not self.ipv6:
            args += [f"--dhcp-host={mac},{ip}" for mac, ip in self.reservations.items()]
            return args + self.extra_args
        v6 = {mac.lower(): ip for mac, ip in self.reservations6.items()}
        for mac, ip in self.reservations.items():
            both = v6.pop(mac.lower(), None)
            args.append(f"--dhcp-host={mac},{ip}" + (f",[{both}]" if both else ""))
        args += [f"--dhcp-host={mac},[{ip}]" for mac, ip in v6.items()]
        args += [f"--dhcp-range={self.range6_start},{self.range6_end},64,{self.lease}",
                 "--enable-ra"]
        if self.ra_interval is not None:
            args.append(f"--ra-param={self.server_if},{self.ra_interval}")
        return args + self.extra_args

    def dnsmasq_running(self) -> bool:
        return self._dnsmasq is not None and self._dnsmasq.poll() is None

    def start_dnsmasq(self, *, range_start: str | None = None, range_end: str | None = None,
                      lease: str | None = None, t1: int | None = None, t2: int | None = None,
                      reservations: Mapping[str, str] | None = None, router: str | None = None,
                      extra_args: Sequence[str] | None = None, clear_leases: bool = False,
                      timeout: float = 10.0,
                      reservations6: Mapping[str, str] | None = None) -> None:
        """Start dnsmasq; given overrides replace the lab's settings from now on."""
        if self._closed:
            raise LabError("lab is closed")
        if self.dnsmasq_running():
            raise LabError("dnsmasq is already running: stop_dnsmasq() first")
        self.range_start = range_start or self.range_start
        self.range_end = range_end or self.range_end
        self.lease = lease or self.lease
        self.t1 = self.t1 if t1 is None else t1
        self.t2 = self.t2 if t2 is None else t2
        self.router = router or self.router
        if reservations is not None:
            self.reservations = dict(reservations)
        if extra_args is not None:
            self.extra_args = list(extra_args)
        if reservations6 is not None:
            self.reservations6 = dict(reservations6)
        if clear_leases:
            self.lease_file.unlink(missing_ok=True)
        offset = self.log_offset()
        with self.stderr_file.open("ab") as err:
            self._dnsmasq = subprocess.Popen(
                [tool("ip"), "netns", "exec", self.netns, *self.dnsmasq_args()],
                stdin=subprocess.DEVNULL, stdout=err, stderr=err, start_new_session=True)
        proc = self._dnsmasq
        deadline = time.monotonic() + timeout
        started = r"router advertisement on" if self.ipv6 else r"DHCP, IP range"
        while not re.search(started, _read_from(self.log_file, offset)):
            if proc.poll() is not None or time.monotonic() > deadline:
                self.stop_dnsmasq()
                raise LabError(
                    f"dnsmasq in {self.netns} did not start (exit {proc.returncode})\n"
                    f"--- stderr ---\n{tail(_read_from(self.stderr_file), 20)}\n"
                    f"--- log ---\n{tail(_read_from(self.log_file, offset), 20)}")
            time.sleep(0.02)

    def stop_dnsmasq(self, timeout: float = 5.0) -> None:
        """Stop dnsmasq (SIGTERM, then SIGKILL) and wait for it."""
        proc, self._dnsmasq = self._dnsmasq, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout)
        # `ip netns exec` execs dnsmasq in place, but make sure of the pid file's process too.
        with contextlib.suppress(FileNotFoundError, ValueError, ProcessLookupError):
            pid = int(self.pid_file.read_text().strip())
            if proc is None or pid != proc.pid:
                os.kill(pid, signal.SIGKILL)
        self.pid_file.unlink(missing_ok=True)

    def kill_dnsmasq(self) -> None:
        """SIGKILL dnsmasq, as a crash would (its lease file stays as it was)."""
        proc, self._dnsmasq = self._dnsmasq, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(10)
        self.pid_file.unlink(missing_ok=True)

    def leases(self) -> list[Lease]:
        """dnsmasq's lease file: (expiry, mac, ip, hostname) per lease."""
        try:
            text = self.lease_file.read_text()
        except FileNotFoundError:
            return []
        out = []
        for line in text.splitlines():
            parts = line.split()
            if parts[:1] == ["duid"]:
                break  # the IPv6 leases follow: see leases6()
            if len(parts) >= 4 and parts[0].isdigit():
                out.append(Lease(int(parts[0]), parts[1].lower(), parts[2],
                                 None if parts[3] == "*" else parts[3]))
        return out

    def wait_for_lease(self, *, mac: str | None = None, ip: str | None = None,
                       timeout: float = 15.0) -> Lease:
        """Wait until the lease file holds a lease matching ``mac`` and/or ``ip``."""
        found: list[Lease] = []

        def match() -> bool:
            found[:] = [le for le in self.leases()
                        if (mac is None or le.mac == mac.lower()) and (ip is None or le.ip == ip)]
            return bool(found)

        wait_until(match, timeout, f"a lease for mac={mac} ip={ip} in {self.lease_file}",
                   detail=lambda: f"leases: {self.leases()}\n--- dnsmasq log ---\n"
                                  f"{tail(self.log(), 20)}")
        return found[0]

    def leases6(self) -> list[Lease6]:
        """dnsmasq's IPv6 leases: the lines after ``duid <server DUID>``, each ``expiry iaid
        address hostname client-DUID``."""
        try:
            lines = self.lease_file.read_text().splitlines()
        except FileNotFoundError:
            return []
        starts = [i for i, line in enumerate(lines) if line.split()[:1] == ["duid"]]
        out = []
        for line in lines[starts[0] + 1:] if starts else []:
            parts = line.split()
            if len(parts) >= 5 and parts[0].isdigit():
                out.append(Lease6(int(parts[0]), parts[1], parts[2],
                                  None if parts[3] == "*" else parts[3], parts[4].lower()))
        return out

    def wait_for_lease6(self, *, ip: str | None = None, duid: str | None = None,
                        timeout: float = 15.0) -> Lease6:
        """Wait until the lease file holds an IPv6 lease matching ``ip`` and/or ``duid``."""
        found: list[Lease6] = []

        def match() -> bool:
            found[:] = [le for le in self.leases6()
                        if (ip is None or ipaddress.IPv6Address(le.ip)
                            == ipaddress.IPv6Address(ip))
                        and (duid is None or le.duid == duid.lower())]
            return bool(found)

        wait_until(match, timeout, f"an IPv6 lease for ip={ip} duid={duid} in {self.lease_file}",
                   detail=lambda: f"leases6: {self.leases6()}\n--- dnsmasq log ---\n"
                                  f"{tail(self.log(), 20)}")
        return found[0]

    # -- other machines on the LAN

    def add_host(self, ip: str | None = None, mac: str | None = None) -> LanHost:
        """Another machine on the LAN (its own namespace); with ``ip`` it answers ARP/ping."""
        n = len(self.hosts)
        if n >= 100:
            raise LabError("too many hosts on one lab")
        netns, veth = f"{self.netns}-h{n}", f"ndh{self.id}{n}"
        host = LanHost(self, netns, veth, mac or "")
        self.hosts.append(host)  # before creating anything, so close() removes it
        sh("ip", "netns", "add", netns)
        peer = ["peer", "name", host.ifname, *(["address", mac] if mac else []), "netns", netns]
        sh("ip", "link", "add", veth, "type", "veth", *peer)
        sh("ip", "link", "set", veth, "master", self.bridge, "up")
        sh("ip", "-n", netns, "link", "set", "lo", "up")
        sh("ip", "-n", netns, "link", "set", host.ifname, "up")
        info = json.loads(sh("ip", "-n", netns, "-j", "link", "show", host.ifname).stdout)
        host.mac = str(info[0]["address"])
        if ip:
            sh("ip", "-n", netns, "addr", "add", f"{ip}/{self.prefixlen}", "dev", host.ifname)
            host.ip = ip
        return host

    def server_exec(self, *cmd: str, check: bool = True,
                    timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        """Run a command in the DHCP server's namespace."""
        return sh("ip", "netns", "exec", self.netns, *cmd, check=check, timeout=timeout)

    def names(self) -> dict[str, list[str]]:
        """Every kernel object name this lab creates (for leak checks)."""
        return {
            "links": [self.bridge, self.server_veth, *(h.veth for h in self.hosts)],
            "netns": [self.netns, *(h.netns for h in self.hosts)],
        }


# --------------------------------------------------------------------------- engines


@dataclass(frozen=True)
class Engine:
    """A Docker engine the tests run on: its dockerd, its CLI and the daemon's socket.

    ``host`` is the engine's shared daemon (None: the system's default socket); ``bin_dirs``
    go first on dockerd's PATH (its own containerd and docker-init); ``mac_per_network``:
    the API is >= 1.44, where a MAC is given per network (``--network name=N,mac-address=M``).
    """

    name: str
    id: str
    dockerd: str
    client: str
    host: str | None
    bin_dirs: tuple[str, ...] = ()
    mac_per_network: bool = False

    @property
    def socket_path(self) -> Path:
        """The daemon's API socket as a path (for ``--docker-socket`` and DOCKER_HOST)."""
        return host_socket(self.host)

    @property
    def docker_host(self) -> str:
        """``unix://`` URL of the daemon's socket, for DOCKER_HOST."""
        return self.host or f"unix://{DEFAULT_DOCKER_SOCKET}"

    def dockerd_env(self) -> dict[str, str]:
        """Environment overrides for this engine's dockerd."""
        if not self.bin_dirs:
            return {}
        path = os.pathsep.join([*self.bin_dirs, os.environ.get("PATH", ""), *_SBIN_DIRS])
        return {"PATH": path}

    def missing(self) -> str | None:
        """Why this engine cannot run here (None if its binaries are present)."""
        for f in (self.dockerd, self.client):
            if "/" in f and not os.access(f, os.X_OK):
                return (f"{f} is missing: Docker {self.name} is not unpacked "
                        f"(run scripts/docker28.sh or scripts/setup.sh as root)")
        return None


def host_socket(host: str | None) -> Path:
    """The socket path of a ``unix://`` Docker host (None: the default socket)."""
    if host is None:
        return DEFAULT_DOCKER_SOCKET
    if not host.startswith("unix://"):
        raise LabError(f"not a unix socket Docker host: {host}")
    return Path(host.removeprefix("unix://"))


ENGINE20 = Engine(name="20.10", id="docker20", dockerd="dockerd", client=DOCKER, host=None)
ENGINE28 = Engine(name="28.5", id="docker28", dockerd=str(DOCKER28_ROOT / "usr/sbin/dockerd"),
                  client=str(DOCKER28_ROOT / "usr/bin/docker"), host=DOCKER28_HOST,
                  bin_dirs=(str(DOCKER28_ROOT / "usr/bin"), str(DOCKER28_ROOT / "usr/sbin")),
                  mac_per_network=True)
ENGINES: dict[str, Engine] = {ENGINE20.name: ENGINE20, ENGINE28.name: ENGINE28}

# The CLI to use per Docker host (``-H``); any other host gets :data:`DOCKER`.
_DOCKER_CLIENTS: dict[str, str] = {DOCKER28_HOST: ENGINE28.client}


def docker_client(host: str | None = None) -> str:
    """Absolute path of the Docker CLI for ``host`` (see :func:`register_docker_client`)."""
    client = _DOCKER_CLIENTS.get(host, DOCKER) if host else DOCKER
    if "/" not in client:
        return tool(client)
    if not os.access(client, os.X_OK):
        raise LabError(f"Docker CLI {client} for {host} is missing (scripts/docker28.sh)")
    return client


def register_docker_client(host: str, client: str) -> None:
    """Use ``client`` for ``docker(..., host=host)`` (e.g. a private daemon of another engine)."""
    _DOCKER_CLIENTS[host] = client


def engine(name: str) -> Engine:
    """An engine by name: ``20.10``/``20``/``docker20`` or ``28.5``/``28``/``docker28``."""
    for e in ENGINES.values():
        if name.strip() in (e.name, e.id, e.name.split(".")[0]):
            return e
    raise LabError(f"unknown Docker engine {name!r}: use one of "
                   f"{', '.join(ENGINES)} ({', '.join(e.id for e in ENGINES.values())})")


def selected_engines() -> list[Engine]:
    """The engines the end-to-end tests run on: ``NET_DHCP_ENGINES`` (comma-separated, e.g.
    ``20.10`` or ``28.5``), default all of :data:`ENGINES` in order."""
    raw = os.environ.get(ENGINES_ENV, "").strip()
    if not raw:
        return list(ENGINES.values())
    chosen: list[Engine] = []
    for part in raw.replace(" ", ",").split(","):
        if part and engine(part) not in chosen:
            chosen.append(engine(part))
    return chosen


# --------------------------------------------------------------------------- dockerd


def docker_answers(host: str | None = None, timeout: float = 10.0) -> bool:
    """True if a dockerd answers ``docker version`` on ``host`` (default socket if None)."""
    try:
        res = docker("version", "--format", "{{.Server.Version}}", check=False,
                     timeout=timeout, host=host)
    except LabError:
        return False
    return res.returncode == 0 and bool(res.stdout.strip())


def _pid_alive(pid: int, comm: str | None = None) -> bool:
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    if comm is None:
        return True
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip() == comm
    except OSError:
        return False


@dataclass
class DockerdHandle:
    """A dockerd the lab uses; ``stop()`` stops it only if ``started`` (the lab started it).

    ``engine`` is the Docker engine it runs (:data:`ENGINE20` unless told); ``cleanups`` run,
    best effort and in order, after a started daemon has stopped.
    """

    started: bool
    host: str | None = None
    proc: subprocess.Popen[bytes] | None = None
    log_file: Path | None = None
    workdir: Path | None = None
    engine: Engine = ENGINE20
    cleanups: list[Callable[[], object]] = field(default_factory=list)

    def log_tail(self, lines: int = 40) -> str:
        return tail(_read_from(self.log_file), lines) if self.log_file else ""

    def stop(self, timeout: float = 60.0) -> None:
        proc, self.proc = self.proc, None
        if not self.started or proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        cleanups, self.cleanups = self.cleanups, []
        for fn in cleanups:
            try:
                fn()
            except Exception as err:  # noqa: BLE001 - the other cleanups still run
                print(f"dockerd {self.host} cleanup: {err}", file=sys.stderr)
        if self.workdir and not keep_temp():
            shutil.rmtree(self.workdir, ignore_errors=True)


def ensure_dockerd(timeout: float = 60.0, *, host: str | None = None,
                   extra_args: Sequence[str] = (), engine: Engine | None = None) -> DockerdHandle:
    """Reuse the dockerd that answers on ``host`` (default socket), or start one and wait.

    Without ``host`` a started dockerd uses the default paths, and none is started while the
    pid file names a live dockerd. A private daemon needs ``host="unix:///…"`` plus its own
    ``--data-root``, ``--exec-root``, ``--pidfile`` and ``--bridge BR --iptables=false`` in
    ``extra_args`` (docs/lab-notes.md); unmounting its data-root afterwards is the caller's job.
    ``engine`` picks the dockerd binary, its PATH and (for ``host``) the CLI; default
    :data:`ENGINE20`, the system's dockerd. For the shared 28.5 daemon use
    :func:`ensure_docker28`.
    """
    eng = engine or ENGINE20
    if host and eng is not ENGINE20:
        register_docker_client(host, eng.client)
    if docker_answers(host):
        return DockerdHandle(started=False, host=host, engine=eng)
    if host is None:
        with contextlib.suppress(OSError, ValueError):
            pid = int(DOCKER_PID_FILE.read_text().strip())
            if _pid_alive(pid, "dockerd"):
                # Never start a second dockerd on the default paths: wait for this one instead.
                wait_until(docker_answers, timeout,
                           f"the running dockerd (pid {pid}) to answer `docker version`")
                return DockerdHandle(started=False, engine=eng)
    if not is_root():
        raise LabError("no dockerd answers and starting one needs root")
    why_not = eng.missing()
    if why_not:
        raise LabError(why_not)
    workdir = Path(tempfile.mkdtemp(prefix="net-dhcp-dockerd-"))
    log_file = workdir / "dockerd.log"
    binary = eng.dockerd if "/" in eng.dockerd else tool(eng.dockerd)
    argv = [binary, *(["-H", host] if host else []), *extra_args]
    env = {**os.environ, **eng.dockerd_env()}
    with log_file.open("ab") as log:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                start_new_session=True, env=env)
    handle = DockerdHandle(started=True, host=host, proc=proc, log_file=log_file,
                           workdir=workdir, engine=eng)
    deadline = time.monotonic() + timeout
    while not docker_answers(host, timeout=5.0):
        if proc.poll() is not None or time.monotonic() > deadline:
            why = (f"exited {proc.returncode}" if proc.poll() is not None
                   else f"did not answer within {timeout:g} s")
            log_text = handle.log_tail(40)
            handle.stop()
            raise LabError(f"`{' '.join(argv)}` {why}\n--- dockerd log (tail) ---\n{log_text}")
        time.sleep(0.25)
    return handle


def docker28_args() -> list[str]:
    """dockerd arguments of the shared 28.5 daemon: every path its own (socket, data root,
    exec root, pid file, config file), the bridge :data:`DOCKER28_BRIDGE` (``--bridge none``
    would delete the host's docker0), and no iptables, ip6tables, masquerading or forwarding
    changes (the host's rules and docker0 are the system daemon's)."""
    return ["--data-root", str(DOCKER28_DATA_ROOT), "--exec-root", str(DOCKER28_EXEC_ROOT),
            "--pidfile", str(DOCKER28_PID_FILE), "--config-file", str(DOCKER28_DIR /
                                                                      "daemon.json"),
            "--bridge", DOCKER28_BRIDGE, "--iptables=false", "--ip6tables=false",
            "--ip-masq=false", "--ip-forward=false"]


def _docker28_pid() -> int | None:
    """The pid of a live 28.5 daemon from its pid file, else None."""
    try:
        pid = int(DOCKER28_PID_FILE.read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if _pid_alive(pid, "dockerd") else None


def _unmount_under(*dirs: Path) -> None:
    """Lazily unmount every mount at or under ``dirs`` (deepest first)."""
    roots = [str(d) for d in dirs]
    mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()
              if any(line.split()[1] == r or line.split()[1].startswith(r + "/") for r in roots)]
    for m in sorted(set(mounts), key=len, reverse=True):
        sh("umount", "-l", m, check=False)


def _docker28_cleanup() -> None:
    """After the 28.5 daemon stopped: its mounts and its bridge go (the data root stays)."""
    _unmount_under(DOCKER28_DATA_ROOT, DOCKER28_EXEC_ROOT)
    if DOCKER28_BRIDGE in _link_names():
        DhcpLan._del_link(DOCKER28_BRIDGE)


def ensure_docker28(timeout: float = 90.0) -> DockerdHandle:
    """The shared Docker 28.5 daemon (:data:`ENGINE28`), beside the system's 20.10 one.

    Reused if it answers on :data:`DOCKER28_HOST` (or its pid file names a live dockerd);
    otherwise started from the unpacked packages (scripts/docker28.sh) with
    :func:`docker28_args`; it launches its own containerd (2.1) from :data:`DOCKER28_ROOT` and
    runs containers with the system's runc. Its bridge :data:`DOCKER28_BRIDGE` is made if
    missing; dockerd gives it an address from its default pools (one no route uses) and keeps
    that in its data root. ``handle.stop()`` stops a daemon this call started, unmounts what
    it left mounted and deletes the bridge; :func:`stop_docker28` stops one by its pid file.
    """
    if docker_answers(DOCKER28_HOST):
        return DockerdHandle(started=False, host=DOCKER28_HOST, engine=ENGINE28)
    pid = _docker28_pid()
    if pid is not None:
        wait_until(lambda: docker_answers(DOCKER28_HOST), timeout,
                   f"the running Docker 28.5 daemon (pid {pid}) to answer on {DOCKER28_HOST}")
        return DockerdHandle(started=False, host=DOCKER28_HOST, engine=ENGINE28)
    if not is_root():
        raise LabError("no Docker 28.5 daemon answers and starting one needs root")
    why_not = ENGINE28.missing()
    if why_not:
        raise LabError(why_not)
    config = DOCKER28_DIR / "daemon.json"
    if not config.exists():
        config.write_text("{}\n")  # never the system daemon's /etc/docker/daemon.json
    if DOCKER28_BRIDGE not in _link_names():
        sh("ip", "link", "add", DOCKER28_BRIDGE, "type", "bridge")
    try:
        handle = ensure_dockerd(timeout, host=DOCKER28_HOST, extra_args=docker28_args(),
                                engine=ENGINE28)
    except BaseException:
        _docker28_cleanup()
        raise
    handle.cleanups.append(_docker28_cleanup)
    return handle


def stop_docker28(timeout: float = 60.0) -> bool:
    """Stop the 28.5 daemon named by its pid file (SIGTERM, SIGKILL after ``timeout``), then
    unmount its mounts and delete its bridge; False if none was running."""
    pid = _docker28_pid()
    if pid is None:
        _docker28_cleanup()
        return False
    os.kill(pid, signal.SIGTERM)
    try:
        wait_until(lambda: not _pid_alive(pid, "dockerd"), timeout, f"dockerd {pid} to exit")
    except LabError:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        wait_until(lambda: not _pid_alive(pid, "dockerd"), 10, f"dockerd {pid} to die")
    _docker28_cleanup()
    return True


def ensure_engine(eng: Engine, timeout: float = 90.0) -> DockerdHandle:
    """The engine's shared daemon: :func:`ensure_dockerd` for 20.10, :func:`ensure_docker28`
    for 28.5."""
    if eng is ENGINE28:
        return ensure_docker28(timeout)
    return ensure_dockerd(timeout, host=eng.host, engine=eng)


# --------------------------------------------------------------------------- image


def _is_static_elf(path: str) -> bool:
    """True if the ELF file has no PT_INTERP program header (no dynamic loader)."""
    with open(path, "rb") as f:
        head = f.read(64)
        if head[:4] != b"\x7fELF":
            return False
        is64 = head[4] == 2
        order: Literal["little", "big"] = "little" if head[5] == 1 else "big"
        if is64:
            phoff = int.from_bytes(head[32:40], order)
            phentsize = int.from_bytes(head[54:56], order)
            phnum = int.from_bytes(head[56:58], order)
        else:
            phoff = int.from_bytes(head[28:32], order)
            phentsize = int.from_bytes(head[42:44], order)
            phnum = int.from_bytes(head[44:46], order)
        for i in range(phnum):
            f.seek(phoff + i * phentsize)
            if int.from_bytes(f.read(4), order) == 3:  # PT_INTERP
                return False
    return True


def image_version(name: str = IMAGE, *, host: str | None = None) -> str | None:
    """The lab label of an existing image ("" if unlabelled), or None if it is absent."""
    res = docker("image", "inspect", "--format", f'{{{{index .Config.Labels "{IMAGE_LABEL}"}}}}',
                 name, check=False, host=host)
    if res.returncode != 0:
        return None
    out = res.stdout.strip()
    return "" if out == "<no value>" else out


def ensure_image(name: str = IMAGE, *, host: str | None = None) -> str:
    """Build the busybox test image with ``docker import`` unless it is there; return its name.

    ``host``: the daemon to build it in (default socket if None), with its CLI."""
    if image_version(name, host=host) == IMAGE_VERSION:
        return name
    if not _is_static_elf(BUSYBOX):
        raise LabError(f"{BUSYBOX} is not a static binary: install busybox-static "
                       "(scripts/setup.sh)")
    with tempfile.TemporaryDirectory(prefix="net-dhcp-image-") as tmp:
        root = Path(tmp) / "root"
        for d in ("bin", "etc", "tmp", "proc", "sys", "dev", "root", "var/run", "run"):
            (root / d).mkdir(parents=True, exist_ok=True)
        (root / "tmp").chmod(0o1777)
        shutil.copy2(BUSYBOX, root / "bin" / "busybox")
        for applet in sh(BUSYBOX, "--list").stdout.split():
            if applet != "busybox" and "/" not in applet:
                (root / "bin" / applet).symlink_to("busybox")
        (root / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n"
                                             "nobody:x:65534:65534:nobody:/:/bin/false\n")
        (root / "etc" / "group").write_text("root:x:0:\nnogroup:x:65534:\n")
        (root / "etc" / "hosts").write_text("127.0.0.1 localhost\n")
        (root / "etc" / "nsswitch.conf").write_text("hosts: files dns\n")
        changes = [f"LABEL {IMAGE_LABEL}={IMAGE_VERSION}", "ENV PATH=/bin",
                   'CMD ["/bin/sh"]']
        import_cmd = [docker_client(host), *(["-H", host] if host else []), "import"]
        for c in changes:
            import_cmd += ["--change", c]
        import_cmd += ["-", name]
        tar = subprocess.Popen([tool("tar"), "-C", str(root), "-c", "."],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert tar.stdout is not None
        try:
            res = subprocess.run(import_cmd, stdin=tar.stdout, capture_output=True, timeout=300,
                                 check=False)
        finally:
            tar.stdout.close()
            tar_err = tar.communicate(timeout=60)[1]
        if tar.returncode != 0:
            raise CommandError(["tar", "-C", str(root), "-c", "."], tar.returncode, "",
                               _text(tar_err))
        if res.returncode != 0:
            raise CommandError(import_cmd, res.returncode, _text(res.stdout), _text(res.stderr))
    return name


# --------------------------------------------------------------------------- the plugin


class Plugin(_LogFile):
    """The plugin under test, run from this checkout as a legacy (v1) plugin on a unix socket."""

    log_name = "plugin log"

    def __init__(self, name: str | None = None, *, state_dir: str | Path | None = None,
                 log_level: str = "trace", extra_args: Sequence[str] = (),
                 env: Mapping[str, str] | None = None) -> None:
        self.name = name or f"net-dhcp-t{secrets.token_hex(3)}"
        self.socket_path = PLUGIN_DIR / f"{self.name}.sock"
        self.workdir = Path(tempfile.mkdtemp(prefix=f"{self.name}-"))
        self.state_dir = Path(state_dir) if state_dir else self.workdir / "state"
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.log_file = self.workdir / "plugin.log"
        self.output_file = self.workdir / "plugin.out"
        self.log_level = log_level
        self.extra_args = list(extra_args)
        self.env = dict(env or {})
        self.proc: subprocess.Popen[bytes] | None = None
        self.last_stop_killed = False
        self._closed = False

    def __repr__(self) -> str:
        return f"<Plugin {self.name} running={self.running}>"

    def command(self) -> list[str]:
        return [sys.executable, "-m", "net_dhcp", "serve", "--socket", str(self.socket_path),
                "--state-dir", str(self.state_dir), "--log-file", str(self.log_file),
                *self.extra_args]

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def _socket_accepts(self) -> bool:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.settimeout(1.0)
            s.connect(str(self.socket_path))
        except OSError:
            return False
        finally:
            s.close()
        return True

    def diagnostics(self, lines: int = 40) -> str:
        return (f"--- plugin output (tail) ---\n{tail(self.output(), lines)}\n"
                f"--- plugin log (tail) ---\n{tail(self.log(), lines)}")

    def start(self, timeout: float = 30.0) -> None:
        """Start the plugin and wait until its socket accepts connections."""
        if self._closed:
            raise LabError("plugin is closed")
        if self.running:
            raise LabError(f"plugin {self.name} is already running")
        PLUGIN_DIR.mkdir(parents=True, exist_ok=True)
        src = str(REPO_ROOT / "src")
        pythonpath = os.pathsep.join(p for p in (src, os.environ.get("PYTHONPATH")) if p)
        env = {**os.environ, "LOG_LEVEL": self.log_level, "PYTHONPATH": pythonpath,
               "PYTHONUNBUFFERED": "1", **self.env}
        with self.output_file.open("ab") as out:
            out.write(f"=== start: {' '.join(self.command())}\n".encode())
            out.flush()
            self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=subprocess.STDOUT, env=env, cwd=self.workdir,
                                         start_new_session=True)
        proc = self.proc
        deadline = time.monotonic() + timeout
        while not (self.socket_path.exists() and self._socket_accepts()):
            if proc.poll() is not None:
                raise LabError(f"plugin {self.name} exited {proc.returncode} before serving "
                               f"{self.socket_path}\n{self.diagnostics()}")
            if time.monotonic() > deadline:
                self.stop()
                raise LabError(f"plugin {self.name} did not accept connections on "
                               f"{self.socket_path} within {timeout:g} s\n{self.diagnostics()}")
            time.sleep(0.05)

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM and wait (SIGKILL after ``timeout``); return the exit status."""
        proc = self.proc
        self.last_stop_killed = False
        if proc is None:
            return None
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.last_stop_killed = True
                proc.kill()
                proc.wait(10)
        return proc.returncode

    def kill(self) -> None:
        """SIGKILL, as a crash would (the socket file stays behind)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def restart(self, timeout: float = 30.0) -> None:
        """Stop (if running) and start again with the same name, socket and state dir."""
        self.stop()
        self.start(timeout)

    def output(self) -> str:
        return _read_from(self.output_file)

    def call(self, method: str, payload: Mapping[str, Any] | None = None,
             timeout: float = 10.0) -> tuple[int, Any]:
        """POST /<method> (e.g. "NetworkDriver.GetCapabilities") as dockerd does: (status, json)."""
        return call_plugin(self.socket_path, method, payload, timeout)

    def close(self) -> None:
        """Stop the plugin, remove its socket file and (unless kept) its temp dir."""
        if self._closed:
            return
        self._closed = True
        try:
            self.stop()
        finally:
            self.socket_path.unlink(missing_ok=True)
            if keep_temp():
                print(f"plugin {self.name}: kept {self.workdir}", file=sys.stderr)
            else:
                shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Plugin:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def call_plugin(socket_path: str | Path, method: str, payload: Mapping[str, Any] | None = None,
                timeout: float = 10.0) -> tuple[int, Any]:
    """POST /<method> to a plugin socket as dockerd does: (status, decoded JSON or text)."""
    conn = _UnixHTTPConnection(str(socket_path), timeout)
    try:
        body = b"" if payload is None else (json.dumps(payload) + "\n").encode()
        conn.request("POST", f"/{method}", body=body,
                     headers={"Accept": "application/vnd.docker.plugins.v1.2+json",
                              "Host": "plugin.moby.localhost"})
        resp = conn.getresponse()
        data = resp.read()
    finally:
        conn.close()
    try:
        parsed: Any = json.loads(data) if data else None
    except ValueError:
        parsed = data.decode(errors="replace")
    return resp.status, parsed


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        s.connect(self._path)
        self.sock = s


# --------------------------------------------------------------------------- leftovers


def lab_leftovers() -> list[str]:
    """Kernel objects and iptables rules with lab names, e.g. from a crashed run."""
    found = [f"link {n}" for n in _link_names()
             if n.startswith((BRIDGE_PREFIX, *VETH_PREFIXES))]
    found += [f"netns {n}" for n in _netns_names() if n.startswith(NETNS_PREFIX)]
    found += [f"rule {r}" for r in _forward_rules() if f"-i {BRIDGE_PREFIX}" in r]
    return found


def cleanup_leftovers() -> list[str]:
    """Remove everything :func:`lab_leftovers` finds (kills processes in those namespaces)."""
    removed: list[str] = []
    for ns in _netns_names():
        if ns.startswith(NETNS_PREFIX):
            DhcpLan._del_netns(ns)
            removed.append(f"netns {ns}")
    for n in _link_names():
        if n.startswith((BRIDGE_PREFIX, *VETH_PREFIXES)):
            DhcpLan._del_link(n)
            removed.append(f"link {n}")
    for r in _forward_rules():
        m = re.fullmatch(rf"-A FORWARD -i ({BRIDGE_PREFIX}\w+) -o \1 -j ACCEPT", r)
        if m:
            sh("iptables", "-w", "-D", "FORWARD", "-i", m[1], "-o", m[1], "-j", "ACCEPT")
            removed.append(f"rule {r}")
    return removed


# --------------------------------------------------------------------------- command line


def _step(msg: str) -> None:
    print(f"==> {msg}", flush=True)


def demo() -> int:
    """Show the whole path once: dockerd, image, LAN, plugin, two containers; tear down."""
    handle: DockerdHandle | None = None
    lab: DhcpLan | None = None
    plugin: Plugin | None = None
    network: str | None = None
    try:
        _step("dockerd")
        handle = ensure_dockerd()
        print("    started a dockerd for this demo" if handle.started
              else "    reusing the dockerd on the default socket")
        _step("test image")
        image = ensure_image()
        print(f"    {image}")
        mac = random_mac()
        _step("LAN (bridge + dnsmasq in a namespace)")
        subnet = pick_subnet()
        reserved = str(subnet.network_address + 50)
        lab = DhcpLan(subnet=subnet, host_ip=True, reservations={mac: reserved})
        print(f"    bridge {lab.bridge}, subnet {lab.subnet}, server {lab.server_ip} in netns "
              f"{lab.netns}, pool {lab.range_start}-{lab.range_end}, {mac} reserved -> "
              f"{reserved}")
        plugin = Plugin()
        _step(f"plugin {plugin.name}: {' '.join(plugin.command())}")
        plugin.start()
        print(f"    serving on {plugin.socket_path}")
        network = f"nd-demo-{lab.id}"
        _step(f"docker network create -d {plugin.name} --ipam-driver null "
              f"-o bridge={lab.bridge} {network}")
        docker("network", "create", "-d", plugin.name, "--ipam-driver", "null",
               "-o", f"bridge={lab.bridge}", network)
        ok = True
        for extra, expect in (([], "pool"), (["--mac-address", mac], reserved)):
            cmd = ["run", "--rm", "--network", network, *extra, image, "ip", "-4", "addr",
                   "show", "eth0"]
            _step(f"docker {' '.join(cmd)}")
            out = docker(*cmd).stdout
            print("    " + out.strip().replace("\n", "\n    "))
            m = re.search(r"inet (\d+\.\d+\.\d+\.\d+)/", out)
            got = m[1] if m else None
            good = got is not None and (got == expect if expect != "pool" else lab.in_range(got))
            want = f"{lab.range_start}-{lab.range_end}" if expect == "pool" else expect
            print(f"    {'OK' if good else 'UNEXPECTED'}: got {got}, expected {want}")
            ok = ok and good
        print(f"    dnsmasq leases: {[(le.mac, le.ip) for le in lab.leases()]}")
        print("demo " + ("passed" if ok else "FAILED"))
        return 0 if ok else 1
    except LabError as err:
        print(f"demo FAILED: {err}", file=sys.stderr)
        if plugin is not None and plugin.proc is not None:
            print(plugin.diagnostics(15), file=sys.stderr)
        if lab is not None and lab.dnsmasq_running():
            print(f"--- dnsmasq log (tail) ---\n{tail(lab.log(), 12)}", file=sys.stderr)
        return 1
    finally:
        _step("teardown")
        if network:
            with contextlib.suppress(LabError):
                docker("network", "rm", network, check=False)
        if plugin:
            plugin.close()
        if lab:
            lab.close()
        if handle:
            handle.stop()


def _hold_lan(args: argparse.Namespace) -> int:
    with DhcpLan(host_ip=args.host_ip, lease=args.lease, ipv6=args.ipv6) as lab:
        v6 = f" prefix6={lab.prefix6} server6={lab.server_ip6}" if lab.ipv6 else ""
        print(f"bridge={lab.bridge} subnet={lab.subnet} netns={lab.netns} "
              f"server={lab.server_ip} host_ip={lab.host_address}{v6}\n"
              f"dnsmasq log: {lab.log_file}\nleases: {lab.lease_file}\nCtrl-C to tear down",
              flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            signal.signal(signal.SIGTERM, signal.default_int_handler)
            while True:
                time.sleep(3600)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.lab", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("demo", help="dockerd + image + LAN + plugin + two containers, then teardown")
    p_lan = sub.add_parser("lan", help="hold a LAN until Ctrl-C")
    p_lan.add_argument("--host-ip", action="store_true", help="give the host .2 on the bridge")
    p_lan.add_argument("--lease", default="2m")
    p_lan.add_argument("--ipv6", action="store_true",
                       help="dual-stack: a ULA /64, dnsmasq with DHCPv6 and router adverts")
    p_image = sub.add_parser("image", help=f"build {IMAGE} if missing")
    p_image.add_argument("--engine", default=ENGINE20.name,
                         help=f"the engine to build it in ({', '.join(ENGINES)}; default "
                              f"{ENGINE20.name})")
    sub.add_parser("docker28", help=f"start the Docker 28.5 daemon on {DOCKER28_HOST} if none "
                                    "answers, and leave it running")
    sub.add_parser("docker28-stop", help="stop the Docker 28.5 daemon (its pid file) and "
                                         "remove its mounts and bridge")
    sub.add_parser("cleanup", help="remove lab leftovers (bridges, namespaces, iptables rules)")
    args = parser.parse_args(argv)
    if not is_root():
        print("tests.lab needs root", file=sys.stderr)
        return 2
    if args.cmd == "demo":
        return demo()
    if args.cmd == "lan":
        return _hold_lan(args)
    if args.cmd == "image":
        eng = engine(args.engine)
        handle = ensure_engine(eng)
        try:
            print(ensure_image(host=eng.host))
        finally:
            handle.stop()
        return 0
    if args.cmd == "docker28":
        handle = ensure_docker28()
        version = docker("version", "--format", "{{.Server.Version}}", host=DOCKER28_HOST)
        print(f"Docker {version.stdout.strip()} on {DOCKER28_HOST} "
              f"({'started' if handle.started else 'already running'}); CLI "
              f"{ENGINE28.client}; log {handle.log_file}; stop with "
              "`python -m tests.lab docker28-stop`")
        return 0
    if args.cmd == "docker28-stop":
        print("stopped" if stop_docker28() else "no Docker 28.5 daemon was running")
        return 0
    removed = cleanup_leftovers()
    print("\n".join(removed) if removed else "nothing to clean up")
    return 0


if __name__ == "__main__":
    sys.exit(main())
