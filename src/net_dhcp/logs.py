"""Logging set-up for `net-dhcp serve`: level from LOG_LEVEL, a 0640 log file or stderr."""

from __future__ import annotations

import logging
import os
import sys

TRACE = 5
"""Below DEBUG: every plugin request and reply."""
LEVELS = {"trace": TRACE, "debug": logging.DEBUG, "info": logging.INFO,
          "warning": logging.WARNING, "error": logging.ERROR}
LOG_FILE_MODE = 0o640


def setup_logging(log_file: str | None) -> None:
    """LOG_LEVEL env: trace, debug, info (default), warning, error. SystemExit if invalid."""
    logging.addLevelName(TRACE, "TRACE")
    name = os.environ.get("LOG_LEVEL", "info").strip().lower()
    if name not in LEVELS:
        raise SystemExit(f"LOG_LEVEL={name!r} is not one of {', '.join(LEVELS)}")
    handler: logging.Handler
    if log_file:
        # Created with its mode, whatever the umask; an existing file is tightened.
        fd = os.open(log_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC,
                     LOG_FILE_MODE)
        os.fchmod(fd, LOG_FILE_MODE)
        os.close(fd)
        handler = logging.FileHandler(log_file)
    else:
        handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(LEVELS[name])
    # pyroute2 logs every netlink message at debug level: far too much even for trace.
    logging.getLogger("pyroute2").setLevel(logging.WARNING)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    logging.getLogger("asyncio").setLevel(logging.INFO)
