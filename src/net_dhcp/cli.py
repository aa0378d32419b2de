"""The `net-dhcp` command: parse arguments, set up logging, delegate.

Importing this module stays cheap (no aiohttp, no pyroute2): the daemon is imported only
when `serve` runs.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import sys
from collections.abc import Callable
from pathlib import Path

from .dhcp4.timing import RENEW_RETRY_MIN_S, Timing
from .errors import NetDhcpError
from .logs import setup_logging

DEFAULT_SOCKET = "/run/docker/plugins/net-dhcp.sock"
DEFAULT_STATE_DIR = "/var/lib/net-dhcp"
DAY_S = 86400.0
MIN_SWEEP_S = 1.0
MIN_RENEW_RETRY_S = 0.5


def seconds(low: float, high: float) -> Callable[[str], float]:
    """An argparse type: a finite number of seconds in [low, high], else a clear error."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
        if not math.isfinite(value) or not low <= value <= high:
            raise argparse.ArgumentTypeError(
                f"{text} is out of range: use {low:g} to {high:g} seconds")
        return value
    return parse


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="net-dhcp",
        description="Docker network plugin: containers get addresses from the LAN's DHCP server.",
    )
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve", help="run the plugin (as root)")
    s.add_argument("--socket", default=DEFAULT_SOCKET,
                   help="plugin socket; its file name is the driver name "
                        f"(default {DEFAULT_SOCKET})")
    s.add_argument("--state-dir", default=os.environ.get("NET_DHCP_STATE_DIR", DEFAULT_STATE_DIR),
                   help="where the state database lives (env NET_DHCP_STATE_DIR, "
                        f"default {DEFAULT_STATE_DIR})")
    s.add_argument("--log-file", default=os.environ.get("NET_DHCP_LOG_FILE"),
                   help="append the log here instead of standard error (env NET_DHCP_LOG_FILE)")
    s.add_argument("--log-stderr", action="store_true",
                   default=_env_flag("NET_DHCP_LOG_STDERR"),
                   help="with --log-file, log to standard error too (env NET_DHCP_LOG_STDERR=1)")
    s.add_argument("--driver-name", default=os.environ.get("NET_DHCP_DRIVER_NAME"),
                   help="the driver name Docker knows this plugin by (default: the socket "
                        "file's name; for --managed, learnt from Docker)")
    s.add_argument("--managed", action="store_true", default=_env_flag("NET_DHCP_MANAGED"),
                   help="run as a managed (v2) plugin: the driver name is the plugin "
                        "reference Docker lists (env NET_DHCP_MANAGED=1)")
    s.add_argument("--netns-dir", default=os.environ.get("NET_DHCP_NETNS_DIR"),
                   help="where the host's Docker netns folder is mounted, if not at the "
                        "path Docker names (managed plugins; env NET_DHCP_NETNS_DIR)")
    s.add_argument("--docker-socket", help="Docker API socket (default: DOCKER_HOST or "
                                           "/var/run/docker.sock)")
    s.add_argument("--sweep-interval", type=seconds(MIN_SWEEP_S, DAY_S), default=60.0,
                   metavar="SECONDS",
                   help="how often to look for endpoints Docker no longer has "
                        f"({MIN_SWEEP_S:g} to {DAY_S:g}; default 60)")
    s.add_argument("--renew-retry-min", type=seconds(MIN_RENEW_RETRY_S, DAY_S),
                   default=RENEW_RETRY_MIN_S, metavar="SECONDS",
                   help="shortest wait between renewal retransmissions (RFC 2131: 60)")
    s.add_argument("--renew-retry-max", type=seconds(MIN_RENEW_RETRY_S, math.inf),
                   default=math.inf, metavar="SECONDS",
                   help="longest wait between renewal retransmissions (default: none, "
                        "RFC 2131 waits half the remaining time)")
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `net-dhcp` console script."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "serve":
        if args.renew_retry_max < args.renew_retry_min:
            parser.error(f"--renew-retry-max {args.renew_retry_max:g} is below "
                         f"--renew-retry-min {args.renew_retry_min:g}")
        if os.geteuid() != 0:
            print("net-dhcp serve needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN)",
                  file=sys.stderr)
            return 1
        from .daemon import Settings, serve

        # After the daemon's imports: pyroute2 sets its loggers' levels when imported.
        setup_logging(args.log_file, also_stderr=args.log_stderr)

        settings = Settings(
            socket=Path(args.socket), state_dir=Path(args.state_dir),
            docker_socket=args.docker_socket, sweep_interval_s=args.sweep_interval,
            driver_name=args.driver_name, managed=args.managed,
            netns_dir=Path(args.netns_dir) if args.netns_dir else None,
            timing=Timing(renew_retry_min_s=args.renew_retry_min,
                          renew_retry_max_s=args.renew_retry_max),
        )
        try:
            asyncio.run(serve(settings))
        except NetDhcpError as err:  # e.g. another serve runs, the state dir is read-only
            print(f"net-dhcp: {err}", file=sys.stderr)
            return 1
        return 0
    return 2
