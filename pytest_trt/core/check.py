"""One ``trt_compare`` check: inputs, reference, engine under test, goldens, verdict.

The plugin's fixture calls :func:`run_check`; everything it decides is in plain data
(:class:`CheckResult`), so the session summary and the failure message read the same facts.
"""
from __future__ import annotations

import functools
import os
import shlex
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from pytest_trt.backends.registry import get_backend
from pytest_trt.reports.rows import errors_by_output
from pytest_trt.comparison.compare import compare_outputs
from pytest_trt.comparison.report import ComparisonReport
from pytest_trt.core.dtypes import dtype_name
from pytest_trt.errors import GoldenError, InputError
from pytest_trt.goldens.store import array_digest, golden_paths, read_golden, stem_for, write_golden
from pytest_trt.core.inputs import make_inputs, prepare_user_inputs
from pytest_trt.core.model import ModelInfo, load_model_info
from pytest_trt.core.records import Record
from pytest_trt.core.spec import CompareSpec
from pytest_trt.core.tolerance import REFERENCE_PRECISION, resolve


class GoldenAction(Record):
    """What happened to one golden file in this check."""

    __slots__ = ("path", "action", "kind")

    def __init__(self, path: str, action: str, kind: str):
        self.path = path        # the .npz path, relative to the golden directory (posix)
        self.action = action    # "created", "updated", "unchanged", "model changed" (passed, recorded from
                                # another model), "failed", "missing"
        self.kind = kind        # "reference" or "engine"


class CheckResult(Record):
    """Everything one check computed. ``passed`` is the verdict; ``message`` explains it."""

    __slots__ = ("test", "precision", "inputs", "reference", "engine", "backend", "engine_skipped",
                 "engine_vs_reference", "reference_vs_golden", "engine_vs_golden", "golden_actions", "problems",
                 "tolerance_problem_count", "goldens", "engine_baseline")

    def __init__(self, test: str, precision: str, inputs: dict[str, np.ndarray], reference: dict[str, np.ndarray]):
        self.test = test
        self.precision = precision
        self.inputs = inputs
        self.reference = reference
        self.engine: dict[str, np.ndarray] | None = None
        self.backend: dict | None = None                  # describe() of the engine under test
        self.engine_skipped: str | None = None            # why the engine side did not run
        self.engine_vs_reference: ComparisonReport | None = None
        self.reference_vs_golden: ComparisonReport | None = None
        self.engine_vs_golden: ComparisonReport | None = None
        self.golden_actions: list[GoldenAction] = []
        self.problems: list[str] = []
        self.tolerance_problem_count = 0  # how many of the problems a looser tolerance would fix
        self.goldens: dict[str, Mapping] = {}   # kind -> golden arrays compared
        self.engine_baseline: dict | None = None  # engine-vs-reference errors recorded in the engine golden (drift)

    @property
    def passed(self) -> bool:
        return not self.problems

    def comparisons(self) -> list[tuple[str, ComparisonReport, str, str, str]]:
        """(name, report, precision whose tolerances applied, actual side, expected side) of each comparison made.

        Sides name arrays: ``reference``, ``engine``, ``golden-reference``, ``golden-engine``.
        """
        made = [("engine vs reference", self.engine_vs_reference, self.precision, "engine", "reference"),
                ("reference vs golden", self.reference_vs_golden, REFERENCE_PRECISION, "reference", "golden-reference"),
                ("engine vs golden", self.engine_vs_golden, self.precision, "engine", "golden-engine")]
        return [m for m in made if m[1] is not None]

    @property
    def only_tolerance_failed(self) -> bool:
        """Every problem is values outside their tolerance (what --trt-suggest-tolerances tolerates)."""
        return bool(self.problems) and len(self.problems) == self.tolerance_problem_count

    def add_comparison_problem(self, report: ComparisonReport, text: str | None = None) -> None:
        text = text or report.message
        self.problems.append(text)
        if all(o.tolerance_only for o in report.failed):
            self.tolerance_problem_count += 1

    @property
    def message(self) -> str:
        head = f"trt_compare [{self.precision}] {self.test}: " + ("passed" if self.passed else "FAILED")
        return "\n\n".join([head, *self.problems])


class CheckContext(Record):
    """Where a check stores goldens and how it behaves; built by the plugin from options."""

    __slots__ = ("test_id", "golden_dir", "golden_parts", "update_golden", "require_engine", "rootdir",
                 "golden_test_id", "engine_options", "detail")

    def __init__(self, test_id: str, golden_dir: str | Path | None, golden_parts: tuple[str, ...] = (),
                 update_golden: bool = False, require_engine: bool = False, rootdir: Path | None = None,
                 golden_test_id: str | None = None, engine_options: Mapping | None = None, detail: bool = False):
        self.test_id = test_id                # pytest node id (with parameters), for messages
        self.golden_dir = golden_dir          # None: no golden checks
        self.golden_parts = golden_parts      # test folder under golden_dir
        self.update_golden = update_golden
        self.require_engine = require_engine
        self.rootdir = rootdir
        self.golden_test_id = golden_test_id  # the test's id without the precision parameter (goldens are shared)
        self.engine_options = engine_options  # passed to the engine backend's run(): engine_dir, build options
        self.detail = detail                  # also compute smallest passing tolerances for passing outputs


def run_check(spec: CompareSpec, precision: str, ctx: CheckContext, engine=None, engine_skip_reason: str | None = None,
              inputs=None, reference_backend=None) -> CheckResult:
    """Run one check. Configuration errors raise ``TrtCompareError``; numeric ones land in ``problems``."""
    if spec.model is None:
        raise InputError("trt_compare has no model; pass model= to the marker, to trt_compare(model=...), "
                         "or override the trt_model fixture")
    info = load_model_info(spec.model)
    check_outputs_filter(spec, info)
    if inputs is None:
        inputs = make_inputs(info, spec.shapes, spec.seed, spec.input_range)
    else:
        inputs = prepare_user_inputs(inputs, info)
    if reference_backend is None:
        reference_backend = get_backend("onnxruntime")
    reference = _select(reference_backend.run(info, inputs, precision=REFERENCE_PRECISION), spec)
    result = CheckResult(ctx.test_id, precision, inputs, reference)

    def tolerance_for(p):
        return lambda name: resolve(p, name, spec.tolerances, spec.test_level)

    # Engine under test against the reference.
    if engine is not None:
        reason = engine.precision_reason(precision)
        if reason is None:
            result.backend = engine.describe()
            options = {**(ctx.engine_options or {}), "shapes": spec.shapes}
            if spec.build is not None:
                from pytest_trt.backends.tensorrt.plan import merge_build_options, parse_build_options

                options["build"] = merge_build_options(parse_build_options(options.get("build")), spec.build)
            result.engine = _select(engine.run(info, inputs, precision=precision, options=options), spec)
            result.engine_vs_reference = ComparisonReport(
                compare_outputs(result.engine, reference, tolerance_for(precision), detail=ctx.detail),
                f"engine ({engine.name}, {precision})", "reference (onnxruntime)")
            if not result.engine_vs_reference.passed:
                result.add_comparison_problem(result.engine_vs_reference)
        else:
            engine_skip_reason = f"backend {engine.name!r} skips {precision}: {reason}"
    if result.engine is None:
        result.engine_skipped = engine_skip_reason or "no engine backend selected"
        if ctx.require_engine:
            result.problems.append(f"the engine side is required (--trt-require) but did not run: {result.engine_skipped}")

    # Goldens.
    if ctx.golden_dir is not None:
        identity = _input_identity(inputs)

        def meta_for(kind, p, producer):  # built only when a golden is written
            def meta():
                extra = {"errors_vs_reference": errors_by_output(result.engine_vs_reference)} if kind == "engine" else {}
                return {**_golden_meta(spec, info, identity, ctx), "kind": kind, "precision": p, "producer": producer(),
                        **extra}
            return meta

        result.reference_vs_golden = _check_golden(
            result, ctx, "reference", reference, tolerance_for(REFERENCE_PRECISION), identity, spec.seed,
            meta_for("reference", REFERENCE_PRECISION, reference_backend.describe),
            stem_for("reference"), "reference (onnxruntime)", info.sha256)
        if result.engine is not None:
            result.engine_vs_golden = _check_golden(
                result, ctx, "engine", result.engine, tolerance_for(precision), identity, spec.seed,
                meta_for("engine", precision, lambda: result.backend),
                stem_for("engine", engine.name, precision), f"engine ({engine.name}, {precision})", info.sha256)
    return result


def check_outputs_filter(spec: CompareSpec, info: ModelInfo) -> None:
    """Every output name in ``outputs=`` and ``tolerances=`` is one of the model's (else one sentence)."""
    if spec.tolerances:
        from pytest_trt.core.spec import check_names

        check_names(spec, info.output_names, info.path.name)
    if spec.outputs is None:
        return
    unknown = [o for o in spec.outputs if o not in info.output_names]
    if unknown:
        from pytest_trt.core.spec import did_you_mean

        raise InputError(f"trt_compare outputs names {', '.join(map(repr, unknown))}, which is not an output of "
                         f"{info.path.name}{did_you_mean(unknown[0], info.output_names)}; its outputs are: "
                         f"{', '.join(s.describe() for s in info.outputs)}")


def _select(outputs: Mapping, spec: CompareSpec) -> dict:
    if spec.outputs is None:
        return dict(outputs)
    return {name: outputs[name] for name in spec.outputs if name in outputs}


def _input_identity(inputs: Mapping) -> dict:
    """What a golden records about its inputs, to tell 'other inputs' from 'other outputs' later."""
    return {k: {"dtype": dtype_name(v.dtype), "shape": list(v.shape), "sha256": array_digest(v)} for k, v in inputs.items()}


def _golden_meta(spec: CompareSpec, info: ModelInfo, identity: dict, ctx: CheckContext) -> dict:
    model_file = _shown(info.path, ctx.rootdir)
    from pytest_trt import __version__

    return {
        "test": ctx.golden_test_id or ctx.test_id,
        "model": {"file": model_file, "sha256": info.sha256},
        "seed": spec.seed,
        "shapes": {k: v for k, v in spec.shapes.items()},
        "inputs": identity,
        "pytest_trt": __version__,
    }


def regenerate_command(test_id: str) -> str:
    return f"pytest --update-golden {shlex.quote(test_id)}"


def _check_golden(result: CheckResult, ctx: CheckContext, kind: str, outputs: Mapping, tolerance_for,
                  identity: dict, seed, make_meta, stem: str, label: str, model_sha256: str) -> ComparisonReport | None:
    folder = os.path.join(ctx.golden_dir, *ctx.golden_parts)  # a string: pathlib costs more than the read
    rel = "/".join((*ctx.golden_parts, f"{stem}.npz"))
    hint = regenerate_command(ctx.test_id)

    def write() -> bool:
        tolerances = {name: _tolerance_meta(tolerance_for(name), outputs[name]) for name in outputs}
        try:
            write_golden(folder, stem, outputs, {**make_meta(), "tolerances": tolerances}, root=ctx.golden_dir)
        except GoldenError as exc:
            record("failed", str(exc))
            return False
        return True

    def record(action, problem=None):
        result.golden_actions.append(GoldenAction(rel, action, kind))
        if problem:
            result.problems.append(problem)

    def decide() -> ComparisonReport | None:
        corrupt = False
        try:
            golden = read_golden(folder, stem, hint)
        except GoldenError as exc:
            if not ctx.update_golden:
                record("failed", str(exc))
                return None
            golden, corrupt = None, True
        if golden is None:
            if ctx.update_golden:
                if write():
                    record("updated" if corrupt else "created")
                return None
            if kind == "engine":
                return None  # engine goldens are optional: recorded by --update-golden on an engine machine
            shown = _shown(golden_paths(folder, stem)[0], ctx.rootdir)
            record("missing", f"no {kind} golden for this test at {shown}; create it with: {hint}")
            return None
        changed_inputs = _input_changes(golden.meta, identity, seed)
        if changed_inputs:
            shown = _shown(golden_paths(folder, stem)[0], ctx.rootdir)
            if ctx.update_golden:
                if write():
                    record("updated")
            else:
                record("failed", _model_change(golden.meta, model_sha256) +
                       f"{kind} golden {shown} was recorded for different inputs ({changed_inputs}); "
                       f"if that change is intended, regenerate it with: {hint}")
            return None
        result.goldens[kind] = golden.arrays
        if kind == "engine":
            baseline = golden.meta.get("errors_vs_reference")
            result.engine_baseline = baseline if isinstance(baseline, dict) else None
        report = ComparisonReport(compare_outputs(outputs, golden.arrays, tolerance_for, detail=ctx.detail),
                                  label, f"golden {rel}")
        if report.passed:
            if (golden.meta.get("model") or {}).get("sha256", model_sha256) == model_sha256:
                record("unchanged")
            elif ctx.update_golden:  # within tolerance, but its record names another model: record this one
                if write():
                    record("updated")
            else:
                record("model changed")
        elif ctx.update_golden:
            if write():
                record("updated")
        else:
            producer = golden.meta.get("producer") or {}
            recorded = ", ".join(f"{k} {v}" for k, v in producer.items() if isinstance(v, (str, int, float)))
            text = (_model_change(golden.meta, model_sha256) + report.message +
                    f"\n(golden recorded by {recorded}; if the change is intended, regenerate it with: {hint})")
            record("failed")
            result.add_comparison_problem(report, text)
        return report

    if ctx.update_golden:  # writers of one golden (e.g. [fp32] and [fp16] on two xdist workers) take turns
        with _golden_lock(golden_paths(folder, stem)[0]):
            return decide()
    return decide()


def _model_change(meta: dict, model_sha256: str) -> str:
    """The line that opens a golden's failure when the model is not the one it was recorded from, else ""."""
    recorded = (meta.get("model") or {}).get("sha256")
    if not recorded or recorded == model_sha256:
        return ""
    return f"the model changed since this golden was recorded: sha256 {recorded[:8]}… -> {model_sha256[:8]}…\n"


def _golden_lock(npz: Path):
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
    if np.asarray(array).dtype.kind in "biu":
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
