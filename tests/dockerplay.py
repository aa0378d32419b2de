"""Play dockerd's part towards a running plugin, for tests that need no dockerd.

The calls and their order are dockerd 20.10's (../shared/docs/docker-protocol.md):
CreateNetwork with null IPAM; per container CreateEndpoint, Join, then the interface is
moved into the container's namespace, renamed eth0, given the address and brought up;
at stop Leave, the interface back to the host under its old name, DeleteEndpoint. A
"container" is a network namespace of its own (`ip netns add`), named uniquely and
deleted by `stop` or `close`.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

from tests.lab import NETNS_PREFIX, Plugin, sh

NULL_IPAM = [{"AddressSpace": "null", "Pool": "0.0.0.0/0"}]
FAST_ARGS = ("--renew-retry-min", "0.5", "--renew-retry-max", "1", "--sweep-interval", "1")
"""Plugin flags for tests without dockerd: quick retransmissions, a sweep every second."""


class PluginLike(Protocol):
    """A plugin reachable over its socket: tests.lab.Plugin or tests.inprocess's."""

    def call(self, method: str, payload: Mapping[str, Any] | None = None,
             timeout: float = 10.0) -> tuple[int, Any]: ...


class PlayError(AssertionError):
    """The plugin refused a call a real dockerd would have made."""


def new_id() -> str:
    return secrets.token_hex(32)


@dataclass
class Container:
    """One played container: its namespace and its endpoint on one network."""

    network_id: str
    endpoint_id: str
    netns: str
    mac: str = ""
    address: str = ""
    address6: str = ""
    src_name: str = ""
    joined: bool = False
    gateway: str | None = None
    gateway6: str | None = None
    routes: list[dict[str, Any]] = field(default_factory=list)

    @property
    def sandbox(self) -> str:
        return f"/run/netns/{self.netns}"

    def ids(self) -> dict[str, str]:
        return {"NetworkID": self.network_id, "EndpointID": self.endpoint_id}


class PlayedDocker:
    """dockerd's side of the plugin protocol, against `plugin`'s socket."""

    def __init__(self, plugin: PluginLike, *, tag: str | None = None) -> None:
        self.plugin = plugin
        self.tag = tag or secrets.token_hex(3)
        self.containers: list[Container] = []
        self.networks: list[str] = []

    def call(self, method: str, payload: dict[str, Any] | None = None,
             timeout: float = 60.0) -> dict[str, Any]:
        """POST a call; PlayError unless the plugin answered 200 without Err."""
        status, body = self.plugin.call(f"NetworkDriver.{method}", payload, timeout=timeout)
        if status != 200 or not isinstance(body, dict) or body.get("Err"):
            raise PlayError(f"{method} -> {status} {body!r}")
        return body

    def create_network(self, bridge: str, **options: str) -> str:
        net_id = new_id()
        self.call("CreateNetwork", {
            "NetworkID": net_id,
            "Options": {"com.docker.network.enable_ipv6": False,
                        "com.docker.network.generic": {"bridge": bridge, **options}},
            "IPv4Data": NULL_IPAM, "IPv6Data": []})
        self.networks.append(net_id)
        return net_id

    def delete_network(self, net_id: str) -> None:
        self.call("DeleteNetwork", {"NetworkID": net_id})
        self.networks.remove(net_id)

    def create(self, net_id: str, *, options: dict[str, str] | None = None,
               mac: str | None = None) -> Container:
        """CreateEndpoint only (the namespace exists, nothing joined yet); `mac` as
        `docker run --mac-address` gives it."""
        c = Container(net_id, new_id(), f"{NETNS_PREFIX}play-{self.tag}{secrets.token_hex(3)}")
        sh("ip", "netns", "add", c.netns)
        self.containers.append(c)
        reply = self.call("CreateEndpoint", {**c.ids(), "Interface": {"MacAddress": mac or ""},
                                             "Options": dict(options or {})})
        iface = reply["Interface"]
        # No MacAddress from a plugin that keeps the MAC it has (ipvlan: the parent's).
        c.address, c.mac = iface["Address"], mac or iface.get("MacAddress", "")
        c.address6 = iface.get("AddressIPv6", "")
        return c

    def join(self, c: Container, *, program: str | None = None) -> None:
        """Join, then what dockerd does with the interface: move, rename, address, up.
        ProgramExternalConnectivity, which Docker sends for the gateway endpoint: with
        `program="before"` right after Join (Docker <= 27), with "after" once the interface
        is up (Docker 28+)."""
        reply = self.call("Join", {**c.ids(), "SandboxKey": c.sandbox, "Options": {}})
        if program == "before":
            self.call("ProgramExternalConnectivity", {**c.ids(), "Options": {}})
        c.src_name = reply["InterfaceName"]["SrcName"]
        c.gateway = reply.get("Gateway")
        c.gateway6 = reply.get("GatewayIPv6")
        c.routes = list(reply.get("StaticRoutes") or [])
        sh("ip", "link", "set", c.src_name, "netns", c.netns)
        sh("ip", "-n", c.netns, "link", "set", c.src_name, "name", "eth0")
        sh("ip", "-n", c.netns, "addr", "add", c.address, "dev", "eth0")
        if c.address6:  # Docker adds it without DAD
            sh("ip", "-n", c.netns, "-6", "addr", "add", c.address6, "dev", "eth0", "nodad")
        sh("ip", "-n", c.netns, "link", "set", "eth0", "up")
        if c.gateway6:
            sh("ip", "-n", c.netns, "-6", "route", "add", "default", "via", c.gateway6,
               "dev", "eth0")
        c.joined = True
        if program == "after":
            self.call("ProgramExternalConnectivity", {**c.ids(), "Options": {}})

    def start(self, net_id: str, *, options: dict[str, str] | None = None,
              mac: str | None = None, program: str | None = None) -> Container:
        """`docker run`: CreateEndpoint, Join, hand-over (see join for `program`)."""
        c = self.create(net_id, options=options, mac=mac)
        self.join(c, program=program)
        return c

    def stop(self, c: Container) -> None:
        """`docker stop`: Leave, interface back to the host, DeleteEndpoint, namespace gone."""
        try:
            if c.joined:
                self.call("Leave", c.ids())
                c.joined = False
                sh("ip", "-n", c.netns, "link", "set", "eth0", "down", check=False)
                sh("ip", "-n", c.netns, "link", "set", "eth0", "netns", str(os.getpid()),
                   "name", c.src_name, check=False)
            self.call("DeleteEndpoint", c.ids())
        finally:
            self.forget(c)

    def forget(self, c: Container) -> None:
        """Delete the container's namespace (a crash: its interface dies with it)."""
        sh("ip", "netns", "del", c.netns, check=False)
        if c in self.containers:
            self.containers.remove(c)

    def eth0_addresses(self, c: Container, family: int = 4) -> list[str]:
        """The IPv4 (or global IPv6) addresses, with prefix, on the container's eth0."""
        out = sh("ip", "-n", c.netns, f"-{family}", "-o", "addr", "show", "dev", "eth0",
                 "scope", "global", check=False).stdout
        word = " inet " if family == 4 else " inet6 "
        return [line.split()[3] for line in out.splitlines() if word in line]

    def close(self) -> list[str]:
        """Stop what is left (best effort); return what failed, for the test's report."""
        problems: list[str] = []
        for c in list(self.containers):
            try:
                self.stop(c)
            except Exception as err:  # noqa: BLE001 - clean up the rest regardless
                problems.append(f"stop {c.endpoint_id[:12]}: {err}")
                self.forget(c)
        for net_id in list(self.networks):
            try:
                self.delete_network(net_id)
            except Exception as err:  # noqa: BLE001
                problems.append(f"delete network {net_id[:12]}: {err}")
                self.networks.remove(net_id)
        return problems


def no_docker_socket() -> str:
    """A Docker socket path nothing listens on: the plugin's reconciler stays idle."""
    return f"/run/net-dhcp-no-docker-{secrets.token_hex(3)}.sock"


@contextmanager
def played_plugin(*extra_args: str) -> Iterator[tuple[Plugin, PlayedDocker]]:
    """A plugin process (FAST_ARGS, no Docker API, then `extra_args`) and dockerd played
    towards it; at the end what is left is stopped (asserted to go cleanly) and the plugin
    closed."""
    plugin = Plugin(extra_args=[*FAST_ARGS, "--docker-socket", no_docker_socket(),
                                *extra_args])
    docker = PlayedDocker(plugin)
    try:
        plugin.start()
        yield plugin, docker
    finally:
        try:
            problems = docker.close() if plugin.running else []
        finally:
            plugin.close()
        assert not problems, problems
