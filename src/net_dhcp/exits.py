"""Exit statuses of the `net-dhcp` command, and the errors that end a command with one.

Stdlib only: the CLI imports this at start-up.
"""

from __future__ import annotations

OK = 0
"""Success; for `doctor`: no problem found."""
PROBLEMS = 1
"""`doctor`: at least one problem found. Any command: an error (the plugin's reply, the
state database, permissions)."""
ERROR = 1
USAGE = 2
"""Bad arguments, or an ambiguous choice (several plugin sockets and no --socket)."""
NOT_RUNNING = 3
"""The plugin is not running (`status`; `leases` when there is no state database either)."""

HELP = """\
exit status:
  0  success; doctor: no problem found
  1  doctor: at least one problem found; any command: an error (a bad reply from the
     plugin, an unreadable state database, not root)
  2  usage error: bad arguments, or several plugin sockets found and no --socket
  3  the plugin is not running (status; leases when there is no state database either)"""


class CommandError(Exception):
    """A command cannot go on; the message says why and what to do."""

    exit_code = ERROR


class UsageError(CommandError):
    """The command line cannot be acted on as given (exit 2)."""

    exit_code = USAGE


class NotRunning(CommandError):
    """The plugin does not answer on its socket (exit 3)."""

    exit_code = NOT_RUNNING
