"""`net-dhcp leases`, `status` and `doctor` against a real plugin, LAN and bridge.

The plugin runs as a process of its own (`net-dhcp serve`, tests.lab.Plugin, with a Docker
socket that does not exist) and dockerd's calls are played over its socket
(tests/dockerplay.py), on a lab LAN whose dnsmasq gives T1 = 2 s, T2 = 4 s, so keepers
renew every two seconds. The commands run as `python -m net_dhcp ...` subprocesses, as a
user would run them; their output is checked against what the lab knows (MACs, the
range, dnsmasq). doctor is run on lab bridges only: healthy, missing, with no DHCP
server, with an unpinned MAC, without the FORWARD accept rule.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from net_dhcp import exits, firewall
from tests.conftest import LanFactory, require_root
from tests.dockerplay import Container, PlayedDocker
from tests.lab import REPO_ROOT, DhcpLan, Plugin, sh, wait_until

PLUGIN_ARGS = ("--renew-retry-min", "0.5", "--renew-retry-max", "1", "--sweep-interval", "2")
PROBE_S = "4"


def net_dhcp(*args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    """`python -m net_dhcp ARGS` from this checkout."""
    src = str(REPO_ROOT / "src")
    env = {**os.environ,
           "PYTHONPATH": os.pathsep.join(p for p in (src, os.environ.get("PYTHONPATH")) if p)}
    return subprocess.run([sys.executable, "-m", "net_dhcp", *args], capture_output=True,
                          text=True, timeout=timeout, env=env, check=False)


def cli_json(*args: str, code: int = exits.OK) -> Any:
    res = net_dhcp(*args, "--json")
    assert res.returncode == code, f"{args}: exit {res.returncode}\n{res.stdout}\n{res.stderr}"
    return json.loads(res.stdout)


def pin_mac(lab: DhcpLan) -> None:
    """Pin the lab bridge's MAC to its LAN port's, as the README says to."""
    mac = Path(f"/sys/class/net/{lab.server_veth}/address").read_text().strip()
    sh("ip", "link", "set", lab.bridge, "address", mac)


def links() -> set[str]:
    return set(os.listdir("/sys/class/net"))


def probe_links() -> set[str]:
    """doctor's probe veths (ndp<hex>h/c) on this host; others' labs come and go too."""
    return {n for n in links() if n.startswith("ndp")}


@dataclass
class Rig:
    plugin: Plugin
    docker: PlayedDocker
    lab: DhcpLan
    net: str

    @property
    def socket(self) -> str:
        return str(self.plugin.socket_path)


@pytest.fixture
def rig(lan: LanFactory) -> Iterator[Rig]:
    require_root()
    lab = lan(t1=2, t2=4)
    pin_mac(lab)
    plugin = Plugin(extra_args=[*PLUGIN_ARGS, "--docker-socket",
                                f"/run/net-dhcp-no-docker-{secrets.token_hex(3)}.sock"])
    docker = PlayedDocker(plugin)
    try:
        plugin.start()
        yield Rig(plugin, docker, lab, docker.create_network(lab.bridge))
    finally:
        try:
            if not plugin.running:
                plugin.start()
            problems = docker.close()
        finally:
            plugin.close()
        assert not problems, problems


def _row(rows: list[dict[str, Any]], c: Container) -> dict[str, Any]:
    found = [r for r in rows if r["id"] == c.endpoint_id]
    assert len(found) == 1, rows
    return found[0]


def test_leases_and_status_follow_the_plugin(rig: Rig) -> None:
    lab, sock = rig.lab, rig.socket
    web = rig.docker.start(rig.net, options={"hostname": "cli-web"})
    db = rig.docker.start(rig.net)
    idle = rig.docker.create(rig.net)  # created, never joined

    # ---- leases --json: one row per endpoint, as the lab sees them
    doc = cli_json("leases", "--socket", sock)
    assert doc["source"] == "plugin"
    assert doc["socket"] == sock
    rows = doc["leases"]
    assert len(rows) == 3
    for c in (web, db, idle):
        row = _row(rows, c)
        assert row["mac"] == c.mac
        assert row["ipv4"]["address"] == c.address
        assert lab.in_range(row["ipv4"]["address"].split("/")[0])
        assert row["ipv4"]["server"] == lab.server_ip
        assert row["ipv4"]["expires_in_s"] > 0
        assert row["network_id"] == rig.net
        assert row["bridge"] == lab.bridge
        assert row["ipv6"] is None
    assert _row(rows, web)["hostname"] == "cli-web"
    assert (_row(rows, web)["state"], _row(rows, db)["state"]) in {
        ("BOUND", "BOUND"), ("BOUND", "RENEWING"), ("RENEWING", "BOUND"),
        ("RENEWING", "RENEWING")}
    assert _row(rows, idle)["state"] == "not joined"
    assert {le.mac for le in lab.leases()} >= {web.mac, db.mac, idle.mac}

    # ---- the table
    res = net_dhcp("leases", "--socket", sock)
    assert res.returncode == exits.OK, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0].split()[:4] == ["CONTAINER", "NETWORK", "MAC", "IPV4"]
    assert re.search(r"  HOSTNAME  +STATE  +EXPIRES IN$", lines[0]), lines[0]
    by_mac = {ln.split()[2]: ln.split() for ln in lines[1:]}
    assert set(by_mac) == {web.mac, db.mac, idle.mac}
    web_row = by_mac[web.mac]
    assert web_row[:6] == ["-", rig.net[:12], web.mac, web.address.split("/")[0], "-",
                           "cli-web"]
    assert web_row[6] in ("BOUND", "RENEWING")
    assert re.fullmatch(r"\d+m\d\ds|\d+s", web_row[7]), web_row
    assert by_mac[idle.mac][6:8] == ["not", "joined"]

    # ---- filters
    one = cli_json("leases", "--socket", sock, "--container", web.endpoint_id[:10])
    assert [r["mac"] for r in one["leases"]] == [web.mac]
    assert len(cli_json("leases", "--socket", sock, "--network", lab.bridge)["leases"]) == 3
    assert len(cli_json("leases", "--socket", sock, "--network", rig.net[:8])["leases"]) == 3
    assert cli_json("leases", "--socket", sock, "--network", "no-such-net")["leases"] == []

    # ---- status: the process, the network, the endpoints by state, renewals growing
    st = cli_json("status", "--socket", sock)
    assert st["running"] is True
    assert st["plugin"]["pid"] == rig.plugin.proc.pid  # type: ignore[union-attr]
    assert st["plugin"]["uptime_s"] > 0
    assert st["plugin"]["state_db"] == str(rig.plugin.state_dir / "net-dhcp.sqlite3")
    assert [(n["id"], n["bridge"], n["endpoints"]) for n in st["networks"]] == [
        (rig.net, lab.bridge, 3)]
    assert st["totals"]["endpoints"] == 3
    assert st["totals"]["by_state"].get("not joined") == 1
    assert st["totals"]["failures"] == 0
    first = st["totals"]["renewals"]

    seen: list[int] = []  # total renewals at each look

    def renewed() -> bool:
        now = cli_json("status", "--socket", sock)
        seen.append(now["totals"]["renewals"])
        per: dict[str, int] = {e["id"]: e["renewals"] for e in now["endpoints"]}
        return seen[-1] >= first + 4 and per[web.endpoint_id] >= 1 and per[db.endpoint_id] >= 1

    wait_until(renewed, 30, "renewals to grow in net-dhcp status",
               detail=lambda: f"totals seen: {seen}\n{rig.plugin.diagnostics()}")
    res = net_dhcp("status", "--socket", sock)
    assert res.returncode == exits.OK
    assert res.stdout.startswith(f"plugin     running: pid {rig.plugin.proc.pid}, ")  # type: ignore[union-attr]
    assert f"\nsocket     {sock}\n" in res.stdout
    assert re.search(r"\nendpoints  3 \(.*not joined 1.*\)\n", res.stdout), res.stdout
    assert re.search(rf"\n\S+\s+{rig.net[:12]}\s+{lab.bridge}\s+no\s+3$", res.stdout)

    # A keeper that stops takes nothing away from the totals.
    before = cli_json("status", "--socket", sock)["totals"]["renewals"]
    rig.docker.stop(db)
    after = cli_json("status", "--socket", sock)
    assert after["totals"]["renewals"] >= before
    assert after["totals"]["endpoints"] == 2

    # ---- doctor finds the plugin's bridge by itself, and it is healthy
    res = net_dhcp("doctor", "--socket", sock, "--timeout", PROBE_S)
    assert res.returncode == exits.OK, res.stdout + res.stderr
    assert res.stdout.startswith(f"bridge {lab.bridge}\n")

    # ---- the plugin stops: status says so (exit 3), leases reads its state file
    rig.plugin.stop()
    res = net_dhcp("status", "--socket", sock)
    assert res.returncode == exits.NOT_RUNNING
    assert res.stdout.startswith("not running:")
    assert cli_json("status", "--socket", sock, code=exits.NOT_RUNNING)["running"] is False
    res = net_dhcp("leases", "--socket", sock, "--state-dir", str(rig.plugin.state_dir),
                   "--json")
    assert res.returncode == exits.OK, res.stderr
    assert "not running" in res.stderr
    assert "read-only" in res.stderr
    offline = json.loads(res.stdout)
    assert offline["source"] == "state-file"
    assert {r["mac"]: r["state"] for r in offline["leases"]} == {web.mac: "unknown",
                                                                 idle.mac: "unknown"}
    assert _row(offline["leases"], web)["ipv4"]["address"] == web.address
    res = net_dhcp("leases", "--socket", sock, "--state-dir", "/nonexistent-net-dhcp")
    assert res.returncode == exits.NOT_RUNNING


# --------------------------------------------------------------------------- doctor


def doctor(*args: str) -> tuple[int, dict[str, Any]]:
    res = net_dhcp("doctor", "--timeout", PROBE_S, "--json", *args)
    assert res.returncode in (exits.OK, exits.PROBLEMS), res.stderr
    return res.returncode, json.loads(res.stdout)


def statuses(doc: dict[str, Any]) -> dict[str, str]:
    [bridge] = doc["bridges"]
    return {f["check"]: f["status"] for f in bridge["findings"]}


def finding(doc: dict[str, Any], check: str) -> dict[str, Any]:
    [bridge] = doc["bridges"]
    [found] = [f for f in bridge["findings"] if f["check"] == check]
    return dict(found)


def test_doctor_passes_on_a_healthy_lab(lan: LanFactory) -> None:
    require_root()
    lab = lan()
    pin_mac(lab)
    before = probe_links()
    started = time.monotonic()
    code, doc = doctor(lab.bridge)
    took = time.monotonic() - started
    assert code == exits.OK, doc
    assert statuses(doc) == {"bridge": "ok", "ports": "ok", "stp": "ok", "mac": "ok",
                             "netfilter": "ok", "dhcp": "ok"}
    assert f"{lab.server_ip} (" in finding(doc, "dhcp")["message"]
    assert lab.server_veth in finding(doc, "ports")["message"]
    assert took < 10, took
    assert probe_links() == before  # the probe's veth pair is gone
    res = net_dhcp("doctor", "--timeout", PROBE_S, lab.bridge)
    assert res.returncode == exits.OK
    assert res.stdout.rstrip().endswith("no problem found (1 bridge checked).")
    assert lab.leases() == []  # the probe never took a lease


def test_doctor_reports_a_missing_bridge() -> None:
    require_root()
    name = f"ndbr{secrets.token_hex(3)}"
    assert name not in links()
    code, doc = doctor(name)
    assert code == exits.PROBLEMS
    assert doc["problems"] == 1
    assert statuses(doc) == {"bridge": "problem"}
    assert f"ip link add {name} type bridge" in finding(doc, "bridge")["fix"]


def test_doctor_reports_no_dhcp_server(lan: LanFactory) -> None:
    require_root()
    lab = lan()
    pin_mac(lab)
    lab.stop_dnsmasq()
    before = probe_links()
    code, doc = doctor(lab.bridge)
    assert code == exits.PROBLEMS
    assert statuses(doc) == {"bridge": "ok", "ports": "ok", "stp": "ok", "mac": "ok",
                             "netfilter": "ok", "dhcp": "problem"}
    dhcp = finding(doc, "dhcp")
    assert re.match(rf"no DHCP server answered \d+ DISCOVER\(s\) sent from a probe port on "
                    rf"{lab.bridge} within {PROBE_S}s", dhcp["message"])
    assert dhcp["fix"].startswith("check that the bridge holds your LAN interface")
    assert f"ip link show master {lab.bridge}" in dhcp["fix"]
    assert probe_links() == before
    res = net_dhcp("doctor", "--timeout", "1", lab.bridge)
    assert res.returncode == exits.PROBLEMS
    assert "  PROBLEM  dhcp       no DHCP server answered" in res.stdout
    assert res.stdout.rstrip().endswith("1 problem found (1 bridge checked).")


def test_doctor_reports_a_bridge_mac_not_pinned(lan: LanFactory) -> None:
    require_root()
    lab = lan()  # the lab's bridge takes its MAC from its port
    code, doc = doctor(lab.bridge)
    assert code == exits.PROBLEMS
    assert statuses(doc) == {"bridge": "ok", "ports": "ok", "stp": "ok", "mac": "problem",
                             "netfilter": "ok", "dhcp": "ok"}
    mac = Path(f"/sys/class/net/{lab.server_veth}/address").read_text().strip()
    assert finding(doc, "mac")["fix"] == f"ip link set {lab.bridge} address {mac}"
    # The probe port did not change the unpinned bridge's MAC (its own is fe:..., above).
    assert Path(f"/sys/class/net/{lab.bridge}/address").read_text().strip() == mac


def test_doctor_reports_the_firewall(lan: LanFactory) -> None:
    require_root()
    chains = firewall.read_nftables()
    if not firewall.bridge_netfilter_on() or not any(
            v.verdict == "drop" for v in firewall.blocking(chains, "ndbr-none",
                                                           bridge_netfilter=True)):
        pytest.skip("needs bridge netfilter on and a FORWARD policy of DROP (Docker's)")
    lab = lan(forward_rule=False)
    pin_mac(lab)
    code, doc = doctor(lab.bridge)
    assert code == exits.PROBLEMS
    st = statuses(doc)
    assert (st["netfilter"], st["dhcp"]) == ("problem", "problem")
    net = finding(doc, "netfilter")
    assert "iptables (nf_tables) chain FORWARD drops it" in net["message"]
    assert f"iptables -I FORWARD -i {lab.bridge} -o {lab.bridge} -j ACCEPT" in net["fix"]
    assert finding(doc, "dhcp")["fix"].startswith("fix the problems above first; then ")
