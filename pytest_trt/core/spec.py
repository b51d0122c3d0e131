"""Marker arguments -> a validated ``CompareSpec``; every error names the argument and the fix."""
from __future__ import annotations

import difflib
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from pytest_trt.errors import InputError, SpecError
from pytest_trt.core.records import FrozenRecord, set_field
from pytest_trt.core.tolerance import FIELDS, PRECISIONS, check_tolerances, check_value

ARGUMENTS = ("model", "atol", "rtol", "precision", "tolerances", "shapes", "seed", "outputs",
             "input_range", "convention", "equal_nan", "build", "min_precision_share", "localize")
_TEST_LEVEL = ("atol", "rtol", "convention", "equal_nan")


class CompareSpec(FrozenRecord):
    """Everything a ``trt_compare`` check needs to know, validated."""

    __slots__ = ("model", "precisions", "parametrized", "test_level", "tolerances", "shapes", "seed", "outputs",
                 "input_range", "build", "models", "min_precision_share", "localize")

    def __init__(self, model: Path | None = None, precisions: tuple[str, ...] = ("fp32",), parametrized: bool = False,
                 test_level: Mapping | None = None, tolerances: Mapping | None = None, shapes: Mapping | None = None,
                 seed: int = 0, outputs: tuple[str, ...] | None = None, input_range: object = None,
                 build: object = None, models: Mapping | None = None, min_precision_share: float | None = None,
                 localize: bool | None = None):
        set_field(self, "model", model)   # the fp32 model: the reference's, and the engine's where models has none
        set_field(self, "precisions", precisions)
        set_field(self, "parametrized", parametrized)   # precision was given as a list: one test per precision
        set_field(self, "test_level", {} if test_level is None else test_level)  # marker atol/rtol/convention/equal_nan
        set_field(self, "tolerances", {} if tolerances is None else tolerances)
        set_field(self, "shapes", {} if shapes is None else shapes)
        set_field(self, "seed", seed)
        set_field(self, "outputs", outputs)
        set_field(self, "input_range", input_range)
        set_field(self, "build", build)   # core.build_options.BuildOptions from build={...}; None: ini/defaults
        set_field(self, "models", {} if models is None else models)  # model={precision: path}: resolved paths
        # Share of compute layers that must run in the requested reduced precision, else the check fails;
        # None: the session's --trt-precision-check decides (warn by default).
        set_field(self, "min_precision_share", min_precision_share)
        # True: localize this test's engine-vs-reference comparison even under --trt-localize off (and when it
        # passes); False: never; None: the session's --trt-localize decides (on failure).
        set_field(self, "localize", localize)

    def model_for(self, precision: str) -> Path | None:
        """The file the engine under test builds from at ``precision``: the test's own file for it
        (``model={"fp16": ...}``), else the fp32 model (converted where a strongly typed build needs it)."""
        return self.models.get(precision, self.model)


def parse_marker(args: Sequence, kwargs: Mapping, test_dir: Path | None = None,
                 rootdir: Path | None = None, declared: tuple[str, ...] | None = None) -> CompareSpec:
    """Validate ``@pytest.mark.trt_compare(...)`` arguments (also used for ``trt_compare(...)`` calls, whose
    ``model={precision: path}`` keys are checked against the marker's precisions, ``declared``)."""
    kwargs = dict(kwargs)
    if args:
        if len(args) > 1 or "model" in kwargs:
            raise SpecError("trt_compare takes the model as its only positional argument; "
                            "pass everything else by keyword, e.g. trt_compare('m.onnx', atol=1e-3)")
        kwargs["model"] = args[0]
    for key in kwargs:
        if key not in ARGUMENTS:
            close = difflib.get_close_matches(key, ARGUMENTS, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise SpecError(f"trt_compare got unknown argument {key!r}{hint}; valid arguments are: "
                            f"{', '.join(ARGUMENTS)}")
    fields = {}
    if "precision" in kwargs:
        fields["precisions"], fields["parametrized"] = _precisions(kwargs["precision"])
    if isinstance(kwargs.get("model"), Mapping):
        fields["models"] = check_models(kwargs["model"], fields.get("precisions", declared or ("fp32",)),
                                        test_dir, rootdir)
        fields["model"] = fields["models"]["fp32"]
    elif kwargs.get("model") is not None:
        fields["model"] = resolve_model_path(kwargs["model"], test_dir, rootdir)
    fields["test_level"] = {k: check_value(k, kwargs[k], "trt_compare") for k in _TEST_LEVEL
                            if kwargs.get(k) is not None}
    fields["tolerances"] = check_tolerances(kwargs.get("tolerances"))
    if kwargs.get("shapes") is not None:
        fields["shapes"] = check_shapes(kwargs["shapes"])
    if "seed" in kwargs:
        fields["seed"] = check_seed(kwargs["seed"])
    if kwargs.get("outputs") is not None:
        fields["outputs"] = _names("outputs", kwargs["outputs"])
    if kwargs.get("input_range") is not None:
        fields["input_range"] = check_input_range(kwargs["input_range"])
    if kwargs.get("build") is not None:
        from pytest_trt.core.build_options import parse_build_options

        if not isinstance(kwargs["build"], Mapping):
            raise SpecError(f"trt_compare build={kwargs['build']!r} must be a dict of builder options, "
                            "e.g. build={'workspace': '1G', 'optimization_level': 3}")
        fields["build"] = parse_build_options(kwargs["build"])
    if kwargs.get("min_precision_share") is not None:
        fields["min_precision_share"] = check_share(kwargs["min_precision_share"], "trt_compare min_precision_share")
    if kwargs.get("localize") is not None:
        if not isinstance(kwargs["localize"], bool):
            raise SpecError(f"trt_compare localize={kwargs['localize']!r} must be True (localize this test's "
                            "engine-vs-reference comparison even when it passes or --trt-localize is off), False "
                            "(never) or None (--trt-localize decides)")
        fields["localize"] = kwargs["localize"]
    return CompareSpec(**fields)


def check_share(value, where: str) -> float:
    """A share of layers, 0 to 1 (0: at least one layer)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        percent = (" (a share, not a percent: 0.5 for half)"
                   if isinstance(value, (int, float)) and 1 < value <= 100 and value == int(value) else "")
        raise SpecError(f"{where}={value!r} must be a number from 0 to 1{percent} (the share of compute layers that "
                        "must run in the requested precision; 0 means at least one layer), e.g. 0.5")
    return float(value)


def check_seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise SpecError(f"trt_compare seed={seed!r} is not a non-negative integer; use e.g. seed=0")
    return seed


def check_models(models: Mapping, declared: Sequence[str], test_dir: Path | None, rootdir: Path | None,
                 where: str = "trt_compare") -> dict:
    """``model={precision: path}``: an "fp32" entry (the reference's model), other keys among the ``declared``
    precisions, every path an existing file; ``{precision: resolved Path}``."""
    allowed = ("fp32", *(p for p in declared if p != "fp32"))
    for key in models:
        if key not in PRECISIONS:
            tested = " the marker tests" if where == "trt_compare" else ""
            raise SpecError(f"{where} model[{key!r}] is not a precision{did_you_mean(key, allowed)}; the keys of "
                            f"model={{...}} are precisions{tested}: {', '.join(allowed)}")
        if key not in allowed:
            raise SpecError(f"{where} model[{key!r}] names a precision the marker does not test; its precisions are: "
                            f"{', '.join(declared)} (add {key!r} to precision= or remove the entry)")
    if "fp32" not in models:
        raise SpecError(f"{where} model={{...}} has no 'fp32' entry; the reference (onnxruntime) and its golden run "
                        "the fp32 model: give it, e.g. model={'fp32': 'model.onnx', 'fp16': 'model.fp16.onnx'}")
    return {key: resolve_model_path(path, test_dir, rootdir, f"{where} model[{key!r}]")
            for key, path in models.items()}


def resolve_model_path(model, test_dir: Path | None, rootdir: Path | None, what: str = "trt_compare model") -> Path:
    """An existing model file: absolute, else relative to the test file's folder, else to the rootdir."""
    if not isinstance(model, (str, os.PathLike)) or not str(model):
        raise SpecError(f"{what}={model!r} is not a path; give the .onnx file's path as a string")
    path = Path(model).expanduser()
    candidates = [path] if path.is_absolute() else [d / path for d in (test_dir, rootdir) if d is not None]
    for candidate in candidates:
        if candidate.is_file():
            return candidate.resolve()
    for candidate in candidates:
        if candidate.is_dir():
            from pytest_trt.core.model import directory_problem

            raise SpecError(f"trt_compare {directory_problem(model, candidate)}")
    looked = " and ".join(repr(str(c)) for c in candidates) or repr(str(path))
    raise SpecError(f"{what} {str(model)!r} not found (looked at {looked}); give a path relative "
                    "to the test file or the rootdir, or an absolute path")


def _precisions(value) -> tuple[tuple[str, ...], bool]:
    if isinstance(value, str):
        values, parametrized = [value], False
    elif isinstance(value, (list, tuple)) and value:
        values, parametrized = list(value), True
    else:
        raise SpecError(f"trt_compare precision={value!r} must be a precision name or a non-empty list of them; "
                        f"valid precisions are: {', '.join(PRECISIONS)}")
    for p in values:
        if p not in PRECISIONS:
            raise SpecError(f"trt_compare precision {p!r} is unknown{did_you_mean(p, PRECISIONS)}; "
                            f"valid precisions are: {', '.join(PRECISIONS)}")
    if len(set(values)) != len(values):
        raise SpecError(f"trt_compare precision={value!r} lists a precision twice; list each once")
    return tuple(values), parametrized


# Names people write for a precision: what they meant.
_PRECISION_ALIASES = {"float32": "fp32", "float": "fp32", "single": "fp32", "f32": "fp32", "tensorfloat32": "tf32",
                      "float16": "fp16", "half": "fp16", "f16": "fp16", "bfloat16": "bf16", "qint8": "int8",
                      "i8": "int8", "float8": "fp8", "fp8e4m3": "fp8", "fp8_e4m3": "fp8", "e4m3": "fp8"}


def did_you_mean(name, choices) -> str:
    """`` (did you mean 'x'?)`` for a misspelt name, or ``""``; knows precision spellings (FP16, float16, half)."""
    text = str(name)
    folded = text.lower().replace("-", "").replace(" ", "")
    if folded in _PRECISION_ALIASES and _PRECISION_ALIASES[folded] in choices:
        return f" (did you mean {_PRECISION_ALIASES[folded]!r}?)"
    by_case = {str(c).lower(): c for c in choices}
    close = [by_case[text.lower()]] if text.lower() in by_case else \
        difflib.get_close_matches(text.lower(), list(by_case), n=1, cutoff=0.6)
    if close:
        return f" (did you mean {by_case.get(close[0], close[0])!r}?)"
    return ""


def check_names(spec: CompareSpec, output_names, model_name: str) -> None:
    """Every output and precision that ``tolerances=`` names exists: a misspelt key would otherwise be ignored
    silently and its tolerance never applied. (``outputs=`` is checked with the model's inputs, in
    ``check_outputs_filter``.)"""
    outputs = tuple(output_names)
    listing = f"its outputs are: {', '.join(outputs)}; precisions are: {', '.join(PRECISIONS)}"
    for key, section in spec.tolerances.items():
        if key in PRECISIONS:
            for name in section:
                if name not in FIELDS and name not in outputs:
                    raise SpecError(f"tolerances[{key!r}][{name!r}] names no output of {model_name}"
                                    f"{did_you_mean(name, outputs)}; {listing}")
        elif key not in outputs:
            raise SpecError(f"tolerances[{key!r}] names neither a precision nor an output of {model_name}"
                            f"{did_you_mean(key, (*PRECISIONS, *outputs))}; {listing}")


def engine_model_info(spec: CompareSpec, precision: str, info, where: str = "trt_compare"):
    """The ``ModelInfo`` the engine under test builds from at ``precision``: ``info`` (the fp32 model's), or
    that of the test's own file for the precision, whose input and output names must be the fp32 model's."""
    path = spec.model_for(precision)
    if path is None or path == info.path:
        return info
    from pytest_trt.core.model import load_model_info

    own = load_model_info(path)
    differences = []
    for kind, names, fp32_names in (("input", own.input_names, info.input_names),
                                    ("output", own.output_names, info.output_names)):
        differences += [f"{kind} {name!r} is missing" for name in fp32_names if name not in names]
        differences += [f"{kind} {name!r} is extra" for name in names if name not in fp32_names]
    if differences:
        raise SpecError(f"{where} model[{precision!r}] ({own.path.name}) does not have the inputs and outputs of "
                        f"model['fp32'] ({info.path.name}): {', '.join(differences)}; export both from the same "
                        "model, or convert the fp32 file")
    return own


def check_shapes(shapes) -> dict:
    """``{input: shape}`` or ``{input: {"min": shape, "opt": shape, "max": shape}}``, sizes >= 1."""
    if not isinstance(shapes, Mapping):
        raise SpecError(f"trt_compare shapes={shapes!r} must be a dict {{input name: shape}}, e.g. shapes={{'x': (4, 16)}}")
    clean = {}
    for name, shape in shapes.items():
        where = f"trt_compare shapes[{name!r}]"
        if not isinstance(name, str):
            raise SpecError(f"{where}: keys must be input names (strings)")
        if isinstance(shape, Mapping):
            if set(shape) != {"min", "opt", "max"}:
                raise SpecError(f"{where} must have exactly the keys 'min', 'opt' and 'max', got {sorted(shape)}")
            profile = {k: _shape(shape[k], f"{where}[{k!r}]") for k in ("min", "opt", "max")}
            ranks = {len(s) for s in profile.values()}
            if len(ranks) != 1:
                raise SpecError(f"{where}: min, opt and max must have the same number of dims")
            for i, (lo, mid, hi) in enumerate(zip(profile["min"], profile["opt"], profile["max"])):
                if not lo <= mid <= hi:
                    raise SpecError(f"{where}: dim {i} needs min <= opt <= max, got {lo}, {mid}, {hi}")
            clean[name] = profile
        else:
            clean[name] = _shape(shape, where)
    return clean


def _shape(shape, where: str) -> tuple[int, ...]:
    if not isinstance(shape, (list, tuple)) or not all(
            isinstance(d, int) and not isinstance(d, bool) and d >= 1 for d in shape):
        raise SpecError(f"{where} = {shape!r} is not a tuple of positive ints; use e.g. (4, 16)")
    return tuple(shape)


def check_input_range(value):
    def pair(v, where):
        if (not isinstance(v, (list, tuple)) or len(v) != 2
                or not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v) or not v[0] < v[1]):
            raise SpecError(f"{where} = {v!r} is not (low, high) with low < high; use e.g. (-1.0, 1.0)")
        return tuple(v)
    if isinstance(value, Mapping):
        return {k: pair(v, f"trt_compare input_range[{k!r}]") for k, v in value.items()}
    return pair(value, "trt_compare input_range")


def _names(what: str, value) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)) or not value or not all(isinstance(v, str) for v in value):
        raise SpecError(f"trt_compare {what}={value!r} must be a list of output names, e.g. {what}=['logits']")
    return tuple(value)


def merge_call(spec: CompareSpec, kwargs: Mapping, test_dir: Path | None, rootdir: Path | None) -> CompareSpec:
    """The spec for one ``trt_compare(...)`` call: call arguments override the marker's."""
    if not kwargs:
        return spec
    if len(kwargs) == 1 and "seed" in kwargs:  # the usual per-call override, once per test: no full parse
        return spec.replace(seed=check_seed(kwargs["seed"]))
    if "precision" in kwargs:
        raise SpecError("trt_compare(precision=...) cannot be set per call; set precision in the marker")
    override = parse_marker((), kwargs, test_dir, rootdir, declared=spec.precisions)
    changes = {k: getattr(override, k) for k in ("model", "models", "shapes", "outputs", "input_range", "build",
                                                 "min_precision_share", "localize")
               if k in kwargs or (k == "models" and "model" in kwargs)}
    if "seed" in kwargs:
        changes["seed"] = override.seed
    if any(k in kwargs for k in _TEST_LEVEL):
        changes["test_level"] = {**spec.test_level, **override.test_level}
    if "tolerances" in kwargs:
        changes["tolerances"] = override.tolerances
    return spec.replace(**changes)


def check_outputs_filter(spec: CompareSpec, info) -> None:
    """Every output name in ``outputs=`` and ``tolerances=`` is one of the model's (else one sentence)."""
    if spec.tolerances:
        check_names(spec, info.output_names, info.path.name)
    if spec.outputs is None:
        return
    unknown = [o for o in spec.outputs if o not in info.output_names]
    if unknown:
        raise InputError(f"trt_compare outputs names {', '.join(map(repr, unknown))}, which is not an output of "
                         f"{info.path.name}{did_you_mean(unknown[0], info.output_names)}; its outputs are: "
                         f"{', '.join(s.describe() for s in info.outputs)}")
