"""How the `net-dhcp` command prints: aligned tables, short durations, JSON.

Stdlib only. Whatever a cell holds is made printable first (a container or host name
comes from Docker or the LAN and may hold control characters).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from typing import Any

from .text import printable

NONE = "-"
CELL_LIMIT = 64
"""Characters of one table cell shown (longer ones are cut, ending in "...")."""


def cell(value: object) -> str:
    """One table cell: NONE for None or "", else the value printable on one line."""
    if value is None or value == "":
        return NONE
    text = printable(str(value), CELL_LIMIT + 1)
    return text if len(text) <= CELL_LIMIT else text[:CELL_LIMIT - 3] + "..."


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Columns padded to their widest cell, two spaces apart; the last one unpadded."""
    cells = [[cell(v) for v in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        for i, text in enumerate(row):
            widths[i] = max(widths[i], len(text))
    lines = []
    for row in [list(headers), *cells]:
        padded = [text.ljust(widths[i]) for i, text in enumerate(row[:-1])]
        lines.append("  ".join([*padded, row[-1]]).rstrip())
    return "\n".join(lines)


def duration(seconds: float | None) -> str:
    """A short duration: 45s, 3m05s, 2h07m, 3d04h; "expired" at or below 0; NONE if
    unknown; "never" if infinite."""
    if seconds is None:
        return NONE
    if math.isinf(seconds):
        return "never"
    if seconds <= 0:
        return "expired"
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def when(timestamp: float | None) -> str:
    """A Unix time as local date and time, to the second."""
    if timestamp is None:
        return NONE
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(timestamp))


def address(iface: str | None) -> str | None:
    """An address without its prefix length ("10.0.0.5/24" -> "10.0.0.5")."""
    return iface.split("/", 1)[0] if iface else None


def to_json(doc: Any) -> str:
    """Indented, key order kept, 7-bit: what `--json` prints."""
    return json.dumps(doc, indent=2, ensure_ascii=True, allow_nan=False)
