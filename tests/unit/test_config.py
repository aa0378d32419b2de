"""Option parsing: every documented option, every documented error."""

from __future__ import annotations

import pytest

from net_dhcp.config import (
    EndpointOptions,
    NetworkOptions,
    parse_bool,
    parse_duration,
    valid_hostname,
)
from net_dhcp.errors import OptionError


@pytest.mark.parametrize(
    ("text", "expected"),
    [("true", True), ("1", True), ("yes", True), ("YES", True), ("on", True), (True, True),
     ("false", False), ("0", False), ("no", False), ("off", False), (False, False)],
)
def test_parse_bool(text: object, expected: bool) -> None:
    assert parse_bool("x", text) is expected


@pytest.mark.parametrize("text", ["maybe", "2", "tru"])
def test_parse_bool_rejects(text: str) -> None:
    with pytest.raises(OptionError, match="use true or false"):
        parse_bool("skip_routes", text)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("10s", 10.0), ("1m", 60.0), ("500ms", 0.5), ("1.5m", 90.0), ("30", 30.0), (" 2s ", 2.0)],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration("lease_timeout", text) == pytest.approx(seconds)


@pytest.mark.parametrize(("text", "why"), [("ten", "not a duration"), ("10x", "not a duration"),
                                            ("0s", "out of range"), ("2h", "out of range")])
def test_parse_duration_rejects(text: str, why: str) -> None:
    with pytest.raises(OptionError, match=why):
        parse_duration("lease_timeout", text)


def test_network_options_defaults() -> None:
    opts = NetworkOptions.from_generic({"bridge": "br0"})
    assert opts == NetworkOptions(bridge="br0", ipv6=False, lease_timeout_s=10.0,
                                  ignore_conflicts=False, skip_routes=False)


def test_network_options_all() -> None:
    opts = NetworkOptions.from_generic({"bridge": "br0", "ipv6": "yes", "lease_timeout": "1m",
                                        "ignore_conflicts": "1", "skip_routes": "true"})
    assert (opts.ipv6, opts.lease_timeout_s, opts.ignore_conflicts, opts.skip_routes) == (
        True, 60.0, True, True)
    assert NetworkOptions.from_json(opts.to_json()) == opts


def test_enable_ipv6_flag_is_the_default_for_ipv6() -> None:
    assert NetworkOptions.from_generic({"bridge": "b"}, enable_ipv6=True).ipv6 is True


def test_bridge_required() -> None:
    with pytest.raises(OptionError, match="option bridge is required"):
        NetworkOptions.from_generic({})


def test_unknown_option_lists_valid_ones() -> None:
    with pytest.raises(OptionError) as err:
        NetworkOptions.from_generic({"bridge": "b", "brigde": "x"})
    text = str(err.value)
    assert "unknown option(s) brigde" in text
    for name in ("bridge", "ipv6", "lease_timeout", "ignore_conflicts", "skip_routes"):
        assert name in text


def test_endpoint_options() -> None:
    opts = EndpointOptions.from_request({
        "hostname": "web-1.lan",
        "com.docker.network.endpoint.macaddress": "AkKZAAAR",
        "com.docker.network.portmap": [],
    })
    assert opts.hostname == "web-1.lan"
    assert EndpointOptions.from_request({}).hostname is None


@pytest.mark.parametrize("bad", ["web 1", "x\ny", "-lead", "a" * 64, "under_score"])
def test_endpoint_hostname_rejected(bad: str) -> None:
    with pytest.raises(OptionError, match="not a valid host name"):
        EndpointOptions.from_request({"hostname": bad})


def test_endpoint_unknown_option() -> None:
    with pytest.raises(OptionError, match="unknown endpoint driver option"):
        EndpointOptions.from_request({"mac_prefix": "02:aa"})


@pytest.mark.parametrize(("name", "ok"), [("a", True), ("web1", True), ("a.b.c", True),
                                          ("web1\n", False), ("", False), ("a..b", False)])
def test_valid_hostname(name: str, ok: bool) -> None:
    assert valid_hostname(name) is ok


def test_option_names_are_case_insensitive_as_in_the_go_fork() -> None:
    opts = NetworkOptions.from_generic({"Bridge": "br0", "PROPAGATE_DNS": "true",
                                        "Lease_Timeout": "5s"})
    assert (opts.bridge, opts.propagate_dns, opts.lease_timeout_s) == ("br0", True, 5.0)
    with pytest.raises(OptionError, match="option bridge is given twice"):
        NetworkOptions.from_generic({"bridge": "br0", "BRIDGE": "br1"})
    assert EndpointOptions.from_request({"HostName": "web1"}).hostname == "web1"


@pytest.mark.parametrize("value", ["192.168.1.50", " 10.0.0.7 "])
def test_endpoint_ip_is_an_address_to_ask_for(value: str) -> None:
    opts = EndpointOptions.from_request({"ip": value})
    assert str(opts.requested_ip) == value.strip()
    assert EndpointOptions.from_request({}).requested_ip is None


@pytest.mark.parametrize("value", ["192.168.1", "fd00::1", "224.0.0.1", "0.0.0.0",
                                   "255.255.255.255", "127.0.0.1", "web"])
def test_endpoint_ip_that_is_no_unicast_address_is_refused(value: str) -> None:
    with pytest.raises(OptionError, match=r"driver-opt ip=.* is not an IPv4 unicast address: "
                                          r"give the address to ask the DHCP server for"):
        EndpointOptions.from_request({"ip": value})
