"""SQLite state: networks, endpoints and leases, committed before Docker gets a reply.

One file in the state directory, WAL mode. The schema version lives in
PRAGMA user_version; MIGRATIONS[i] takes version i to i+1. A file SQLite reports as damaged
(SQLITE_CORRUPT, SQLITE_NOTADB) is moved aside (never deleted) and a fresh one is started;
any other failure (a lock, a read-only or full file system) raises StoreError saying what to
fix, and leaves the files as they are.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import stat
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import StoreError

LOG = logging.getLogger(__name__)

DB_NAME = "net-dhcp.sqlite3"

BUSY_TIMEOUT_S = 10.0
"""How long opening and every statement wait for another process's lock before failing."""

STATE_DIR_MODE = 0o700
"""The state directory's permission bits: the state names containers and their addresses."""

STATE_FILE_MODE = 0o600
"""Permission bits of the database and its -wal/-shm files."""

_FILE_SUFFIXES = ("", "-wal", "-shm")

# Only these mean the bytes are bad; anything else (locks, permissions, space) is fixable in
# place, and moving the file aside would throw the state away for nothing.
_DAMAGED_CODES = frozenset({sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB})
_LOCKED_CODES = frozenset({sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED})
_NOT_WRITABLE_CODES = frozenset({sqlite3.SQLITE_READONLY, sqlite3.SQLITE_CANTOPEN,
                                 sqlite3.SQLITE_PERM})

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
    """A stored endpoint with its IPv4 and IPv6 leases (JSON dicts) if any."""

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
    lease6: dict[str, Any] | None = None


class Store:
    """The plugin's only door to its state file."""

    def __init__(self, state_dir: str | os.PathLike[str], *,
                 busy_timeout_s: float = BUSY_TIMEOUT_S) -> None:
        """Open (or create) the state file; StoreError if it is locked or not writable."""
        self.dir = Path(state_dir)
        self.path = self.dir / DB_NAME
        self.busy_timeout_s = busy_timeout_s
        # One connection shared by threads: a transaction's statements must not interleave.
        self._lock = threading.RLock()
        self._prepare_dir()
        try:
            self._db = self._open()
        except StoreError as err:
            if _primary_code(err.__cause__) not in _DAMAGED_CODES:
                raise
            self._move_aside(err)
            self._db = self._open()

    def _prepare_dir(self) -> None:
        """Create the state directory, force it to STATE_DIR_MODE, and check it is writable."""
        try:
            self.dir.mkdir(parents=True, exist_ok=True, mode=STATE_DIR_MODE)
            mode = stat.S_IMODE(self.dir.stat().st_mode)
            if mode != STATE_DIR_MODE:
                LOG.warning("state directory %s had mode %04o; setting %04o", self.dir, mode,
                            STATE_DIR_MODE)
                os.chmod(self.dir, STATE_DIR_MODE)
        except OSError as err:
            raise StoreError(f"state directory {self.dir} is not writable: {err}; "
                             f"fix: {self._writable_fix()}") from err
        # SQLite creates the -wal and -shm files next to the database, so the directory itself
        # must be writable, not only the file.
        if not os.access(self.dir, os.W_OK | os.X_OK):
            raise StoreError(f"state directory {self.dir} is not writable: "
                             f"{_why_not_writable(self.dir)}; fix: {self._writable_fix()}")

    def _secure_files(self) -> None:
        """Create the database file if missing; give it and its -wal/-shm STATE_FILE_MODE."""
        # SQLite creates the database 0644 minus the umask but gives -wal and -shm the
        # database's own mode, so creating the database 0600 first covers all three. Only
        # path-based calls here: closing a descriptor of a file SQLite has open would drop
        # SQLite's POSIX locks on it.
        try:
            if not self.path.exists():
                os.close(os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC,
                                 STATE_FILE_MODE))
            for suffix in _FILE_SUFFIXES:
                path = Path(f"{self.path}{suffix}")
                try:
                    st = path.stat()
                except FileNotFoundError:
                    continue
                if not stat.S_ISREG(st.st_mode):
                    raise StoreError(f"state file {path} is not a regular file; fix: move it "
                                     f"out of {self.dir}")
                if stat.S_IMODE(st.st_mode) != STATE_FILE_MODE:
                    os.chmod(path, STATE_FILE_MODE)
                if not os.access(path, os.R_OK | os.W_OK):
                    raise StoreError(f"state file {path} is not writable: "
                                     f"{_why_not_writable(path)}; fix: {self._writable_fix()}")
        except OSError as err:
            raise StoreError(f"state file {self.path} is not writable: {err}; "
                             f"fix: {self._writable_fix()}") from err

    def _open(self) -> sqlite3.Connection:
        """Connect, set WAL and FULL sync, migrate, and prove a write lock can be taken."""
        self._secure_files()
        with self._guard("open it"):
            db = sqlite3.connect(self.path, timeout=self.busy_timeout_s, isolation_level=None,
                                 check_same_thread=False)
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
                # Fail at start, naming the lock holder, rather than on Docker's first request.
                db.execute("BEGIN IMMEDIATE")
                db.execute("ROLLBACK")
            except BaseException:
                db.close()
                raise
        self._secure_files()
        return db

    def _move_aside(self, err: StoreError) -> None:
        """Rename the damaged database and its -wal/-shm to an unused .corrupt-<time> name."""
        stamp = int(time.time())
        aside = self.path.with_name(f"{DB_NAME}.corrupt-{stamp}")
        n = 0
        while any(Path(f"{aside}{suffix}").exists() for suffix in _FILE_SUFFIXES):
            n += 1
            aside = self.path.with_name(f"{DB_NAME}.corrupt-{stamp}-{n}")
        LOG.error("state file %s is unreadable (%s): moved it to %s and starting with "
                  "empty state; networks created before must be recreated", self.path,
                  err.__cause__, aside)
        try:
            for suffix in _FILE_SUFFIXES:
                src = Path(f"{self.path}{suffix}")
                if src.exists():
                    src.rename(f"{aside}{suffix}")
        except OSError as move_err:
            raise StoreError(f"state file {self.path} is damaged ({err.__cause__}) and could not "
                             f"be moved aside: {move_err}; fix: move {self.path}* out of "
                             f"{self.dir} by hand, then start net-dhcp again") from move_err

    def close(self) -> None:
        """Close the database."""
        with self._lock, self._guard("close it"):
            self._db.close()

    # networks
    def add_network(self, network_id: str, options_json: str) -> None:
        """Insert or replace a network."""
        with self._write(f"store network {network_id}") as db:
            db.execute("INSERT OR REPLACE INTO networks VALUES (?, ?, ?)",
                       (network_id, options_json, time.time()))

    def delete_network(self, network_id: str) -> None:
        """Forget a network (idempotent)."""
        with self._write(f"delete network {network_id}") as db:
            db.execute("DELETE FROM networks WHERE id = ?", (network_id,))

    def networks(self) -> list[NetworkRow]:
        """All stored networks."""
        with self._read("read networks") as db:
            rows = db.execute("SELECT id, options FROM networks ORDER BY created_at").fetchall()
        return [NetworkRow(r[0], r[1]) for r in rows]

    # endpoints
    def add_endpoint(self, *, endpoint_id: str, network_id: str, host_if: str, cont_if: str,
                     mac: str, options: dict[str, Any], lease: dict[str, Any],
                     lease6: dict[str, Any] | None = None) -> None:
        """Store a new endpoint and its leases in one transaction."""
        with self._write(f"store endpoint {endpoint_id}") as db:
            db.execute(
                "INSERT OR REPLACE INTO endpoints (id, network_id, host_if, cont_if, mac, "
                "options, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (endpoint_id, network_id, host_if, cont_if, mac, json.dumps(options),
                 time.time()))
            _put_lease(db, endpoint_id, lease)
            if lease6 is not None:
                _put_lease(db, endpoint_id, lease6, family=6)

    def set_lease(self, endpoint_id: str, lease: dict[str, Any], *, family: int = 4) -> None:
        """Replace an endpoint's lease of one family (4 or 6)."""
        with self._write(f"store the IPv{family} lease of endpoint {endpoint_id}") as db:
            _put_lease(db, endpoint_id, lease, family=family)

    def set_joined(self, endpoint_id: str, sandbox: str | None, joined: bool) -> None:
        """Record Join (with its sandbox path) or Leave."""
        with self._write(f"record {'join' if joined else 'leave'} of endpoint {endpoint_id}") as db:
            db.execute("UPDATE endpoints SET sandbox = ?, joined = ? WHERE id = ?",
                       (sandbox, int(joined), endpoint_id))

    def set_container(self, endpoint_id: str, container_id: str | None,
                      hostname: str | None) -> None:
        """Record which container owns the endpoint, once known."""
        with self._write(f"record the container of endpoint {endpoint_id}") as db:
            db.execute("UPDATE endpoints SET container_id = ?, hostname = ? WHERE id = ?",
                       (container_id, hostname, endpoint_id))

    def delete_endpoint(self, endpoint_id: str) -> None:
        """Forget an endpoint and its leases (idempotent)."""
        with self._write(f"delete endpoint {endpoint_id}") as db:
            db.execute("DELETE FROM leases WHERE endpoint_id = ?", (endpoint_id,))
            db.execute("DELETE FROM endpoints WHERE id = ?", (endpoint_id,))

    def endpoints(self) -> list[EndpointRow]:
        """All stored endpoints with their IPv4 and IPv6 leases."""
        with self._read("read endpoints") as db:
            rows = db.execute(
                "SELECT e.id, e.network_id, e.host_if, e.cont_if, e.mac, e.options, e.sandbox, "
                "e.container_id, e.hostname, e.joined, l.lease, l6.lease FROM endpoints e "
                "LEFT JOIN leases l ON l.endpoint_id = e.id AND l.family = 4 "
                "LEFT JOIN leases l6 ON l6.endpoint_id = e.id AND l6.family = 6 "
                "ORDER BY e.created_at").fetchall()
        return [
            EndpointRow(r[0], r[1], r[2], r[3], r[4], json.loads(r[5]), r[6], r[7], r[8],
                        bool(r[9]), json.loads(r[10]) if r[10] else None,
                        json.loads(r[11]) if r[11] else None)
            for r in rows
        ]

    # the one place sqlite3 errors are caught
    @contextmanager
    def _guard(self, action: str) -> Iterator[None]:
        """Turn any sqlite3 error in the block into a StoreError naming the file and the fix."""
        try:
            yield
        except sqlite3.Error as err:
            name = getattr(err, "sqlite_errorname", None) or type(err).__name__
            raise StoreError(f"state file {self.path}: cannot {action}: {err} ({name}); "
                             f"fix: {self._fix_for(err)}") from err

    @contextmanager
    def _read(self, action: str) -> Iterator[sqlite3.Connection]:
        """The connection, for reads; sqlite3 errors become StoreError."""
        with self._lock, self._guard(action):
            yield self._db

    @contextmanager
    def _write(self, action: str) -> Iterator[sqlite3.Connection]:
        """One transaction: committed whole, or rolled back and the error raised."""
        with self._lock, self._guard(action):
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
                self._db.execute("COMMIT")
            except BaseException:
                self._rollback()
                raise

    def _rollback(self) -> None:
        """Roll back the open transaction, if SQLite has not already done so."""
        # On SQLITE_FULL and some I/O errors SQLite rolls back by itself; a second ROLLBACK
        # would fail and hide the error that matters.
        if not self._db.in_transaction:
            return
        try:
            self._db.execute("ROLLBACK")
        except sqlite3.Error as err:
            LOG.error("rollback in state file %s failed: %s", self.path, err)

    def _fix_for(self, err: sqlite3.Error) -> str:
        """What the user can do about a SQLite error."""
        code = _primary_code(err)
        if code == sqlite3.SQLITE_FULL:
            return (f"free space on {_mount_point(self.dir)} (the file system holding "
                    f"{self.dir}); writes work again without a restart")
        if code in _LOCKED_CODES:
            return (f"another process held a lock on it for over {self.busy_timeout_s:g} s: "
                    f"find it with `fuser -v {self.path}` (or `lsof {self.path}`) and stop it; "
                    "nothing was changed or moved")
        if code in _NOT_WRITABLE_CODES:
            return self._writable_fix()
        if code in _DAMAGED_CODES:
            return (f"the file is damaged: stop net-dhcp and move {self.path} aside; "
                    "networks created before must then be recreated")
        if code == sqlite3.SQLITE_IOERR:
            return f"check the disk holding {self.dir} (`dmesg` shows I/O errors)"
        return "see the SQLite error"

    def _writable_fix(self) -> str:
        """How to give net-dhcp a writable state directory."""
        return (f"make {self.dir} writable (is {_mount_point(self.dir)} mounted read-only? "
                "see `findmnt -T` on it) or point --state-dir / NET_DHCP_STATE_DIR at a "
                "writable directory")


def _put_lease(db: sqlite3.Connection, endpoint_id: str, lease: dict[str, Any], *,
               family: int = 4) -> None:
    """Insert or replace one lease of an endpoint (inside the caller's transaction)."""
    db.execute("INSERT OR REPLACE INTO leases VALUES (?, ?, ?, ?)",
               (endpoint_id, family, json.dumps(lease), time.time()))


def _primary_code(err: BaseException | None) -> int | None:
    """The primary SQLite result code of an error (extended codes carry it in the low byte)."""
    code = getattr(err, "sqlite_errorcode", None)
    return code & 0xFF if isinstance(code, int) else None


def _mount_point(path: Path) -> Path:
    """The mount point of the file system holding path (or of its nearest existing parent)."""
    p = Path(os.path.realpath(path))
    while not os.path.ismount(p):
        p = p.parent
    return p


def _why_not_writable(path: Path) -> str:
    """Why access(2) says path is not writable, as far as can be told."""
    try:
        if os.statvfs(path).f_flag & os.ST_RDONLY:
            return f"{path} is on a file system mounted read-only"
    except OSError as err:
        return str(err)
    return f"permission denied for uid {os.geteuid()}"
