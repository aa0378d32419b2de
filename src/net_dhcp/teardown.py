"""Work that runs after its reply: Leave's release and DeleteEndpoint's veth deletion.

Docker waits for each plugin call before it goes on with a container's start or stop, and
ignores errors from Leave and DeleteEndpoint (docs/docker-protocol.md). So the driver
answers those two at once and hands the slow part (a DHCPRELEASE from wherever the
interface is, the kernel's veth deletion) to `Teardowns`, which runs it right after:

* one job at a time per endpoint, in the order the calls came (a job waits for the one
  before it), and anything else that needs the endpoint (a new CreateEndpoint or Join of
  the same ID, DeleteNetwork) waits for its jobs first (`wait`);
* a job's failure is logged, never lost in a task nobody awaits;
* at shutdown the jobs are given `CLOSE_WAIT_S` to finish, then cancelled.

Nothing is lost if the plugin dies before a job ran: the endpoint is forgotten in the
state file only at the end of its job, so at the next start the re-adoption or the
sweep (reconcile.py) finds it and releases and removes it, as for any endpoint Docker
no longer knows.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine, Iterable
from typing import Any

LOG = logging.getLogger(__name__)

CLOSE_WAIT_S = 5.0
"""At shutdown, how long pending jobs may still run before they are cancelled."""


class Teardowns:
    """The jobs that follow replies, by endpoint ID; see the module docstring."""

    def __init__(self) -> None:
        self._jobs: dict[str, asyncio.Task[None]] = {}

    def pending(self) -> set[str]:
        """IDs with a job not finished yet."""
        return {key for key, task in self._jobs.items() if not task.done()}

    def start(self, key: str, coro: Coroutine[Any, Any, None], what: str) -> None:
        """Run `coro` after the job already queued for `key` (if any); return at once."""
        before = self._jobs.get(key)

        async def job() -> None:
            if before is not None:
                with contextlib.suppress(Exception, asyncio.CancelledError):
                    await asyncio.shield(before)
            try:
                await coro
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - a job's failure is logged, never lost
                LOG.exception("%s failed after its reply", what)
            finally:
                # Gone from the table as it ends, not a loop turn later (the callback).
                self._forget(key, asyncio.current_task())

        task = asyncio.create_task(job(), name=f"teardown:{key[:12]}")
        self._jobs[key] = task
        task.add_done_callback(lambda t: self._forget(key, t))

    def _forget(self, key: str, task: asyncio.Task[Any] | None) -> None:
        if task is not None and self._jobs.get(key) is task:
            del self._jobs[key]

    async def wait(self, keys: Iterable[str]) -> None:
        """Wait until the jobs of `keys` queued so far have finished (never raises)."""
        tasks = [self._jobs[k] for k in keys if k in self._jobs]
        if tasks:
            await asyncio.wait([asyncio.shield(t) for t in tasks])

    async def close(self, timeout: float = CLOSE_WAIT_S) -> None:
        """Let the pending jobs finish within `timeout`, then cancel what is left."""
        tasks = list(self._jobs.values())
        if not tasks:
            return
        _, late = await asyncio.wait(tasks, timeout=timeout)
        for task in late:
            task.cancel()
        if late:
            LOG.warning("%d teardown job(s) still running after %gs at shutdown; the next "
                        "start finishes them", len(late), timeout)
            await asyncio.wait(late)
