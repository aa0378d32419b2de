"""The plugin's HTTP side: POST /<Method> -> typed request -> driver; every error -> {"Err": ...}.

Each call is: read the body (at most MAX_BODY bytes), decode it (`requests.decode_body`),
parse it into a typed request (`requests.PARSERS`), and only then call the driver, so
nothing is created for a request that is malformed. Every reply is JSON; a failure is
`{"Err": "<printable message>"}` with the status from `status_for` (the one place that
maps errors to statuses):

* 400 RequestError (malformed request), OptionError (a bad `-o`/driver-opt option);
* 404 NotFoundError (unknown network or endpoint) and methods we do not implement;
* 405 a verb other than POST;  413 a body over MAX_BODY;
* 500 any other NetDhcpError (kernel, DHCP, store), and unexpected exceptions, which are
  logged with their traceback.

One more route is not Docker's: `GET /net-dhcp/status` answers the status document
(status.py) for `net-dhcp status` and `net-dhcp leases`; another verb there gets 405. The
socket is root's alone (mode 0600), as is what the document tells.

Docker treats every non-200 reply carrying {"Err"} as a failure of that call, showing
"NetworkDriver.<Method>: <Err>", except that it ignores 404 from Program- and
RevokeExternalConnectivity, which we answer ourselves. So a 404 for CreateEndpoint or
Join on an unknown network is still an error to Docker, as it must be.
"""

from __future__ import annotations

import copy
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Generic, NamedTuple, Protocol, TypeVar

from aiohttp import web

from .errors import NetDhcpError, NotFoundError, OptionError, RequestError
from .logs import TRACE
from .requests import (
    CreateEndpointRequest,
    CreateNetworkRequest,
    EndpointRequest,
    JoinRequest,
    NetworkRequest,
    decode_body,
    parse_create_endpoint,
    parse_create_network,
    parse_empty,
    parse_endpoint,
    parse_join,
    parse_network,
)
from .status import STATUS_PATH, source_for
from .text import printable, quote_for_log

LOG = logging.getLogger(__name__)

CONTENT_TYPE = "application/vnd.docker.plugins.v1.2+json"
STATUS_CONTENT_TYPE = "application/json"
MAX_BODY = 1 << 20
"""Largest request body read, in bytes; Docker's are under 10 KiB."""
TRACE_BODY_LIMIT = 2000
"""Characters of a body or reply shown in a TRACE log line."""
METHOD_LIMIT = 120
"""Characters of a method name shown in a log line or an error (escaped, unquoted)."""

R = TypeVar("R")
Reply = dict[str, Any]


class BodyTooLargeError(RequestError):
    """The request body is larger than MAX_BODY."""


class UnknownMethodError(RequestError):
    """The URL names a method the plugin does not implement."""


class WrongVerbError(RequestError):
    """The request is not a POST."""


_STATUS: tuple[tuple[type[BaseException], int], ...] = (
    (BodyTooLargeError, 413),
    (UnknownMethodError, 404),
    (WrongVerbError, 405),
    (NotFoundError, 404),
    (RequestError, 400),
    (OptionError, 400),
    (NetDhcpError, 500),
)


def status_for(err: BaseException) -> int:
    """The HTTP status that answers `err` (first match in _STATUS, else 500)."""
    for kind, status in _STATUS:
        if isinstance(err, kind):
            return status
    return 500


class DriverLike(Protocol):
    """What api.py needs of the driver: one coroutine per stateful call, typed requests in."""

    async def create_network(self, req: CreateNetworkRequest) -> Reply: ...
    async def delete_network(self, req: NetworkRequest) -> Reply: ...
    async def create_endpoint(self, req: CreateEndpointRequest) -> Reply: ...
    async def endpoint_oper_info(self, req: EndpointRequest) -> Reply: ...
    async def delete_endpoint(self, req: EndpointRequest) -> Reply: ...
    async def join(self, req: JoinRequest) -> Reply: ...
    async def program_external_connectivity(self, req: EndpointRequest) -> Reply: ...
    async def leave(self, req: EndpointRequest) -> Reply: ...


class Route(NamedTuple, Generic[R]):
    """How one method is served: parse the decoded body, then handle the typed request."""

    parse: Callable[[object], R]
    handle: Callable[[R], Awaitable[Reply]]


def _const(value: Reply) -> Callable[[object], Awaitable[Reply]]:
    async def reply(_req: object) -> Reply:
        return copy.deepcopy(value)  # callers may mutate what they get
    return reply


def handlers(driver: DriverLike) -> dict[str, Route[Any]]:
    """Method name (URL path without '/') -> its Route."""
    return {
        "Plugin.Activate": Route(parse_empty, _const({"Implements": ["NetworkDriver"]})),
        "NetworkDriver.GetCapabilities": Route(
            parse_empty, _const({"Scope": "local", "ConnectivityScope": "local"})),
        "NetworkDriver.CreateNetwork": Route(parse_create_network, driver.create_network),
        "NetworkDriver.DeleteNetwork": Route(parse_network, driver.delete_network),
        "NetworkDriver.AllocateNetwork": Route(parse_network, _const({"Options": {}})),
        "NetworkDriver.FreeNetwork": Route(parse_network, _const({})),
        "NetworkDriver.CreateEndpoint": Route(parse_create_endpoint, driver.create_endpoint),
        "NetworkDriver.EndpointOperInfo": Route(parse_endpoint, driver.endpoint_oper_info),
        "NetworkDriver.DeleteEndpoint": Route(parse_endpoint, driver.delete_endpoint),
        "NetworkDriver.Join": Route(parse_join, driver.join),
        "NetworkDriver.Leave": Route(parse_endpoint, driver.leave),
        "NetworkDriver.DiscoverNew": Route(parse_empty, _const({})),
        "NetworkDriver.DiscoverDelete": Route(parse_empty, _const({})),
        "NetworkDriver.ProgramExternalConnectivity": Route(
            parse_endpoint, driver.program_external_connectivity),
        "NetworkDriver.RevokeExternalConnectivity": Route(parse_endpoint, _const({})),
    }


async def read_body(request: web.Request, limit: int = MAX_BODY) -> bytes:
    """The whole request body, or BodyTooLargeError once it is known to exceed `limit`."""
    declared = request.content_length
    if declared is not None and declared > limit:
        raise BodyTooLargeError(
            f"request body is {declared} bytes, more than the {_size(limit)} limit")
    chunks: list[bytes] = []
    size = 0
    # Read ourselves rather than request.read(): aiohttp's own cap answers in plain text,
    # and a chunked body has no Content-Length to check up front.
    while chunk := await request.content.read(limit + 1 - size):
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            raise BodyTooLargeError(
                f"request body is at least {size} bytes, more than the {_size(limit)} limit")
    return b"".join(chunks)


def _size(limit: int) -> str:
    return f"{limit >> 20} MiB" if limit % (1 << 20) == 0 else f"{limit} bytes"


def _error_text(err: BaseException) -> str:
    try:
        text = str(err)
    except Exception:  # noqa: BLE001 - str() of an exception can raise (e.g. huge ints)
        text = ""
    return printable(text or type(err).__name__)


def _encode(body: Reply) -> bytes:
    # ensure_ascii keeps the reply 7-bit whatever a message holds.
    return json.dumps(body, ensure_ascii=True, allow_nan=False).encode()


def _reply(status: int, data: bytes) -> web.Response:
    return web.Response(status=status, body=data, content_type=CONTENT_TYPE)


def make_app(driver: DriverLike, *,
             status: Callable[[], Reply] | None = None) -> web.Application:
    """The aiohttp application serving every plugin method, and the status route.

    `status` builds the status document; by default status.snapshot of the driver's
    registry and leases, uptime counted from now (a driver without them: 404 there).
    """
    table = handlers(driver)
    source = status if status is not None else source_for(driver, time.time())

    async def dispatch(request: web.Request) -> web.Response:
        method = request.match_info["method"]
        shown = printable(method, METHOD_LIMIT)
        try:
            if request.method != "POST":
                raise WrongVerbError(
                    f"net-dhcp answers POST only, not {quote_for_log(request.method)}")
            route = table.get(method)
            if route is None:
                raise UnknownMethodError(f"net-dhcp does not implement {shown}")
            raw = await read_body(request)
            if LOG.isEnabledFor(TRACE):
                LOG.log(TRACE, "-> %s %s", shown,
                        quote_for_log(raw.decode(errors="replace").strip(), TRACE_BODY_LIMIT))
            typed = route.parse(decode_body(raw))
            result = await route.handle(typed)
            if not isinstance(result, dict):
                raise TypeError(f"handler returned {type(result).__name__}, not a dict")
            status, data = 200, _encode(result)
        except NetDhcpError as err:
            status = status_for(err)
            message = _error_text(err)
            LOG.warning("%s failed (%d): %s", shown, status, message)
            data = _encode({"Err": message})
        except Exception as err:
            status = status_for(err)
            LOG.exception("%s: unexpected error", shown)
            data = _encode({"Err": f"net-dhcp internal error in {shown}: "
                                   f"{type(err).__name__}: {_error_text(err)}; "
                                   "see the plugin log"})
        if LOG.isEnabledFor(TRACE):
            LOG.log(TRACE, "<- %s %d %s", shown, status,
                    quote_for_log(data.decode(), TRACE_BODY_LIMIT))
        return _reply(status, data)

    async def status_route(request: web.Request) -> web.Response:
        try:
            if request.method not in ("GET", "HEAD"):
                raise WrongVerbError(f"{STATUS_PATH} answers GET only, not "
                                     f"{quote_for_log(request.method)}")
            if source is None:
                raise UnknownMethodError("this plugin has no status to show")
            status_code, data = 200, _encode(source())
        except NetDhcpError as err:
            status_code, data = status_for(err), _encode({"Err": _error_text(err)})
        except Exception as err:
            LOG.exception("%s: unexpected error", STATUS_PATH)
            status_code = 500
            data = _encode({"Err": f"net-dhcp internal error in {STATUS_PATH}: "
                                   f"{type(err).__name__}: {_error_text(err)}"})
        return web.Response(status=status_code, body=data, content_type=STATUS_CONTENT_TYPE)

    # Above MAX_BODY so that read_body, not aiohttp's plain-text 413, decides.
    app = web.Application(client_max_size=2 * MAX_BODY)
    app.router.add_route("*", STATUS_PATH, status_route)
    # Every path and verb reaches dispatch, so even a stray request gets a JSON answer.
    app.router.add_route("*", r"/{method:[\s\S]*}", dispatch)
    return app
