"""A Docker API error is never taken for "the container is gone" (issue 7 defect 8).

Before: `"404" in str(err)` decided; aiohttp's message holds the URL, and about 1.5% of
container IDs contain "404", so a 500 from Docker tore down a live endpoint. A stand-in
Docker API (aiohttp on a unix socket) answers here: the real daemon cannot be made to fail.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from aiohttp import web

from net_dhcp import reconcile
from net_dhcp.docker_api import DockerClient
from net_dhcp.errors import DockerApiError, DockerNotFound

CID = "c0404" + "ab" * 29 + "0"


async def fake_docker(tmp_path: Path, status: int) -> tuple[web.AppRunner, str]:
    async def version(_req: web.Request) -> web.Response:
        return web.json_response({"ApiVersion": "1.41"})

    async def inspect(_req: web.Request) -> web.Response:
        return web.json_response({"message": "boom"}, status=status)

    app = web.Application()
    app.router.add_get("/version", version)
    app.router.add_get("/v1.41/containers/{cid}/json", inspect)
    runner = web.AppRunner(app)
    await runner.setup()
    sock = str(tmp_path / "docker.sock")
    await web.UnixSite(runner, sock).start()
    return runner, sock


@pytest.mark.asyncio
@pytest.mark.parametrize(("status", "error"), [(404, DockerNotFound), (500, DockerApiError),
                                               (409, DockerApiError)])
async def test_errors_are_classified_by_status(tmp_path: Path, status: int,
                                               error: type[Exception]) -> None:
    runner, sock = await fake_docker(tmp_path, status)
    client = DockerClient(sock)
    try:
        with pytest.raises(error) as exc:
            await client.inspect_container(CID)
        assert type(exc.value) is error
    finally:
        await client.close()
        await runner.cleanup()


@pytest.mark.asyncio
@pytest.mark.parametrize(("status", "removed"), [(500, False), (409, False), (404, True)])
async def test_only_a_404_makes_a_dead_containers_endpoint_go(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, status: int, removed: bool) -> None:
    monkeypatch.setattr(reconcile, "DIE_GRACE_S", 0.0)
    runner, sock = await fake_docker(tmp_path, status)
    ep = SimpleNamespace(id="e" * 64, container_id=CID)
    gone: list[Any] = []

    async def remove_endpoint(endpoint: Any, *, release: bool) -> None:
        gone.append(endpoint)

    driver = SimpleNamespace(registry=SimpleNamespace(endpoints={ep.id: ep}),
                             remove_endpoint=remove_endpoint)
    rec = reconcile.Reconciler(driver, driver_name="x", socket_name="x.sock", docker_socket=sock,  # type: ignore[arg-type]
                               sweep_interval_s=60)
    try:
        await rec._after_death(CID, [ep])  # type: ignore[list-item]
    finally:
        await rec.close()
        await runner.cleanup()
    assert bool(gone) is removed
