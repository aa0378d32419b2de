"""The plugin's HTTP side: Docker's POST /<Method> calls -> Driver; errors -> {"Err": ...}."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from .driver import Driver
from .errors import NetDhcpError, RequestError

LOG = logging.getLogger(__name__)
TRACE = 5
CONTENT_TYPE = "application/vnd.docker.plugins.v1.2+json"

Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


async def _const(value: dict[str, Any], _req: dict[str, Any]) -> dict[str, Any]:
    return value


def handlers(driver: Driver) -> dict[str, Handler]:
    """Method name -> coroutine taking the decoded body and returning the reply."""

    def const(value: dict[str, Any]) -> Handler:
        return lambda req: _const(value, req)

    return {
        "Plugin.Activate": const({"Implements": ["NetworkDriver"]}),
        "NetworkDriver.GetCapabilities": const({"Scope": "local", "ConnectivityScope": "local"}),
        "NetworkDriver.CreateNetwork": driver.create_network,
        "NetworkDriver.DeleteNetwork": driver.delete_network,
        "NetworkDriver.AllocateNetwork": const({"Options": {}}),
        "NetworkDriver.FreeNetwork": const({}),
        "NetworkDriver.CreateEndpoint": driver.create_endpoint,
        "NetworkDriver.EndpointOperInfo": driver.endpoint_oper_info,
        "NetworkDriver.DeleteEndpoint": driver.delete_endpoint,
        "NetworkDriver.Join": driver.join,
        "NetworkDriver.Leave": driver.leave,
        "NetworkDriver.DiscoverNew": const({}),
        "NetworkDriver.DiscoverDelete": const({}),
        "NetworkDriver.ProgramExternalConnectivity": const({}),
        "NetworkDriver.RevokeExternalConnectivity": const({}),
    }


def _reply(status: int, body: dict[str, Any]) -> web.Response:
    return web.Response(status=status, body=json.dumps(body).encode(), content_type=CONTENT_TYPE)


def make_app(driver: Driver) -> web.Application:
    """The aiohttp application serving every plugin method."""
    table = handlers(driver)

    async def dispatch(request: web.Request) -> web.Response:
        method = request.match_info["method"]
        raw = await request.read()
        LOG.log(TRACE, "-> %s %s", method, raw.decode(errors="replace").strip())
        handler = table.get(method)
        if handler is None:
            resp = _reply(404, {"Err": f"net-dhcp does not implement {method}"})
            LOG.log(TRACE, "<- %s 404", method)
            return resp
        try:
            body = json.loads(raw) if raw.strip() else {}
            if not isinstance(body, dict):
                raise RequestError(f"{method}: the request body must be a JSON object")
            result = await handler(body)
        except json.JSONDecodeError as err:
            LOG.warning("%s: malformed JSON body: %s", method, err)
            result, status = {"Err": f"{method}: malformed JSON request body: {err}"}, 400
        except NetDhcpError as err:
            LOG.warning("%s failed: %s", method, err)
            result, status = {"Err": str(err)}, 500
        except Exception as err:
            LOG.exception("%s: unexpected error", method)
            result, status = {"Err": f"net-dhcp internal error in {method}: {err!r}; "
                                     "see the plugin log"}, 500
        else:
            status = 200
        LOG.log(TRACE, "<- %s %d %s", method, status, json.dumps(result))
        return _reply(status, result)

    app = web.Application()
    app.router.add_post("/{method}", dispatch)
    return app
