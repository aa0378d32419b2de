"""RFC 5227 address conflict detection, shortened to fit a container start."""

from __future__ import annotations

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
    """Probe `ip` from `ifname`; True if another host claims it."""
    # In the host's namespace (CreateEndpoint) the socket opens at once, no thread needed.
    sock = (open_arp_socket(ifname) if netns is None
            else await run_in_netns(netns, lambda: open_arp_socket(ifname)))
    conflict: list[arp_codec.ArpPacket] = []

    def seen(pkt: arp_codec.ArpPacket) -> None:
        if arp_codec.arp_conflicts(pkt, probed_ip=ip, own_mac=sock.mac):
            conflict.append(pkt)

    try:
        for i in range(PROBE_NUM):
            sock.send(arp_codec.arp_probe(sender_mac=sock.mac, target_ip=ip))
            await sock.watch(seen, PROBE_INTERVAL_S if i < PROBE_NUM - 1 else PROBE_LISTEN_S)
            if conflict:
                LOG.warning("%s is in use by %s", ip, codec.mac_to_str(conflict[0].sender_mac))
                return True
        return False
    finally:
        sock.close(soon=True)
