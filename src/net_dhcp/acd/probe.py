"""RFC 5227 address conflict detection, shortened to fit a container start.

`in_use` probes and listens in one go. `in_use_soon` is for CreateEndpoint, which dockerd
runs one at a time per network (its Join runs side by side): it says only what the first
probe brought within PROBE_INTERVAL_S, and hands the rest (the second probe, the
listening after it) to a task that Join waits for.
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
    # Closed when the task ends, however it ends: a task cancelled before its first step
    # never runs its coroutine, so a `finally` there would not close it.
    task.add_done_callback(lambda _done: sock.close(soon=True))
    return None, task


def _claimed(ip: IPv4Address, claims: list[arp_codec.ArpPacket]) -> str | None:
    if not claims:
        return None
    mac = codec.mac_to_str(claims[0].sender_mac)
    LOG.warning("%s is in use by %s", ip, mac)
    return mac
