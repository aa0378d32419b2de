"""Closing packet sockets without making a request wait for the kernel.

Releasing an AF_PACKET socket that was bound to a protocol waits for an RCU grace period
(`synchronize_net` in the kernel's packet_release): 10-20 ms measured on the 2-core VM,
more under load. CreateEndpoint closes two of them (the DHCP exchange's and the conflict
probe's) before it replies, so the close runs in a worker thread instead; the caller has
already removed the socket from the event loop, and nothing uses it again.
"""

from __future__ import annotations

import asyncio
import socket

_closing: set[asyncio.Future[None]] = set()
"""Closes still running (kept referenced until they finish)."""


def close_soon(sock: socket.socket) -> None:
    """Close `sock` in the loop's default executor, or at once with no running loop."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        sock.close()
        return
    fut = loop.run_in_executor(None, sock.close)
    _closing.add(fut)
    fut.add_done_callback(_closing.discard)
