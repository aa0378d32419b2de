"""One exception hierarchy; api.py turns every NetDhcpError into Docker's {"Err": ...}."""

from __future__ import annotations


class NetDhcpError(Exception):
    """Base of every error the plugin reports to Docker or the user."""


class OptionError(NetDhcpError):
    """A network or endpoint option is invalid; the message says how to fix it."""


class RequestError(NetDhcpError):
    """A request from Docker is malformed or refers to something unknown."""


class NotFoundError(RequestError):
    """The network or endpoint named in a request is not known to the plugin."""


class NetlinkError(NetDhcpError):
    """A kernel networking operation failed."""


class InterfaceGone(NetlinkError):
    """The interface a DHCP socket is bound to no longer exists (e.g. its namespace died)."""


class LeaseError(NetDhcpError):
    """No DHCP lease could be obtained; the message names likely causes."""


class StoreError(NetDhcpError):
    """The state database could not be read or written."""


class DhcpReplyError(NetDhcpError):
    """A DHCP reply is malformed or grants something unusable; the client drops it."""


class DockerApiError(NetDhcpError):
    """The Docker API answered with an error status (or not at all)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class DockerNotFound(DockerApiError):
    """The Docker API answered 404: the object does not exist (any more)."""


class AlreadyRunning(NetDhcpError):
    """Another `net-dhcp serve` holds the socket or the state directory."""
