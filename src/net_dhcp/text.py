"""Untrusted text made safe for a log line or an `Err` reply: printable, one line, bounded.

Used for whatever came from outside: Docker's request bodies, a DHCP server's messages,
the Docker API's error bodies.
"""

from __future__ import annotations

from collections.abc import Mapping

QUOTE_LIMIT = 80
MAX_INT_DIGITS = 4300
"""CPython's default int->str limit: longer integers are described, never converted."""
_SHORT_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
_QUOTED_ESCAPES = {**_SHORT_ESCAPES, "\\": "\\\\", "'": "\\'"}


def printable(text: str, limit: int = 4096) -> str:
    """`text` with its non-printable characters escaped (\\n, \\x1b...), cut near `limit`."""
    out, _ = _escape(text, limit, _SHORT_ESCAPES)
    return out


def quote_for_log(value: object, limit: int = QUOTE_LIMIT) -> str:
    """Any value as one printable line of about `limit` characters at most; never raises."""
    try:
        return _render(value, limit, 0)
    except Exception:  # noqa: BLE001 - a log helper must not fail, whatever it is given
        return f"<{type(value).__name__}>"


def _escape(text: str, limit: int, short: dict[str, str]) -> tuple[str, bool]:
    """Escape `text` until the output reaches `limit`; True if the input was cut."""
    parts: list[str] = []
    size = 0
    for index, ch in enumerate(text):
        if size >= limit:
            return "".join(parts), index < len(text)
        if ch in short:
            piece = short[ch]
        elif ch.isprintable():
            piece = ch
        else:
            code = ord(ch)
            piece = (f"\\x{code:02x}" if code < 0x100 else
                     f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}")
        parts.append(piece)
        size += len(piece)
    return "".join(parts), False


def _render(value: object, limit: int, depth: int) -> str:
    if isinstance(value, str):
        body, cut = _escape(value, limit, _QUOTED_ESCAPES)
        return f"'{body}'" + (f"... ({len(value)} characters)" if cut else "")
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        if value.bit_length() > 3 * MAX_INT_DIGITS:  # str() would raise or be huge
            return f"<integer of about {int(value.bit_length() * 0.30103)} digits>"
        return _cut(str(value), limit)
    if isinstance(value, float):
        return _cut(repr(value), limit)
    if isinstance(value, Mapping | list | tuple):
        return _render_container(value, limit, depth)
    text, cut = _escape(repr(value), limit, _SHORT_ESCAPES)
    return text + ("..." if cut else "")


def _render_container(value: Mapping[object, object] | list[object] | tuple[object, ...],
                      limit: int, depth: int) -> str:
    is_map = isinstance(value, Mapping)
    opening, closing = ("{", "}") if is_map else ("[", "]")
    if not value:
        return opening + closing
    if depth >= 2:
        return f"{opening}...{closing}"
    items = value.items() if isinstance(value, Mapping) else enumerate(value)
    parts: list[str] = []
    size = 0
    for key, item in items:
        if size >= limit:
            parts.append("...")
            break
        remaining = max(limit - size, 8)
        piece = _render(item, remaining, depth + 1)
        if is_map:
            piece = f"{_render(key, remaining, depth + 1)}: {piece}"
        parts.append(piece)
        size += len(piece) + 2
    return opening + ", ".join(parts) + closing


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + "..."
