"""A machine on the lab LAN that uses an address but answers ARP late: a busy host.

A thread inside a lab host's namespace (tests/lab.py LanHost, made without an address)
answers every ARP request or probe for the address, `delay_s` after it, with an ARP reply
that claims it. The lab kernel has no netem to delay the host's own answers. Used by the
conflict-probe tests (integration and e2e).
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time
from collections.abc import Iterator
from ipaddress import IPv4Address

from net_dhcp import netlink
from tests.lab import LanHost

ETH_P_ARP = 0x0806


@contextlib.contextmanager
def late_claimer(host: LanHost, ip: str, delay_s: float) -> Iterator[list[float]]:
    """Answer every ARP probe for `ip` seen on `host`'s interface with an ARP reply that
    claims it, `delay_s` after the probe (a host too busy to answer at once). Yields the
    list of times (monotonic) it answered."""
    answered: list[float] = []
    stop = threading.Event()
    ready = threading.Event()
    failed: list[BaseException] = []
    own_mac = bytes.fromhex(host.mac.replace(":", ""))
    own_ip = IPv4Address(ip).packed

    def run() -> None:
        try:
            netlink.setns_path(f"/run/netns/{host.netns}")  # this thread only
            with socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM,
                               socket.htons(ETH_P_ARP)) as sock:
                sock.bind((host.ifname, ETH_P_ARP))
                sock.settimeout(0.05)
                ready.set()
                while not stop.is_set():
                    try:
                        data = sock.recv(256)
                    except TimeoutError:
                        continue
                    if len(data) < 28:
                        continue
                    op, sha, tpa = struct.unpack_from("!H6s", data, 6) + (data[24:28],)
                    if op != 1 or tpa != own_ip or sha == own_mac:
                        continue
                    time.sleep(delay_s)
                    reply = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 2, own_mac, own_ip,
                                        sha, data[14:18])
                    sock.sendto(reply, (host.ifname, ETH_P_ARP, 0, 0, sha))
                    answered.append(time.monotonic())
        except BaseException as err:  # noqa: BLE001 - reported by the test
            failed.append(err)
            ready.set()

    thread = threading.Thread(target=run, name="late-claimer", daemon=True)
    thread.start()
    ready.wait(10)
    if failed:
        raise failed[0]
    try:
        yield answered
    finally:
        stop.set()
        thread.join(5)
