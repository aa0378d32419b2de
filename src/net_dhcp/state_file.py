"""The status document read from the state database, for when the plugin is not running.

Read-only (SQLite URI `mode=ro`, `immutable=1` when no -wal file is there): never
writes, migrates or locks the file for writing, nor creates files next to it. What it
cannot know is left out: `plugin` is null, every endpoint's state is "unknown", counters
are 0, container and network names (learnt from Docker at run time) are null.
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from urllib.parse import quote

from .config import EndpointOptions, NetworkOptions
from .dhcp4.lease import Lease
from .dhcp6.lease import Lease6
from .exits import CommandError, NotRunning
from .registry import Endpoint, Network
from .status import SCHEMA, UNKNOWN, Doc, endpoint_doc, network_doc, totals_doc
from .store import DB_NAME

BUSY_TIMEOUT_S = 2.0


def db_path(state_dir: Path) -> Path:
    """Where the state database of `state_dir` is."""
    return state_dir / DB_NAME


def read(state_dir: Path, now: float | None = None) -> Doc:
    """The status document of the state database in `state_dir` (see the module docstring).

    NotRunning if there is no database; CommandError if it cannot be read.
    """
    path = db_path(state_dir)
    if not path.is_file():
        raise NotRunning(f"no state database at {path} either (give --state-dir if the "
                         "plugin keeps it elsewhere)")
    now = time.time() if now is None else now
    # Without a -wal file (the plugin stopped cleanly) the file is read as immutable, else
    # SQLite would create -wal and -shm files next to it even read-only.
    wal = Path(f"{path}-wal").exists()
    uri = f"file:{quote(str(path))}?mode=ro" + ("" if wal else "&immutable=1")
    try:
        db = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_S)
    except sqlite3.Error as err:
        raise CommandError(f"cannot open {path} read-only: {err}") from err
    try:
        nets = db.execute("SELECT id, options FROM networks ORDER BY created_at").fetchall()
        eps = db.execute(
            "SELECT e.id, e.network_id, e.host_if, e.cont_if, e.mac, e.options, e.sandbox, "
            "e.container_id, e.hostname, e.joined, l.lease, l6.lease FROM endpoints e "
            "LEFT JOIN leases l ON l.endpoint_id = e.id AND l.family = 4 "
            "LEFT JOIN leases l6 ON l6.endpoint_id = e.id AND l6.family = 6 "
            "ORDER BY e.created_at").fetchall()
    except sqlite3.Error as err:
        hint = " (run as root)" if "unable to open" in str(err) else ""
        raise CommandError(f"cannot read {path}: {err}{hint}") from err
    finally:
        db.close()
    networks: dict[str, Network] = {}
    for net_id, options in nets:
        try:
            networks[net_id] = Network(net_id, NetworkOptions.from_json(options))
        except (TypeError, ValueError):
            continue  # the plugin ignores it too (registry.load)
    endpoints: list[Doc] = []
    per_net: dict[str, int] = {}
    for row in eps:
        try:
            ep = _endpoint(row)
        except (TypeError, ValueError, KeyError):
            continue
        per_net[ep.network_id] = per_net.get(ep.network_id, 0) + 1
        endpoints.append(endpoint_doc(ep, networks.get(ep.network_id), now, state=UNKNOWN,
                                      state6=UNKNOWN if ep.lease6 is not None else None,
                                      renewals=0, failures=0))
    net_docs = [network_doc(net, per_net.get(net.id, 0)) for net in networks.values()]
    return {"schema": SCHEMA, "plugin": None, "now": round(now, 3), "state_db": str(path),
            "networks": net_docs, "endpoints": endpoints,
            "totals": totals_doc(net_docs, endpoints)}


def _endpoint(row: tuple[object, ...]) -> Endpoint:
    (eid, net_id, host_if, cont_if, mac, options, sandbox, container_id, hostname, joined,
     lease, lease6) = row
    opts = json.loads(str(options or "{}"))
    return Endpoint(
        id=str(eid), network_id=str(net_id), host_if=str(host_if), cont_if=str(cont_if),
        mac=str(mac), options=EndpointOptions(hostname=opts.get("hostname")),
        lease=Lease.from_dict(json.loads(str(lease))) if lease else None,
        lease6=Lease6.from_dict(json.loads(str(lease6))) if lease6 else None,
        sandbox=str(sandbox) if joined and sandbox else None,
        container_id=str(container_id) if container_id else None,
        hostname=str(hostname) if hostname else None)
