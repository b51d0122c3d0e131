"""Tolerance rules: the default table per precision, validation of ``tolerances=``, and resolution.

Resolution, per field, first match wins (documented in the README):
  1. ``tolerances[precision][output]``   2. ``tolerances[precision]``   3. ``tolerances[output]``
  4. the marker's own ``atol`` / ``rtol`` / ``convention`` / ``equal_nan`` (``compare()``'s arguments in the
     eager API)   5. ``DEFAULT_TOLERANCES[precision]``
Each resolved value remembers where it came from, in the caller's terms ("marker" in the plugin, "argument"
for ``compare``/``assert_close``), so failure messages can say why a bound is what it is.
"""
from __future__ import annotations

import math
from collections.abc import Mapping

from pytest_trt.errors import SpecError
from pytest_trt.core.records import FrozenRecord, set_field

PRECISIONS = ("fp32", "tf32", "fp16", "bf16", "int8", "fp8")
REFERENCE_PRECISION = "fp32"
CONVENTIONS = {
    "allclose": "|actual - expected| <= atol + rtol * |expected|",
    "either": "fails only where |actual - expected| > atol and > rtol * |expected|",
}

# Starting points, not guarantees: deep models in reduced precision often need looser bounds.
DEFAULT_TOLERANCES: dict[str, dict[str, float]] = {
    "fp32": {"atol": 1e-5, "rtol": 1e-5},        # Polygraphy's defaults
    "tf32": {"atol": 1e-3, "rtol": 1e-3},        # 10-bit mantissa, like fp16
    "fp16": {"atol": 1e-3, "rtol": 1e-3},        # Polygraphy examples
    "bf16": {"atol": 1e-2, "rtol": 1.6e-2},      # torch.testing's bf16 rtol
    "int8": {"atol": 1e-2, "rtol": 1e-2},        # model specific; tune per output
    "fp8": {"atol": 6.25e-2, "rtol": 6.25e-2},   # half an ulp of float8 e4m3
}

# Fields one tolerance section may set, with their validators.
FIELDS = ("atol", "rtol", "convention", "equal_nan", "cosine", "max_abs", "mean_abs", "median_abs",
          "percentile", "elementwise")
_FIELD_DEFAULTS = {"convention": "allclose", "equal_nan": True, "cosine": None, "max_abs": None,
                   "mean_abs": None, "median_abs": None, "percentile": None, "elementwise": True}


class Tolerance(FrozenRecord):
    """The resolved rules for one output at one precision, with the source of each value."""

    __slots__ = ("atol", "rtol", "convention", "equal_nan", "cosine", "max_abs", "mean_abs", "median_abs",
                 "percentile", "elementwise", "sources")
    _compared = __slots__[:-1]   # where a value came from does not change the rules

    def __init__(self, atol: float, rtol: float, convention: str = "allclose", equal_nan: bool = True,
                 cosine: float | None = None, max_abs: float | None = None, mean_abs: float | None = None,
                 median_abs: float | None = None, percentile: tuple[float, float] | None = None,
                 elementwise: bool = True, sources: Mapping[str, str] | None = None):
        set_field(self, "atol", atol)
        set_field(self, "rtol", rtol)
        set_field(self, "convention", convention)
        set_field(self, "equal_nan", equal_nan)
        set_field(self, "cosine", cosine)            # minimum cosine similarity
        set_field(self, "max_abs", max_abs)          # limits on statistics of |actual - expected|
        set_field(self, "mean_abs", mean_abs)
        set_field(self, "median_abs", median_abs)
        set_field(self, "percentile", percentile)    # (q, limit): q-th percentile of |a-b| <= limit
        set_field(self, "elementwise", elementwise)  # False: only the statistic checks apply
        set_field(self, "sources", {} if sources is None else sources)

    def describe(self) -> str:
        def src(field):
            return f" ({self.sources[field]})" if field in self.sources else ""
        text = f"atol={self.atol:g}{src('atol')}, rtol={self.rtol:g}{src('rtol')}"
        for field in ("cosine", "max_abs", "mean_abs", "median_abs", "percentile"):
            if getattr(self, field) is not None:
                text += f", {field}={getattr(self, field)}{src(field)}"
        return text


def check_value(field: str, value, where: str):
    """Validate one tolerance field; returns the normalized value or raises SpecError."""
    if field in ("atol", "rtol", "max_abs", "mean_abs", "median_abs"):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise SpecError(f"{where} {field}={value!r} is not a non-negative number; use e.g. {field}=1e-3")
        return float(value)
    if field == "cosine":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not -1 <= value <= 1:
            raise SpecError(f"{where} cosine={value!r} is not a similarity in [-1, 1]; use e.g. cosine=0.99")
        return float(value)
    if field == "percentile":
        ok = (isinstance(value, (tuple, list)) and len(value) == 2
              and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
              and 0 <= value[0] <= 100 and value[1] >= 0)
        if not ok:
            raise SpecError(f"{where} percentile={value!r} is not (q, limit) with 0 <= q <= 100 and limit >= 0; "
                            "use e.g. percentile=(99, 1e-2)")
        return (float(value[0]), float(value[1]))
    if field == "convention":
        if not isinstance(value, str) or value not in CONVENTIONS:
            raise SpecError(f"{where} convention={value!r} is unknown; use one of: {', '.join(CONVENTIONS)}")
        return value
    if field in ("equal_nan", "elementwise"):
        if not isinstance(value, bool):
            raise SpecError(f"{where} {field}={value!r} is not True or False")
        return value
    raise SpecError(f"{where} has unknown field {field!r}; valid fields are: {', '.join(FIELDS)}")


def check_section(section, where: str, allow_outputs: bool) -> dict:
    """Validate one ``tolerances`` section: tolerance fields, plus per-output subsections if allowed."""
    if not isinstance(section, Mapping):
        raise SpecError(f"{where} must be a dict of tolerance fields ({', '.join(FIELDS)}), not {section!r}")
    clean = {}
    for key, value in section.items():
        if not isinstance(key, str):
            raise SpecError(f"{where} has a non-string key {key!r}; keys are tolerance fields or output names")
        if key in FIELDS:
            clean[key] = check_value(key, value, where)
        elif allow_outputs and isinstance(value, Mapping):
            clean[key] = check_section(value, f"{where}[{key!r}]", allow_outputs=False)
        else:
            hint = " (or a per-output dict)" if allow_outputs else ""
            raise SpecError(f"{where} has unknown field {key!r}; valid fields are: {', '.join(FIELDS)}{hint}")
    return clean


def check_tolerances(tolerances) -> dict:
    """Validate a ``tolerances=`` mapping (the marker's or ``compare()``'s): keys are precisions or output names."""
    if tolerances is None:
        return {}
    if not isinstance(tolerances, Mapping):
        raise SpecError(f"tolerances={tolerances!r} must be a dict keyed by precision or output name, "
                        "e.g. tolerances={'fp16': {'atol': 1e-2}, 'logits': {'rtol': 1e-3}}")
    clean = {}
    for key, section in tolerances.items():
        if key in FIELDS:
            raise SpecError(f"tolerances has a bare field {key!r}; pass test-wide values as {key}=... beside "
                            "tolerances= and use tolerances for per-precision or per-output sections")
        if not isinstance(key, str):
            raise SpecError(f"tolerances key {key!r} is not a string; use a precision or an output name")
        clean[key] = check_section(section, f"tolerances[{key!r}]", allow_outputs=key in PRECISIONS)
    return clean


_RESOLVED: dict = {}   # (precision, output, id(tolerances), id(test_level), source) -> (Tolerance, tolerances, test_level)


def resolve(precision: str, output: str, tolerances: Mapping | None = None,
            test_level: Mapping | None = None, test_level_source: str = "marker") -> Tolerance:
    """The tolerance for ``output`` at ``precision`` (see module docstring for the order).

    ``test_level_source`` names where ``test_level`` came from in messages: "marker" for the plugin,
    "argument" for the eager ``compare``. Memoized by the identity of the two mappings (a marker's are
    parsed once and shared by its checks); the entry holds them, so an id cannot be reused while it lives.
    Callers never mutate them.
    """
    key = (precision, output, id(tolerances), id(test_level), test_level_source)
    hit = _RESOLVED.get(key)
    if hit is not None and hit[1] is tolerances and hit[2] is test_level:
        return hit[0]
    tolerance = _resolve(precision, output, tolerances, test_level, test_level_source)
    if len(_RESOLVED) >= 4096:
        _RESOLVED.clear()
    _RESOLVED[key] = (tolerance, tolerances, test_level)
    return tolerance


def _resolve(precision: str, output: str, tolerances: Mapping | None, test_level: Mapping | None,
             test_level_source: str) -> Tolerance:
    if precision not in DEFAULT_TOLERANCES:
        raise SpecError(f"precision {precision!r} is unknown; use one of: {', '.join(PRECISIONS)}")
    tolerances = tolerances or {}
    per_precision = tolerances.get(precision, {})
    layers = [
        (per_precision.get(output, {}), f"tolerances[{precision!r}][{output!r}]"),
        ({k: v for k, v in per_precision.items() if k in FIELDS}, f"tolerances[{precision!r}]"),
        (tolerances.get(output, {}) if output not in PRECISIONS else {}, f"tolerances[{output!r}]"),
        (test_level or {}, test_level_source),
        (DEFAULT_TOLERANCES[precision], f"default for {precision}"),
    ]
    values, sources = {}, {}
    for field in FIELDS:
        for layer, name in layers:
            if field in layer and layer[field] is not None:
                values[field], sources[field] = layer[field], name
                break
        else:
            values[field] = _FIELD_DEFAULTS[field]
    return Tolerance(sources=sources, **values)
