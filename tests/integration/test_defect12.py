"""Hardening issue, defect 12: behaviours fixed earlier that had no test.

1. DeleteNetwork with live endpoints sweeps them (state, veth pair, lease).
2. A second Join without Leave moves the endpoint's keeper to the new sandbox.
3. A DHCPNAK's message (option 56) with CR/LF/ESC reaches neither the log nor Docker's
   `Err` unescaped.
4. The log file is created 0640 whatever the umask (the state directory's 0700 and the
   database's 0600 are covered by tests/unit/test_store.py).

The plugin runs as a process of its own and dockerd's calls are played over its socket
(tests/dockerplay.py), as in test_faults.py. tests/integration/hostile.py's rogue sends
NAKs with the fixed message "rogue" and only answers REQUESTs (with dnsmasq stopped no
REQUEST would come), so test 3 runs its own small responder in the lab's server namespace
(`nak_responder` below, built from hostile.py's wire helpers): it offers an address to every
DISCOVER and NAKs every REQUEST with a hostile message.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import secrets
import select
import shlex
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address
from pathlib import Path

import pytest

from tests.conftest import LanFactory, require_root
from tests.dockerplay import Container, PlayedDocker, no_docker_socket, played_plugin
from tests.integration.hostile import (
    BOOTP_HEADER,
    BROADCAST_MAC,
    DISCOVER,
    ETH_P_IP,
    LIMITED_BROADCAST,
    MAGIC_COOKIE,
    NAK,
    OFFER,
    OPT_LEASE,
    OPT_MASK,
    OPT_MESSAGE,
    OPT_SID,
    OPT_TYPE,
    PACKET_OUTGOING,
    REQUEST,
    ZERO,
    Frame,
    parse_frame,
    udp_ipv4,
)
from tests.lab import (
    NETNS_PREFIX,
    REPO_ROOT,
    DhcpLan,
    LabError,
    Plugin,
    random_mac,
    sh,
    tail,
    tool,
    wait_until,
)


@dataclass
class Rig:
    plugin: Plugin
    docker: PlayedDocker
    lab: DhcpLan


@pytest.fixture
def rig(lan: LanFactory) -> Iterator[Rig]:
    """A plugin (no Docker API) and a LAN whose leases renew every 2 s."""
    require_root()
    lab = lan(t1=2, t2=4)
    with played_plugin() as (plugin, docker):
        yield Rig(plugin, docker, lab)


def _veth_names(endpoint_id: str) -> list[str]:
    """The endpoint's veth ends still in the host namespace."""
    tag = endpoint_id[:12]
    return [n for n in (f"dh{tag}", f"dc{tag}")
            if sh("ip", "link", "show", n, check=False).returncode == 0]


def _links_in(netns: str) -> list[str]:
    out = sh("ip", "-n", netns, "-o", "link", "show", check=False).stdout
    return [line.split(":")[1].strip().split("@")[0] for line in out.splitlines()]


def _ip(c: Container) -> str:
    return c.address.split("/")[0]


def _keeping(c: Container) -> str:
    """The plugin's line once the endpoint's keeper found its interface in its sandbox."""
    return (rf"endpoint {c.endpoint_id[:12]}: keeping {re.escape(c.address)} on \S+ in "
            rf"{re.escape(c.sandbox)} ")


# --------------------------------------------------------------------------- 1. DeleteNetwork


def test_delete_network_sweeps_its_live_endpoints(rig: Rig) -> None:
    """DeleteNetwork while a container is created and joined (Docker lost its Leave and
    DeleteEndpoint): the endpoint is forgotten, its veth pair deleted and its lease
    released. Before the fix only the network was forgotten: the endpoint stayed (with its
    lease in EndpointOperInfo), its veth stayed, and its keeper renewed on for ever."""
    plugin, lab = rig.plugin, rig.lab
    net = rig.docker.create_network(lab.bridge)
    c = rig.docker.start(net)
    plugin.wait_for_log(_keeping(c), timeout=10)
    lab.wait_for_lease(mac=c.mac, ip=_ip(c))
    assert _veth_names(c.endpoint_id) == [f"dh{c.endpoint_id[:12]}"]
    assert "eth0" in _links_in(c.netns)
    offset, lab_offset = plugin.log_offset(), lab.log_offset()

    rig.docker.delete_network(net)

    status, body = plugin.call("NetworkDriver.EndpointOperInfo", c.ids())
    assert (status, body) == (200, {"Value": {}}), \
        f"the endpoint outlived its network's DeleteNetwork: {body}"
    assert _veth_names(c.endpoint_id) == [], "the endpoint's veth outlived DeleteNetwork"
    assert "eth0" not in _links_in(c.netns), \
        "the container end of the veth is still in the container's namespace"
    lab.wait_for_log(rf"DHCPRELEASE\(\S+\) {re.escape(_ip(c))} {re.escape(c.mac)}",
                     timeout=10, since=lab_offset)
    wait_until(lambda: not any(le.mac == c.mac for le in lab.leases()), 10,
               "dnsmasq to drop the released lease")
    log = plugin.log(offset)
    assert (f"network {net[:12]} deleted with endpoint {c.endpoint_id[:12]} still there"
            in log), tail(log, 20)
    # No keeper left renewing a lease nobody holds.
    time.sleep(float(lab.t1 or 2) + 0.5)
    acks = re.findall(rf"DHCPACK\(\S+\) \S+ {re.escape(c.mac)}", lab.log(lab_offset))
    assert acks == [], f"the endpoint's lease was renewed after DeleteNetwork: {acks}"
    c.joined = False  # its interface is gone: nothing for Leave to hand back


# --------------------------------------------------------------------------- 2. second Join


def test_second_join_without_leave_moves_the_keeper(rig: Rig) -> None:
    """Join into A, then (a buggy engine) the interface moved to B by hand and Join again
    with SandboxKey B, no Leave between: the plugin says it moved its keeper, the keeper
    finds the interface in B and the lease is renewed from there. Before the fix the second
    Join was a no-op for the keeper: it stayed on A, where the interface is gone."""
    plugin, lab, docker = rig.plugin, rig.lab, rig.docker
    net = docker.create_network(lab.bridge)
    c = docker.start(net)
    plugin.wait_for_log(_keeping(c), timeout=10)
    ns_a, sandbox_a = c.netns, c.sandbox
    ns_b = f"{NETNS_PREFIX}d12b{secrets.token_hex(3)}"
    sh("ip", "netns", "add", ns_b)
    try:
        # What dockerd does at a Join, by hand, into B (a move drops address and state).
        sh("ip", "-n", ns_a, "link", "set", "eth0", "netns", ns_b)
        sh("ip", "-n", ns_b, "addr", "add", c.address, "dev", "eth0")
        sh("ip", "-n", ns_b, "link", "set", "eth0", "up")
        c.netns = ns_b  # from now on the played container lives in B (stop hands back from B)
        offset, lab_offset = plugin.log_offset(), lab.log_offset()
        docker.call("Join", {**c.ids(), "SandboxKey": c.sandbox, "Options": {}})

        plugin.wait_for_log(
            rf"endpoint {c.endpoint_id[:12]}: joined {re.escape(c.sandbox)} without leaving "
            rf"{re.escape(sandbox_a)}; moving its keeper", timeout=5, since=offset)
        plugin.wait_for_log(_keeping(c), timeout=15, since=offset)
        # The interface left A before the second Join: any renewal from here on is B's.
        lab.wait_for_log(rf"DHCPACK\(\S+\) {re.escape(_ip(c))} {re.escape(c.mac)}",
                         timeout=15, since=lab_offset)
        assert docker.eth0_addresses(c) == [c.address]
        log = plugin.log(offset)
        assert f"is gone from {sandbox_a}" not in log, \
            "the keeper stayed on the old sandbox A and found the interface gone"
        assert f"keeper:{c.endpoint_id[:12]} failed" not in log
    finally:
        sh("ip", "netns", "del", ns_a, check=False)
        if c.netns != ns_b:
            sh("ip", "netns", "del", ns_b, check=False)


# --------------------------------------------------------------------------- 3. NAK message

NAK_MESSAGE = "go away\x1b[2J\r\nFAKE LOG LINE"
NAK_ESCAPED = "go away\\x1b[2J\\r\\nFAKE LOG LINE"
RESPONDER_LIFETIME_S = 120.0


def _reply_frame(req: Frame, mtype: int, *, mac: bytes, ip: IPv4Address,
                 yiaddr: IPv4Address, options: bytes) -> bytes:
    """A server's reply to `req`: Ethernet broadcast, UDP 67 -> 68, to 255.255.255.255."""
    opts = bytes((OPT_TYPE, 1, mtype, OPT_SID, 4)) + ip.packed + options + b"\xff"
    header = BOOTP_HEADER.pack(2, 1, 6, 0, req.xid, 0, req.flags, ZERO.packed, yiaddr.packed,
                               ZERO.packed, req.giaddr.packed, req.chaddr, b"", b"")
    payload = header + MAGIC_COOKIE + opts
    payload += bytes(max(0, 300 - len(payload)))
    return (BROADCAST_MAC + mac + ETH_P_IP.to_bytes(2, "big")
            + udp_ipv4(ip, LIMITED_BROADCAST, 67, 68, payload))


def nak_responder(argv: Sequence[str]) -> int:
    """Child process (in the lab's server namespace): OFFER `offer` to every DISCOVER and
    NAK every REQUEST with the message (hex) given, as server `ip`. Prints "ready"."""
    iface, mac_text, ip_text, offer_text, mask_text, message_hex = argv
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    mac = bytes.fromhex(mac_text.replace(":", ""))
    ip, offer, mask = IPv4Address(ip_text), IPv4Address(offer_text), IPv4Address(mask_text)
    message = bytes.fromhex(message_hex)
    offer_opts = (bytes((OPT_LEASE, 4)) + (120).to_bytes(4, "big")
                  + bytes((OPT_MASK, 4)) + mask.packed)
    nak_opts = bytes((OPT_MESSAGE, len(message))) + message
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_IP))
    sock.bind((iface, ETH_P_IP))
    sock.settimeout(0.5)
    print("ready", flush=True)
    deadline = time.monotonic() + RESPONDER_LIFETIME_S
    while time.monotonic() < deadline:
        try:
            data, addr = sock.recvfrom(4096)
        except TimeoutError:
            continue
        if addr[2] == PACKET_OUTGOING:
            continue
        req = parse_frame(data)
        if req is None or req.op != 1 or req.dport != 67:
            continue
        if req.mtype == DISCOVER:
            sock.send(_reply_frame(req, OFFER, mac=mac, ip=ip, yiaddr=offer, options=offer_opts))
        elif req.mtype == REQUEST:
            sock.send(_reply_frame(req, NAK, mac=mac, ip=ip, yiaddr=ZERO, options=nak_opts))
    return 0


@contextlib.contextmanager
def running_nak_responder(lab: DhcpLan, message: bytes) -> Iterator[subprocess.Popen[str]]:
    code = ("import sys; from tests.integration.test_defect12 import nak_responder; "
            "sys.exit(nak_responder(sys.argv[1:]))")
    cmd = [tool("ip"), "netns", "exec", lab.netns, sys.executable, "-c", code,
           lab.server_if, random_mac(), lab.address(250), lab.address(150),
           str(lab.subnet.netmask), message.hex()]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(REPO_ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, cwd=REPO_ROOT, env=env,
                            start_new_session=True)
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 20)
        line = proc.stdout.readline() if ready else ""
        if line.strip() != "ready":
            proc.kill()
            raise LabError(f"the NAK responder did not start: {line}{proc.stdout.read()}")
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()


def test_nak_message_is_escaped_in_err_and_log(rig: Rig) -> None:
    """The only server on the LAN offers, then NAKs every REQUEST with a message holding
    ESC, CR and LF: the container start fails with the NAK text in `Err`, escaped, and the
    plugin's log holds it escaped too: no raw control character, no forged log line."""
    plugin, lab = rig.plugin, rig.lab
    net = rig.docker.create_network(lab.bridge, lease_timeout="3s")
    lab.stop_dnsmasq()
    endpoint_id = secrets.token_hex(32)
    offset = plugin.log_offset()
    with running_nak_responder(lab, NAK_MESSAGE.encode()):
        status, body = plugin.call("NetworkDriver.CreateEndpoint",
                                   {"NetworkID": net, "EndpointID": endpoint_id,
                                    "Interface": {}, "Options": {}}, timeout=30)
    assert status == 500, (status, body)
    err = body["Err"]
    assert "the DHCP server refused the request (DHCPNAK: " in err, err
    assert NAK_ESCAPED in err, f"the NAK's message is not in Err, escaped: {err!r}"
    raw = [ch for ch in "\x1b\r\n" if ch in err]
    assert not raw, f"Err holds raw control characters {raw}: {err!r}"

    plugin.wait_for_log(r"<- NetworkDriver.CreateEndpoint 500", timeout=5, since=offset)
    log = plugin.log(offset)
    assert NAK_ESCAPED in log, f"the escaped NAK message is not in the log:\n{tail(log, 20)}"
    assert "\x1b" not in log, "a raw ESC reached the plugin log"
    assert "\r" not in log, "a raw CR reached the plugin log"
    forged = [line for line in log.splitlines() if line.startswith("FAKE LOG LINE")]
    assert not forged, f"the NAK message forged log lines: {forged[:3]}"
    assert _veth_names(endpoint_id) == []


# --------------------------------------------------------------------------- 4. log file mode


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _accepts(path: Path) -> bool:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.settimeout(1.0)
        s.connect(str(path))
    except OSError:
        return False
    finally:
        s.close()
    return True


@pytest.mark.parametrize("existing", [False, True], ids=["new", "existing-0666"])
def test_log_file_is_0640_whatever_the_umask(existing: bool) -> None:
    """`net-dhcp serve --log-file` under umask 000 makes the log file 0640, and tightens
    an existing 0666 one. Before the fix logging.FileHandler made it 0666 & ~umask."""
    require_root()
    work = Path(tempfile.mkdtemp(prefix="nd-d12-"))
    sock, log = work / "p.sock", work / "plugin.log"
    out = work / "output"
    if existing:
        log.write_text("")
        os.chmod(log, 0o666)
    argv = [sys.executable, "-m", "net_dhcp", "serve", "--socket", str(sock),
            "--state-dir", str(work / "state"), "--log-file", str(log),
            "--docker-socket", no_docker_socket()]
    env = {**os.environ, "LOG_LEVEL": "info", "PYTHONPATH": os.pathsep.join(
        [str(REPO_ROOT / "src"), *filter(None, [os.environ.get("PYTHONPATH")])])}
    proc: subprocess.Popen[bytes] | None = None
    try:
        with out.open("wb") as sink:
            proc = subprocess.Popen(["sh", "-c", f"umask 000; exec {shlex.join(argv)}"],
                                    stdin=subprocess.DEVNULL, stdout=sink,
                                    stderr=subprocess.STDOUT, env=env, cwd=work,
                                    start_new_session=True)
        p = proc

        def serving() -> bool:
            if p.poll() is not None:
                raise LabError(f"serve exited {p.returncode}:\n{out.read_text()}")
            return _accepts(sock)

        wait_until(serving, 30, f"serve to listen on {sock}",
                   detail=lambda: out.read_text(errors="replace"))
        umask = re.search(r"^Umask:\s*(\d+)", Path(f"/proc/{p.pid}/status").read_text(), re.M)
        assert umask is not None
        assert umask[1] == "0000", f"the test did not run serve under umask 000: {umask[0]}"
        assert _mode(log) == 0o640, f"log file mode {_mode(log):04o}, expected 0640"
        assert "listening on" in log.read_text()
    finally:
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        shutil.rmtree(work, ignore_errors=True)
