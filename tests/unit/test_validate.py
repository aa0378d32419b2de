"""validate_dhcp (validate.py): the wait, the refusal messages, and when the driver probes.

The probe itself (a veth on a real bridge, a real dnsmasq) is exercised end to end in
tests/e2e/test_validate.py; here it is replaced by a stand-in that records its calls.
"""

from __future__ import annotations

from collections.abc import Iterator
from ipaddress import IPv4Address
from pathlib import Path

import pytest

from net_dhcp import dhcp_probe, diagnose, netlink, validate
from net_dhcp.config import NetworkOptions
from net_dhcp.driver import Driver
from net_dhcp.errors import LeaseError, NetlinkError
from net_dhcp.requests import CreateNetworkRequest, IpamData
from net_dhcp.store import Store

OFFER = dhcp_probe.Offer(IPv4Address("10.0.0.1"), IPv4Address("10.0.0.150"),
                         "02:00:00:00:00:01", 0.01)


class FakeProbe:
    """Stands in for dhcp_probe.probe: records (bridge, timeout) and returns `result`."""

    def __init__(self, result: dhcp_probe.ProbeResult | None = None,
                 error: OSError | None = None) -> None:
        self.result = result or dhcp_probe.ProbeResult(port="ndpaaaaaah", discovers=2)
        self.error = error
        self.calls: list[tuple[str, float]] = []

    async def __call__(self, bridge: str, timeout_s: float) -> dhcp_probe.ProbeResult:
        self.calls.append((bridge, timeout_s))
        if self.error is not None:
            raise self.error
        return self.result


@pytest.fixture(autouse=True)
def no_netfilter(monkeypatch: pytest.MonkeyPatch) -> None:
    """The diagnosis reads the host's bridge netfilter switch: make it say off."""
    monkeypatch.setattr(diagnose, "_bridge_netfilter_on", lambda: False)


def opts(**kw: str) -> NetworkOptions:
    return NetworkOptions.from_generic({"bridge": "br0", **kw})


def test_the_wait_is_the_lease_timeout_capped_below_dockers_timeout() -> None:
    assert validate.wait_s(opts()) == 10.0
    assert validate.wait_s(opts(lease_timeout="3s")) == 3.0
    assert validate.wait_s(opts(lease_timeout="500ms")) == 0.5
    assert validate.wait_s(opts(lease_timeout="10m")) == validate.MAX_WAIT_S
    assert validate.MAX_WAIT_S < 30  # a managed plugin's Docker client gives up at 30 s


@pytest.mark.asyncio
async def test_an_offer_is_no_refusal() -> None:
    result = dhcp_probe.ProbeResult(port="ndpaaaaaah", discovers=1, offers=[OFFER])
    assert await validate.refusal("br0", 3, result) is None


@pytest.mark.asyncio
async def test_no_offer_gives_the_lease_timeout_diagnosis() -> None:
    result = dhcp_probe.ProbeResult(port="ndpaaaaaah", discovers=3)
    why = await validate.refusal("br0", 3, result)
    assert why is not None
    assert why.startswith("validate_dhcp: no DHCP lease within 3s on bridge br0; sent 3 "
                          "DISCOVER(s), no offer came. Likely causes: (1) no DHCP server "
                          "answered on br0")
    assert "-o lease_timeout=30s" in why
    assert why.endswith("; or create the network without -o validate_dhcp=true")
    # The very text a container's lease timeout gives, prefixed.
    from net_dhcp.dhcp4.client import AcquireStats
    assert await diagnose.explain_no_lease("br0", 3, AcquireStats(discovers=3)) in why


@pytest.mark.asyncio
async def test_a_port_that_never_forwards_names_the_bridge_state() -> None:
    result = dhcp_probe.ProbeResult(port="ndpaaaaaah", forwarding=False)
    why = await validate.refusal("br0", 2, result)
    assert why is not None
    assert "did not start passing frames within 2s" in why
    assert "ip link set br0 up" in why
    assert "stp_state 0" in why


@pytest.mark.asyncio
async def test_validate_refuses_accepts_and_reports_probe_errors(
        monkeypatch: pytest.MonkeyPatch) -> None:
    silent = FakeProbe()
    monkeypatch.setattr(dhcp_probe, "probe", silent)
    with pytest.raises(LeaseError, match=r"^validate_dhcp: no DHCP lease within 4s on bridge "
                                         r"br0; sent 2 DISCOVER"):
        await validate.validate(opts(lease_timeout="4s"))
    assert silent.calls == [("br0", 4.0)]

    answered = FakeProbe(dhcp_probe.ProbeResult(port="ndpaaaaaah", discovers=1,
                                                offers=[OFFER]))
    monkeypatch.setattr(dhcp_probe, "probe", answered)
    await validate.validate(opts(lease_timeout="5m"))
    assert answered.calls == [("br0", validate.MAX_WAIT_S)]

    broken = FakeProbe(error=OSError("bridge br0 is gone"))
    monkeypatch.setattr(dhcp_probe, "probe", broken)
    with pytest.raises(NetlinkError, match="could not make a probe port on bridge br0: "
                                           "bridge br0 is gone"):
        await validate.validate(opts())


# ---- the driver: probes only at create, only when asked ----------------------------------------
@pytest.fixture
def driver(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Driver]:
    async def bridge_info(name: str, *, with_routes: bool = True) -> netlink.BridgeInfo:
        return netlink.BridgeInfo(name=name, index=7, addresses=(), default_gateway=None,
                                  routes=())
    monkeypatch.setattr(netlink, "bridge_info", bridge_info)
    monkeypatch.setattr(netlink, "bridge_mac_is_fixed", lambda name: True)
    store = Store(tmp_path)
    yield Driver(store)
    store.close()


def create_req(net_id: str, **generic: str) -> CreateNetworkRequest:
    return CreateNetworkRequest(
        network_id=net_id, generic={"bridge": "br0", **generic}, enable_ipv6=False,
        enable_ipv4=True, ipv4_data=(IpamData("null", "0.0.0.0/0", None),), ipv6_data=())


@pytest.mark.asyncio
async def test_driver_probes_only_networks_that_ask(
        driver: Driver, monkeypatch: pytest.MonkeyPatch) -> None:
    probe = FakeProbe()
    monkeypatch.setattr(dhcp_probe, "probe", probe)
    await driver.create_network(create_req("a" * 64))
    assert probe.calls == []
    assert "a" * 64 in driver.registry.networks

    with pytest.raises(LeaseError, match="validate_dhcp: no DHCP lease"):
        await driver.create_network(create_req("b" * 64, validate_dhcp="true",
                                               ignore_conflicts="true"))
    assert probe.calls == [("br0", 10.0)]
    assert "b" * 64 not in driver.registry.networks  # refused: nothing kept

    probe.result = dhcp_probe.ProbeResult(port="ndpaaaaaah", discovers=1, offers=[OFFER])
    await driver.create_network(create_req("c" * 64, validate_dhcp="true",
                                           ignore_conflicts="true"))
    assert "c" * 64 in driver.registry.networks
    assert driver.registry.networks["c" * 64].options.validate_dhcp is True

    # Re-adoption after a restart with the state file lost: no second probe.
    driver.recover_network("d" * 64, {"bridge": "br0", "validate_dhcp": "true",
                                      "ignore_conflicts": "true"}, False)
    assert "d" * 64 in driver.registry.networks
    assert len(probe.calls) == 2
