"""The one place an attachment mode is chosen: from a network's options."""

from __future__ import annotations

from ..config import NetworkOptions
from .base import Attachment
from .ipvlan import IpvlanAttachment
from .macvlan import MacvlanAttachment
from .veth import VethAttachment

_MODES: dict[str, type[Attachment]] = {
    "bridge": VethAttachment,
    "macvlan": MacvlanAttachment,
    "ipvlan": IpvlanAttachment,
}


def attachment(options: NetworkOptions) -> Attachment:
    """How the containers of a network with `options` reach its LAN."""
    return _MODES[options.mode](options.lan)


def all_modes() -> list[type[Attachment]]:
    """Every attachment mode (for looking up interfaces whose network is unknown)."""
    return list(_MODES.values())
