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
QUIET = {"pyroute2": logging.WARNING, "aiohttp.access": logging.WARNING,
         "asyncio": logging.INFO}
"""Levels setup_logging sets on chatty libraries' loggers (pyroute2 logs every netlink
message at debug level: far too much even for trace)."""
_quiet = False
"""Whether setup_logging has set QUIET's levels."""


def setup_logging(log_file: str | None, *, also_stderr: bool = False) -> None:
    """LOG_LEVEL env: trace, debug, info (default), warning, error. SystemExit if invalid.
    With `log_file` and `also_stderr`, both get every line (a managed plugin's standard error
    reaches dockerd's log)."""
    logging.addLevelName(TRACE, "TRACE")
    name = os.environ.get("LOG_LEVEL", "info").strip().lower()
    if name not in LEVELS:
        raise SystemExit(f"LOG_LEVEL={name!r} is not one of {', '.join(LEVELS)}")
    handlers: list[logging.Handler] = []
    if log_file:
        # Created with its mode, whatever the umask; an existing file is tightened.
        fd = os.open(log_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC,
                     LOG_FILE_MODE)
        os.fchmod(fd, LOG_FILE_MODE)
        os.close(fd)
        handlers.append(logging.FileHandler(log_file))
    if not log_file or also_stderr:
        handlers.append(logging.StreamHandler(sys.stderr))
    for handler in handlers:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    # The format names no file, line or function: skip the caller look-up each record
    # would make (the logging HOWTO's optimisation; it holds frames alive meanwhile).
    logging._srcfile = None
    root = logging.getLogger()
    root.handlers[:] = handlers
    root.setLevel(LEVELS[name])
    global _quiet
    _quiet = True
    for logger, level in QUIET.items():
        logging.getLogger(logger).setLevel(level)


def pyroute2_imported() -> None:
    """Called once pyroute2 is imported (netlink.py imports it on first use, after
    setup_logging): its import sets its logger's level to NOTSET; put QUIET's back."""
    if _quiet:
        logging.getLogger("pyroute2").setLevel(QUIET["pyroute2"])
