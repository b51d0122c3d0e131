"""The kernel counts a block of |a-b| by comparing with bin edges when the block spans few decades, and by
one lookup per element otherwise: every mix of spans, zeros, edges and the values just below them must give
the numpy path's count (both paths run: see the fixture in tests/comparator_paths.py)."""
import numpy as np
import pytest

from pytest_trt.comparison import scan, stats
from comparator_paths import comparator_path  # noqa: F401  (autouse: every test on both paths)
from pytest_trt import compare

BLOCK = 1024   # the kernel's block (pytest_trt/_scan.c)



def _blocks(work: np.dtype, seed: int) -> np.ndarray:
    """Blocks of |a-b| each spread over 1 to 20 adjacent decades (with or without zeros), built from
    each decade's lowest value, the value just below it, and values between."""
    rng = np.random.default_rng(seed)
    tables = stats.decades(work)
    floors = np.array([stats._decade_floor(k, work) for k in range(tables.kmin, tables.kmin + tables.bins - 2)], work)
    out = []
    for span in list(range(1, 21)) * 3:
        first = rng.integers(0, floors.size - span)
        lows = floors[first:first + span]
        below = np.nextafter(lows[1:], work.type(0))                  # the top of each decade but the last
        between = lows[rng.integers(0, span, BLOCK)] * rng.uniform(1, 9.99, BLOCK).astype(work)
        values = np.concatenate([lows, below, between])
        values = values[(values >= lows[0]) & np.isfinite(values)]
        block = rng.choice(values, BLOCK)
        block[:span] = lows                                           # each decade's edge, in every block
        if rng.integers(2):
            block[rng.integers(0, BLOCK, rng.integers(1, 40))] = 0
        out.append(block[rng.permutation(BLOCK)])
    return np.concatenate(out)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("seed", [0, 1])
def test_blocks_over_any_span_of_decades_are_counted_exactly(dtype, seed):
    work = np.dtype(dtype)
    d = _blocks(work, seed)
    e = np.zeros_like(d)
    r = compare(d * np.where(np.arange(d.size) % 3, 1, -1).astype(work), e, atol=0, rtol=0)["output"]
    counts = stats.bin_counts(d, work)                               # the numpy path's count
    kmin = stats.decades(work).kmin
    want = ([("0", int(counts[0]))] if counts[0] else []) + [
        (f"1e{kmin + i - 1}", int(c)) for i, c in enumerate(counts[1:-1], 1) if c]
    assert r.histogram == want
    assert sum(c for _, c in r.histogram) == d.size


def test_kernel_refuses_tables_whose_bins_do_not_rise(comparator_path):
    """Counting by edges needs bins that rise with |a-b|: the kernel checks the tables it is handed."""
    if comparator_path != "kernel":
        pytest.skip("kernel tables")
    tables = stats.decades(np.dtype(np.float32))
    lo = tables.lo.astype(np.uint32)
    lo[100] = lo[101] + 1                                             # an octave above its successor's bin
    try:
        with pytest.raises(ValueError, match="do not rise"):
            scan._kernel.set_decades("f", lo.tobytes(), tables.split.tobytes(), tables.bins)
    finally:                                                          # the process's other tests keep good tables
        scan._kernel.set_decades("f", tables.lo.astype(np.uint32).tobytes(), tables.split.tobytes(), tables.bins)
    assert compare(np.float32([1, 2]), np.float32([1, 2.5]), atol=0, rtol=0)["output"].histogram == [("0", 1), ("1e-1", 1)]
