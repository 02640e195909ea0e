"""Column blocks of the window radiance and the thread pool that processes them.

Every stage of the matched filter works on pieces of consecutive cross-track columns: a piece is copied
once into a C-contiguous ``(column, downtrack, band)`` block, and the pieces run on a few threads.
Temporaries stay per piece (a fresh full-cube array costs ~0.6 s of page faults per 0.3 GB on a small
VM).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import cache

import numpy as np

WORKERS = max(1, min(4, os.cpu_count() or 1))
"""Threads for the column pieces (numpy releases the GIL; each BLAS call stays single-threaded)."""
GEMM_LINES = 192
"""Pixels per batched matrix product: OpenBLAS runs a GEMM on one thread while m·n·k < 2 · 262144
(48 x 48 x 192 here). Larger per-column products go multi-threaded, and tiny multi-threaded GEMMs
spin-wait on each other: on two cores shared with other work the filter ran 5-10x slower."""


def take_bands(radiance: np.ndarray, band_index: np.ndarray) -> np.ndarray:
    """Bands ``band_index`` of ``(..., band)`` radiance: a view when contiguous, else a copy."""
    if band_index.size and np.all(np.diff(band_index) == 1):
        return radiance[..., band_index[0] : band_index[-1] + 1]
    return radiance[..., band_index]


def column_block(xw: np.ndarray, cols: np.ndarray, dtype: type) -> np.ndarray:
    """Columns ``cols`` as a C-contiguous ``(column, downtrack, band)`` array of ``dtype`` (one copy)."""
    sel = slice(int(cols[0]), int(cols[-1]) + 1) if cols[-1] - cols[0] + 1 == cols.size else cols
    return np.array(np.moveaxis(xw[:, sel, :], 1, 0), dtype=dtype, order="C")


def run_chunks(work: Callable[[int, np.ndarray], None], cols: np.ndarray, size: int) -> None:
    """Call ``work(offset, piece)`` for consecutive pieces of at most ``size`` of ``cols``.

    Pieces run on up to :data:`WORKERS` threads: the block copies, reductions and per-column GEMMs
    release the GIL, and every piece writes its own slice of the outputs.
    """
    pieces = [(i, cols[i : i + size]) for i in range(0, cols.size, size)]
    if WORKERS == 1 or len(pieces) < 2:
        for piece in pieces:
            work(*piece)
        return
    for _ in _pool().map(lambda piece: work(*piece), pieces):
        pass


@cache
def _pool() -> ThreadPoolExecutor:
    """One worker pool per process: a full scene makes ~17 batched calls, and starting two threads for
    each cost ~0.1 s of a 2 s budget (more on a loaded machine)."""
    return ThreadPoolExecutor(WORKERS, thread_name_prefix="matched-filter")
