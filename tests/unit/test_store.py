"""The SQLite state store: round trips, migrations, a damaged file moved aside (and nothing
else moved), waiting for and reporting locks, and private file modes.

Faults that need root and mounts (read-only and full file systems) are in
tests/integration/test_store_faults.py.
"""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest

from net_dhcp.errors import StoreError
from net_dhcp.store import DB_NAME, MIGRATIONS, Store


def test_round_trip_survives_reopen(tmp_path: Path) -> None:
    s = Store(tmp_path)
    s.add_network("n1", '{"bridge": "br0"}')
    s.add_endpoint(endpoint_id="e1", network_id="n1", host_if="dh1", cont_if="dc1",
                   mac="02:00:00:00:00:01", options={"hostname": None},
                   lease={"address": "10.0.0.5/24"})
    s.set_joined("e1", "/var/run/docker/netns/abc", True)
    s.set_container("e1", "c1", "web")
    s.close()
    s = Store(tmp_path)
    [net] = s.networks()
    assert (net.id, net.options) == ("n1", '{"bridge": "br0"}')
    [ep] = s.endpoints()
    assert (ep.id, ep.sandbox, ep.joined, ep.container_id, ep.hostname) == (
        "e1", "/var/run/docker/netns/abc", True, "c1", "web")
    assert ep.lease == {"address": "10.0.0.5/24"}
    s.set_lease("e1", {"address": "10.0.0.6/24"})
    assert s.endpoints()[0].lease == {"address": "10.0.0.6/24"}
    s.delete_endpoint("e1")
    s.delete_endpoint("e1")  # idempotent
    s.delete_network("n1")
    assert (s.endpoints(), s.networks()) == ([], [])
    s.close()


def test_schema_version_and_wal(tmp_path: Path) -> None:
    Store(tmp_path).close()
    db = sqlite3.connect(tmp_path / DB_NAME)
    assert db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.close()


def test_corrupt_file_is_moved_aside(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / DB_NAME).write_bytes(b"this is not a database" * 100)
    s = Store(tmp_path)
    assert s.networks() == []
    aside = [p for p in tmp_path.iterdir() if ".corrupt-" in p.name]
    assert aside, list(tmp_path.iterdir())
    assert aside[0].read_bytes().startswith(b"this is not a database")
    assert "moved it to" in caplog.text
    s.close()


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / DB_NAME)
    db.execute(f"PRAGMA user_version={len(MIGRATIONS) + 1}")
    db.close()
    with pytest.raises(Exception, match="upgrade net-dhcp"):
        Store(tmp_path)


# --------------------------------------------------------------------------- locks

LOCK_HOLD_S = 1.0
"""How long the brief lock holder keeps its lock."""

SHORT_BUSY_TIMEOUT_S = 0.2
"""A busy timeout short enough for a test to watch it run out."""

# Holds BEGIN EXCLUSIVE on the database (argv[1]) until a line arrives on stdin or argv[3]
# seconds pass ("inf": only the line), then says when it started releasing. With argv[2] ==
# "exclusive-locking" it also sets PRAGMA locking_mode=EXCLUSIVE, which keeps even readers out
# (as a backup tool or an old process can), the case that used to lose the state.
_HOLDER = """
import select, sqlite3, sys, time
path, mode, hold = sys.argv[1], sys.argv[2], float(sys.argv[3])
db = sqlite3.connect(path, isolation_level=None, timeout=0)
if mode == "exclusive-locking":
    db.execute("PRAGMA locking_mode=EXCLUSIVE")
db.execute("BEGIN EXCLUSIVE")
db.execute("SELECT count(*) FROM networks").fetchone()
print("locked", flush=True)
select.select([sys.stdin], [], [], None if hold == float("inf") else hold)
released_at = time.monotonic()
db.execute("COMMIT")
db.close()
print(f"released {released_at!r}", flush=True)
"""

HOLDER_MODES = ["wal-writer", "exclusive-locking"]


@contextmanager
def lock_holder(db: Path, mode: str, hold_s: float = float("inf")) -> Iterator[LockHolder]:
    """Another process holding an exclusive lock on db; released at exit at the latest."""
    proc = subprocess.Popen([sys.executable, "-c", _HOLDER, str(db), mode, repr(hold_s)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    holder = LockHolder(proc)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line == "locked\n", f"lock holder failed to lock: {line!r}"
        yield holder
        holder.release()
    finally:
        if proc.poll() is None:  # the test failed while the lock was held
            proc.kill()
        proc.wait(timeout=30)
        for pipe in (proc.stdin, proc.stdout):
            if pipe is not None and not pipe.closed:
                with suppress(BrokenPipeError):
                    pipe.close()


class LockHolder:
    """Handle on the lock-holding process."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self._released_at: float | None = None

    def release(self) -> float:
        """Tell it to let go (if it has not yet); the monotonic time it started releasing."""
        if self._released_at is None:
            assert self.proc.stdin is not None
            # BrokenPipeError: it had let go by itself and exited.
            with suppress(BrokenPipeError):
                self.proc.stdin.write("\n")
                self.proc.stdin.close()
        return self.released_at()

    def released_at(self) -> float:
        """Wait for it to let go; the monotonic time it started releasing."""
        if self._released_at is None:
            assert self.proc.stdout is not None
            line = self.proc.stdout.readline()
            assert self.proc.wait(timeout=30) == 0, line
            self.proc.stdout.close()
            assert line.startswith("released "), line
            self._released_at = float(line.split()[1])
        return self._released_at


def _seed(state_dir: Path) -> None:
    s = Store(state_dir)
    s.add_network("n1", '{"bridge": "br0"}')
    s.close()


def _nothing_moved_aside(state_dir: Path) -> None:
    names = sorted(p.name for p in state_dir.iterdir())
    assert DB_NAME in names
    assert not [n for n in names if ".corrupt-" in n], names


@pytest.mark.parametrize("mode", HOLDER_MODES)
def test_open_waits_for_a_lock_released_within_the_busy_timeout(tmp_path: Path,
                                                                 mode: str) -> None:
    _seed(tmp_path)
    with lock_holder(tmp_path / DB_NAME, mode, hold_s=LOCK_HOLD_S) as holder:
        s = Store(tmp_path)
        opened_at = time.monotonic()
        released_at = holder.released_at()
    try:
        # It waited for the lock, rather than failing or starting empty while it was held.
        assert opened_at > released_at
        assert [n.id for n in s.networks()] == ["n1"]
        _nothing_moved_aside(tmp_path)
    finally:
        s.close()


@pytest.mark.parametrize("mode", HOLDER_MODES)
def test_lock_held_past_the_busy_timeout_raises_and_moves_nothing(tmp_path: Path,
                                                                   mode: str) -> None:
    _seed(tmp_path)
    with lock_holder(tmp_path / DB_NAME, mode) as holder:
        with pytest.raises(StoreError, match="locked") as exc:
            Store(tmp_path, busy_timeout_s=SHORT_BUSY_TIMEOUT_S)
        assert f"fuser -v {tmp_path / DB_NAME}" in str(exc.value)
        _nothing_moved_aside(tmp_path)
        holder.release()
    s = Store(tmp_path)
    try:
        assert [n.id for n in s.networks()] == ["n1"]
    finally:
        s.close()


def test_write_under_a_held_lock_raises_store_error_and_recovers(tmp_path: Path) -> None:
    s = Store(tmp_path, busy_timeout_s=SHORT_BUSY_TIMEOUT_S)
    try:
        s.add_network("n1", "{}")
        with lock_holder(tmp_path / DB_NAME, "wal-writer") as holder:
            with pytest.raises(StoreError, match="fuser"):
                s.add_endpoint(endpoint_id="e1", network_id="n1", host_if="dh1", cont_if="dc1",
                               mac="02:00:00:00:00:01", options={}, lease={"address": "x"})
            with pytest.raises(StoreError, match="SQLITE_BUSY"):
                s.delete_network("n1")
            # Readers are not blocked by a WAL writer, and the failed writes left nothing.
            assert ([n.id for n in s.networks()], s.endpoints()) == (["n1"], [])
            holder.release()
        s.add_endpoint(endpoint_id="e1", network_id="n1", host_if="dh1", cont_if="dc1",
                       mac="02:00:00:00:00:01", options={}, lease={"address": "x"})
        assert [(e.id, e.lease) for e in s.endpoints()] == [("e1", {"address": "x"})]
    finally:
        s.close()


# --------------------------------------------------------------------------- damage


def test_real_corrupt_database_is_moved_aside(tmp_path: Path) -> None:
    _seed(tmp_path)
    db = tmp_path / DB_NAME
    data = bytearray(db.read_bytes())
    # Keep the 100-byte header (so it is still "a database") and wreck the schema page.
    data[100:4096] = b"\xa5" * (4096 - 100)
    db.write_bytes(bytes(data))
    probe = sqlite3.connect(db)
    with pytest.raises(sqlite3.DatabaseError) as err:
        probe.execute("SELECT * FROM networks").fetchall()
    probe.close()
    assert err.value.sqlite_errorname == "SQLITE_CORRUPT"
    s = Store(tmp_path)
    try:
        assert s.networks() == []
        [aside] = [p for p in tmp_path.iterdir() if p.name.startswith(f"{DB_NAME}.corrupt-")
                   and not p.name.endswith(("-wal", "-shm"))]
        assert aside.read_bytes() == bytes(data)
    finally:
        s.close()


def test_directory_in_place_of_the_state_file_is_refused_not_moved(tmp_path: Path) -> None:
    (tmp_path / DB_NAME).mkdir()
    (tmp_path / DB_NAME / "keep").write_text("x")
    with pytest.raises(StoreError, match="not a regular file"):
        Store(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [DB_NAME]
    assert (tmp_path / DB_NAME / "keep").read_text() == "x"


# --------------------------------------------------------------------------- modes


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("umask", [0o022, 0o277], ids=["umask-022", "umask-277"])
@pytest.mark.parametrize("existing", [False, True], ids=["new-dir", "existing-0755"])
def test_modes_are_private_whatever_the_umask(tmp_path: Path, umask: int,
                                              existing: bool) -> None:
    state = tmp_path / "state"
    if existing:
        state.mkdir(mode=0o755)
        os.chmod(state, 0o755)
        db = sqlite3.connect(state / DB_NAME)  # an older net-dhcp's file, made 0644
        db.execute("PRAGMA journal_mode=WAL")
        db.close()
        os.chmod(state / DB_NAME, 0o644)
    old = os.umask(umask)
    try:
        s = Store(state)
    finally:
        os.umask(old)
    try:
        s.add_network("n1", "{}")
        files = {p.name: _mode(p) for p in state.iterdir()}
        assert _mode(state) == 0o700
        assert files == {DB_NAME: 0o600, f"{DB_NAME}-wal": 0o600, f"{DB_NAME}-shm": 0o600}
    finally:
        s.close()
