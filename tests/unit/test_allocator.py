"""allocator.fix_trim_threshold: glibc stops adapting its thresholds, so large freed blocks
go back to the kernel. Each case runs in a fresh interpreter: the allocator's state is the
process's, and this test process's must not change."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

# Frees a 1 MiB block (mmapped; glibc then raises its mmap threshold to 1 MiB unless the
# thresholds are fixed), then asks for 256 KiB: whether that one was mmapped.
PROBE = """
import ctypes, sys
from net_dhcp.allocator import fix_trim_threshold
class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = (ctypes.c_size_t,)
libc.free.argtypes = (ctypes.c_void_p,)
libc.mallinfo2.restype = MallInfo2
said = fix_trim_threshold() if sys.argv[1] == "fix" else "-"
libc.free(libc.malloc(1 << 20))
before = libc.mallinfo2().hblks
block = libc.malloc(256 << 10)
print(libc.mallinfo2().hblks - before, said)
libc.free(block)
"""


def _probe(mode: str, **env: str) -> tuple[int, str]:
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True,
                         check=True, env={**os.environ, **env}).stdout.split(" ", 1)
    return int(out[0]), out[1].strip()


glibc = pytest.mark.skipif(not os.confstr("CS_GNU_LIBC_VERSION"), reason="glibc only")


@glibc
def test_without_the_fix_glibc_keeps_a_large_block_in_its_heap() -> None:
    """The premise: glibc's default adapts, and the 256 KiB block is not mmapped."""
    assert _probe("plain") == (0, "-")


@glibc
def test_fixed_thresholds_keep_large_blocks_mmapped() -> None:
    mmapped, said = _probe("fix")
    assert mmapped == 1
    assert "thresholds fixed at 128 KiB" in said


@glibc
def test_a_threshold_set_by_the_user_is_kept() -> None:
    """A user's 512 KiB mmap threshold stays: the 256 KiB block comes from the heap (with
    ours it would be mmapped)."""
    mmapped, said = _probe("fix", MALLOC_MMAP_THRESHOLD_="524288")
    assert said == "malloc: keeping the thresholds set in the environment"
    assert mmapped == 0
