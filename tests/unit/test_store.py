"""The SQLite state store: round trips, migrations, and a corrupt file moved aside."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

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
