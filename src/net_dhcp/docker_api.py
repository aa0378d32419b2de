"""The Docker Engine API, for background tasks only (never on a plugin request path)."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import AsyncIterator
from typing import Any

import aiohttp

from .errors import DockerApiError, DockerNotFound
from .text import printable

LOG = logging.getLogger(__name__)

DEFAULT_SOCKET = "/var/run/docker.sock"
REQUEST_TIMEOUT_S = 10.0


def socket_from_env() -> str:
    """The Docker socket path from DOCKER_HOST (unix:// only), else the default."""
    host = os.environ.get("DOCKER_HOST", "")
    if host.startswith("unix://"):
        return host[len("unix://"):]
    return DEFAULT_SOCKET


class DockerClient:
    """A small async client; the API version is negotiated with /version on first use."""

    def __init__(self, socket_path: str | None = None) -> None:
        self.socket_path = socket_path or socket_from_env()
        self._session: aiohttp.ClientSession | None = None
        self._prefix: str | None = None

    def _sess(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.UnixConnector(path=self.socket_path),
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=REQUEST_TIMEOUT_S),
            )
        return self._session

    async def close(self) -> None:
        """Close the HTTP session."""
        if self._session is not None:
            await self._session.close()

    async def _version_prefix(self) -> str:
        if self._prefix is None:
            data = await self._get_json("/version", {})
            self._prefix = f"/v{data['ApiVersion']}"
        return self._prefix

    async def _get_json(self, path: str, params: dict[str, str]) -> Any:
        """GET a JSON document; DockerNotFound on 404, DockerApiError on anything else."""
        timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
        try:
            async with self._sess().get(f"http://docker{path}", params=params,
                                        timeout=timeout) as resp:
                if resp.status >= 400:
                    body = await resp.text()
                    error = DockerNotFound if resp.status == 404 else DockerApiError
                    raise error(f"Docker API GET {path}: {resp.status} {printable(body)}",
                                resp.status)
                return await resp.json()
        except (aiohttp.ClientError, TimeoutError, ValueError) as err:
            raise DockerApiError(f"Docker API GET {path}: {err!r}") from err

    async def get(self, path: str, **params: str) -> Any:
        """GET a JSON document; DockerNotFound on 404, DockerApiError on other failures."""
        prefix = await self._version_prefix()
        return await self._get_json(f"{prefix}{path}", params)

    async def networks(self) -> list[dict[str, Any]]:
        """All Docker networks."""
        result: list[dict[str, Any]] = await self.get("/networks")
        return result

    async def plugins(self) -> list[dict[str, Any]]:
        """Installed managed plugins (GET /plugins)."""
        data = await self.get("/plugins")
        return list(data) if isinstance(data, list) else []

    async def containers(self, *, id: str | None = None) -> list[dict[str, Any]]:  # noqa: A002
        """All containers, running or not (with `id`: those whose ID starts so)."""
        params = {"all": "1"}
        if id is not None:
            params["filters"] = json.dumps({"id": [id]})
        result: list[dict[str, Any]] = await self.get("/containers/json", **params)
        return result

    async def inspect_container(self, container_id: str) -> dict[str, Any]:
        """Inspect one container."""
        result: dict[str, Any] = await self.get(f"/containers/{container_id}/json")
        return result

    async def events(self, filters: dict[str, list[str]]) -> AsyncIterator[dict[str, Any]]:
        """Stream events until the connection drops."""
        prefix = await self._version_prefix()
        async with self._sess().get(
            f"http://docker{prefix}/events", params={"filters": json.dumps(filters)},
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=REQUEST_TIMEOUT_S),
        ) as resp:
            resp.raise_for_status()
            async for line in resp.content:
                if line.strip():
                    yield json.loads(line)
