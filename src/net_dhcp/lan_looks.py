"""The LAN interface's addresses and the host's routes through it, looked up once for many
CreateEndpoints.

Join hands the container the host's routes through the LAN interface, so every
CreateEndpoint looks them up meanwhile (Attachment.info: a route dump, an address dump).
In a burst of container starts those looks were about 15 % of the plugin's CPU, while
dockerd runs CreateEndpoints one at a time per network: CPU spent there is start time lost
for every container behind. Now a look is shared: a caller gets the result of a look still
running, or of one started less than FRESH_S ago. A host route added or removed shows in
the containers started FRESH_S later; a look that failed is not kept.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from .attach.base import Attachment
from .netlink import BridgeInfo

FRESH_S = 1.0
"""How long a look's result serves later callers, from the moment the look started."""


@dataclass
class _Look:
    started: float
    task: asyncio.Task[BridgeInfo]


class LanLooks:
    """The shared looks of one event loop (the driver's), one per LAN interface and mode."""

    def __init__(self) -> None:
        self._looks: dict[tuple[str, str], _Look] = {}

    async def info(self, att: Attachment) -> BridgeInfo:
        """att.info(), shared as the module says. Cancelling a caller never cancels a look
        that others wait for."""
        loop = asyncio.get_running_loop()
        key = (att.kind, att.lan)
        look = self._looks.get(key)
        if look is None or not self._usable(look, loop.time()):
            look = _Look(loop.time(), loop.create_task(att.info(), name=f"lan-look:{att.lan}"))
            self._looks[key] = look
        return await asyncio.shield(look.task)

    @staticmethod
    def _usable(look: _Look, now: float) -> bool:
        if not look.task.done():
            return True
        if look.task.cancelled() or look.task.exception() is not None:
            return False
        return now - look.started < FRESH_S
