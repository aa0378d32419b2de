"""The `net-dhcp` command: parse arguments, set up logging, delegate.

`serve` runs the plugin. `status` and `leases` ask the running plugin on its socket
(`GET /net-dhcp/status`, root only); `leases` falls back to the state database, read-only,
when it is not running. `doctor` checks bridges for the causes of lease timeouts. Every
command but `serve` takes --json; exit statuses are in exits.py (and `--help`).

Importing this module stays cheap (no asyncio, aiohttp or pyroute2): each command imports
what it needs when it runs; the daemon only when `serve` does, pyroute2 only when `doctor`
does (`serve` imports it on its first netlink call, after it answers on its socket).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import logging
import math
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from . import exits
from .dhcp4.timing import RENEW_RETRY_MIN_S, Timing
from .errors import NetDhcpError
from .logs import setup_logging

DEFAULT_SOCKET = "/run/docker/plugins/net-dhcp.sock"
DEFAULT_STATE_DIR = "/var/lib/net-dhcp"
DAY_S = 86400.0
MIN_SWEEP_S = 1.0
MIN_RENEW_RETRY_S = 0.5
MAX_WAIT_S = 600.0
METRICS_ENV = "METRICS_ADDR"

COMMANDS_HELP = """\
commands:
  serve    run the plugin (as root)
  status   is the plugin up: pid, version, uptime, networks, endpoints by state,
           renewals and failures so far
  leases   a table of the containers' leases: container, network, MAC, IPv4, IPv6,
           host name, state, time to expiry
  doctor   check bridges for every known cause of lease timeouts, each finding with
           its fix

status and leases ask the running plugin on its socket (root only); with the plugin
stopped, leases reads the state database instead, read-only.

""" + exits.HELP


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


def metrics_address(text: str | None) -> Any:
    """An argparse type: a metrics_server.Address (None for an empty text: off)."""
    from .metrics_server import parse_address

    if text is None or not text.strip():
        return None
    try:
        return parse_address(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="net-dhcp",
        description="Docker network plugin: containers get addresses from the LAN's DHCP server.",
        epilog=COMMANDS_HELP, formatter_class=argparse.RawDescriptionHelpFormatter,
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
    s.add_argument("--metrics", type=metrics_address,
                   default=os.environ.get(METRICS_ENV, "").strip() or None, metavar="ADDR",
                   help="serve Prometheus metrics (GET /metrics) at ADDR: unix (= "
                        "/run/net-dhcp/metrics.sock), unix:/PATH or /PATH, or a TCP "
                        "HOST:PORT such as 127.0.0.1:9101 (env METRICS_ADDR; default: off)")
    _add_status(sub)
    _add_leases(sub)
    _add_doctor(sub)
    return p


def _state_dir_default() -> str:
    return os.environ.get("NET_DHCP_STATE_DIR", DEFAULT_STATE_DIR)


def _socket_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--socket", metavar="PATH",
                   help=f"the plugin's socket (default {DEFAULT_SOCKET}; if it is not there, "
                        "the one managed plugin's /run/docker/plugins/*/net-dhcp.sock)")
    p.add_argument("--timeout", type=seconds(0.1, MAX_WAIT_S), default=10.0,
                   metavar="SECONDS", help="how long to wait for the plugin's answer "
                                           "(default 10)")


def _subparser(sub: Any, name: str, help_text: str, description: str) -> Any:
    return sub.add_parser(name, help=help_text, description=description,
                          epilog=exits.HELP,
                          formatter_class=argparse.RawDescriptionHelpFormatter)


def _add_status(sub: Any) -> None:
    p = _subparser(sub, "status", "is the plugin running; its networks and endpoints",
                   "Ask the running plugin: pid, version, uptime, its networks, its "
                   "endpoints by state, renewals and failures so far. Exit 3 if it is not "
                   "running.")
    _socket_arg(p)
    p.add_argument("--json", action="store_true", help="print the status document as JSON")


def _add_leases(sub: Any) -> None:
    p = _subparser(sub, "leases", "the containers' leases, as a table",
                   "One row per endpoint: container (name), network, MAC, IPv4, IPv6, host "
                   "name, state, time to expiry. From the running plugin; when it is not "
                   "running, from its state database, read-only (said on standard error; "
                   "states are then unknown).")
    _socket_arg(p)
    p.add_argument("--state-dir", default=_state_dir_default(), metavar="DIR",
                   help="the state directory to read when the plugin is not running (env "
                        f"NET_DHCP_STATE_DIR, default {DEFAULT_STATE_DIR})")
    p.add_argument("--network", action="append", default=[], metavar="NETWORK",
                   help="only this network: Docker name, bridge, or ID (a prefix will do); "
                        "repeat for several")
    p.add_argument("--container", action="append", default=[], metavar="CONTAINER",
                   help="only this container: name, host name, or container or endpoint ID "
                        "(a prefix will do); repeat for several")
    p.add_argument("--json", action="store_true", help="print the rows as JSON")


def _add_doctor(sub: Any) -> None:
    p = _subparser(sub, "doctor", "check bridges for the causes of lease timeouts",
                   "Check each BRIDGE (default: the bridges of the plugin's networks) for "
                   "every known cause of lease timeouts: bridge missing or down, no port "
                   "besides net-dhcp's, STP, VLAN filtering, MAC not pinned, iptables or "
                   "nftables dropping bridged DHCP, and no DHCP server answering a DISCOVER "
                   "sent from a throwaway port on the bridge. Each finding is printed with "
                   "its fix. Read-only, but for the probe port, which is removed again. "
                   "Needs root for the firewall and the probe (skipped without).")
    p.add_argument("bridge", nargs="*", metavar="BRIDGE", help="bridge(s) to check")
    p.add_argument("--timeout", type=seconds(0.5, MAX_WAIT_S), default=8.0, metavar="SECONDS",
                   help="how long the probe waits for a DHCP server's offer (default 8)")
    p.add_argument("--no-probe", action="store_true", help="do not send a DISCOVER")
    p.add_argument("--socket", metavar="PATH",
                   help="the plugin's socket, to find its bridges when none is given")
    p.add_argument("--state-dir", default=_state_dir_default(), metavar="DIR",
                   help="the state directory, to find the bridges when none is given and "
                        "the plugin is not running")
    p.add_argument("--json", action="store_true", help="print the findings as JSON")


def _print_json(doc: object) -> None:
    from .cli_output import to_json

    print(to_json(doc))


def _status(args: argparse.Namespace) -> int:
    from .status_client import fetch_status, find_socket
    from .status_view import render

    path = find_socket(args.socket)
    try:
        doc = fetch_status(path, args.timeout)
    except exits.NotRunning as err:
        if args.json:
            _print_json({"running": False, "socket": str(path), "error": str(err)})
        else:
            print(f"not running: {err}")
        return exits.NOT_RUNNING
    if args.json:
        _print_json({"running": True, "socket": str(path), **doc})
    else:
        print(render(doc, str(path)))
    return exits.OK


def _leases(args: argparse.Namespace) -> int:
    from . import leases_view
    from .status_client import fetch_status, find_socket

    path = find_socket(args.socket)
    head: dict[str, Any]
    try:
        doc = fetch_status(path, args.timeout)
        head = {"source": "plugin", "socket": str(path)}
    except exits.NotRunning as err:
        from . import state_file

        doc = state_file.read(Path(args.state_dir))
        head = {"source": "state-file", "state_db": doc["state_db"]}
        print(f"net-dhcp is not running ({err}): showing its state database "
              f"{doc['state_db']}, read-only (states unknown, container names not known)",
              file=sys.stderr)
    rows = leases_view.select(doc["endpoints"], networks=args.network,
                              containers=args.container)
    if args.json:
        _print_json({**head, "now": doc.get("now"), "leases": rows})
    else:
        print(leases_view.render(rows))
    return exits.OK


def _known_bridges(args: argparse.Namespace) -> list[str]:
    """The bridges of the plugin's networks: from the plugin, else its state database."""
    from .status_client import fetch_status, find_socket

    try:
        doc = fetch_status(find_socket(args.socket))
    except exits.NotRunning as err:
        from . import state_file

        try:
            doc = state_file.read(Path(args.state_dir))
        except exits.NotRunning as none:
            raise exits.UsageError(f"name the bridge(s) to check: the plugin is not running "
                                   f"({err}), and there is {none}") from None
    bridges = [str(n.get("bridge")) for n in doc.get("networks") or [] if n.get("bridge")]
    if not bridges:
        raise exits.UsageError("name the bridge(s) to check: the plugin has no network")
    return list(dict.fromkeys(bridges))


def _doctor(args: argparse.Namespace) -> int:
    bridges = list(dict.fromkeys(args.bridge)) or _known_bridges(args)
    import asyncio

    from . import doctor

    reports = asyncio.run(doctor.diagnose_all(bridges, probe=not args.no_probe,
                                              timeout_s=args.timeout))
    if args.json:
        _print_json(doctor.to_json(reports))
    else:
        if os.geteuid() != 0:
            print("not root: the firewall and DHCP checks are skipped\n")
        print(doctor.render(reports))
    return exits.PROBLEMS if any(r.problems for r in reports) else exits.OK


@contextlib.contextmanager
def _no_ca_bundle() -> Iterator[None]:
    """For the block, OpenSSL loads no CA certificates by default (SSL_CERT_FILE=/dev/null).

    Importing aiohttp builds two default TLS client contexts, each parsing the system's CA
    bundle: ~50 ms of `serve`'s start-up. The plugin never makes a TLS connection (the
    Docker API is a unix socket, plain HTTP), so those contexts may trust nothing: one used
    by mistake fails to verify, it never skips verification. Contexts made after the block
    load the bundle as usual.
    """
    before = os.environ.get("SSL_CERT_FILE")
    os.environ["SSL_CERT_FILE"] = os.devnull
    try:
        yield
    finally:
        if before is None:
            del os.environ["SSL_CERT_FILE"]
        else:
            os.environ["SSL_CERT_FILE"] = before


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "status": _status, "leases": _leases, "doctor": _doctor}


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `net-dhcp` console script."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command in COMMANDS:
        try:
            return COMMANDS[args.command](args)
        except exits.CommandError as err:
            if getattr(args, "json", False):
                _print_json({"error": str(err)})
            print(f"net-dhcp {args.command}: {err}", file=sys.stderr)
            return err.exit_code
        except KeyboardInterrupt:
            return 130
    if args.command == "serve":
        if args.renew_retry_max < args.renew_retry_min:
            parser.error(f"--renew-retry-max {args.renew_retry_max:g} is below "
                         f"--renew-retry-min {args.renew_retry_min:g}")
        if os.geteuid() != 0:
            print("net-dhcp serve needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN)",
                  file=sys.stderr)
            return 1
        import asyncio

        from .allocator import fix_trim_threshold

        malloc = fix_trim_threshold()  # first: the imports below already free large blocks

        # The daemon's imports make objects that live as long as the process: collecting
        # during them only costs time (~25 ms a pass), and frozen, later passes skip them.
        gc.disable()
        try:
            with _no_ca_bundle():
                from .daemon import Settings, serve
        finally:
            gc.freeze()
            gc.enable()

        # pyroute2 is imported later, by the daemon's first netlink call, and resets its
        # logger's level then: netlink.py puts this one back (logs.pyroute2_imported).
        setup_logging(args.log_file, also_stderr=args.log_stderr)
        logging.getLogger("net_dhcp").debug("%s", malloc)

        settings = Settings(
            socket=Path(args.socket), state_dir=Path(args.state_dir),
            docker_socket=args.docker_socket, sweep_interval_s=args.sweep_interval,
            driver_name=args.driver_name, managed=args.managed,
            netns_dir=Path(args.netns_dir) if args.netns_dir else None,
            timing=Timing(renew_retry_min_s=args.renew_retry_min,
                          renew_retry_max_s=args.renew_retry_max),
            metrics=args.metrics,
        )
        try:
            asyncio.run(serve(settings))
        except NetDhcpError as err:  # e.g. another serve runs, the state dir is read-only
            print(f"net-dhcp: {err}", file=sys.stderr)
            return 1
        return 0
    return 2
