"""RFC 5227 address conflict detection, shortened to fit a container start.

`in_use` probes and listens in one go. `in_use_soon` is for CreateEndpoint, which dockerd
runs one at a time per network (its Join runs side by side): it says only what the first
probe brought within PROBE_INTERVAL_S, and hands the rest (the second probe, the
listening after it) to a task that Join waits for. `EarlyProbes` starts it when the server
offers the address, so that first interval runs while the REQUEST and its ACK are on the
way, and takes it when the address is acknowledged.
"""

from __future__ import annotations

import asyncio
import logging
from ipaddress import IPv4Address

from ..dhcp4 import codec
from ..netlink import run_in_netns
from . import arp_codec
from .socket import open_arp_socket

LOG = logging.getLogger(__name__)

# RFC 5227 2.1.1 sends 3 probes 1-2 s apart; a host on a LAN answers within a few ms,
# so two probes 10 ms apart and 20 ms of listening after the last keep start-up fast.
PROBE_NUM = 2
PROBE_INTERVAL_S = 0.01
PROBE_LISTEN_S = 0.02


async def in_use(ifname: str, netns: str | None, ip: IPv4Address) -> bool:
    """Probe `ip` from `ifname`, in one go; True if another host claims it."""
    claimed, rest = await in_use_soon(ifname, ip, netns=netns)
    if rest is not None:
        claimed = await rest  # cancelling this cancels the rest, which closes the socket
    return claimed is not None


Rest = asyncio.Task[str | None]
"""What in_use_soon leaves: the probe's end, returning the MAC of a host claiming the
address, or None."""


async def in_use_soon(ifname: str, ip: IPv4Address, *,
                      netns: str | None = None) -> tuple[str | None, Rest | None]:
    """Probe `ip` from `ifname` (in the namespace at `netns`, None: the host's) for the first
    probe's interval only.

    (MAC of the host that claimed it, None) when one answered within it; else (None, rest):
    `rest` sends the second probe, listens as `in_use` does, and returns the MAC of a host
    that claimed the address meanwhile, or None. Whoever takes `rest` awaits or cancels it.
    """
    # In the host's namespace (CreateEndpoint) the socket opens at once, no thread needed.
    sock = (open_arp_socket(ifname) if netns is None
            else await run_in_netns(netns, lambda: open_arp_socket(ifname)))
    claims: list[arp_codec.ArpPacket] = []

    def seen(pkt: arp_codec.ArpPacket) -> None:
        if arp_codec.arp_conflicts(pkt, probed_ip=ip, own_mac=sock.mac):
            claims.append(pkt)

    async def rest() -> str | None:
        for i in range(1, PROBE_NUM):
            if claims:
                break
            sock.send(arp_codec.arp_probe(sender_mac=sock.mac, target_ip=ip))
            await sock.watch(seen, PROBE_INTERVAL_S if i < PROBE_NUM - 1
                             else PROBE_LISTEN_S)
        return _claimed(ip, claims)

    try:
        sock.send(arp_codec.arp_probe(sender_mac=sock.mac, target_ip=ip))
        await sock.watch(seen, PROBE_INTERVAL_S)
    except BaseException:
        sock.close(soon=True)
        raise
    if claims:
        sock.close(soon=True)
        return _claimed(ip, claims), None
    task = asyncio.get_running_loop().create_task(rest(), name=f"acd-rest:{ip}")
    # Closed when the task ends, however: a task cancelled before its first step never
    # runs the coroutine's own cleanup.
    task.add_done_callback(lambda _task: sock.close(soon=True))
    return None, task


Soon = tuple[str | None, Rest | None]
"""What in_use_soon returns."""


class EarlyProbes:
    """The conflict probes of one acquisition (CreateEndpoint's), each started as soon as
    its address is offered (`offered`, the acquire's hook) and taken once it is
    acknowledged (`soon`, in_use_soon's answer). The probe decides on the same ARP traffic
    either way: what changes is only that the first probe's interval overlaps the REQUEST's
    round trip, which under load is several milliseconds of every CreateEndpoint.

    An address offered but not acknowledged (a NAK, a silent server, a different address
    in the ACK) has its probe cancelled by `close`, which the acquisition's owner calls in
    any case.
    """

    def __init__(self, ifname: str) -> None:
        self.ifname = ifname
        self._started: dict[IPv4Address, asyncio.Task[Soon]] = {}

    def offered(self, ip: IPv4Address) -> None:
        """Start probing `ip` now (once per address)."""
        if ip not in self._started:
            self._started[ip] = asyncio.get_running_loop().create_task(
                in_use_soon(self.ifname, ip), name=f"acd-early:{ip}")

    async def soon(self, ip: IPv4Address) -> Soon:
        """in_use_soon(ip): the probe started at the offer, or one started now. Whoever
        takes the rest awaits or cancels it."""
        task = self._started.pop(ip, None)
        if task is None:
            return await in_use_soon(self.ifname, ip)
        return await task

    async def close(self) -> None:
        """Cancel the probes not taken, and the rests of those that got that far."""
        tasks, self._started = list(self._started.values()), {}
        for task in tasks:
            task.cancel()
        for result in await asyncio.gather(*tasks, return_exceptions=True):
            if isinstance(result, tuple) and result[1] is not None:
                result[1].cancel()


def _claimed(ip: IPv4Address, claims: list[arp_codec.ArpPacket]) -> str | None:
    if not claims:
        return None
    mac = codec.mac_to_str(claims[0].sender_mac)
    LOG.warning("%s is in use by %s", ip, mac)
    return mac
