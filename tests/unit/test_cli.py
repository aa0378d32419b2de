"""The CLI: every number validated (issue 7 defect 10), and a cheap import."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from net_dhcp.cli import main


@pytest.mark.parametrize("argv", [
    ["--sweep-interval", "0"],
    ["--sweep-interval", "-5"],
    ["--sweep-interval", "nan"],
    ["--sweep-interval", "inf"],
    ["--renew-retry-max", "0"],
    ["--renew-retry-min", "0"],
    ["--renew-retry-min", "abc"],
    ["--renew-retry-min", "10", "--renew-retry-max", "5"],
])
def test_numbers_out_of_range_are_refused_with_the_range(
        argv: list[str], capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # Before: 0 was accepted, and the keeper sent 542,000 REQUESTs a second.
    # Should a number ever be let through again, the test must fail, not start a real
    # daemon on the host's plugin socket: serve is replaced, and the paths are the test's.
    import net_dhcp.daemon

    async def must_not_serve(_settings: object) -> None:
        pytest.fail(f"serve started with {argv}")

    monkeypatch.setattr(net_dhcp.daemon, "serve", must_not_serve)
    with pytest.raises(SystemExit) as exc:
        main(["serve", "--socket", str(tmp_path / "t.sock"), "--state-dir",
              str(tmp_path / "state"), *argv])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "out of range" in err or "not a number" in err or "below" in err


def test_importing_the_cli_does_not_load_aiohttp_or_pyroute2() -> None:
    # Before: `import net_dhcp.cli` took ~450 ms, most of it aiohttp and pyroute2.
    code = ("import sys, net_dhcp.cli; "
            "print(sorted(m for m in ('aiohttp', 'pyroute2') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60)
    assert out.stdout.strip() == "[]"
