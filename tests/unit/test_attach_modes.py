"""Attachment modes (issue 11 item 1): the options, the names, the one place a mode is chosen,
what an ipvlan container says to the DHCP server, and the driver's checks at create.

The kernel side (macvlan and ipvlan links on a real parent, dnsmasq, dockerd) is in
tests/integration/test_attach_modes.py and tests/e2e/test_attach_modes.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

import pytest

from net_dhcp import diagnose, netlink
from net_dhcp.attach import choose
from net_dhcp.attach.ipvlan import IpvlanAttachment
from net_dhcp.attach.macvlan import MacvlanAttachment
from net_dhcp.attach.veth import VethAttachment
from net_dhcp.config import EndpointOptions, NetworkOptions
from net_dhcp.dhcp4 import codec
from net_dhcp.dhcp4.client import AcquireStats, acquire
from net_dhcp.dhcp4.timing import Timing
from net_dhcp.dhcp6 import codec as codec6
from net_dhcp.dhcp6.client import Acquire6Stats
from net_dhcp.driver import Driver, generated_mac
from net_dhcp.errors import OptionError
from net_dhcp.leases import client_identity
from net_dhcp.registry import Endpoint
from net_dhcp.requests import CreateEndpointRequest, CreateNetworkRequest, IpamData
from net_dhcp.store import Store
from tests.unit.test_keeper import FakeSock, a_lease, reply

EP = "e" * 64
PARENT_MAC = bytes.fromhex("0a0000000001")


# ---- options ---------------------------------------------------------------------------------
def test_bridge_stays_the_default_mode() -> None:
    o = NetworkOptions.from_generic({"bridge": "br0"})
    assert (o.mode, o.bridge, o.parent, o.lan) == ("bridge", "br0", "", "br0")
    assert NetworkOptions.from_generic({"bridge": "br0", "mode": "Bridge"}).mode == "bridge"


@pytest.mark.parametrize("mode", ["macvlan", "ipvlan", "MACVLAN"])
def test_parent_modes_take_a_parent_and_no_bridge(mode: str) -> None:
    o = NetworkOptions.from_generic({"mode": mode, "parent": "eth0"})
    assert (o.mode, o.parent, o.bridge, o.lan) == (mode.lower(), "eth0", "", "eth0")
    assert NetworkOptions.from_json(o.to_json()) == o


@pytest.mark.parametrize(("generic", "match"), [
    ({"mode": "macvlan"}, r"option parent is required with mode=macvlan: create the network "
                          r"with -o parent=<your LAN interface"),
    ({"mode": "ipvlan", "parent": " "}, r"option parent is required with mode=ipvlan"),
    ({"mode": "macvlan", "parent": "eth0", "bridge": "br0"},
     r"option bridge is for mode=bridge: with mode=macvlan .* Drop -o bridge=br0"),
    ({"bridge": "br0", "parent": "eth0"},
     r"option parent is for mode=macvlan or mode=ipvlan: .* Drop -o parent, or add -o "
     r"mode=macvlan"),
    ({"mode": "bridge", "parent": "eth0"}, r"option parent is for mode=macvlan"),
    ({"mode": "ipvlan-l3", "parent": "eth0"},
     r"option mode='ipvlan-l3' is not valid: use mode=bridge .*mode=macvlan or mode=ipvlan"),
    ({"mode": "macvlan", "parent": "eth0/../x"}, r"option parent='eth0/../x' is not an "
                                                 r"interface name"),
    ({"mode": "macvlan", "parent": "a" * 16}, r"at most 15 characters"),
    ({"parent": "eth0", "mode": "macvlan", "bridge": ""}, None),
])
def test_mode_and_parent_are_checked_with_a_fix(generic: dict[str, str],
                                                match: str | None) -> None:
    if match is None:
        assert NetworkOptions.from_generic(generic).lan == "eth0"
        return
    with pytest.raises(OptionError, match=match):
        NetworkOptions.from_generic(generic)


def test_state_written_before_modes_is_bridge_mode() -> None:
    old = '{"bridge": "br0", "ipv6": false, "lease_timeout_s": 10.0}'
    o = NetworkOptions.from_json(old)
    assert (o.mode, o.lan) == ("bridge", "br0")
    assert isinstance(choose.attachment(o), VethAttachment)


# ---- names and the choice --------------------------------------------------------------------
def test_each_mode_has_its_own_names_and_traits() -> None:
    veth = choose.attachment(NetworkOptions.from_generic({"bridge": "br0"}))
    mac = choose.attachment(NetworkOptions.from_generic({"mode": "macvlan", "parent": "p0"}))
    ipv = choose.attachment(NetworkOptions.from_generic({"mode": "ipvlan", "parent": "p0"}))
    assert (type(veth), type(mac), type(ipv)) == (VethAttachment, MacvlanAttachment,
                                                  IpvlanAttachment)
    assert veth.names(EP) == ("dh" + "e" * 12, "dc" + "e" * 12)
    assert mac.names(EP) == ("dm" + "e" * 12,) * 2
    assert ipv.names(EP) == ("dv" + "e" * 12,) * 2
    assert all(len(n) <= 15 for a in (veth, mac, ipv) for n in a.names(EP))
    assert len({a.prefix for a in choose.all_modes()}) == 3
    assert (veth.shares_mac, mac.shares_mac, ipv.shares_mac) == (False, False, True)
    assert (veth.unique_macs, mac.unique_macs, ipv.unique_macs) == (False, True, False)
    assert mac.mtu_names("dmx", "dmx") == ("dmx",)
    assert veth.mtu_names("dhx", "dcx") == ("dhx", "dcx")
    assert (veth.where(), mac.where(), ipv.where()) == ("bridge br0", "parent p0 (macvlan)",
                                                       "parent p0 (ipvlan)")


def test_ipvlan_links_carry_the_parents_mac(monkeypatch: pytest.MonkeyPatch) -> None:
    import net_dhcp.attach.ipvlan as ipvlan_mod
    monkeypatch.setattr(ipvlan_mod, "read_mac", lambda name: PARENT_MAC)
    ipv = IpvlanAttachment("p0")
    assert ipv.link_mac("02:00:00:00:00:09") == "0a:00:00:00:00:01"
    assert MacvlanAttachment("p0").link_mac("02:00:00:00:00:09") == "02:00:00:00:00:09"


# ---- what the DHCP server sees from an ipvlan container ---------------------------------------
@pytest.mark.asyncio
async def test_ipvlan_client_id_is_the_endpoints_mac_chaddr_the_parents_and_broadcast() -> None:
    """chaddr = the interface's MAC (the parent's, shared); option 61 = type 1 + the
    endpoint's own generated MAC; DISCOVER and REQUEST carry the BROADCAST flag."""
    opts = NetworkOptions.from_generic({"mode": "ipvlan", "parent": "p0"})
    identity = generated_mac(EP)
    other = generated_mac("f" * 64)
    assert identity != other

    def server(msg: codec.DhcpMessage) -> codec.DhcpMessage | None:
        if msg.message_type is codec.MessageType.DISCOVER:
            return reply(codec.MessageType.OFFER, msg, "10.0.0.60")
        return reply(codec.MessageType.ACK, msg, "10.0.0.60")

    sock = FakeSock(server)
    sock.mac = PARENT_MAC
    lease = await acquire(sock, client_id=client_identity(opts, identity),  # type: ignore[arg-type]
                          hostname=None, timeout_s=2, timing=Timing(), rapid_commit=False)
    assert lease.address.ip == IPv4Address("10.0.0.60")
    kinds = [m.message_type for m, *_ in sock.sent]
    assert kinds == [codec.MessageType.DISCOVER, codec.MessageType.REQUEST]
    for msg, *_ in sock.sent:
        assert msg.chaddr == PARENT_MAC
        assert msg.client_id == b"\x01" + codec.mac_from_str(identity)
        assert msg.flags & codec.BROADCAST_FLAG
    assert bytes(client_identity(opts, other)) != bytes(client_identity(opts, identity))
    # A client_id template takes the endpoint's MAC too, never the shared one.
    templ = NetworkOptions.from_generic({"mode": "ipvlan", "parent": "p0",
                                         "client_id": "web-{mac}"})
    assert bytes(client_identity(templ, identity)) == b"\x00web-" + identity.encode()


@pytest.mark.asyncio
async def test_no_offer_on_a_parent_is_explained_for_its_mode(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(diagnose, "_bridge_netfilter_on", lambda: True)
    stats = AcquireStats(discovers=3)
    mac = await diagnose.explain_no_lease("eth0", 5, stats, kind="macvlan")
    assert mac.startswith("no DHCP lease within 5s on parent eth0 (macvlan); sent 3 DISCOVER")
    assert "Wi-Fi" in mac
    assert "iptables" not in mac
    assert "mode=ipvlan" in mac
    ipv = await diagnose.explain_no_lease("eth0", 5, stats, kind="ipvlan")
    assert "keys leases by MAC alone gives them one address" in ipv
    v6 = diagnose.explain_no_lease6("eth0", 5, Acquire6Stats(), kind="ipvlan")
    assert v6.startswith("no DHCPv6 lease within 5s on parent eth0 (ipvlan)")
    assert "across the bridge" not in v6


def test_dhcpv6_identity_comes_from_the_endpoints_mac() -> None:
    """The DUID-LL and IAID the plugin uses are made from `mac` (the endpoint's), which on
    ipvlan is not the interface's: two ipvlan containers are two DHCPv6 clients."""
    a, b = generated_mac("a" * 64), generated_mac("b" * 64)
    assert codec6.duid_ll(codec.mac_from_str(a)) != codec6.duid_ll(codec.mac_from_str(b))
    assert codec6.duid_ll(codec.mac_from_str(a)) != codec6.duid_ll(PARENT_MAC)
    assert codec6.iaid_for_mac(codec.mac_from_str(a)) != codec6.iaid_for_mac(PARENT_MAC)


def test_endpoint_finds_its_interface_by_the_mac_it_carries() -> None:
    ep = Endpoint(id=EP, network_id="n", host_if="dv", cont_if="dv", mac="02:00:00:00:00:09",
                  options=EndpointOptions(), lease=None)
    assert ep.iface_mac == ep.mac
    ep.link_mac = "0a:00:00:00:00:01"
    assert ep.iface_mac == "0a:00:00:00:00:01"
    assert ep.mac == "02:00:00:00:00:09"


# ---- the driver at create --------------------------------------------------------------------
class FakeKernel:
    """netlink's parent look-up and link creation, recorded."""

    def __init__(self) -> None:
        self.parents = {"p0", "p1"}
        self.made: list[tuple[str, str, str]] = []
        self.deleted: list[str] = []
        self.no_kind: set[str] = set()

    async def parent_info(self, name: str, *, with_routes: bool = True) -> netlink.BridgeInfo:
        if name not in self.parents:
            raise OptionError(f"parent {name!r} does not exist: ...")
        return netlink.BridgeInfo(name, 3, (), None, ())

    async def create_sublink(self, name: str, parent: str, kind: str, mac: str | None, *,
                             replace_leftover: bool, no_dad: bool = False,
                             quiet: bool = False) -> str:
        if kind in self.no_kind:
            raise OptionError(f"this kernel has no {kind} support")
        self.made.append((name, parent, kind))
        return "0a:00:00:00:00:01" if kind == "ipvlan" or mac is None else mac

    async def delete_link(self, name: str) -> bool:
        self.deleted.append(name)
        return True


@pytest.fixture
def kernel(monkeypatch: pytest.MonkeyPatch) -> FakeKernel:
    k = FakeKernel()
    monkeypatch.setattr(netlink, "parent_info", k.parent_info)
    monkeypatch.setattr(netlink, "create_sublink", k.create_sublink)
    monkeypatch.setattr(netlink, "delete_link", k.delete_link)

    async def bridge_info(name: str, *, with_routes: bool = True) -> netlink.BridgeInfo:
        return netlink.BridgeInfo(name, 7, (), None, ())
    monkeypatch.setattr(netlink, "bridge_info", bridge_info)
    monkeypatch.setattr(netlink, "bridge_mac_is_fixed", lambda name: True)
    return k


@pytest.fixture
def driver(tmp_path: Path) -> Iterator[Driver]:
    store = Store(tmp_path)
    yield Driver(store)
    store.close()


def net_req(net_id: str, **generic: str) -> CreateNetworkRequest:
    return CreateNetworkRequest(
        network_id=net_id, generic=generic, enable_ipv6=False, enable_ipv4=True,
        ipv4_data=(IpamData("null", "0.0.0.0/0", None),), ipv6_data=())


@pytest.mark.asyncio
async def test_one_network_per_parent_unless_ignore_conflicts(driver: Driver,
                                                              kernel: FakeKernel) -> None:
    await driver.create_network(net_req("a" * 64, mode="macvlan", parent="p0"))
    # The kind is tried at create with a throwaway link, deleted at once.
    assert [(p, k) for _, p, k in kernel.made] == [("p0", "macvlan")]
    assert kernel.deleted == [kernel.made[0][0]]
    with pytest.raises(OptionError, match=r"^parent p0 is already used by net-dhcp network "
                                          r"aaaaaaaaaaaa \(mode macvlan\): use that network, "
                                          r"or add -o ignore_conflicts=true"):
        await driver.create_network(net_req("b" * 64, mode="ipvlan", parent="p0"))
    await driver.create_network(net_req("c" * 64, mode="ipvlan", parent="p0",
                                        ignore_conflicts="true"))
    await driver.create_network(net_req("d" * 64, mode="macvlan", parent="p1"))
    with pytest.raises(OptionError, match="parent 'nope' does not exist"):
        await driver.create_network(net_req("e" * 64, mode="macvlan", parent="nope"))
    assert set(driver.registry.networks) == {"a" * 64, "c" * 64, "d" * 64}


@pytest.mark.asyncio
async def test_a_kernel_without_the_mode_is_refused_at_create(driver: Driver,
                                                              kernel: FakeKernel) -> None:
    kernel.no_kind.add("ipvlan")
    with pytest.raises(OptionError, match="this kernel has no ipvlan support"):
        await driver.create_network(net_req("a" * 64, mode="ipvlan", parent="p0"))
    assert driver.registry.networks == {}


@pytest.mark.asyncio
async def test_ipvlan_refuses_a_mac_address_and_never_returns_one(driver: Driver,
                                                                   kernel: FakeKernel,
                                                                   monkeypatch: pytest.MonkeyPatch
                                                                   ) -> None:
    await driver.create_network(net_req("a" * 64, mode="ipvlan", parent="p0"))
    kernel.made.clear()
    req = CreateEndpointRequest(network_id="a" * 64, endpoint_id=EP, address="",
                                address_ipv6="", mac="02:42:0a:00:00:02", options={})
    with pytest.raises(OptionError, match=r"is in ipvlan mode: every container's interface has "
                                          r"the MAC of parent p0.*--mac-address "
                                          r"02:42:0a:00:00:02 cannot be applied"):
        await driver.create_endpoint(req)
    assert kernel.made == []

    seen: dict[str, Any] = {}

    async def fake_acquire(net: Any, ep: Endpoint, clock: Any) -> None:
        seen["mac"], seen["link_mac"] = ep.mac, ep.link_mac
        ep.lease = _lease()

    monkeypatch.setattr(driver, "_acquire_all", fake_acquire)
    out = await driver.create_endpoint(CreateEndpointRequest(
        network_id="a" * 64, endpoint_id=EP, address="", address_ipv6="", mac="",
        options={}))
    assert out == {"Interface": {"Address": "10.0.0.60/24"}}  # no MacAddress for Docker
    assert kernel.made == [("dv" + "e" * 12, "p0", "ipvlan")]
    assert seen == {"mac": generated_mac(EP), "link_mac": "0a:00:00:00:00:01"}
    ep = driver.registry.endpoints[EP]
    await driver.remove_endpoint(ep, release=False)
    assert kernel.deleted[-1] == "dv" + "e" * 12


def _lease() -> Any:
    return a_lease("10.0.0.60")


@pytest.mark.asyncio
async def test_bridge_diagnosis_keeps_every_cause(monkeypatch: pytest.MonkeyPatch) -> None:
    """Bridge mode's message is as before the modes: netfilter, no server, ping check."""
    monkeypatch.setattr(diagnose, "_bridge_netfilter_on", lambda: True)

    async def dropping() -> tuple[str, list[str]]:
        return "DROP", []
    monkeypatch.setattr(diagnose, "forward_policy", dropping)
    why = await diagnose.explain_no_lease("br0", 2, AcquireStats(discovers=2))
    assert "(1) the host's firewall drops it" in why
    assert "(2) no DHCP server answered on br0" in why
    assert "(3) a server that ping-checks" in why
