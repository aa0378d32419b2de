"""Benchmark: how soon `net-dhcp serve` answers on its socket after being spawned.

Spawns `python -m net_dhcp serve` on a temporary socket, state directory and log file,
polls the socket until `POST /Plugin.Activate` answers 200, records the time from the
spawn, stops it (SIGTERM, wait) and repeats. Twice: with a fresh state directory, and with
one holding some networks and stale endpoints (their veths and bridges do not exist, so
the daemon tears them down at start; each run gets its own copy). Then the floor: a
process that only imports aiohttp.web, timed the same way (until it says it has; what
`serve` takes beyond that is the plugin's own). Prints median/min/max.
The daemon's Docker socket is a path nothing listens on. Asserts nothing; needs root (as
`net-dhcp serve` does). `measure_serve_start` is the same, for a bigger benchmark.

It measures the plugin as installed, where every module is byte-compiled (pip compiles at
install; scripts/build-plugin.sh compiles the managed plugin's rootfs): the runs share a
temporary PYTHONPYCACHEPREFIX, which a first, untimed start fills. Without it a checkout
run with PYTHONDONTWRITEBYTECODE=1 (as on the CI machine) would compile each module it
has no fresh .pyc for at every start, ~4 ms each, and the figure would say more about the
checkout than the plugin. Nothing is written into the checkout.

    .venv/bin/python -m bench.serve_start [--runs 10] [--fresh-only] [--src OTHER/src]
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

POLL_S = 0.002
TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 10.0
ACTIVATE = (b"POST /Plugin.Activate HTTP/1.1\r\nHost: net-dhcp\r\nContent-Length: 0\r\n"
            b"Connection: close\r\n\r\n")


def _activate_ok(path: Path) -> bool:
    """Whether the socket at `path` answers POST /Plugin.Activate with 200 (now)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(2.0)
        sock.connect(str(path))
        sock.sendall(ACTIVATE)
        head = b""
        while b"\r\n" not in head:
            chunk = sock.recv(4096)
            if not chunk:
                break
            head += chunk
        return head.startswith(b"HTTP/1.1 200")
    except OSError:
        return False
    finally:
        sock.close()


def _python() -> str:
    venv = Path(__file__).resolve().parent.parent / ".venv" / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable


def populate(state_dir: Path, networks: int = 3, endpoints: int = 12) -> None:
    """A state database holding `networks` networks and `endpoints` endpoints with leases,
    none of whose bridges or veths exist."""
    from net_dhcp.attach import veth
    from net_dhcp.config import NetworkOptions
    from net_dhcp.store import Store

    tag = secrets.token_hex(3)
    store = Store(state_dir)
    try:
        net_ids = [secrets.token_hex(32) for _ in range(networks)]
        for i, net_id in enumerate(net_ids):
            store.add_network(net_id, NetworkOptions(bridge=f"ndbnone{tag}{i}"[:15]).to_json())
        now = time.time()
        for i in range(endpoints):
            ep_id = secrets.token_hex(32)
            lease: dict[str, Any] = {
                "address": f"10.99.{i // 200}.{10 + i % 200}/24", "server_id": "10.99.0.1",
                "server_mac": "", "gateway": "10.99.0.1", "routes": [], "dns": [],
                "domain": None, "lease_time_s": 3600.0, "t1_s": 1800.0, "t2_s": 3150.0,
                "obtained_at": now, "hostname_sent": None}
            host_if, cont_if = veth.names(ep_id)
            store.add_endpoint(endpoint_id=ep_id, network_id=net_ids[i % networks],
                               host_if=host_if, cont_if=cont_if,
                               mac=f"02:00:00:00:{i >> 8:02x}:{i & 0xFF:02x}",
                               options={"hostname": None}, lease=lease)
            if i % 2:
                store.set_joined(ep_id, f"/var/run/docker/netns/nd-bench-{ep_id[:12]}", True)
    finally:
        store.close()


def _as_installed(tmp: Path) -> dict[str, str]:
    """This environment, with byte code written to and read from `tmp`/pycache, as an
    installed plugin has it (see the module's docstring)."""
    env = {**os.environ, "PYTHONPYCACHEPREFIX": str(tmp / "pycache")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def _one_start(tmp: Path, template: Path | None, src: Path | None) -> float:
    """Seconds from spawning `net-dhcp serve` until Plugin.Activate answers 200 (its
    byte code cached under `tmp`/pycache)."""
    run = Path(tempfile.mkdtemp(prefix="run-", dir=tmp))
    state = run / "state"
    if template is not None:
        shutil.copytree(template, state)
    sock = run / "x.sock"
    cmd = [_python(), "-m", "net_dhcp", "serve", "--socket", str(sock),
           "--state-dir", str(state), "--log-file", str(run / "log")]
    # Nothing listens there: no dockerd's API is asked (nor its networks touched).
    env = {**_as_installed(tmp), "DOCKER_HOST": f"unix://{run / 'no-docker.sock'}"}
    if src is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(src),
                                                         os.environ.get("PYTHONPATH")]))
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        while True:
            if sock.exists() and _activate_ok(sock):
                return time.perf_counter() - start
            if proc.poll() is not None:
                err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
                raise RuntimeError(f"net-dhcp serve exited with {proc.returncode}: {err}")
            if time.perf_counter() - start > TIMEOUT_S:
                raise RuntimeError(f"net-dhcp serve did not answer within {TIMEOUT_S:g}s")
            time.sleep(POLL_S)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()
        shutil.rmtree(run, ignore_errors=True)


FLOOR_CODE = ("import os, sys; os.environ['SSL_CERT_FILE'] = os.devnull; import aiohttp.web; "
              "sys.stdout.write('x'); sys.stdout.flush()")
"""The floor: a process that starts Python and imports aiohttp.web (as `serve` does, with no
CA bundle: cli._no_ca_bundle), then says so. What `serve` takes beyond it is the plugin's."""


def _one_floor(tmp: Path) -> float:
    """Seconds from spawning FLOOR_CODE until it has imported aiohttp.web (its byte code
    cached under `tmp`/pycache, as for `serve`; process teardown not counted)."""
    start = time.perf_counter()
    proc = subprocess.Popen([_python(), "-c", FLOOR_CODE], env=_as_installed(tmp),
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
    assert proc.stdout is not None
    try:
        said = proc.stdout.read(1)
        took = time.perf_counter() - start
    finally:
        proc.stdout.close()
        proc.wait(STOP_TIMEOUT_S)
    if said != b"x":
        raise RuntimeError(f"importing aiohttp.web failed (exit {proc.returncode})")
    return took


def measure_import_floor(runs: int) -> list[float]:
    """`runs` times of the floor (FLOOR_CODE), after one untimed run that compiles."""
    tmp = Path(tempfile.mkdtemp(prefix="nd-serve-floor-"))
    try:
        _one_floor(tmp)
        return [_one_floor(tmp) for _ in range(runs)]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def measure_serve_start(runs: int, *, populated: bool = False,
                        src: Path | None = None) -> list[float]:
    """`runs` start-up times (seconds from spawn until Plugin.Activate answers 200), each
    with a fresh state directory, or with a copy of one holding networks and endpoints.
    `src`: another source tree's `src` folder to run instead (put first on PYTHONPATH)."""
    tmp = Path(tempfile.mkdtemp(prefix="nd-serve-start-"))
    try:
        template: Path | None = None
        if populated:
            template = tmp / "template"
            populate(template)
        _one_start(tmp, template, src)  # untimed: byte-compiles what serve imports
        return [_one_start(tmp, template, src) for _ in range(runs)]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _summary(label: str, times: list[float]) -> str:
    ms = [t * 1000 for t in times]
    return (f"  {label:28s} median {statistics.median(ms):6.1f} ms   min {min(ms):6.1f} ms"
            f"   max {max(ms):6.1f} ms   ({len(ms)} runs)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--fresh-only", action="store_true",
                    help="skip the run with a populated state directory")
    ap.add_argument("--src", type=Path, help="run net_dhcp from this src folder instead "
                                             "(e.g. an older copy, to compare)")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("needs root, as net-dhcp serve does", file=sys.stderr)
        return 1
    print("net-dhcp serve: spawn -> POST /Plugin.Activate answers 200")
    print(_summary("fresh state dir", measure_serve_start(args.runs, src=args.src)))
    if not args.fresh_only:
        print(_summary("state dir with 3 nets, 12 eps",
                       measure_serve_start(args.runs, populated=True, src=args.src)))
    print(_summary("floor: import aiohttp.web", measure_import_floor(args.runs)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
