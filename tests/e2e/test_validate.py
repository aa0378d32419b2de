"""Issue 11 item 5 end to end: `-o validate_dhcp=true` at `docker network create`.

Real dockerd, real dnsmasq: a bridge with no server is refused with the lease-timeout
diagnosis and the probe's throwaway veth is gone; with the server running the network is
created, the probe's OFFER left no lease, and a container gets its address. A validated
network re-adopted after a restart (state file lost) is not probed again.
"""

from __future__ import annotations

import re

from tests.conftest import DockerCleanup, LanFactory, PluginFactory
from tests.e2e.test_plugin import addr_of
from tests.lab import DhcpLan, Plugin, sh

PROBE_LOG = re.compile(r"validate_dhcp: probe port (ndp[0-9a-f]{6})h on bridge (\S+) sent "
                       r"(\d+) DISCOVER\(s\) in \S+: (.*)")


def bridge_ports(bridge: str) -> list[str]:
    out = sh("ip", "-o", "link", "show", "master", bridge).stdout
    return sorted(ln.split(":")[1].strip().split("@")[0] for ln in out.splitlines())


def link_exists(name: str) -> bool:
    return sh("ip", "link", "show", "dev", name, check=False).returncode == 0


def create(dc: DockerCleanup, driver: str, lab: DhcpLan, name: str,
           **opts: str) -> tuple[int, str]:
    """``docker network create`` (tracked for removal); (exit code, stderr)."""
    dc.track_network(name)
    cmd = ["network", "create", "-d", driver, "--ipam-driver", "null",
           "-o", f"bridge={lab.bridge}"]
    for k, v in opts.items():
        cmd += ["-o", f"{k}={v}"]
    res = dc.docker(*cmd, name, check=False)
    return res.returncode, res.stderr


def probe_seen(p: Plugin, lab: DhcpLan, since: int) -> re.Match[str]:
    """The plugin's log line for this create's probe; its interfaces must be gone."""
    m = p.wait_for_log(PROBE_LOG, timeout=10, since=since)
    assert m.group(2) == lab.bridge
    tag = m.group(1)
    assert not link_exists(tag + "h"), f"probe port {tag}h left behind"
    assert not link_exists(tag + "c"), f"probe client {tag}c left behind"
    return m


def test_validate_dhcp_refuses_a_silent_bridge_and_accepts_a_served_one(
        lan: LanFactory, docker_cleanup: DockerCleanup, plugin: Plugin, image: str) -> None:
    lab = lan()
    before = bridge_ports(lab.bridge)
    assert before == [lab.server_veth]

    # No server: refused, with the diagnosis a lease timeout gives, and nothing left.
    lab.stop_dnsmasq()
    mark = plugin.log_offset()
    code, err = create(docker_cleanup, plugin.name, lab, f"nd-val-{lab.id}-off",
                       validate_dhcp="true", lease_timeout="2s")
    assert code != 0
    assert f"validate_dhcp: no DHCP lease within 2s on bridge {lab.bridge}; sent" in err
    assert "no offer came. Likely causes: (1)" in err
    assert "without -o validate_dhcp=true" in err
    m = probe_seen(plugin, lab, mark)
    assert int(m.group(3)) >= 1
    assert m.group(4) == "no offer"
    assert docker_cleanup.docker("network", "inspect", f"nd-val-{lab.id}-off",
                                 check=False).returncode != 0
    assert bridge_ports(lab.bridge) == before

    # Server up: created; the probe got an OFFER and sent no REQUEST, so no lease.
    lab.start_dnsmasq()
    mark, log_mark = plugin.log_offset(), lab.log_offset()
    net = f"nd-val-{lab.id}-on"
    code, err = create(docker_cleanup, plugin.name, lab, net, validate_dhcp="true",
                       lease_timeout="5s")
    assert code == 0, err
    m = probe_seen(plugin, lab, mark)
    assert re.match(rf"{re.escape(lab.server_ip)} \(\S+\) offered (\S+) after", m.group(4))
    assert bridge_ports(lab.bridge) == before
    seen = lab.log(log_mark)
    probe_mac = re.search(r"DHCPOFFER\(\w+\) \S+ (06(?::[0-9a-f]{2}){5})", seen)
    assert probe_mac, f"no OFFER to a probe MAC (06:...) in the dnsmasq log:\n{seen}"
    mac = probe_mac.group(1)
    assert not re.search(rf"DHCP(REQUEST|ACK)\(\w+\) .*{mac}", seen)
    assert all(lease.mac != mac for lease in lab.leases())
    assert lab.leases() == []

    # The validated network works like any other.
    out = docker_cleanup.run(image, "ip", "-4", "addr", "show", "eth0", network=net).stdout
    assert lab.in_range(addr_of(out)[0])


def test_validated_network_is_not_probed_again_when_readopted(
        fresh_plugin: PluginFactory, lan: LanFactory, docker_cleanup: DockerCleanup,
        image: str) -> None:
    lab = lan()
    p = fresh_plugin()
    mark = p.log_offset()
    net = f"nd-val-{lab.id}-re"
    code, err = create(docker_cleanup, p.name, lab, net, validate_dhcp="true")
    assert code == 0, err
    probe_seen(p, lab, mark)
    # The server goes away and the plugin restarts with its state lost: the network is
    # recovered from Docker's copy of its options, without a probe (which would fail now).
    lab.stop_dnsmasq()
    p.stop()
    for f in p.state_dir.glob("net-dhcp.sqlite3*"):
        f.unlink()
    mark = p.log_offset()
    p.start()
    p.wait_for_log(r"recovered network", timeout=30, since=mark)
    assert "validate_dhcp" not in p.log(mark)
    # The server is back: the network takes containers.
    lab.start_dnsmasq()
    out = docker_cleanup.run(image, "ip", "-4", "addr", "show", "eth0", network=net).stdout
    assert lab.in_range(addr_of(out)[0])
    assert "validate_dhcp" not in p.log(mark)
