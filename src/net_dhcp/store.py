"""SQLite state: networks, endpoints and leases, committed before Docker gets a reply.

One file in the state directory, WAL mode. The schema version lives in
PRAGMA user_version; MIGRATIONS[i] takes version i to i+1. A file that cannot be
opened or read is moved aside (never deleted) and a fresh one is started.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import StoreError

LOG = logging.getLogger(__name__)

DB_NAME = "net-dhcp.sqlite3"

MIGRATIONS: list[str] = [
    """
    CREATE TABLE networks (
        id TEXT PRIMARY KEY,
        options TEXT NOT NULL,
        created_at REAL NOT NULL
    );
    CREATE TABLE endpoints (
        id TEXT PRIMARY KEY,
        network_id TEXT NOT NULL,
        host_if TEXT NOT NULL,
        cont_if TEXT NOT NULL,
        mac TEXT NOT NULL,
        options TEXT NOT NULL DEFAULT '{}',
        sandbox TEXT,
        container_id TEXT,
        hostname TEXT,
        joined INTEGER NOT NULL DEFAULT 0,
        created_at REAL NOT NULL
    );
    CREATE TABLE leases (
        endpoint_id TEXT NOT NULL,
        family INTEGER NOT NULL,
        lease TEXT NOT NULL,
        updated_at REAL NOT NULL,
        PRIMARY KEY (endpoint_id, family)
    );
    """,
]


@dataclass(frozen=True)
class NetworkRow:
    """A stored network."""

    id: str
    options: str


@dataclass(frozen=True)
class EndpointRow:
    """A stored endpoint with its IPv4 lease (JSON dict) if any."""

    id: str
    network_id: str
    host_if: str
    cont_if: str
    mac: str
    options: dict[str, Any]
    sandbox: str | None
    container_id: str | None
    hostname: str | None
    joined: bool
    lease: dict[str, Any] | None


class Store:
    """The plugin's only door to its state file."""

    def __init__(self, state_dir: str | os.PathLike[str]) -> None:
        self.dir = Path(state_dir)
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.path = self.dir / DB_NAME
        try:
            self._db = self._open()
        except sqlite3.DatabaseError as err:
            aside = self.path.with_name(f"{DB_NAME}.corrupt-{int(time.time())}")
            LOG.error("state file %s is unreadable (%s): moved it to %s and starting with "
                      "empty state; networks created before must be recreated", self.path,
                      err, aside)
            for suffix in ("", "-wal", "-shm"):
                src = Path(f"{self.path}{suffix}")
                if src.exists():
                    src.rename(f"{aside}{suffix}")
            self._db = self._open()

    def _open(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.execute("PRAGMA foreign_keys=ON")
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version > len(MIGRATIONS):
                raise StoreError(
                    f"state file {self.path} has schema version {version}, newer than this "
                    f"net-dhcp knows ({len(MIGRATIONS)}): upgrade net-dhcp"
                )
            for i in range(version, len(MIGRATIONS)):
                # executescript commits first, so the transaction lives inside the script.
                db.executescript(
                    f"BEGIN IMMEDIATE;\n{MIGRATIONS[i]}\nPRAGMA user_version={i + 1};\nCOMMIT;"
                )
            db.execute("SELECT count(*) FROM networks").fetchone()
        except BaseException:
            db.close()
            raise
        return db

    def close(self) -> None:
        """Close the database."""
        self._db.close()

    # networks
    def add_network(self, network_id: str, options_json: str) -> None:
        """Insert or replace a network."""
        self._db.execute("INSERT OR REPLACE INTO networks VALUES (?, ?, ?)",
                         (network_id, options_json, time.time()))

    def delete_network(self, network_id: str) -> None:
        """Forget a network (idempotent)."""
        self._db.execute("DELETE FROM networks WHERE id = ?", (network_id,))

    def networks(self) -> list[NetworkRow]:
        """All stored networks."""
        return [NetworkRow(r[0], r[1]) for r in
                self._db.execute("SELECT id, options FROM networks ORDER BY created_at")]

    # endpoints
    def add_endpoint(self, *, endpoint_id: str, network_id: str, host_if: str, cont_if: str,
                     mac: str, options: dict[str, Any], lease: dict[str, Any]) -> None:
        """Store a new endpoint and its lease in one transaction."""
        with self._tx():
            self._db.execute(
                "INSERT OR REPLACE INTO endpoints (id, network_id, host_if, cont_if, mac, "
                "options, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (endpoint_id, network_id, host_if, cont_if, mac, json.dumps(options),
                 time.time()))
            self._put_lease(endpoint_id, lease)

    def _put_lease(self, endpoint_id: str, lease: dict[str, Any]) -> None:
        self._db.execute("INSERT OR REPLACE INTO leases VALUES (?, 4, ?, ?)",
                         (endpoint_id, json.dumps(lease), time.time()))

    def set_lease(self, endpoint_id: str, lease: dict[str, Any]) -> None:
        """Replace an endpoint's IPv4 lease."""
        self._put_lease(endpoint_id, lease)

    def set_joined(self, endpoint_id: str, sandbox: str | None, joined: bool) -> None:
        """Record Join (with its sandbox path) or Leave."""
        self._db.execute("UPDATE endpoints SET sandbox = ?, joined = ? WHERE id = ?",
                         (sandbox, int(joined), endpoint_id))

    def set_container(self, endpoint_id: str, container_id: str | None,
                      hostname: str | None) -> None:
        """Record which container owns the endpoint, once known."""
        self._db.execute("UPDATE endpoints SET container_id = ?, hostname = ? WHERE id = ?",
                         (container_id, hostname, endpoint_id))

    def delete_endpoint(self, endpoint_id: str) -> None:
        """Forget an endpoint and its leases (idempotent)."""
        with self._tx():
            self._db.execute("DELETE FROM leases WHERE endpoint_id = ?", (endpoint_id,))
            self._db.execute("DELETE FROM endpoints WHERE id = ?", (endpoint_id,))

    def endpoints(self) -> list[EndpointRow]:
        """All stored endpoints with their IPv4 lease."""
        rows = self._db.execute(
            "SELECT e.id, e.network_id, e.host_if, e.cont_if, e.mac, e.options, e.sandbox, "
            "e.container_id, e.hostname, e.joined, l.lease FROM endpoints e "
            "LEFT JOIN leases l ON l.endpoint_id = e.id AND l.family = 4 ORDER BY e.created_at")
        return [
            EndpointRow(r[0], r[1], r[2], r[3], r[4], json.loads(r[5]), r[6], r[7], r[8],
                        bool(r[9]), json.loads(r[10]) if r[10] else None)
            for r in rows
        ]

    def _tx(self) -> _Tx:
        return _Tx(self._db)


class _Tx:
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, *_: object) -> None:
        self._db.execute("ROLLBACK" if exc_type else "COMMIT")
