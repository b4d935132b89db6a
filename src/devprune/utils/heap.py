"""Keep the CPU memory freed tensors leave inside the process, for the next forward to reuse.

With glibc's defaults a large block (a batch's activations) is mapped afresh by ``mmap``
and the heap's free top is trimmed back to the OS when it grows past twice the largest
block freed so far: a loop of inference forwards, which frees everything between
batches, then touches new pages every time, and the kernel zero-fills each 4 KiB page on
its first touch. snn-small at batch 128 took 11,000-14,000 such faults per forward in 4 of
6 fresh processes (none in the other 2: glibc raises its thresholds as blocks are freed,
and whether that catches the pattern varies), in one measurement a third of its time
(docs/COMPACT.md#freed-memory). Two ``mallopt`` settings keep such blocks in the heap,
where the next forward's tensors reuse them. The values computed are unchanged; the process
keeps its peak memory instead of handing it back between batches. A training loop gained
nothing measurable, so the runner leaves glibc's defaults alone.
"""

from __future__ import annotations

import ctypes
import platform

# mallopt parameters (malloc.h)
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
# glibc accepts an mmap threshold up to HEAP_MAX_SIZE / 2 (32 MiB on 64-bit): larger blocks
# are still mapped per allocation
MMAP_THRESHOLD = 32 << 20
# free memory the heap may hold at its top before it trims (mallopt's value is an int)
TRIM_THRESHOLD = 1 << 30


def reuse_freed_memory() -> bool:
    """Ask glibc's malloc to keep freed blocks under 32 MiB (and up to 1 GiB of free heap
    top) in the process. Process-wide, for all later allocations; returns whether it was
    applied (False off glibc, e.g. macOS, Windows or musl, where nothing changes)."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    # mallopt returns 1 on success, 0 when glibc refuses a value
    return bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)
                and libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
