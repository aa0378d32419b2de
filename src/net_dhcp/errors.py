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


class LeaseError(NetDhcpError):
    """No DHCP lease could be obtained; the message names likely causes."""


class StoreError(NetDhcpError):
    """The state database could not be read or written."""
