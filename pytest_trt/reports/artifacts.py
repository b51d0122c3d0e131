"""Files a failed check leaves behind, so CI failures can be judged without rerunning anything.

Per failed check, in its own directory: ``inputs.npz``, each side's outputs (``reference.npz``,
``engine.npz``, and the goldens that were compared), ``localization.txt`` (where the check was localized: every
intermediate tensor's error in graph order), ``report.json`` (every comparison and the localization as data; per
failing output ``worst``: the element with the largest share of its bound, ``failing_indices``,
``nan_indices``/``inf_indices`` (the first 5 each) and the exact ``histogram`` of |a-b| by decade) and,
when matplotlib is installed, per failing float output an error histogram and a heatmap of |a-b|
(``<comparison>--<output>--histogram.png`` / ``--heatmap.png``, 800x450 pixels).
"""
from __future__ import annotations

import json
import math
import re
import shutil
import warnings
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from pytest_trt.comparison.report import ComparisonReport

PNG_SIZE = (800, 450)           # pixels, width x height
HEATMAP_MAX = 256               # heatmaps show at most this many rows and columns (block maxima beyond)
HISTOGRAM_SAMPLE = 4_000_000    # histograms of larger outputs use an evenly strided sample of this many


def write_artifacts(directory: Path, result) -> list[Path]:
    """Write the artifacts of ``result`` (a failed CheckResult, with the goldens it read) into ``directory``
    (emptied first)."""
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    written = [_npz(directory / "inputs.npz", result.inputs), _npz(directory / "reference.npz", result.reference)]
    if result.engine is not None:
        written.append(_npz(directory / "engine.npz", result.engine))
    sides = result.sides()
    for kind, arrays in result.goldens.items():
        written.append(_npz(directory / f"golden-{kind}.npz", arrays))
    comparisons = result.comparisons()
    report = {"test": result.test, "precision": result.precision, "passed": result.passed,
              "backend": result.backend, "engine_skipped": _short(result.engine_skipped), "problems": result.problems,
              "census": result.census, "precision_shortfall": result.precision_shortfall,
              "comparisons": {_slug(name): _report_json(r) for name, r, *_ in comparisons},
              "localization": None, "localization_problem": result.localization_problem}
    if result.localization is not None:
        from pytest_trt.reports.localization import as_json, full_table

        report["localization"] = as_json(result.localization)
        path = directory / "localization.txt"
        path.write_text(full_table(result.localization), encoding="utf-8")
        written.append(path)
    path = directory / "report.json"
    path.write_text(json.dumps(_jsonable(report), indent=1) + "\n", encoding="utf-8")
    written.append(path)
    if have_matplotlib():
        for name, rep, _, actual_side, expected_side in comparisons:
            actual, expected = sides.get(actual_side), sides.get(expected_side)
            if actual is None or expected is None:
                continue
            for out in rep.failed:
                if out.problem != "values" or out.exact:
                    continue
                a, b = np.asarray(actual[out.name]), np.asarray(expected[out.name])
                stem = f"{_slug(name)}--{_safe(out.name)}"
                written.append(plot_histogram(directory / f"{stem}--histogram.png", a, b, out, rep))
                written.append(plot_heatmap(directory / f"{stem}--heatmap.png", a, b, out, rep))
    return written


def _slug(comparison: str) -> str:
    return comparison.replace(" ", "-")   # "engine vs reference" -> "engine-vs-reference" (file names, JSON keys)


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)[:80] or "_"


def _npz(path: Path, arrays: Mapping) -> Path:
    plain = {}
    for name, value in arrays.items():
        value = np.asarray(value)
        if value.dtype.kind == "V" or value.dtype.name.startswith(("bfloat16", "float8")):
            value = value.astype(np.float32)  # ml_dtypes arrays would need ml_dtypes to load
        plain[name] = value
    np.savez(path, **plain)
    return path


def _report_json(report: ComparisonReport) -> dict:
    return {"actual": report.actual_label, "expected": report.expected_label, "passed": report.passed,
            "outputs": [o.as_dict() for o in report.outputs]}


def _jsonable(value):
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.generic,)):
        return _jsonable(value.item())
    if value is None or isinstance(value, (str, int, bool)):
        return value
    return str(value)


def have_matplotlib() -> bool:
    import importlib.util

    return importlib.util.find_spec("matplotlib") is not None


# ------------------------------------------------------------------------------------------ plots

def _figure():
    """A figure that never touches pyplot's global state (the user's backend and open figures)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(PNG_SIZE[0] / 100, PNG_SIZE[1] / 100), dpi=100)
    FigureCanvasAgg(figure)
    return figure


def _abs_diff(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.abs(a.astype(np.float64) - b.astype(np.float64))


def plot_histogram(path: Path, a: np.ndarray, b: np.ndarray, out, report: ComparisonReport) -> Path:
    """Histogram of log10 |a-b| over finite elements, with the atol marked."""
    fa, fb = np.asarray(a).reshape(-1), np.asarray(b).reshape(-1)
    if fa.size > HISTOGRAM_SAMPLE:  # a strided sample keeps the plot fast and small for huge outputs
        stride = fa.size // HISTOGRAM_SAMPLE + 1
        fa, fb = fa[::stride], fb[::stride]
    d = _abs_diff(fa, fb)
    d = d[np.isfinite(d)]
    figure = _figure()
    ax = figure.add_subplot()
    positive = d[d > 0]
    zeros = d.size - positive.size
    if positive.size:
        logs = np.log10(positive)
        lo, hi = math.floor(logs.min()), math.ceil(logs.max()) + 1
        ax.hist(logs, bins=np.linspace(lo, hi, 4 * (hi - lo) + 1), color="#4477aa")
    if out.tolerance is not None and out.tolerance.atol > 0:
        ax.axvline(math.log10(out.tolerance.atol), color="#cc3311", linestyle="--", label=f"atol {out.tolerance.atol:g}")
        ax.legend(loc="upper left")
    ax.set_xlabel("log10 |actual - expected|" + (f"   ({zeros} elements equal)" if zeros else ""))
    ax.set_ylabel("elements")
    ax.set_title(f"{out.name}: {report.actual_label} vs {report.expected_label}", fontsize=9)
    figure.savefig(path, dpi=100)
    return path


PIECE = 1 << 18                 # elements of |a-b| held at once while building a heatmap


def grid_shape(shape: tuple[int, ...]) -> tuple[int, int]:
    """How an output is laid out as a 2-D picture: leading dims fold into rows, 1-d wraps near-square."""
    size = math.prod(shape)
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        width = max(1, math.ceil(math.sqrt(size)))
        return max(1, math.ceil(size / width)), width
    return size // max(shape[-1], 1) if shape[-1] else 0, shape[-1]


def heatmap_grid(a: np.ndarray, b: np.ndarray, limit: int = HEATMAP_MAX) -> np.ndarray:
    """|a-b| as a 2-D grid of at most ``limit`` x ``limit`` cells: block maxima, so no spike is lost.

    Computed piece by piece (at most PIECE elements in float64 at a time), so a 1e8-element output
    costs megabytes, not gigabytes. Cells of only NaN/Inf differences are NaN (drawn blank).
    """
    fa, fb = np.asarray(a).reshape(-1), np.asarray(b).reshape(-1)
    n = fa.size
    rows, cols = grid_shape(np.shape(a))
    if n == 0:
        return np.full((1, 1), np.nan)
    fr, fc = math.ceil(rows / limit), math.ceil(cols / limit)
    grid = np.full((math.ceil(rows / fr), math.ceil(cols / fc)), np.nan)
    step = max(1, PIECE // (fr * fc)) * fc            # columns per piece, whole cells only
    full = n // cols                                  # rows present in full (a wrapped 1-d output may end short)

    def block(x, r0, r1, c0, c1):
        parts = []
        if r0 < full:
            parts.append(x[r0 * cols:min(r1, full) * cols].reshape(-1, cols)[:, c0:c1].astype(np.float64))
        if r1 > full:                                 # the short last row, padded with NaN
            row = np.full(cols, np.nan)
            row[:n - full * cols] = x[full * cols:]
            parts.append(row[None, c0:c1])
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    with warnings.catch_warnings(), np.errstate(invalid="ignore", over="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN cells
        for i, r0 in enumerate(range(0, rows, fr)):
            r1 = min(r0 + fr, rows)
            for c0 in range(0, cols, step):
                c1 = min(c0 + step, cols)
                d = np.abs(block(fa, r0, r1, c0, c1) - block(fb, r0, r1, c0, c1))
                d[~np.isfinite(d)] = np.nan
                pad_r, pad_c = fr - d.shape[0], (-d.shape[1]) % fc
                if pad_r or pad_c:
                    d = np.pad(d, ((0, pad_r), (0, pad_c)), constant_values=np.nan)
                cells = np.nanmax(d.reshape(fr, -1, fc), axis=(0, 2))
                grid[i, c0 // fc:c0 // fc + cells.size] = cells
    return grid


def plot_heatmap(path: Path, a: np.ndarray, b: np.ndarray, out, report: ComparisonReport) -> Path:
    from matplotlib.colors import LogNorm

    grid = heatmap_grid(a, b)
    rows, cols = grid_shape(np.shape(a))
    positive = grid[np.isfinite(grid) & (grid > 0)]
    norm = None
    if positive.size:  # a log scale: small errors stay visible next to large ones
        top = float(positive.max())
        norm = LogNorm(vmin=max(float(positive.min()), top * 1e-6), vmax=top, clip=True)
        grid = np.where(grid > 0, grid, norm.vmin)
    figure = _figure()
    ax = figure.add_subplot()
    image = ax.imshow(grid, aspect="auto", interpolation="nearest", cmap="magma", norm=norm,
                      extent=(0, cols, rows, 0))  # axes in element indices even when downsampled
    figure.colorbar(image, ax=ax, label="|actual - expected| (log scale)" if norm else "|actual - expected|")
    shape = "x".join(map(str, a.shape)) or "scalar"
    ax.set_title(f"{out.name} ({shape}): |{report.actual_label} - {report.expected_label}|"
                 f"{' (block maxima)' if grid.size < a.size else ''}", fontsize=9)
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("last dim")
    ax.set_ylabel("leading dims (flattened)")
    figure.savefig(path, dpi=100)
    return path


def _short(reason: str | None) -> str | None:
    """The skip reason without its install hint (the session summary states it in full once)."""
    if reason is None:
        return None
    from pytest_trt.backends.registry import short_reason

    return short_reason(reason)
