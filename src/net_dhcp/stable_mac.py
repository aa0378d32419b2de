"""A container's default MAC that survives a re-create (the `stable_mac` network option).

Docker names no container in CreateEndpoint, and the Docker API must not be asked then
(docker-protocol.md: at daemon start it is not served yet, and it deadlocks). So the
container is known from before: the reconciler watches Docker's `create` and `die` events
and, for each container created or stopped, records who it is (Compose project, service
and replica number, else its name) and which networks it is on: it may be about to start
(`docker run` and Compose create, then start; `docker restart` and restart policies stop,
then start). A CreateEndpoint on one of ours, while the containers recorded for that
network all have one identity, takes the MAC derived from that identity and the network's
LAN interface. Anything else (none recorded, or several containers created or stopped at
once on the network) keeps the MAC derived from the endpoint ID, as before. A recorded
container is forgotten when it starts or is removed, or after PENDING_S.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from .dhcp4 import codec

LOG = logging.getLogger(__name__)

PENDING_S = 60.0
"""How long a container created or stopped counts as about to start (Compose creates a
project's containers first and starts them after; a restart policy waits a while)."""
LOOKUP_WAIT_S = 1.0
"""How long CreateEndpoint waits for the look-up of a container whose `create` event was
just seen (a read of Docker's container list, which takes no container lock)."""

COMPOSE_PROJECT = "com.docker.compose.project"
COMPOSE_SERVICE = "com.docker.compose.service"
COMPOSE_NUMBER = "com.docker.compose.container-number"


def identity(name: str, labels: Mapping[str, str]) -> str | None:
    """What stays the same when a container is re-created: the Compose project, service
    and replica number (Compose gives the new container a temporary name), else the name."""
    project, service = labels.get(COMPOSE_PROJECT), labels.get(COMPOSE_SERVICE)
    if project and service:
        return f"compose:{project}/{service}/{labels.get(COMPOSE_NUMBER) or '1'}"
    name = name.lstrip("/")
    return f"name:{name}" if name else None


def mac_for(lan: str, who: str) -> str:
    """The locally administered unicast MAC of container identity `who` on LAN interface
    `lan` (so one container on two LANs has two MACs)."""
    digest = hashlib.sha256(f"net-dhcp stable mac\0{lan}\0{who}".encode()).digest()
    return codec.mac_to_str(b"\x02" + digest[:5])


Found = tuple[str, Mapping[str, str], set[str]]
"""A container's name, labels and networks (Docker's IDs and names of them)."""


@dataclass(frozen=True, slots=True)
class _Waiting:
    who: str
    networks: frozenset[str]
    """Docker's IDs and names of the networks the container is on."""
    at: float


class PendingStarts:
    """Containers created or stopped and not started since, by ID (fed by the
    reconciler)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._waiting: dict[str, _Waiting] = {}
        self._lookups: dict[str, asyncio.Task[None]] = {}

    def look_up(self, container_id: str, lookup: Callable[[], Awaitable[Found | None]]) -> None:
        """Record the container that `lookup()` describes when it answers; CreateEndpoint
        waits for it meanwhile (up to LOOKUP_WAIT_S)."""
        async def run() -> None:
            try:
                found = await lookup()
            except Exception as err:  # noqa: BLE001 - Docker went away: a generated MAC then
                LOG.debug("container %s: look-up failed (%s)", container_id[:12], err)
                return
            finally:
                if self._lookups.get(container_id) is asyncio.current_task():
                    del self._lookups[container_id]
            if found is not None:
                name, labels, networks = found
                who = identity(name, labels)
                if who is not None and networks:
                    self._waiting[container_id] = _Waiting(who, frozenset(networks),
                                                           self._clock())

        earlier = self._lookups.get(container_id)
        if earlier is not None:
            earlier.cancel()
        self._lookups[container_id] = asyncio.create_task(
            run(), name=f"about-to-start:{container_id[:12]}")

    def started(self, container_id: str) -> None:
        """The container started (its endpoints are made by now) or is gone."""
        self._waiting.pop(container_id, None)
        task = self._lookups.pop(container_id, None)
        if task is not None:
            task.cancel()

    async def sole(self, network_keys: set[str]) -> str | None:
        """The identity of the containers that may be about to start on the network known
        by `network_keys` (its ID and name); None if there are none, or more than one
        identity among them."""
        found = self._identities(network_keys)
        if len(found) > 1:
            return None  # what is still being looked up can only add to that (a burst)
        if self._lookups:
            await asyncio.wait(list(self._lookups.values()), timeout=LOOKUP_WAIT_S)
            found = self._identities(network_keys)
        return found.pop() if len(found) == 1 else None

    def _identities(self, network_keys: set[str]) -> set[str]:
        now = self._clock()
        for cid in [c for c, x in self._waiting.items() if now - x.at > PENDING_S]:
            del self._waiting[cid]
        return {x.who for x in self._waiting.values() if x.networks & network_keys}

    async def close(self) -> None:
        """Cancel the look-ups in flight."""
        for task in list(self._lookups.values()):
            task.cancel()
        await asyncio.gather(*self._lookups.values(), return_exceptions=True)
        self._lookups.clear()
