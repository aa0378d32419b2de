"""mode=macvlan: each container gets a macvlan link (bridge submode) on the parent, with its
own MAC (generated, or --mac-address), so the DHCP server sees an ordinary client.

The host cannot reach its own macvlan containers through the parent (the kernel does not
pass frames between a parent and its macvlans): see the README for the shim interface.
"""

from __future__ import annotations

from .parent import ParentLink

PREFIX = "dm"


class MacvlanAttachment(ParentLink):
    """mode=macvlan on -o parent."""

    kind = "macvlan"
    prefix = PREFIX
    unique_macs = True
