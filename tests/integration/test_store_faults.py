"""The state store on real broken file systems: read-only (whole mount, or just the file) and
full. Needs root for mount(8); every mount is a private tmpfs or bind mount of the test's own,
emptied and unmounted in ``finally``.
"""

from __future__ import annotations

import errno
import os
import sqlite3
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from net_dhcp.errors import StoreError
from net_dhcp.store import DB_NAME, NetworkRow, Store
from tests.conftest import require_root

TINY_TMPFS_SIZE = "256k"
"""Room for the database, its WAL and shm, and little else: easy to fill."""

SMALL_TMPFS_SIZE = "1m"

FILLER_CHUNK_BYTES = (64 * 1024, 4096, 1)
"""Write sizes used in turn to fill a file system to its last byte."""


def _run(*argv: str) -> None:
    res = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    if res.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({res.returncode}): {res.stderr.strip()}")


def _umount(target: Path) -> None:
    """Unmount target; if it is busy (a store a failed test left open), detach it anyway."""
    try:
        _run("umount", str(target))
    except RuntimeError:
        _run("umount", "--lazy", str(target))
        raise


def _refused(state: Path) -> StoreError:
    """The StoreError that opening a store in state raises (fails the test if it opens)."""
    try:
        s = Store(state)
    except StoreError as err:
        return err
    s.close()
    pytest.fail(f"Store({state}) opened")


@contextmanager
def tmpfs(size: str) -> Iterator[Path]:
    """A fresh tmpfs of the given size; emptied, unmounted and removed at exit."""
    require_root()
    mnt = Path(tempfile.mkdtemp(prefix="nd-store-faults-"))
    try:
        _run("mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "nd-store-faults", str(mnt))
        try:
            yield mnt
        finally:
            _run("mount", "-o", "remount,rw", str(mnt))
            for child in mnt.iterdir():
                _remove(child)
            _umount(mnt)
    finally:
        mnt.rmdir()


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        for child in path.iterdir():
            _remove(child)
        path.rmdir()
    else:
        path.unlink()


def _seed(state: Path) -> None:
    s = Store(state)
    try:
        s.add_network("n1", '{"bridge": "br0"}')
        s.add_endpoint(endpoint_id="e1", network_id="n1", host_if="dh1", cont_if="dc1",
                       mac="02:00:00:00:00:01", options={}, lease={"address": "10.0.0.5/24"})
    finally:
        s.close()


def _snapshot(state: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(state.iterdir())}


# --------------------------------------------------------------------------- read-only


@pytest.mark.parametrize("dir_mode", [0o700, 0o755], ids=["0700", "0755"])
def test_read_only_file_system_is_refused_and_nothing_moved(dir_mode: int) -> None:
    with tmpfs(SMALL_TMPFS_SIZE) as mnt:
        state = mnt / "state"
        _seed(state)
        os.chmod(state, dir_mode)  # 0755: the chmod to 0700 is what meets the read-only mount
        before = _snapshot(state)
        _run("mount", "-o", "remount,ro", str(mnt))
        msg = str(_refused(state))
        assert msg.startswith(f"state directory {state} is not writable: "), msg
        assert "fix:" in msg
        assert _snapshot(state) == before


def test_missing_state_dir_on_read_only_file_system_is_refused() -> None:
    with tmpfs(SMALL_TMPFS_SIZE) as mnt:
        _run("mount", "-o", "remount,ro", str(mnt))
        state = mnt / "net-dhcp" / "state"
        msg = str(_refused(state))
        assert msg.startswith(f"state directory {state} is not writable: "), msg
        assert "Read-only file system" in msg
        assert list(mnt.iterdir()) == []


def test_read_only_state_file_in_writable_dir_is_refused_and_nothing_moved(
        tmp_path: Path) -> None:
    require_root()
    _seed(tmp_path)
    db = tmp_path / DB_NAME
    before = _snapshot(tmp_path)
    _run("mount", "--bind", str(db), str(db))
    try:
        _run("mount", "-o", "remount,bind,ro", str(db))
        msg = str(_refused(tmp_path))
        assert msg.startswith(f"state file {db} is not writable: "), msg
        assert "read-only" in msg
        assert _snapshot(tmp_path) == before
    finally:
        _umount(db)
    s = Store(tmp_path)
    try:
        assert [n.id for n in s.networks()] == ["n1"]
    finally:
        s.close()


# --------------------------------------------------------------------------- full


def _fill(fs: Path) -> Path:
    """Write a filler file until the file system has not one byte left; return it."""
    filler = fs / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        for chunk in FILLER_CHUNK_BYTES:
            block = b"\0" * chunk
            while True:
                try:
                    os.write(fd, block)
                except OSError as err:
                    if err.errno != errno.ENOSPC:
                        raise
                    break
    finally:
        os.close(fd)
    assert os.statvfs(fs).f_bavail == 0
    return filler


WRITES: list[tuple[str, Callable[[Store], None]]] = [
    ("add_network", lambda s: s.add_network("n2", "{}")),
    ("add_endpoint", lambda s: s.add_endpoint(
        endpoint_id="e3", network_id="n1", host_if="dh3", cont_if="dc3",
        mac="02:00:00:00:00:03", options={}, lease={"address": "10.0.0.7/24"})),
    ("set_lease", lambda s: s.set_lease("e1", {"address": "10.0.0.9/24"})),
    ("set_joined", lambda s: s.set_joined("e1", "/var/run/docker/netns/abc", True)),
    ("set_container", lambda s: s.set_container("e1", "c1", "web")),
    ("delete_endpoint", lambda s: s.delete_endpoint("e2")),
    ("delete_network", lambda s: s.delete_network("n1")),
]


def _integrity(db: Path) -> str:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])
    finally:
        conn.close()


def test_full_disk_writes_raise_store_error_roll_back_and_recover() -> None:
    with tmpfs(TINY_TMPFS_SIZE) as mnt:
        state = mnt / "state"
        s = Store(state)
        try:
            s.add_network("n1", '{"bridge": "br0"}')
            for ep in ("e1", "e2"):
                s.add_endpoint(endpoint_id=ep, network_id="n1", host_if=f"h{ep}",
                               cont_if=f"c{ep}", mac="02:00:00:00:00:01", options={},
                               lease={"address": "10.0.0.5/24"})
            baseline = (s.networks(), s.endpoints())
            filler = _fill(mnt)

            for name, write in WRITES:
                with pytest.raises(StoreError) as exc:
                    write(s)
                msg = str(exc.value)
                assert "SQLITE_FULL" in msg, (name, msg)
                assert f"free space on {mnt}" in msg, (name, msg)
                assert str(state / DB_NAME) in msg, (name, msg)
                # Reads still work and see nothing of the failed transaction.
                assert (s.networks(), s.endpoints()) == baseline, name
            assert _integrity(state / DB_NAME) == "ok"

            filler.unlink()
            for _name, write in WRITES:
                write(s)
            expected_networks = [NetworkRow("n2", "{}")]
            assert s.networks() == expected_networks
            eps = {e.id: e for e in s.endpoints()}
            assert sorted(eps) == ["e1", "e3"]
            assert (eps["e1"].lease, eps["e1"].joined, eps["e1"].container_id) == (
                {"address": "10.0.0.9/24"}, True, "c1")
        finally:
            s.close()
        assert _integrity(state / DB_NAME) == "ok"
        s = Store(state)
        try:
            assert s.networks() == expected_networks
            assert sorted(e.id for e in s.endpoints()) == ["e1", "e3"]
        finally:
            s.close()
