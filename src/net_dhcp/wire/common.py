"""What every wire codec shares: CodecError for malformed input, and the 6-octet MAC check."""

from __future__ import annotations

__all__ = ["CodecError", "check_mac"]


class CodecError(ValueError):
    """Malformed input (wire bytes or builder arguments); the message says what was wrong."""


def check_mac(mac: bytes, what: str) -> bytes:
    """``mac`` as bytes if it is 6 octets; CodecError naming the field ``what`` otherwise."""
    if not isinstance(mac, bytes | bytearray) or len(mac) != 6:
        raise CodecError(f"{what} must be a 6-octet MAC address, got {mac!r}")
    return bytes(mac)
