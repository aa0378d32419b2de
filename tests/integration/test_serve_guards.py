"""`net-dhcp serve` refuses to run twice on one socket or state directory (defect 12), and
says why when its state directory cannot be used."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import require_root
from tests.lab import Plugin


def _serve(socket: Path, state: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "net_dhcp", "serve", "--socket", str(socket),
         "--state-dir", str(state)], capture_output=True, text=True, timeout=60,
        env={"PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src"),
             "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}, stdin=subprocess.DEVNULL, check=False)


def test_a_second_serve_on_the_same_socket_exits_naming_the_first(tmp_path: Path) -> None:
    # Before: the second serve unlinked the socket and silently took it over.
    require_root()
    first = Plugin()
    try:
        first.start()
        assert first.proc is not None
        res = _serve(first.socket_path, tmp_path / "other-state")
        assert res.returncode == 1
        assert f"pid {first.proc.pid}" in res.stderr
        assert first.running
        assert first.socket_path.exists()
        res = _serve(tmp_path / "other.sock", first.state_dir)
        assert res.returncode == 1
        assert f"pid {first.proc.pid}" in res.stderr
        assert not (tmp_path / "other.sock").exists()
    finally:
        first.close()
    assert not first.socket_path.with_name(first.socket_path.name + ".lock").exists()


def test_unwritable_state_directory_is_a_clear_error(tmp_path: Path) -> None:
    require_root()
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    res = _serve(tmp_path / "p.sock", blocker / "state")
    assert res.returncode == 1
    assert "Traceback" not in res.stderr
    assert "state" in res.stderr
    assert "writable" in res.stderr
