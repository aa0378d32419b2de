"""The per-network identity and lease options: client_id (61), vendor_class (60),
register_dns (DHCPv4 81, DHCPv6 39), gateway, propagate_mtu (26): parsing, state, wire."""

from __future__ import annotations

import json
import os
from ipaddress import IPv4Address, IPv4Interface
from pathlib import Path

import pytest

from net_dhcp import resolv
from net_dhcp.config import NETWORK_OPTIONS, NetworkOptions, clamp_mtu
from net_dhcp.dhcp4 import codec
from net_dhcp.dhcp4.codec import ClientIdentity, Opt, client_id_from_text
from net_dhcp.dhcp4.lease import Lease
from net_dhcp.dhcp6 import codec as codec6
from net_dhcp.errors import OptionError
from net_dhcp.leases import (
    client_duid,
    client_identity,
    gateway_for,
    wanted_dns,
    wanted_mtu,
)

MAC = bytes.fromhex("020000000001")
MAC_TEXT = "02:00:00:00:00:01"


def _lease(**kw: object) -> Lease:
    base: dict[str, object] = dict(
        address=IPv4Interface("10.0.0.50/24"), server_id=IPv4Address("10.0.0.1"),
        server_mac=b"\x02" * 6, gateway=IPv4Address("10.0.0.1"), routes=(), dns=(),
        domain=None, lease_time_s=600.0, t1_s=300.0, t2_s=525.0, obtained_at=1000.0)
    base.update(kw)
    return Lease(**base)  # type: ignore[arg-type]


# -- options: parsing, errors, state --------------------------------------------------------


def test_all_new_options_parse_and_survive_the_state() -> None:
    opts = NetworkOptions.from_generic({
        "bridge": "br0", "client_id": "web-{mac}", "vendor_class": "acme appliance 1.0",
        "register_dns": "yes", "gateway": "10.0.0.254", "propagate_mtu": "true"})
    assert (opts.client_id, opts.vendor_class, opts.register_dns, opts.gateway,
            opts.propagate_mtu) == ("web-{mac}", "acme appliance 1.0", True, "10.0.0.254",
                                    True)
    assert opts.gateway_ip == IPv4Address("10.0.0.254")
    assert NetworkOptions.from_json(opts.to_json()) == opts


def test_defaults_change_nothing() -> None:
    opts = NetworkOptions.from_generic({"bridge": "br0"})
    assert (opts.client_id, opts.vendor_class, opts.register_dns, opts.gateway,
            opts.propagate_mtu) == (None, None, False, None, False)
    assert opts.gateway_ip is None


def test_state_written_before_these_options_still_loads() -> None:
    old = json.dumps({"bridge": "br0", "ipv6": True, "lease_timeout_s": 10.0,
                      "ignore_conflicts": False, "skip_routes": True})
    opts = NetworkOptions.from_json(old)
    assert opts == NetworkOptions(bridge="br0", ipv6=True, skip_routes=True)
    # ...and a field a newer version wrote is left out rather than failing the start.
    newer = json.dumps({**json.loads(old), "some_future_option": 1})
    assert NetworkOptions.from_json(newer) == opts


def test_the_listing_names_every_new_option() -> None:
    for name in ("client_id", "vendor_class", "register_dns", "gateway", "propagate_mtu"):
        assert name in NETWORK_OPTIONS
    with pytest.raises(OptionError, match="propagate_mtu: .*clamped"):
        NetworkOptions.from_generic({"bridge": "br0", "propagte_mtu": "true"})


@pytest.mark.parametrize(("key", "value", "why"), [
    ("gateway", "10.0.0", "is not an IPv4 address: use the router's address"),
    ("gateway", "fd00::1", "is not an IPv4 address"),
    ("gateway", "0.0.0.0", "not a usable router address"),
    ("gateway", "224.0.0.1", "not a usable router address"),
    ("gateway", "127.0.0.1", "not a usable router address"),
    ("gateway", "255.255.255.255", "not a usable router address"),
    ("register_dns", "maybe", "not a boolean: use true or false"),
    ("propagate_mtu", "2", "not a boolean: use true or false"),
    ("vendor_class", "x" * 256, "use 1 to 255 printable ASCII"),
    ("vendor_class", "tab\there", "use 1 to 255 printable ASCII"),
    ("client_id", "caf\u00e9", "use 1 to 255 printable ASCII"),
    ("client_id", "web-{name}", "unknown placeholder {name}"),
    ("client_id", "x" * 255, "2 to 255 octets"),
])
def test_bad_values_are_refused_with_a_fix(key: str, value: str, why: str) -> None:
    with pytest.raises(OptionError, match=why):
        NetworkOptions.from_generic({"bridge": "br0", key: value})


# -- client_id encoding ----------------------------------------------------------------------


@pytest.mark.parametrize(("text", "wire"), [
    ("01:{mac}", bytes.fromhex("01020000000001")),
    ("ff:00:00:00:2a:00:01", bytes.fromhex("ff0000002a0001")),
    ("AA:bb", b"\xaa\xbb"),
    ("web-{mac}", b"\x00web-02:00:00:00:00:01"),
    ("my app", b"\x00my app"),
    ("ab", b"\x00ab"),
])
def test_client_id_from_text(text: str, wire: bytes) -> None:
    assert client_id_from_text(text, MAC) == wire


def test_client_id_defaults_to_the_mac() -> None:
    ident = client_identity(NetworkOptions(bridge="br0"), MAC_TEXT)
    assert bytes(ident) == b"\x01" + MAC
    assert (ident.vendor_class, ident.fqdn) == (None, False)
    assert bytes(client_identity(None, MAC_TEXT)) == b"\x01" + MAC


def test_client_identity_of_a_network() -> None:
    opts = NetworkOptions(bridge="br0", client_id="01:{mac}", vendor_class="acme",
                          register_dns=True)
    ident = client_identity(opts, MAC_TEXT)
    assert ident == b"\x01" + MAC  # equal to the plain identifier it wraps
    assert (ident.vendor_class, ident.fqdn) == (b"acme", True)


# -- DHCPv4 wire ------------------------------------------------------------------------------

IDENT = ClientIdentity(b"\x00web", vendor_class=b"acme", fqdn=True)
DISCOVER_OPTIONS = bytes.fromhex(
    "350101"                      # 53 DISCOVER
    "3d0400776562"                # 61 type 0 "web"
    "390205dc"                    # 57 max size 1500
    "0c057765622d31"              # 12 "web-1"
    "3c0461636d65"                # 60 "acme"
    "5109050000057765622d31"      # 81 flags S|E, rcode 0 0, partial name "web-1"
    "370c0103060c0f1a1c333a3b7779"  # 55, with 26 (MTU) in it
    "ff"
)


def _options_area(msg: codec.DhcpMessage) -> bytes:
    data = msg.encode()
    return data[240:].rstrip(b"\x00")


def test_discover_carries_the_identity() -> None:
    msg = codec.discover(xid=1, chaddr=MAC, client_id=IDENT, host_name="web-1")
    assert _options_area(msg) == DISCOVER_OPTIONS
    back = codec.DhcpMessage.decode(msg.encode())
    assert back.options[Opt.VENDOR_CLASS] == b"acme"
    assert back.client_id == b"\x00web"
    assert Opt.MTU in back.options[Opt.PARAMS]


def test_every_request_carries_it_and_release_decline_only_the_client_id() -> None:
    ip, server = IPv4Address("10.0.0.50"), IPv4Address("10.0.0.1")
    offer = codec.DhcpMessage(op=2, xid=1, chaddr=MAC, yiaddr=ip,
                              options={Opt.SERVER_ID: server.packed})
    requests = [
        codec.request_selecting(offer=offer, xid=1, chaddr=MAC, client_id=IDENT,
                                host_name="web-1"),
        codec.request_renewing(xid=1, chaddr=MAC, client_id=IDENT, ciaddr=ip,
                               host_name="web-1"),
        codec.request_rebinding(xid=1, chaddr=MAC, client_id=IDENT, ciaddr=ip,
                                host_name="web-1"),
        codec.request_init_reboot(xid=1, chaddr=MAC, client_id=IDENT, requested=ip,
                                  host_name="web-1"),
    ]
    for msg in requests:
        opts = codec.DhcpMessage.decode(msg.encode()).options
        assert opts[Opt.CLIENT_ID] == b"\x00web"
        assert opts[Opt.VENDOR_CLASS] == b"acme"
        assert opts[Opt.CLIENT_FQDN] == bytes.fromhex("050000057765622d31")
    for msg in (codec.release(xid=1, chaddr=MAC, client_id=IDENT, ciaddr=ip, server_id=server),
                codec.decline(xid=1, chaddr=MAC, client_id=IDENT, requested=ip,
                              server_id=server)):
        opts = codec.DhcpMessage.decode(msg.encode()).options
        assert opts[Opt.CLIENT_ID] == b"\x00web"
        assert Opt.VENDOR_CLASS not in opts
        assert Opt.CLIENT_FQDN not in opts


def test_no_fqdn_without_register_dns_or_without_a_name() -> None:
    plain = ClientIdentity(b"\x01" + MAC, vendor_class=b"acme", fqdn=False)
    opts = codec.discover(xid=1, chaddr=MAC, client_id=plain, host_name="web-1").options
    assert Opt.CLIENT_FQDN not in opts
    assert opts[Opt.HOST_NAME] == b"web-1"
    opts = codec.discover(xid=1, chaddr=MAC, client_id=IDENT).options
    assert Opt.CLIENT_FQDN not in opts
    assert Opt.HOST_NAME not in opts
    # A plain client identifier (bytes) sends neither 60 nor 81, as before.
    opts = codec.discover(xid=1, chaddr=MAC, client_id=b"\x01" + MAC, host_name="a").options
    assert Opt.VENDOR_CLASS not in opts
    assert Opt.CLIENT_FQDN not in opts


def test_fqdn_option_of_a_dotted_name() -> None:
    assert codec.fqdn_option("web-1.lan") == bytes.fromhex("050000057765622d31036c616e00")
    with pytest.raises(codec.CodecError):
        codec.fqdn_option("bad_name")


# -- DHCPv6 Client FQDN follows register_dns --------------------------------------------------


@pytest.mark.parametrize(("register", "flags"), [(True, 0x01), (False, 0x00)])
def test_dhcp6_fqdn_flags_follow_register_dns(register: bool, flags: int) -> None:
    duid = client_duid(NetworkOptions(bridge="br0", register_dns=register),
                       codec6.duid_ll(MAC))
    msg = codec6.solicit(xid=1, client_id=duid, iaid=1, hostname="web-1")
    assert msg.option(codec6.Opt.CLIENT_FQDN) == bytes((flags,)) + b"\x05web-1"
    assert msg.option(codec6.Opt.CLIENTID) == codec6.duid_ll(MAC)


# -- gateway and MTU --------------------------------------------------------------------------


def test_gateway_option_overrides_the_router_when_on_link() -> None:
    lease = _lease()
    assert gateway_for(NetworkOptions(bridge="b", gateway="10.0.0.254"), lease) == \
        IPv4Address("10.0.0.254")
    assert gateway_for(NetworkOptions(bridge="b"), lease) == IPv4Address("10.0.0.1")
    # Off the leased subnet (or the container's own address): the lease's router.
    assert gateway_for(NetworkOptions(bridge="b", gateway="10.9.0.1"), lease) == \
        IPv4Address("10.0.0.1")
    assert gateway_for(NetworkOptions(bridge="b", gateway="10.0.0.50"), lease) == \
        IPv4Address("10.0.0.1")


@pytest.mark.parametrize(("mtu", "applied"), [(68, 576), (575, 576), (576, 576),
                                               (1400, 1400), (9000, 9000), (65535, 65535)])
def test_mtu_is_clamped(mtu: int, applied: int) -> None:
    assert clamp_mtu(mtu) == applied
    on = NetworkOptions(bridge="b", propagate_mtu=True)
    assert wanted_mtu(on, _lease(mtu=mtu)) == applied
    assert wanted_mtu(NetworkOptions(bridge="b"), _lease(mtu=mtu)) is None
    assert wanted_mtu(on, _lease()) is None


def test_lease_keeps_option_26_through_the_state() -> None:
    ack = codec.DhcpMessage(op=2, xid=1, chaddr=MAC, yiaddr=IPv4Address("10.0.0.50"),
                            options={Opt.MESSAGE_TYPE: b"\x05",
                                     Opt.SERVER_ID: IPv4Address("10.0.0.1").packed,
                                     Opt.SUBNET_MASK: IPv4Address("255.255.255.0").packed,
                                     Opt.LEASE_TIME: (600).to_bytes(4, "big"),
                                     Opt.MTU: (1400).to_bytes(2, "big")})
    lease = Lease.from_ack(codec.DhcpMessage.decode(ack.encode()), server_mac=b"\x02" * 6,
                           sent_at=1000.0)
    assert lease.mtu == 1400
    assert Lease.from_dict(lease.to_dict()) == lease
    old = lease.to_dict()
    del old["mtu"]  # stored before option 26 was kept
    assert Lease.from_dict(old).mtu is None


# -- propagate_dns ----------------------------------------------------------------------------

SEARCH_119 = bytes.fromhex("036c616e076578616d706c6500" "04636f7270c000")
"""lan.example, then corp. + a pointer to offset 0 (RFC 3397 compression)."""


def _ack_with(**options: bytes) -> codec.DhcpMessage:
    return codec.DhcpMessage(op=2, xid=1, chaddr=MAC, options={
        getattr(Opt, k): v for k, v in options.items()})


def test_option_119_with_compression() -> None:
    assert _ack_with(DOMAIN_SEARCH=SEARCH_119).domain_search == ("lan.example",
                                                                 "corp.lan.example")


@pytest.mark.parametrize("value", [
    bytes.fromhex("c000"),                      # a pointer to itself
    bytes.fromhex("036c616e00" "c005"),         # a pointer forward (to itself)
    bytes.fromhex("036c616e"),                  # not terminated
    bytes.fromhex("00"),                        # the root name
    bytes.fromhex("03612062" "00"),             # a space in a label
    bytes.fromhex("036c616e00" "40"),           # a reserved label type
])
def test_option_119_malformed_gives_nothing(value: bytes) -> None:
    assert _ack_with(DOMAIN_SEARCH=value).domain_search == ()


def test_propagate_dns_option_and_what_it_writes() -> None:
    on = NetworkOptions.from_generic({"bridge": "br0", "propagate_dns": "yes"})
    assert on.propagate_dns
    assert NetworkOptions.from_json(on.to_json()) == on
    servers = (IPv4Address("10.0.0.53"),)
    lease = _lease(dns=servers, domain="lan.example", search=("a.example", "b.example"))
    assert wanted_dns(on, lease) == (servers, ("a.example", "b.example"))
    assert wanted_dns(on, _lease(dns=servers, domain="lan.example")) == (
        servers, ("lan.example",))
    assert wanted_dns(on, _lease(domain="bad domain")) == ((), ())
    assert wanted_dns(NetworkOptions(bridge="b"), lease) is None
    assert Lease.from_dict(lease.to_dict()) == lease


DOCKER_RESOLV = "nameserver 127.0.0.11\noptions ndots:0\n"


def test_render_replaces_servers_and_search_and_keeps_the_rest() -> None:
    servers = [IPv4Address(f"10.0.0.{n}") for n in (1, 2, 3, 4)]
    out = resolv.render("search docker.example\n" + DOCKER_RESOLV, servers, ["lan.example"])
    assert out == (f"{resolv.HEADER}\nnameserver 10.0.0.1\nnameserver 10.0.0.2\n"
                   "nameserver 10.0.0.3\nsearch lan.example\noptions ndots:0\n")
    assert resolv.render(out, servers, ["lan.example"]) == out  # idempotent
    # Nothing from the lease for a kind of line: Docker's lines of that kind stay.
    only_search = resolv.render(DOCKER_RESOLV, [], ["lan.example"])
    assert "nameserver 127.0.0.11" in only_search


def test_update_writes_in_place_and_never_through_a_symlink(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    conf = root / "etc" / "resolv.conf"
    conf.write_text(DOCKER_RESOLV)
    inode = conf.stat().st_ino
    servers = [IPv4Address("10.0.0.53")]
    assert resolv.update(str(root), servers, ["lan.example"])
    assert "nameserver 10.0.0.53\nsearch lan.example\n" in conf.read_text()
    assert conf.stat().st_ino == inode, "rewritten in place (it is a bind mount in Docker)"
    assert not resolv.update(str(root), servers, ["lan.example"])
    # A container that makes its resolv.conf, or /etc, a link out of its root.
    outside = tmp_path / "host-resolv.conf"
    outside.write_text("nameserver 192.0.2.1\n")
    conf.unlink()
    conf.symlink_to(outside)
    with pytest.raises(OSError, match=r"symbolic links|Not a directory"):
        resolv.update(str(root), servers, [])
    evil = tmp_path / "evil"
    (evil / "x").mkdir(parents=True)
    (evil / "x" / "resolv.conf").write_text("nameserver 192.0.2.1\n")
    (evil / "etc").symlink_to(evil / "x")
    with pytest.raises(OSError, match=r"symbolic links|Not a directory"):
        resolv.update(str(evil), servers, [])
    assert outside.read_text() == "nameserver 192.0.2.1\n"
    assert (evil / "x" / "resolv.conf").read_text() == "nameserver 192.0.2.1\n"


def test_a_fifo_as_resolv_conf_is_refused_without_blocking(tmp_path: Path) -> None:
    """A container could make its resolv.conf a FIFO: opening it for writing would block the
    plugin's thread for ever; it is opened non-blocking and refused as not a regular file."""
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    os.mkfifo(root / "etc" / "resolv.conf")
    with pytest.raises(OSError, match="not a regular file|No such device"):
        resolv.update(str(root), [IPv4Address("10.0.0.1")], [])


def test_a_container_process_that_exits_is_not_followed_to_its_pids_next_owner() -> None:
    """The /proc/<pid> directory is held as an fd: once that process is gone (its PID free
    for a host process), every look through the fd fails instead of answering for the new
    process, so the write cannot land in a host process's root."""
    import subprocess

    child = subprocess.Popen(["sleep", "30"])  # noqa: S607 - a test's own child
    fd = os.open(f"/proc/{child.pid}", os.O_PATH | os.O_DIRECTORY)
    try:
        own = os.stat("/proc/self/ns/net")
        netns = (own.st_dev, own.st_ino)
        with pytest.raises(OSError, match="gone"):  # alive, but shares our root
            resolv.update_container(fd, netns, [IPv4Address("10.0.0.1")], [])
        child.kill()
        child.wait()
        with pytest.raises(OSError):  # noqa: PT011 - ENOENT or ESRCH, the kernel's choice
            resolv.update_container(fd, netns, [IPv4Address("10.0.0.1")], [])
    finally:
        os.close(fd)
        if child.poll() is None:
            child.kill()
