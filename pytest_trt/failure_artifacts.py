"""Files a failed check leaves behind, so CI failures can be judged without rerunning anything.

Per failed check, in its own directory: ``inputs.npz``, each side's outputs (``reference.npz``,
``engine.npz``, and the goldens that were compared), ``report.json`` (every comparison as data) and,
when matplotlib is installed, per failing float output an error histogram and a heatmap of |a-b|
(``<comparison>--<output>--histogram.png`` / ``--heatmap.png``, 800x450 pixels).
"""
from __future__ import annotations

import dataclasses
import json
import math
import re
import shutil
import warnings
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from .comparison import ComparisonReport

PNG_SIZE = (800, 450)           # pixels, width x height
HEATMAP_MAX = 256               # heatmaps show at most this many rows and columns (block maxima beyond)


def write_artifacts(directory: Path, result, goldens: Mapping[str, Mapping] | None = None) -> list[Path]:
    """Write the artifacts of ``result`` (a failed CheckResult) into ``directory`` (emptied first)."""
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    written = [_npz(directory / "inputs.npz", result.inputs), _npz(directory / "reference.npz", result.reference)]
    if result.engine is not None:
        written.append(_npz(directory / "engine.npz", result.engine))
    sides = {"reference": result.reference, "engine": result.engine}
    for kind, arrays in (goldens or {}).items():
        sides[f"golden-{kind}"] = arrays
        written.append(_npz(directory / f"golden-{kind}.npz", arrays))
    comparisons = _comparisons(result)
    report = {"test": result.test, "precision": result.precision, "passed": result.passed,
              "backend": result.backend, "engine_skipped": result.engine_skipped, "problems": result.problems,
              "comparisons": {name: _report_json(r) for name, r in comparisons.items()}}
    path = directory / "report.json"
    path.write_text(json.dumps(_jsonable(report), indent=1) + "\n", encoding="utf-8")
    written.append(path)
    if have_matplotlib():
        for name, rep in comparisons.items():
            actual_side, expected_side = _SIDES[name]
            actual, expected = sides.get(actual_side), sides.get(expected_side)
            if actual is None or expected is None:
                continue
            for out in rep.failed:
                if out.problem != "values" or out.exact:
                    continue
                a, b = np.asarray(actual[out.name]), np.asarray(expected[out.name])
                stem = f"{name}--{_safe(out.name)}"
                written.append(plot_histogram(directory / f"{stem}--histogram.png", a, b, out, rep))
                written.append(plot_heatmap(directory / f"{stem}--heatmap.png", a, b, out, rep))
    return written


_SIDES = {"engine-vs-reference": ("engine", "reference"),
          "reference-vs-golden": ("reference", "golden-reference"),
          "engine-vs-golden": ("engine", "golden-engine")}


def _comparisons(result) -> dict[str, ComparisonReport]:
    found = {"engine-vs-reference": result.engine_vs_reference, "reference-vs-golden": result.reference_vs_golden,
             "engine-vs-golden": result.engine_vs_golden}
    return {k: v for k, v in found.items() if v is not None}


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
            "outputs": [dataclasses.asdict(o) for o in report.outputs]}


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
    d = _abs_diff(a, b).reshape(-1)
    d = d[np.isfinite(d)]
    if d.size > 4_000_000:  # a strided sample keeps the plot fast for huge outputs
        d = d[:: d.size // 4_000_000 + 1]
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


def heatmap_grid(d: np.ndarray, limit: int = HEATMAP_MAX) -> np.ndarray:
    """|a-b| as a 2-D grid of at most ``limit`` x ``limit`` cells (block maxima, so no spike is lost).

    N-d arrays fold their leading dims into rows; 1-d arrays wrap into a near-square grid.
    """
    d = np.asarray(d, dtype=np.float64)
    if d.ndim == 0:
        d = d.reshape(1, 1)
    elif d.ndim == 1:
        width = max(1, math.ceil(math.sqrt(d.size)))
        d = np.pad(d, (0, width * math.ceil(d.size / width) - d.size)).reshape(-1, width)
    else:
        d = d.reshape(-1, d.shape[-1])
    d = np.where(np.isfinite(d), d, np.nan)
    rows, cols = d.shape
    fr, fc = math.ceil(rows / limit), math.ceil(cols / limit)
    if fr > 1 or fc > 1:
        padded = np.pad(d, ((0, fr * math.ceil(rows / fr) - rows), (0, fc * math.ceil(cols / fc) - cols)))
        with warnings.catch_warnings():  # blocks of only NaN/Inf stay NaN (drawn blank), silently
            warnings.simplefilter("ignore", RuntimeWarning)
            d = np.nanmax(padded.reshape(padded.shape[0] // fr, fr, padded.shape[1] // fc, fc), axis=(1, 3))
    return d


def plot_heatmap(path: Path, a: np.ndarray, b: np.ndarray, out, report: ComparisonReport) -> Path:
    from matplotlib.colors import LogNorm

    d = _abs_diff(a, b)
    grid = heatmap_grid(d)
    rows, cols = (1, 1) if d.ndim == 0 else ((grid.shape[0], grid.shape[1]) if d.ndim == 1 else
                                             (d.size // max(d.shape[-1], 1), d.shape[-1]))
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
