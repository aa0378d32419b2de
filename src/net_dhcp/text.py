"""Untrusted text made safe for a log line or an `Err` reply: printable, one line, bounded."""

from __future__ import annotations

DEFAULT_LIMIT = 80


def printable(value: object, limit: int = DEFAULT_LIMIT) -> str:
    """`value` as a one-line printable string: control characters escaped, cut at `limit`."""
    try:
        text = value if isinstance(value, str) else repr(value)
    except ValueError:  # int too large to convert (Python 3.11's digit limit)
        text = f"<{type(value).__name__} too large to show>"
    out: list[str] = []
    for ch in text:
        if ch.isprintable():
            out.append(ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        else:
            code = ord(ch)
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
        if len(out) > limit:
            break
    shown = "".join(out)
    return shown if len(shown) <= limit else shown[:limit] + "..."
