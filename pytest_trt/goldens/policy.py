"""Golden policy: what happens to a check's golden files, and what a golden records.

For each golden a check touches (the reference's, and the engine's where the engine ran) this decides
whether it is missing, damaged, recorded for other inputs or from another model, within its tolerances or
not, and, under ``--update-golden``, writes it anew. It also names the actions in one vocabulary
("created", "updated", "unchanged", "model changed", "failed", "missing", and the summary's "would fail")
and ranks them, so the session summary and the per-check rows show the strongest thing that happened.
The file format and atomic writes are ``store``'s.

Imported by the session summary at plugin load: numpy, the golden store and the comparator are imported
on the first check (:func:`_golden_api`), not here.
"""
from __future__ import annotations

import functools
import os
import shlex
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from pytest_trt.core.records import Record
from pytest_trt.errors import GoldenError
from pytest_trt.reports.census import census_change

if TYPE_CHECKING:  # annotations only
    from pytest_trt.comparison.report import ComparisonReport
    from pytest_trt.core.check import CheckContext, CheckResult
    from pytest_trt.core.model import ModelInfo
    from pytest_trt.core.spec import CompareSpec

# When several checks touch one golden file (e.g. the reference shared by [fp32] and [fp16]),
# the summary shows the strongest thing that happened to it.
# "would fail": the comparison failed on tolerances alone and --trt-suggest-tolerances passed the test.
_STRENGTH = {"unchanged": 0, "census changed": 1, "model changed": 1, "created": 2, "updated": 3, "would fail": 4,
             "missing": 5, "failed": 6}


def strongest_action(actions) -> str:
    """What happened to a check's goldens, in one word ("-" when it touched none)."""
    return max(actions, key=_STRENGTH.__getitem__, default="-")


def shown_action(action: str, tolerated: bool) -> str:
    """A golden action as the summary shows it: a tolerated check's failed comparison "would fail".

    A tolerated check failed only on tolerances, so each of its failed goldens failed that way."""
    return "would fail" if tolerated and action == "failed" else action


def stronger(action: str, than: str | None) -> bool:
    """Whether ``action`` outranks ``than`` (None: nothing happened yet)."""
    return than is None or _STRENGTH[action] > _STRENGTH[than]


class GoldenAction(Record):
    """What happened to one golden file in this check."""

    __slots__ = ("path", "action", "kind")

    def __init__(self, path: str, action: str, kind: str):
        self.path = path        # the .npz path, relative to the golden directory (posix)
        self.action = action    # "created", "updated", "unchanged", "model changed" (passed, recorded from
                                # another model), "failed", "missing"
        self.kind = kind        # "reference" or "engine"


def regenerate_command(test_id: str) -> str:
    return f"pytest --update-golden {shlex.quote(test_id)}"


@functools.lru_cache(maxsize=None)
def _golden_api():
    """What checking a golden calls, imported on the first check (they load numpy), then looked up once per process."""
    from types import SimpleNamespace

    import numpy as np

    from pytest_trt.comparison.compare import compare_outputs
    from pytest_trt.comparison.report import ComparisonReport
    from pytest_trt.core.dtypes import dtype_name
    from pytest_trt.goldens.store import array_digest, golden_paths, read_golden, write_golden

    return SimpleNamespace(np=np, ComparisonReport=ComparisonReport, compare_outputs=compare_outputs,
                           dtype_name=dtype_name, array_digest=array_digest, golden_paths=golden_paths,
                           read_golden=read_golden, write_golden=write_golden)


def input_identity(inputs: Mapping) -> dict:
    """What a golden records about its inputs, to tell 'other inputs' from 'other outputs' later."""
    api = _golden_api()
    return {k: {"dtype": api.dtype_name(v.dtype), "shape": list(v.shape), "sha256": api.array_digest(v)}
            for k, v in inputs.items()}


def golden_meta(spec: CompareSpec, info: ModelInfo, identity: dict, ctx: CheckContext, kind: str, precision: str,
                producer: dict | None, errors_vs_reference: dict | None = None) -> dict:
    """A golden's sidecar record, all but its tolerances (added when it is written). ``info`` is the model the
    outputs came from: the fp32 model for the reference, the file the engine was built from for an engine golden.

    ``errors_vs_reference`` (engine goldens): the engine's errors against the reference, the drift baseline."""
    from pytest_trt import __version__

    meta = {
        "test": ctx.golden_test_id or ctx.test_id,
        "model": {"file": _shown(info.path, ctx.rootdir), "sha256": info.sha256},
        "seed": spec.seed,
        "shapes": {k: v for k, v in spec.shapes.items()},
        "inputs": identity,
        "pytest_trt": __version__,
        "kind": kind,
        "precision": precision,
        "producer": producer,
    }
    if errors_vs_reference is not None:
        meta["errors_vs_reference"] = errors_vs_reference
    return meta


def check_golden(result: CheckResult, ctx: CheckContext, kind: str, outputs: Mapping, tolerance_for,
                 identity: dict, seed, make_meta: Callable[[], dict], stem: str, label: str,
                 model_sha256: str) -> ComparisonReport | None:
    """Compare ``outputs`` with the golden ``stem`` of this check, recording what happened in ``result``.

    Returns the comparison made (None where the golden was missing, damaged or recorded for other inputs).
    Without --update-golden, a golden that is not "unchanged" adds its problem to ``result`` (but a missing
    engine golden: those are optional). With --update-golden, every golden that is not "unchanged" is written
    anew instead, from ``make_meta()``: "created" where there was none, else "updated".
    """
    api = _golden_api()
    folder = os.path.join(ctx.golden_dir, *ctx.golden_parts)  # a string: pathlib costs more than the read
    rel = "/".join((*ctx.golden_parts, f"{stem}.npz"))
    hint = regenerate_command(ctx.test_id)

    def record(action, problem=None):
        result.golden_actions.append(GoldenAction(rel, action, kind))
        if problem:
            result.problems.append(problem)

    def judge(golden, damage: str | None):
        """(the comparison made, the action, a function giving the problem's text or None) as things stand."""
        if damage is not None:
            return None, "failed", lambda: damage
        if golden is None:
            if kind == "engine":
                return None, None, None  # engine goldens are optional: recorded by --update-golden on an engine machine
            return None, "missing", lambda: (f"no {kind} golden for this test at "
                                              f"{_shown(api.golden_paths(folder, stem)[0], ctx.rootdir)}; "
                                              f"create it with: {hint}")
        changed_inputs = _input_changes(golden.meta, identity, seed)
        if changed_inputs:
            return None, "failed", lambda: (
                _model_change(golden.meta, model_sha256) +
                f"{kind} golden {_shown(api.golden_paths(folder, stem)[0], ctx.rootdir)} was recorded for different "
                f"inputs ({changed_inputs}); if that change is intended, regenerate it with: {hint}")
        result.goldens[kind] = golden.arrays
        if kind == "engine":
            baseline = golden.meta.get("errors_vs_reference")
            result.engine_baseline = baseline if isinstance(baseline, dict) else None
            census = (golden.meta.get("producer") or {}).get("census")
            result.census_before = census if isinstance(census, dict) else None
        report = api.ComparisonReport(api.compare_outputs(outputs, golden.arrays, tolerance_for, detail=ctx.detail),
                                      label, f"golden {rel}")
        if not report.passed:
            def problem():
                producer = golden.meta.get("producer") or {}
                recorded = ", ".join(f"{k} {v}" for k, v in producer.items() if isinstance(v, (str, int, float)))
                return (_model_change(golden.meta, model_sha256) + report.message +
                        f"\n(golden recorded by {recorded}; if the change is intended, regenerate it with: {hint})")
            return report, "failed", problem
        if _other_model(golden.meta, model_sha256):
            return report, "model changed", None  # within tolerance, but its record names another model
        if kind == "engine" and census_change(result.census_before, result.census):
            return report, "census changed", None  # within tolerance, but its layers run in other precisions now
        return report, "unchanged", None

    def decide() -> ComparisonReport | None:
        try:
            golden, damage = api.read_golden(folder, stem, hint), None
        except GoldenError as exc:
            golden, damage = None, str(exc)
        report, action, problem = judge(golden, damage)
        if ctx.update_golden and action != "unchanged":  # the one place --update-golden writes
            tolerances = {name: _tolerance_meta(tolerance_for(name), outputs[name]) for name in outputs}
            try:
                api.write_golden(folder, stem, outputs, {**make_meta(), "tolerances": tolerances}, root=ctx.golden_dir)
            except GoldenError as exc:
                record("failed", str(exc))
            else:
                record("created" if golden is None and damage is None else "updated")
        elif action is not None:
            record(action)
            if problem is not None and report is not None:  # a failed comparison (a tolerance problem, perhaps)
                result.add_comparison_problem(report, problem())
            elif problem is not None:
                result.problems.append(problem())
        return report

    if ctx.update_golden:  # writers of one golden (e.g. [fp32] and [fp16] on two xdist workers) take turns
        with golden_lock(api.golden_paths(folder, stem)[0]):
            return decide()
    return decide()


def _other_model(meta: dict, model_sha256: str) -> str | None:
    """The sha256 of the model a golden was recorded from, when it names one and not this one; else None."""
    recorded = (meta.get("model") or {}).get("sha256")
    return recorded if recorded and recorded != model_sha256 else None


def _model_change(meta: dict, model_sha256: str) -> str:
    """The line that opens a golden's failure when the model is not the one it was recorded from, else ""."""
    recorded = _other_model(meta, model_sha256)
    if recorded is None:
        return ""
    return f"the model changed since this golden was recorded: sha256 {recorded[:8]}… -> {model_sha256[:8]}…\n"


def golden_lock(npz: Path):
    """A lock per golden file, kept out of the golden directory (which users commit)."""
    import hashlib
    import tempfile

    from pytest_trt.core.files import file_lock

    user = str(os.getuid()) if hasattr(os, "getuid") else os.environ.get("USERNAME", "user")
    name = hashlib.sha256(str(_resolved(npz)).encode()).hexdigest()[:32]
    return file_lock(Path(tempfile.gettempdir()) / f"pytest-trt-locks-{user}" / f"{name}.lock")


def _shown(path: Path, rootdir: Path | None) -> str:
    """A path as users should read it: relative to the rootdir when it lies inside."""
    if rootdir is not None:
        try:
            return path.relative_to(_resolved(rootdir)).as_posix()
        except ValueError:
            pass
    return str(path)


@functools.lru_cache(maxsize=8)
def _resolved(path: Path) -> Path:
    return path.resolve()


def _tolerance_meta(tol, array) -> dict:
    if _golden_api().np.asarray(array).dtype.kind in "biu":
        return {"exact": True}
    return {"atol": tol.atol, "rtol": tol.rtol, "convention": tol.convention}


def _input_changes(old: dict, after: dict, seed) -> str:
    before = old.get("inputs") or {}
    changes = []
    for name in sorted(set(before) | set(after)):
        if name not in before:
            changes.append(f"input {name!r} is new")
        elif name not in after:
            changes.append(f"input {name!r} is gone")
        elif before[name].get("sha256") != after[name]["sha256"]:
            b, a = before[name], after[name]
            if (b.get("dtype"), b.get("shape")) != (a["dtype"], a["shape"]):
                changes.append(f"input {name!r} was {b.get('dtype')}{b.get('shape')}, now {a['dtype']}{a['shape']}")
            else:
                changes.append(f"input {name!r} has other values")
    if changes and old.get("seed") != seed:
        changes.append(f"seed was {old.get('seed')}, now {seed}")
    return "; ".join(changes)
