"""One ``trt_compare`` check: inputs, reference, engine under test, goldens, verdict.

The plugin's fixture calls :func:`run_check`; everything it decides is in plain data
(:class:`CheckResult`), so the session summary and the failure message read the same facts.
What happens to each golden (missing, changed, updated) is decided in ``goldens.policy``.
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from pytest_trt.backends.registry import get_backend
from pytest_trt.reports.drift import errors_by_output
from pytest_trt.comparison.compare import compare_outputs
from pytest_trt.comparison.report import ComparisonReport
from pytest_trt.errors import InputError
from pytest_trt.goldens.policy import GoldenAction, check_golden, golden_meta, input_identity
from pytest_trt.goldens.store import stem_for
from pytest_trt.core.generated_inputs import make_inputs
from pytest_trt.core.inputs import prepare_user_inputs
from pytest_trt.core.model import has_quantize_nodes, load_model_info
from pytest_trt.core.records import Record
from pytest_trt.core.spec import CompareSpec, check_outputs_filter, engine_model_info
from pytest_trt.core.tolerance import REFERENCE_PRECISION, resolve


QUANTIZED = ("int8", "fp8")   # precisions built only from models that carry their quantization (Q/DQ nodes)


class CheckResult(Record):
    """Everything one check computed. ``passed`` is the verdict; ``message`` explains it."""

    __slots__ = ("test", "precision", "inputs", "reference", "engine", "backend", "engine_skipped",
                 "engine_vs_reference", "reference_vs_golden", "engine_vs_golden", "golden_actions", "problems",
                 "tolerance_problem_count", "goldens", "engine_baseline", "census", "census_before",
                 "precision_shortfall", "localization", "localization_problem", "preview")

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
        self.census: dict | None = None           # the engine's layer precisions (reports.census), where known
        self.census_before: dict | None = None    # the census recorded with the engine golden
        self.precision_shortfall: str | None = None  # "fp16 requested, 0 of 41 layers run in it ..." or None
        self.localization = None                  # core.localization.Localization of engine vs reference, if run
        self.localization_problem: str | None = None  # why a localization that should have run could not
        self.preview = False                      # the engine side is a CPU preview (onnxruntime fp16/bf16)

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

    def sides(self) -> dict:
        """The arrays each side name of ``comparisons`` stands for (an engine side is None when none ran)."""
        return {"reference": self.reference, "engine": self.engine,
                **{f"golden-{kind}": arrays for kind, arrays in self.goldens.items()}}

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
        parts = [head, *self.problems]
        if not self.passed and self.localization is not None:
            from pytest_trt.reports.localization import message

            parts.append(message(self.localization))
        elif not self.passed and self.localization_problem:
            parts.append(f"first diverging node: not localized ({self.localization_problem})")
        return "\n\n".join(parts)


class CheckContext(Record):
    """Where a check stores goldens and how it behaves; built by the plugin from options."""

    __slots__ = ("test_id", "golden_dir", "golden_parts", "update_golden", "require_engine", "rootdir",
                 "golden_test_id", "engine_options", "detail", "min_precision_share", "precision_check", "localize",
                 "localize_seeds", "localize_memory")

    def __init__(self, test_id: str, golden_dir: str | Path | None, golden_parts: tuple[str, ...] = (),
                 update_golden: bool = False, require_engine: bool = False, rootdir: Path | None = None,
                 golden_test_id: str | None = None, engine_options: Mapping | None = None, detail: bool = False,
                 min_precision_share: float = 0.0, precision_check: str = "warn", localize: str = "auto",
                 localize_seeds: int = 3, localize_memory: int = 256 << 20):
        self.test_id = test_id                # pytest node id (with parameters), for messages
        self.golden_dir = golden_dir          # None: no golden checks
        self.golden_parts = golden_parts      # test folder under golden_dir
        self.update_golden = update_golden
        self.require_engine = require_engine
        self.rootdir = rootdir
        self.golden_test_id = golden_test_id  # the test's id without the precision parameter (goldens are shared)
        self.engine_options = engine_options  # passed to the engine backend's run(): engine_dir, build (BuildOptions)
        self.detail = detail                  # also compute smallest passing tolerances for passing outputs
        self.min_precision_share = min_precision_share  # --trt-min-precision-share (a marker's overrides it)
        self.precision_check = precision_check  # --trt-precision-check: warn, strict or off (the plugin acts on it)
        self.localize = localize              # --trt-localize: auto (failing engine-vs-reference checks) or off
        self.localize_seeds = localize_seeds  # samples a localization compares
        self.localize_memory = localize_memory  # bytes of tensors a localization holds at once


def run_check(spec: CompareSpec, precision: str, ctx: CheckContext, engine=None, engine_skip_reason: str | None = None,
              inputs=None) -> CheckResult:
    """Run one check. Configuration errors raise ``TrtCompareError``; numeric ones land in ``problems``."""
    if spec.model is None:
        raise InputError("trt_compare has no model; pass model= to the marker, to trt_compare(model=...), "
                         "or override the trt_model fixture")
    info = load_model_info(spec.model)
    check_outputs_filter(spec, info)
    engine_info = engine_model_info(spec, precision, info)  # model[precision] where the marker maps one
    if precision in QUANTIZED and not has_quantize_nodes(engine_info):
        raise InputError(f"{precision} needs a model with QuantizeLinear/DequantizeLinear (Q/DQ) nodes, and "
                         f"{engine_info.path.name} has none; pytest-trt does not calibrate: quantize the model (e.g. "
                         f"with NVIDIA ModelOpt's ONNX PTQ) and test that file (model={{'fp32': ..., "
                         f"'{precision}': 'model.{precision}.onnx'}})")
    generated = inputs is None
    if generated:
        inputs = make_inputs(info, spec.shapes, spec.seed, spec.input_range)
    else:
        inputs = prepare_user_inputs(inputs, info)
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
            if precision in getattr(engine, "previews", ()):
                from pytest_trt.backends.onnxruntime import PREVIEW_NOTE

                result.preview = True
                result.backend = {**result.backend, "preview": PREVIEW_NOTE.format(precision=precision)}
            options = {**(ctx.engine_options or {}), "shapes": spec.shapes, "convert": engine_info is info}
            if spec.build is not None:
                from pytest_trt.core.build_options import merge_build_options

                options["build"] = merge_build_options(options.get("build"), spec.build)
            result.engine = _select(engine.run(engine_info, inputs, precision=precision, options=options), spec)
            _judge_census(result, engine.census(), spec, ctx)
            result.engine_vs_reference = ComparisonReport(
                compare_outputs(result.engine, reference, tolerance_for(precision), detail=ctx.detail),
                f"engine ({engine.name}{' preview' if result.preview else ''}, {precision})",
                "reference (onnxruntime)")
            if not result.engine_vs_reference.passed:
                result.add_comparison_problem(result.engine_vs_reference)
            if spec.localize or (spec.localize is None and ctx.localize == "auto"
                                 and not result.engine_vs_reference.passed):
                _localize(result, spec, ctx, info, engine_info, engine, options, None if generated else inputs)
        else:
            engine_skip_reason = f"backend {engine.name!r} skips {precision}: {reason}"
    if result.engine is None:
        result.engine_skipped = engine_skip_reason or "no engine backend selected"
        if spec.localize:
            result.localization_problem = f"the engine side did not run: {result.engine_skipped}"
        if ctx.require_engine:
            result.problems.append(f"the engine side is required (--trt-require) but did not run: {result.engine_skipped}")

    # Goldens.
    if ctx.golden_dir is not None:
        identity = input_identity(inputs)

        def meta_for(kind, p, producer):  # built only when a golden is written
            def meta():
                errors = errors_by_output(result.engine_vs_reference) if kind == "engine" else None
                return golden_meta(spec, engine_info if kind == "engine" else info, identity, ctx, kind, p,
                                   producer(), errors)
            return meta

        result.reference_vs_golden = check_golden(
            result, ctx, "reference", reference, tolerance_for(REFERENCE_PRECISION), identity, spec.seed,
            meta_for("reference", REFERENCE_PRECISION, reference_backend.describe),
            stem_for("reference"), "reference (onnxruntime)", info.sha256)
        if result.engine is not None:
            result.engine_vs_golden = check_golden(
                result, ctx, "engine", result.engine, tolerance_for(precision), identity, spec.seed,
                meta_for("engine", precision, lambda: {**result.backend, "census": result.census}),
                stem_for("engine", engine.name, precision), f"engine ({engine.name}, {precision})",
                engine_info.sha256)
    return result


def _localize(result: CheckResult, spec: CompareSpec, ctx: CheckContext, info, engine_info, engine, options,
              given_inputs) -> None:
    """Localize the engine-vs-reference comparison; a localization that cannot run is a sentence, never an error
    that hides the check's own verdict."""
    from pytest_trt.core.localize import localize_model

    failed = result.engine_vs_reference.failed
    try:
        result.localization = localize_model(
            spec, result.precision, info, engine_info, engine, options, given_inputs, seeds=ctx.localize_seeds,
            memory=ctx.localize_memory, failing_output=failed[0].name if failed else None,
            first_sample=result.inputs)
    except Exception as exc:  # noqa: BLE001 - the check's verdict stands whatever the localization met
        from pytest_trt.errors import TrtCompareError, first_line

        result.localization_problem = first_line(exc) if isinstance(exc, TrtCompareError) else \
            f"{type(exc).__name__}: {first_line(exc)}"


def _judge_census(result: CheckResult, census: dict | None, spec: CompareSpec, ctx: CheckContext) -> None:
    """Record the engine's census; a reduced precision that (almost) no layer runs in is a sentence, and a
    problem where the marker asks for a share (``min_precision_share``). Otherwise the session's
    --trt-precision-check decides: off drops the sentence, warn and strict are carried out by the plugin."""
    from pytest_trt.reports.census import shortfall

    result.census = census
    share = spec.min_precision_share if spec.min_precision_share is not None else ctx.min_precision_share
    result.precision_shortfall = shortfall(result.precision, census, share)
    if result.precision_shortfall and spec.min_precision_share is not None:
        result.problems.append(f"{result.precision_shortfall} (the marker asks min_precision_share="
                               f"{spec.min_precision_share:g})")
    elif ctx.precision_check == "off":
        result.precision_shortfall = None


def _select(outputs: Mapping, spec: CompareSpec) -> dict:
    if spec.outputs is None:
        return dict(outputs)
    return {name: outputs[name] for name in spec.outputs if name in outputs}
