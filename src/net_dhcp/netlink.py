"""Every kernel networking call: veths, bridges, addresses, routes, namespaces.

pyroute2's IPRoute is synchronous; each public coroutine here runs its work in a
thread so the event loop never blocks. Work inside another network namespace runs
in a fresh thread that entered it with setns(2): namespaces are per thread, so the
pool's threads are never left in a container's namespace.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import errno
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Interface, IPv4Network, IPv6Address, IPv6Interface
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from . import linkdump, linkops, rtnl
from .errors import NetlinkError, OptionError
from .routes import Route, reachable
from .rtnl import IFF_LOOPBACK, IFF_UP

# pyroute2 takes ~100 ms to import, so it is imported on the first IPRoute() here, not with
# this module: `net-dhcp serve` answers on its socket before any netlink work is needed.
if TYPE_CHECKING:
    from pyroute2 import IPRoute
    from pyroute2.netlink.exceptions import NetlinkError as PyNetlinkError
else:
    class PyNetlinkError(Exception):
        """Stands for pyroute2's NetlinkError until the first IPRoute() imports pyroute2
        and puts the real class here. Only an IPRoute from here can raise the real one
        (every `ipr` these functions take is one), so nothing is missed before that."""

    def IPRoute(*args: Any, **kwargs: Any) -> Any:
        """pyroute2.IPRoute(*args, **kwargs); the first call imports pyroute2 and puts
        IPRoute and NetlinkError (PyNetlinkError) in this module's namespace."""
        global IPRoute, PyNetlinkError
        from pyroute2 import IPRoute as iproute
        from pyroute2.netlink.exceptions import NetlinkError as netlink_error

        from .logs import pyroute2_imported

        pyroute2_imported()
        IPRoute, PyNetlinkError = iproute, netlink_error
        return iproute(*args, **kwargs)

LOG = logging.getLogger(__name__)
T = TypeVar("T")

CLONE_NEWNET = 0x40000000
MAIN_TABLE = 254
RTPROT_KERNEL = 2
RT_SCOPE_LINK = 253
AF_INET = socket.AF_INET
AF_INET6 = socket.AF_INET6
IFA_F_NODAD = 0x02
IPV6_CONF = Path("/proc/sys/net/ipv6/conf")
ANY_DST = "0.0.0.0"  # noqa: S104 - the default route's destination, not a bind address

_libc = ctypes.CDLL(None, use_errno=True)


def setns_path(path: str) -> None:
    """Move the calling thread into the network namespace at `path`."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns({path}): {os.strerror(err)}")
    finally:
        os.close(fd)


async def run_in_netns(path: str | None, fn: Callable[[], T]) -> T:
    """Run `fn` in a fresh thread inside the namespace at `path` (None: the host's)."""
    if path is None:
        return await asyncio.to_thread(fn)
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[T] = loop.create_future()

    def deliver(result: T | None, exc: BaseException | None) -> None:
        if fut.done():
            return
        if exc is not None:
            fut.set_exception(exc)
        else:
            fut.set_result(result)  # type: ignore[arg-type]

    def body() -> None:
        try:
            setns_path(path)
            result = fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the awaiting task
            loop.call_soon_threadsafe(deliver, None, exc)
        else:
            loop.call_soon_threadsafe(deliver, result, None)

    threading.Thread(target=body, name=f"netns:{os.path.basename(path)}", daemon=True).start()
    return await fut


RTMGRP_LINK = 0x1
RTMGRP_IPV4_IFADDR = 0x10


def open_link_events() -> socket.socket:
    """A non-blocking rtnetlink socket in this thread's namespace that becomes readable
    when a link or an IPv4 address there changes (the messages are only a wake-up: read
    and drop them). It stays in that namespace whichever thread reads it."""
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, 0)
    try:
        sock.bind((0, RTMGRP_LINK | RTMGRP_IPV4_IFADDR))
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def open_link_watch() -> tuple[socket.socket, socket.socket]:
    """open_link_events and a linkdump.open_query socket, both in this thread's namespace:
    what a wait for a container's interface needs there (one thread and setns for both)."""
    events = open_link_events()
    try:
        return events, linkdump.open_query()
    except BaseException:
        events.close()
        raise


def drain(sock: socket.socket) -> None:
    """Read and drop whatever `sock` (non-blocking) holds; an overrun (ENOBUFS) is fine:
    the caller looks at the state itself."""
    while True:
        try:
            if not sock.recv(65536):
                return
        except (BlockingIOError, InterruptedError):
            return
        except OSError as err:
            if err.errno != errno.ENOBUFS:
                raise


def is_netns(path: str) -> bool:
    """True when `path` is a mounted network namespace (not just a placeholder file)."""
    return netns_inode(path) is not None


def file_exists(path: str) -> bool:
    """True if `path` exists (a namespace or its placeholder file); one stat(2)."""
    try:
        os.stat(path)
    except OSError:
        return False
    return True


def netns_inode(path: str) -> int | None:
    """The identity (inode) of the network namespace mounted at `path`; None if there is
    none (the path is gone, or a placeholder). Another namespace at the same path has
    another inode."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    if st.st_dev != os.stat("/proc/self/ns/net").st_dev:
        return None
    return st.st_ino


@dataclass(frozen=True)
class BridgeInfo:
    """What the plugin needs to know about the LAN bridge."""

    name: str
    index: int
    addresses: tuple[IPv4Interface, ...]
    default_gateway: IPv4Address | None
    routes: tuple[Route, ...]


def _attr(msg: Any, name: str) -> Any:
    return msg.get_attr(name) if hasattr(msg, "get_attr") else msg.get(name)


def _link_kind(link: Any) -> str | None:
    info = _attr(link, "IFLA_LINKINFO")
    if not info:
        return None
    return info.get_attr("IFLA_INFO_KIND")  # type: ignore[no-any-return]


def _route_of(msg: Any) -> Route:
    """A route dump message as a Route (gateway None: on-link)."""
    dst = _attr(msg, "RTA_DST") or ANY_DST
    gw = _attr(msg, "RTA_GATEWAY")
    return Route(IPv4Network(f"{dst}/{msg['dst_len']}", strict=False),
                 IPv4Address(gw) if gw else None)


def _lookup(name: str) -> list[int]:
    """[index] of interface `name` in the calling thread's namespace, [] if there is none,
    as pyroute2's link_lookup(ifname=) gives it, with one ioctl: link_lookup fetches and
    decodes the whole link, about a millisecond of CPU that a burst of container starts
    paid several times per container, while dockerd waits for each CreateEndpoint."""
    try:
        return [socket.if_nametoindex(name)]
    except (OSError, ValueError):
        return []


def _bridge_index(sock: socket.socket, name: str) -> int:
    """The index of bridge `name`; OptionError if it is missing or not a bridge."""
    idx = _lookup(name)
    if not idx:
        raise OptionError(
            f"bridge {name!r} does not exist: create it first (ip link add {name} type "
            "bridge) and attach your LAN interface to it, or name an existing bridge"
        )
    try:
        kind = linkops.get(sock, idx[0]).kind
    except OSError as err:
        if err.errno != errno.ENODEV:
            raise
        kind = None  # deleted since: no bridge either
    if kind != "bridge":
        raise OptionError(
            f"interface {name!r} is a {kind or 'plain interface'}, not a bridge: give "
            "-o bridge= the name of a Linux bridge that holds your LAN interface"
        )
    return idx[0]


def _parent_index(ipr: Any, name: str) -> int:
    """The index of parent interface `name` (macvlan/ipvlan modes); OptionError with the fix
    if it is missing, down, loopback, or a port of a bridge or bond (the kernel refuses
    links on those)."""
    idx = _lookup(name)
    if not idx:
        raise OptionError(
            f"parent {name!r} does not exist: give -o parent= the name of the host interface "
            "that is on your LAN (see ip link), e.g. eth0")
    index = int(idx[0])
    link = ipr.get_links(index)[0]
    flags = int(link["flags"])
    if flags & IFF_LOOPBACK:
        raise OptionError(f"parent {name!r} is the loopback interface: give -o parent= the "
                          "interface that is on your LAN, e.g. eth0")
    if _attr(link, "IFLA_MASTER"):
        raise OptionError(
            f"parent {name!r} is a port of another interface (a bridge or bond): macvlan and "
            "ipvlan links cannot be made on it. Use that bridge with -o mode=bridge -o "
            "bridge=<it>, or give the bridge itself as -o parent")
    if not flags & IFF_UP:
        raise OptionError(f"parent {name!r} is down: bring it up (ip link set {name} up) and "
                          "make sure it is on your LAN, then create the network again")
    return index


def _lan_info(name: str, with_routes: bool = True, bridge: bool = True) -> BridgeInfo:
    with IPRoute() as ipr:
        if bridge:
            with rtnl.open_socket() as sock:
                index = _bridge_index(sock, name)
        else:
            index = _parent_index(ipr, name)
        addrs = tuple(
            IPv4Interface(f"{_attr(a, 'IFA_ADDRESS')}/{a['prefixlen']}")
            for a in ipr.get_addr(family=AF_INET, index=index)
        )
        gateway: IPv4Address | None = None
        routes: dict[IPv4Network, Route] = {}
        for r in ipr.route("dump", family=AF_INET) if with_routes else ():
            if _attr(r, "RTA_TABLE") != MAIN_TABLE or _attr(r, "RTA_OIF") != index:
                continue
            route = _route_of(r)
            if route.destination.prefixlen == 0:
                if route.gateway is not None and gateway is None:
                    gateway = route.gateway
                continue
            if r["proto"] == RTPROT_KERNEL and route.gateway is None:
                continue  # the bridge's own subnet: the container's address prefix covers it
            routes.setdefault(route.destination, route)
        return BridgeInfo(name, index, addrs, gateway, tuple(routes.values()))


def _bridge_info(name: str, with_routes: bool = True) -> BridgeInfo:
    return _lan_info(name, with_routes, bridge=True)


async def bridge_info(name: str, *, with_routes: bool = True) -> BridgeInfo:
    """Look up the bridge; OptionError if it is missing or not a bridge.

    Without routes (no route dump) gateway and routes are left empty: the cheap check
    CreateEndpoint needs.
    """
    return await asyncio.to_thread(_bridge_info, name, with_routes)


async def parent_info(name: str, *, with_routes: bool = True) -> BridgeInfo:
    """The same as bridge_info for a macvlan/ipvlan parent: its addresses, and the host's
    default gateway and routes through it; OptionError if it is missing, down or enslaved."""
    return await asyncio.to_thread(_lan_info, name, with_routes, False)


MACVLAN_MODE_BRIDGE = "bridge"
"""macvlan's bridge submode: links on one parent reach each other (include/uapi/linux/if_link.h)."""
IPVLAN_MODE_L2 = 0
"""ipvlan's L2 mode: the links share the parent's MAC; broadcasts reach every link."""
SUBLINK_KINDS = ("macvlan", "ipvlan")


def _add_link(ipr: Any, spec: dict[str, Any], replace_leftover: bool) -> None:
    """Add the link `spec` describes. With `replace_leftover`, one already there under its
    name is a leftover of a crashed attempt that no endpoint owns (the caller reserved the
    name): it is deleted and the link added again."""
    try:
        ipr.link("add", **spec)
    except PyNetlinkError as err:
        if err.code != errno.EEXIST or not replace_leftover:
            raise
        ipr.link("del", ifname=spec["ifname"])
        ipr.link("add", **spec)


def _sublink_spec(name: str, parent: int, kind: str, mac: str | None) -> dict[str, Any]:
    spec: dict[str, Any] = {"ifname": name, "kind": kind, "link": parent}
    if kind == "macvlan":
        spec["macvlan_mode"] = MACVLAN_MODE_BRIDGE
        if mac:
            spec["address"] = mac
    elif kind == "ipvlan":
        spec["ipvlan_mode"] = IPVLAN_MODE_L2  # the MAC is always the parent's
    else:
        raise ValueError(f"not a parent link kind: {kind}")
    return spec


def _no_ipv6(ifname: str) -> None:
    with contextlib.suppress(OSError):
        (IPV6_CONF / ifname / "disable_ipv6").write_text("1")


def _create_sublink(name: str, parent: str, kind: str, mac: str | None,
                    replace_leftover: bool, no_dad: bool, quiet: bool) -> str:
    with IPRoute() as ipr:
        index = _parent_index(ipr, parent)
        spec = _sublink_spec(name, index, kind, mac)
        try:
            _add_link(ipr, spec, replace_leftover)
        except PyNetlinkError as err:
            if err.code == errno.EOPNOTSUPP:
                raise OptionError(
                    f"this kernel has no {kind} support (CONFIG_{kind.upper()}): create the "
                    "network with another -o mode (macvlan, or bridge with a host "
                    "bridge)") from err
            raise
        try:
            if quiet:
                _no_ipv6(name)
            elif no_dad:
                skip_dad(name)
            try:
                ipr.link("set", ifname=name, state="up")
            except PyNetlinkError as err:
                if err.code == errno.EADDRINUSE:
                    raise OptionError(
                        f"MAC {mac} is already used by another {kind} link on parent "
                        f"{parent} (another container with the same --mac-address?): stop "
                        "that container first, or give this one another MAC") from err
                raise
            link = ipr.get_links(ifname=name)[0]
        except BaseException:
            with contextlib.suppress(Exception):
                ipr.link("del", ifname=name)
            raise
        return str(_attr(link, "IFLA_ADDRESS")).lower()


async def create_sublink(name: str, parent: str, kind: str, mac: str | None, *,
                         replace_leftover: bool, no_dad: bool = False,
                         quiet: bool = False) -> str:
    """Create a `kind` (macvlan in bridge submode, or ipvlan L2) link `name` on `parent`,
    with `mac` (macvlan), up; returns its MAC. OptionError if the parent is missing, down
    or enslaved, the kernel lacks the kind, or the MAC is in use on the parent. `no_dad`
    as for create_veth; `quiet`: IPv6 off, so a throwaway link sends nothing but ours."""
    try:
        return await asyncio.to_thread(_create_sublink, name, parent, kind, mac,
                                       replace_leftover, no_dad, quiet)
    except PyNetlinkError as err:
        raise NetlinkError(f"could not create {kind} link {name} on {parent}: {err}") from err
    except IndexError as err:
        raise NetlinkError(f"{kind} link {name} vanished while being created") from err


def _sublinks(prefix: str, kind: str, parents: set[str]) -> list[str]:
    names = linkdump.names(prefix)
    if not names:
        return []
    out = []
    with IPRoute() as ipr:
        lowers = {int(i) for p in parents for i in _lookup(p)}
        for name in names:
            for link in ipr.get_links(ifname=name) if _lookup(name) else ():
                if _link_kind(link) == kind and _attr(link, "IFLA_LINK") in lowers:
                    out.append(name)
    return out


async def sublinks(prefix: str, kind: str, parents: set[str]) -> list[str]:
    """Host interfaces named `prefix`... that are `kind` links on one of `parents` (a
    cheap name dump first; only the few matching names are looked at closely)."""
    try:
        return await asyncio.to_thread(_sublinks, prefix, kind, parents)
    except PyNetlinkError as err:
        raise NetlinkError(f"could not list {kind} links: {err}") from err


NET_ADDR_SET = 3
"""addr_assign_type of an interface whose MAC was set explicitly (include/linux/netdevice.h)."""


def bridge_mac_is_fixed(name: str) -> bool | None:
    """Whether the bridge's MAC was set explicitly (None if unknown). Host namespace only:
    sysfs shows the namespace of whoever mounted it."""
    try:
        text = Path(f"/sys/class/net/{name}/addr_assign_type").read_text()
        return int(text.strip()) == NET_ADDR_SET
    except (OSError, ValueError):
        return None


def skip_dad(ifname: str) -> None:
    """Let `ifname`'s IPv6 addresses be used at once (no duplicate address detection) in
    the calling thread's namespace; nothing if IPv6 is off there (blocking)."""
    try:
        (IPV6_CONF / ifname / "accept_dad").write_text("0")
    except FileNotFoundError:
        LOG.debug("no IPv6 on %s: not touching DAD", ifname)
    except OSError as err:
        # A managed plugin sees /proc/sys read-only: DAD then runs (1-2 s), and DHCPv6
        # waits for the link-local address (dhcp6/sockets.py).
        LOG.debug("cannot skip DAD on %s (%s): DHCPv6 waits for it", ifname, err.strerror)


def _create_veth(host_if: str, cont_if: str, bridge: int | str, mac: str | None,
                 replace_leftover: bool, no_dad: bool = False) -> str:
    # Raw rtnetlink (linkops.py) on one socket: the pair made in one message with its host
    # end on the bridge and up, the container end up, then the wait until frames pass.
    # Docker waits for this, one endpoint at a time.
    with rtnl.open_socket() as sock:
        master = bridge if isinstance(bridge, int) else _bridge_index(sock, bridge)
        try:
            linkops.add_veth(sock, host_if, cont_if, master=master, mac=mac)
        except OSError as err:
            if err.errno != errno.EEXIST or not replace_leftover:
                raise
            linkops.delete(sock, host_if)
            linkops.add_veth(sock, host_if, cont_if, master=master, mac=mac)
        try:
            host, cont = _lookup(host_if)[0], _lookup(cont_if)[0]
            if no_dad:
                # DHCPv6 is sent from the link-local address, which DAD holds back ~1 s.
                skip_dad(cont_if)
            linkops.set_up(sock, cont)
            # The host end's carrier came on just now: the DISCOVER that follows must not
            # meet a host end that still drops the server's reply.
            if not _wait_passing(sock, {host: host_if, cont: cont_if},
                                 time.monotonic() + UP_WAIT_S):
                LOG.info("veth %s/%s: the kernel has not made it pass frames within %gs; "
                         "going on (DHCP retransmits)", host_if, cont_if, UP_WAIT_S)
            link_mac = mac.lower() if mac else linkops.get(sock, cont).mac
            if link_mac is None:
                raise rtnl.RtnlError(errno.EINVAL, f"veth {cont_if} has no MAC")
        except BaseException:
            # Half made: the caller never owned it, so nothing else would delete it.
            with contextlib.suppress(Exception):
                linkops.delete(sock, host_if)
            raise
        return link_mac


async def create_veth(host_if: str, cont_if: str, bridge: int | str, mac: str | None, *,
                      replace_leftover: bool, no_dad: bool = False) -> str:
    """Create a veth pair, host end enslaved to the bridge (its index, or its name: then
    OptionError if it is missing or not a bridge); both up. Returns the peer's MAC.

    An existing pair of the same name is deleted first only with `replace_leftover` (the
    caller knows no endpoint owns it); otherwise it is an error. `no_dad`: the peer's IPv6
    link-local address is usable at once (see skip_dad).
    """
    try:
        return await asyncio.to_thread(_create_veth, host_if, cont_if, bridge, mac,
                                       replace_leftover, no_dad)
    except IndexError as err:  # a look-up found nothing: deleted while being set up
        raise NetlinkError(f"veth {host_if}/{cont_if} vanished while being created") from err
    except rtnl.RtnlError as err:
        raise NetlinkError(f"could not create veth {host_if}/{cont_if}: {err}") from err


def _set_mtu(names: tuple[str, ...], mtu: int) -> list[str]:
    with IPRoute() as ipr:
        done = []
        for name in names:
            idx = _lookup(name)
            if idx:
                ipr.link("set", index=idx[0], mtu=mtu)
                done.append(name)
        return done


async def set_mtu(names: tuple[str, ...], mtu: int) -> list[str]:
    """Set the MTU of host interfaces (e.g. both ends of a veth) in one netlink session;
    returns the names that exist (a missing one is skipped)."""
    try:
        return await asyncio.to_thread(_set_mtu, names, mtu)
    except PyNetlinkError as err:
        raise NetlinkError(f"could not set the MTU of {'/'.join(names)} to {mtu}: "
                           f"{err}") from err


def set_mtu_by_mac(mac: str, mtu: int) -> str | None:
    """Set the MTU of the interface with this MAC in this thread's namespace (call through
    run_in_netns); its name, or None if there is none."""
    with IPRoute() as ipr:
        found = find_link_by_mac(ipr, mac)
        if found is None:
            return None
        ipr.link("set", index=found[0], mtu=mtu)
        return found[1]


def _delete_link(name: str) -> bool:
    if not _lookup(name):
        return False
    with rtnl.open_socket() as sock:
        try:
            linkops.delete(sock, name)
        except rtnl.RtnlError as err:
            if err.errno in (errno.ENODEV, errno.ENOENT):
                return False
            raise
        return True


async def delete_link(name: str) -> bool:
    """Delete an interface (and so its veth peer); False if it was already gone."""
    try:
        return await asyncio.to_thread(_delete_link, name)
    except rtnl.RtnlError as err:
        raise NetlinkError(f"could not delete {name}: {err}") from err


async def link_names(prefix: str, masters: set[str] | None = None) -> list[str]:
    """Names of host interfaces starting with `prefix` (enslaved to one of `masters`): one
    raw dump that reads only names and masters (linkdump.py), for the periodic checks."""
    return await asyncio.to_thread(linkdump.names, prefix, masters)


UP_WAIT_S = 1.0
"""How long set_up waits for the kernel to make an interface operational."""


def _set_up(name: str) -> None:
    idx = _lookup(name)
    if not idx:
        return
    with rtnl.open_socket() as sock:
        try:
            linkops.set_up(sock, idx[0])
            # Until the kernel's link watch has run (operstate UP), the device's queue
            # drops every frame: a DHCPRELEASE sent at once would be lost without an error.
            deadline = time.monotonic() + UP_WAIT_S
            while time.monotonic() < deadline:
                if linkops.get(sock, idx[0]).operstate in ("UP", "UNKNOWN"):
                    return
                time.sleep(0.002)
        except rtnl.RtnlError as err:
            if err.errno != errno.ENODEV:  # gone meanwhile: as if gone before
                raise


BR_STATE_FORWARDING = "3"
"""/sys/class/net/<port>/brport/state of a bridge port that forwards (linux/if_bridge.h)."""
PASS_POLL_S = 0.0005
"""How often _wait_passing looks again: the link watch usually runs within a millisecond."""


def _port_forwards(name: str) -> bool:
    """Whether host interface `name` forwards as a bridge port; True when it is no bridge
    port (or is gone): there is then no port state to wait for."""
    try:
        state = (Path("/sys/class/net") / name / "brport" / "state").read_text().strip()
    except OSError:
        return True
    return state == BR_STATE_FORWARDING


def _wait_passing(sock: socket.socket, links: dict[int, str], deadline: float) -> bool:
    """Block until frames pass through every host interface in `links` (index -> name):
    its operstate is UP and, on a bridge, its port forwards. True then (or when one is
    gone), False at `deadline` (time.monotonic()).

    When a link's carrier comes on after it was brought up (a veth end whose peer went up
    later), the link drops every frame sent through it, a bridge's flood included, until
    the kernel's link watch has run for it: that activates its queue and sets operstate
    UP. Nothing reports the drop. A bridge port may even say forwarding before that (its
    state is set as it is added, from an operstate not computed yet), so the port state
    alone proves nothing. A DHCP reply lost that way costs a retransmission (a second).
    """
    while True:
        passing = True
        for index, name in links.items():
            try:
                found = linkops.get(sock, index)
            except OSError as err:
                if err.errno != errno.ENODEV:
                    raise
                continue  # gone: nothing passes through it, nothing to wait for
            if found.operstate != "UP" or not _port_forwards(name):
                passing = False
                break
        if passing:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(PASS_POLL_S)


def _wait_passing_by_name(names: tuple[str, ...], timeout: float) -> bool:
    with rtnl.open_socket() as sock:
        links = {idx[0]: name for name in names if (idx := _lookup(name))}
        return _wait_passing(sock, links, time.monotonic() + timeout)


async def wait_passing(*names: str, timeout: float = UP_WAIT_S) -> bool:
    """Wait until frames pass through these host interfaces (see _wait_passing): e.g. a
    veth's host end on a bridge after its container end came up. True if they do, or are
    gone; False after `timeout`."""
    try:
        return await asyncio.to_thread(_wait_passing_by_name, names, timeout)
    except OSError as err:
        raise NetlinkError(f"could not read the state of {'/'.join(names)}: {err}") from err


async def set_up(name: str) -> None:
    """Bring a host interface up and wait (at most UP_WAIT_S) until it can send; no-op if
    it is gone."""
    try:
        await asyncio.to_thread(_set_up, name)
    except rtnl.RtnlError as err:
        raise NetlinkError(f"could not bring {name} up: {err}") from err


def _enslave(name: str, bridge: str) -> bool:
    with IPRoute() as ipr:
        idx = _lookup(name)
        br = _lookup(bridge)
        if not idx or not br:
            return False
        link = ipr.get_links(idx[0])[0]
        if _attr(link, "IFLA_MASTER") == br[0] and int(link["flags"]) & IFF_UP:
            return False
        ipr.link("set", index=idx[0], master=br[0], state="up")
        return True


async def enslave(name: str, bridge: str) -> bool:
    """Put host interface `name` on `bridge`, up; True if that changed anything (False
    also when either is missing)."""
    try:
        return await asyncio.to_thread(_enslave, name, bridge)
    except PyNetlinkError as err:
        raise NetlinkError(f"could not attach {name} to {bridge}: {err}") from err


async def link_exists(name: str) -> bool:
    """True if the host has an interface with that name (one ioctl, no dump)."""
    try:
        socket.if_nametoindex(name)
    except (OSError, ValueError):  # ENODEV; a name no interface can have
        return False
    return True


def main_routes(ipr: Any) -> list[Route]:
    """IPv4 routes of the main table in ipr's namespace (default route included)."""
    out = []
    for r in ipr.route("dump", family=AF_INET):
        if _attr(r, "RTA_TABLE") != MAIN_TABLE:
            continue
        out.append(_route_of(r))
    return out


def find_link_by_mac(ipr: Any, mac: str) -> tuple[int, str] | None:
    """(index, name) of the interface with this MAC in ipr's namespace, or None."""
    mac = mac.lower()
    for link in ipr.get_links():
        if str(_attr(link, "IFLA_ADDRESS") or "").lower() == mac:
            return int(link["index"]), str(_attr(link, "IFLA_IFNAME"))
    return None


def link_is_up(ipr: Any, index: int) -> bool:
    """True if the interface is administratively up (IFF_UP)."""
    links = ipr.get_links(index)
    return bool(links and links[0]["flags"] & IFF_UP)


def link_addresses(ipr: Any, index: int) -> list[IPv4Interface]:
    """IPv4 addresses configured on an interface."""
    return [
        IPv4Interface(f"{_attr(a, 'IFA_ADDRESS')}/{a['prefixlen']}")
        for a in ipr.get_addr(family=AF_INET, index=index)
    ]


def _routes_on(ipr: Any, index: int) -> list[Route]:
    """Routes of the main table through interface `index`, the kernel's own left out."""
    out = []
    for r in ipr.route("dump", family=AF_INET):
        if _attr(r, "RTA_TABLE") != MAIN_TABLE or _attr(r, "RTA_OIF") != index:
            continue
        if r["proto"] == RTPROT_KERNEL:
            continue  # the subnet route of an address: it comes and goes with the address
        out.append(_route_of(r))
    return out


def _add_address(ipr: Any, index: int, address: IPv4Interface) -> None:
    try:
        ipr.addr("add", index=index, address=str(address.ip),
                 prefixlen=address.network.prefixlen)
    except PyNetlinkError as err:
        if err.code != errno.EEXIST:
            raise


def apply_lease(
    ipr: Any,
    index: int,
    old: IPv4Interface | None,
    new: IPv4Interface,
    gateway: IPv4Address | None,
    routes: list[Route],
) -> None:
    """Put `new` on the interface in place of `old`, with the default route and extra routes.

    The new address goes on before the old one comes off, and every route the interface
    had whose next hop is still on-link is put back: deleting an address makes the kernel
    drop the routes that used it (all of them, with the last address of the interface).
    """
    had = _routes_on(ipr, index)
    _add_address(ipr, index, new)
    if old is not None and old != new:
        try:
            ipr.addr("del", index=index, address=str(old.ip), prefixlen=old.network.prefixlen)
        except PyNetlinkError as err:
            if err.code != errno.EADDRNOTAVAIL:
                raise
        if new not in link_addresses(ipr, index):
            # `new` was a secondary of `old`'s subnet, deleted with its primary
            # (net.ipv4.conf.*.promote_secondaries=0): put it back as the primary.
            _add_address(ipr, index, new)
    wanted: dict[IPv4Network, Route] = {}
    for route in [*had, *routes]:
        if reachable(new, route.gateway):
            wanted[route.destination] = route
        elif route in had:
            # Its next hop is off the new subnet: a dead route, taken out.
            try:
                ipr.route("del", dst=str(route.destination), gateway=str(route.gateway),
                          oif=index)
            except PyNetlinkError as err:
                if err.code != errno.ESRCH:
                    raise
    if gateway is not None:
        wanted[IPv4Network("0.0.0.0/0")] = Route(IPv4Network("0.0.0.0/0"), gateway)
    for route in wanted.values():
        spec: dict[str, Any] = {"dst": str(route.destination), "oif": index}
        if route.gateway is not None:
            spec["gateway"] = str(route.gateway)
        else:
            spec["scope"] = RT_SCOPE_LINK
        ipr.route("replace", **spec)


# ---- work inside a container's namespace (call through run_in_netns) ------------------------


def route_destinations() -> set[str]:
    """Destinations of the main table's IPv4 routes in this thread's namespace."""
    with IPRoute() as ipr:
        return {str(r.destination) for r in main_routes(ipr)}


def lookup_mac(mac: str) -> tuple[int, str] | None:
    """(index, name) of the interface with this MAC in this thread's namespace."""
    with IPRoute() as ipr:
        return find_link_by_mac(ipr, mac)


def apply_lease_by_mac(mac: str, old: IPv4Interface | None, new: IPv4Interface,
                       gateway: IPv4Address | None, routes: list[Route]) -> None:
    """apply_lease on the interface with this MAC; OSError if there is none."""
    with IPRoute() as ipr:
        found = find_link_by_mac(ipr, mac)
        if found is None:
            raise OSError(errno.ENODEV, f"no interface with MAC {mac}")
        apply_lease(ipr, found[0], old, new, gateway, routes)


def remove_address_by_mac(mac: str, address: IPv4Interface) -> None:
    """Take `address` off the interface with this MAC (gone already: fine)."""
    with IPRoute() as ipr:
        found = find_link_by_mac(ipr, mac)
        if found is None:
            return
        try:
            ipr.addr("del", index=found[0], address=str(address.ip),
                     prefixlen=address.network.prefixlen)
        except PyNetlinkError as err:
            if err.code != errno.EADDRNOTAVAIL:
                raise


def apply_lease6_by_mac(mac: str, old: IPv6Interface | None, new: IPv6Interface,
                        router: IPv6Address | None) -> None:
    """Put IPv6 address `new` on the interface with this MAC in place of `old` (no DAD:
    the server handed it out), with the default route via `router` if the container has
    none (never replaced: route6.py); OSError if there is no such interface."""
    with IPRoute() as ipr:
        found = find_link_by_mac(ipr, mac)
        if found is None:
            raise OSError(errno.ENODEV, f"no interface with MAC {mac}")
        index = found[0]
        try:
            ipr.addr("add", index=index, family=AF_INET6, address=str(new.ip),
                     prefixlen=new.network.prefixlen, flags=IFA_F_NODAD)
        except PyNetlinkError as err:
            if err.code != errno.EEXIST:
                raise
        if old is not None and old != new:
            _del_address6(ipr, index, old)
        if router is not None:
            _add_default6(ipr, index, router)


def add_default_route6_by_mac(mac: str, router: IPv6Address) -> bool | None:
    """Give the interface with this MAC an IPv6 default route via `router` unless the
    namespace has one already (True: added, False: one was there, None: no such interface
    here, or it is not up yet: nothing done). Never a replace: a default route that is
    there came from the kernel's own RA handling (on this link or another), or from Docker
    for another network, and is theirs."""
    with IPRoute() as ipr:
        found = find_link_by_mac(ipr, mac)
        if found is None or not link_is_up(ipr, found[0]):
            return None
        return _add_default6(ipr, found[0], router)


def _add_default6(ipr: Any, index: int, router: IPv6Address) -> bool:
    """An IPv6 default route via `router` on link `index` unless the namespace has one
    (True: added). An exclusive add: any ::/0 at this metric, whatever its next hop, is
    EEXIST, so a route that is there (the kernel's from an RA, another network's) stays."""
    try:
        ipr.route("add", family=AF_INET6, dst="::/0", gateway=str(router), oif=index)
    except PyNetlinkError as err:
        if err.code != errno.EEXIST:
            raise
        return False
    return True


def _del_address6(ipr: Any, index: int, address: IPv6Interface) -> None:
    try:
        ipr.addr("del", index=index, family=AF_INET6, address=str(address.ip),
                 prefixlen=address.network.prefixlen)
    except PyNetlinkError as err:
        if err.code != errno.EADDRNOTAVAIL:
            raise


def remove_address6_by_mac(mac: str, address: IPv6Interface) -> None:
    """Take IPv6 `address` off the interface with this MAC (gone already: fine)."""
    with IPRoute() as ipr:
        found = find_link_by_mac(ipr, mac)
        if found is not None:
            _del_address6(ipr, found[0], address)
