"""The `net-dhcp` command: parse arguments, set up logging, delegate."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from pathlib import Path

from .api import TRACE
from .dhcp4.client import RENEW_RETRY_MIN_S, Timing

DEFAULT_SOCKET = "/run/docker/plugins/net-dhcp.sock"
DEFAULT_STATE_DIR = "/var/lib/net-dhcp"
LEVELS = {"trace": TRACE, "debug": logging.DEBUG, "info": logging.INFO,
          "warning": logging.WARNING, "error": logging.ERROR}


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
    s.add_argument("--log-file", help="append the log here instead of standard error")
    s.add_argument("--docker-socket", help="Docker API socket (default: DOCKER_HOST or "
                                           "/var/run/docker.sock)")
    s.add_argument("--sweep-interval", type=float, default=60.0, metavar="SECONDS",
                   help="how often to look for endpoints Docker no longer has (default 60)")
    s.add_argument("--renew-retry-min", type=float, default=RENEW_RETRY_MIN_S, metavar="SECONDS",
                   help="shortest wait between renewal retransmissions (RFC 2131: 60)")
    s.add_argument("--renew-retry-max", type=float, default=float("inf"), metavar="SECONDS",
                   help="longest wait between renewal retransmissions (default: none, "
                        "RFC 2131 waits half the remaining time)")
    return p


def setup_logging(log_file: str | None) -> None:
    """LOG_LEVEL env: trace, debug, info (default), warning, error."""
    logging.addLevelName(TRACE, "TRACE")
    name = os.environ.get("LOG_LEVEL", "info").strip().lower()
    if name not in LEVELS:
        raise SystemExit(f"LOG_LEVEL={name!r} is not one of {', '.join(LEVELS)}")
    handler: logging.Handler = (logging.FileHandler(log_file) if log_file
                                else logging.StreamHandler(sys.stderr))
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(LEVELS[name])
    # pyroute2 logs every netlink message at debug level: far too much even for trace.
    logging.getLogger("pyroute2").setLevel(logging.WARNING)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    logging.getLogger("asyncio").setLevel(logging.INFO)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `net-dhcp` console script."""
    args = _parser().parse_args(argv)
    if args.command == "serve":
        from .daemon import Settings, serve

        setup_logging(args.log_file)
        if os.geteuid() != 0:
            print("net-dhcp serve needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN)",
                  file=sys.stderr)
            return 1
        settings = Settings(
            socket=Path(args.socket), state_dir=Path(args.state_dir),
            docker_socket=args.docker_socket, sweep_interval_s=args.sweep_interval,
            timing=Timing(renew_retry_min_s=args.renew_retry_min,
                          renew_retry_max_s=args.renew_retry_max),
        )
        asyncio.run(serve(settings))
        return 0
    return 2
