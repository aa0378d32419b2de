"""Races between Docker calls that the API fuzz over the socket found, made deterministic.

CreateNetwork repeated for a live network (same ID, same options) while a CreateEndpoint on
it is getting its lease: the endpoint must be created (the network never went away).
"""

from __future__ import annotations

import secrets
from concurrent.futures import ThreadPoolExecutor

from tests.conftest import LanFactory, require_root
from tests.dockerplay import NULL_IPAM, PlayedDocker
from tests.inprocess import InProcessPlugin

P = "NetworkDriver."


def test_create_network_repeated_during_create_endpoint(lan: LanFactory) -> None:
    require_root()
    lab = lan()
    with InProcessPlugin() as plugin:
        docker = PlayedDocker(plugin)
        net_id = docker.create_network(lab.bridge)
        endpoint_id = secrets.token_hex(32)
        again = {"NetworkID": net_id, "IPv4Data": NULL_IPAM, "IPv6Data": [],
                 "Options": {"com.docker.network.enable_ipv6": False,
                             "com.docker.network.generic": {"bridge": lab.bridge}}}
        with ThreadPoolExecutor(1) as pool:
            create = pool.submit(plugin.call, f"{P}CreateEndpoint", {
                "NetworkID": net_id, "EndpointID": endpoint_id, "Interface": {},
                "Options": {}}, 30)
            # While the lease is being obtained (tens of ms), the network is created again.
            for _ in range(20):
                assert plugin.call(f"{P}CreateNetwork", again) == (200, {})
                if create.done():
                    break
            status, body = create.result(30)
        assert status == 200, body
        assert lab.in_range(body["Interface"]["Address"].split("/")[0])
        assert plugin.call(f"{P}DeleteEndpoint", {"NetworkID": net_id,
                                                  "EndpointID": endpoint_id}) == (200, {})
        docker.close()
