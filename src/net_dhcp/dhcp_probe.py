"""Does a DHCP server answer on a bridge? A DISCOVER from a throwaway port, for `doctor`.

A veth pair of unique names (`ndp<hex>h`, `ndp<hex>c`) is made, its host end put on the
bridge like a container's, and the product's own DHCP socket (dhcp4/sockets.py) sends
DISCOVERs from the other end until an OFFER comes or the time is up; the offers of every
server that answers within a short while after the first are kept. No REQUEST is sent,
so no lease is taken. The pair is deleted in every case (finally), even when cancelled.

Care for the bridge: the host end's MAC begins with fe:, above any real NIC's, so a
bridge whose MAC is not pinned (it takes its ports' lowest) does not change it because
of the probe; both ends have IPv6 off, so the probe sends nothing else. The client end's
MAC (the DISCOVER's chaddr) begins with 06:, which no container MAC the plugin generates
(02:) or Docker generates (02:42:) begins with, so a probe never speaks for a container.

On a parent (macvlan and ipvlan modes) the probe is one link of that kind on the parent,
named `ndp<hex>c`, with IPv6 off; for ipvlan its chaddr is the parent's MAC, and its client
identifier is made from a fresh 06: MAC, so the server takes it for no one else.

Used by `doctor` and by the network option validate_dhcp (validate.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
from dataclasses import dataclass, field
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

from . import netlink
from .dhcp4 import codec
from .dhcp4.sockets import DhcpSocket, open_dhcp_socket
from .errors import NetlinkError, OptionError

LOG = logging.getLogger(__name__)

PREFIX = "ndp"
"""Names of probe interfaces: ndp<6 hex>h (on the bridge) and ndp<6 hex>c (the client)."""
SETTLE_S = 0.5
"""After the first OFFER, how long other servers' offers are still collected."""
RETRY_S = (1.0, 2.0, 4.0, 8.0)
"""Waits between DISCOVERs (then 8 s until the deadline)."""
CLIENT_OCTET = 0x06
"""First octet of the client end's MAC: locally administered unicast, not 02 (containers)."""
HOST_OCTET = 0xFE
"""First octet of the bridge end's MAC: above any real NIC's, so a bridge keeps its MAC."""
PROC = Path("/proc")


@dataclass(frozen=True)
class Offer:
    """One server's answer."""

    server: IPv4Address
    address: IPv4Address
    server_mac: str
    after_s: float


@dataclass
class ProbeResult:
    """What the probe saw; `offers` from distinct servers, first one first."""

    port: str
    discovers: int = 0
    offers: list[Offer] = field(default_factory=list)
    waited_s: float = 0.0
    forwarding: bool = True
    """False if the probe port never reached the forwarding state (STP)."""


def names() -> tuple[str, str]:
    """Fresh (host end, client end) names."""
    tag = secrets.token_hex(3)
    return f"{PREFIX}{tag}h", f"{PREFIX}{tag}c"


def _mac(first: int) -> bytes:
    return bytes((first,)) + os.urandom(5)


def _no_ipv6(ifname: str) -> None:
    with contextlib.suppress(OSError):
        (PROC / "sys/net/ipv6/conf" / ifname / "disable_ipv6").write_text("1")


def _create(bridge: str, host_if: str, client_if: str, client_mac: bytes) -> None:
    """The pair, host end on `bridge`, both up (blocking). Deletes what it made on error."""
    from pyroute2 import IPRoute

    with IPRoute() as ipr:
        found = ipr.link_lookup(ifname=bridge)
        if not found:
            raise OSError(f"bridge {bridge} is gone")
        ipr.link("add", ifname=host_if, kind="veth",
                 address=codec.mac_to_str(_mac(HOST_OCTET)),
                 peer={"ifname": client_if, "address": codec.mac_to_str(client_mac)})
        try:
            _no_ipv6(host_if)
            _no_ipv6(client_if)
            host = ipr.link_lookup(ifname=host_if)[0]
            client = ipr.link_lookup(ifname=client_if)[0]
            ipr.link("set", index=host, master=found[0], state="up")
            ipr.link("set", index=client, state="up")
        except BaseException:
            with contextlib.suppress(Exception):
                ipr.link("del", ifname=host_if)
            raise


def _judge(msg: codec.DhcpMessage, xid: int) -> tuple[IPv4Address, IPv4Address] | None:
    if msg.xid != xid or msg.message_type is not codec.MessageType.OFFER:
        return None
    server = msg.server_id
    if server is None:
        return None
    return server, msg.yiaddr


async def _discover(sock: DhcpSocket, result: ProbeResult, deadline: float,
                    identity: bytes) -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    xid = int.from_bytes(os.urandom(4), "big")
    msg = codec.discover(xid=xid, chaddr=sock.mac, client_id=codec.client_id_for_mac(identity))
    servers: set[IPv4Address] = set()
    waits = list(RETRY_S)
    next_send = loop.time()
    settle_until: float | None = None
    while True:
        now = loop.time()
        end = min(deadline, settle_until) if settle_until is not None else deadline
        if now >= end:
            break
        if settle_until is None and now >= next_send:
            sock.send(msg)
            result.discovers += 1
            next_send = now + (waits.pop(0) if waits else RETRY_S[-1])
        wake = min(end, next_send) if settle_until is None else end
        try:
            async with asyncio.timeout(max(0.0, wake - loop.time())):
                reply, mac = await sock.recv()
        except TimeoutError:
            continue
        got = _judge(reply, xid)
        if got is None or got[0] in servers:
            continue
        servers.add(got[0])
        result.offers.append(Offer(got[0], got[1], codec.mac_to_str(mac),
                                   round(loop.time() - started, 3)))
        if settle_until is None:
            settle_until = loop.time() + SETTLE_S
    result.waited_s = round(loop.time() - started, 3)


async def probe(bridge: str, timeout_s: float, *, kind: str = "bridge") -> ProbeResult:
    """DISCOVER on `bridge` for up to `timeout_s` (see the module docstring); with `kind`
    macvlan or ipvlan, `bridge` is a parent and the probe a link of that kind on it.
    OSError if the probe port cannot be made (not root, the bridge vanished)."""
    host_if, client_if = names()
    if kind != "bridge":
        host_if = client_if  # one link, no port on a bridge
    result = ProbeResult(port=host_if)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    client_mac = _mac(CLIENT_OCTET)
    sock: DhcpSocket | None = None
    try:
        if kind == "bridge":
            await asyncio.to_thread(_create, bridge, host_if, client_if, client_mac)
            result.forwarding = await netlink.wait_passing(
                host_if, client_if, timeout=max(0.0, deadline - loop.time()))
            if not result.forwarding:
                return result
        else:
            try:
                await netlink.create_sublink(client_if, bridge, kind,
                                             codec.mac_to_str(client_mac),
                                             replace_leftover=False, quiet=True)
            except (NetlinkError, OptionError) as err:
                raise OSError(str(err)) from err
            await netlink.set_up(client_if)  # waits until it can send
        sock = await asyncio.to_thread(open_dhcp_socket, client_if, with_sink=False)
        sock.start()
        await _discover(sock, result, deadline, client_mac)
        return result
    finally:
        if sock is not None:
            sock.close()
        await _remove(host_if, client_if)


async def _remove(host_if: str, client_if: str) -> None:
    """Delete the pair, shielded from cancellation (Ctrl-C must not leave it behind)."""
    async def both() -> None:
        for name in (host_if, client_if):
            try:
                if await netlink.delete_link(name):
                    return
            except Exception as err:  # noqa: BLE001 - say so, then try the other end
                LOG.warning("could not delete probe interface %s: %s", name, err)
    task: asyncio.Task[Any] = asyncio.ensure_future(both())
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        await task
        raise

