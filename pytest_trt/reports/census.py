"""What a precision census means for a check: its one-line text, the "fp16 requested, 0 layers run in it"
sentence, and the change since the engine golden was recorded. Works on the plain summary dict an engine
backend reports (``backends/tensorrt/census.py`` makes it from TensorRT's engine inspector), so goldens'
sidecars and report.json rows read the same. Pure: no numpy, no tensorrt.
"""
from __future__ import annotations

from collections.abc import Mapping

# The precisions a check can ask for whose realization the census can show, and the layer precisions that count.
REDUCED = {"fp16": ("fp16",), "bf16": ("bf16",), "int8": ("int8",), "fp8": ("fp8",), "tf32": ("tf32",)}
# Layer precisions, narrowest first (tf32 is fp32 data computed on TF32 tensor cores).
PRECISION_ORDER = {"fp4": 0, "int4": 1, "fp8": 2, "int8": 3, "bf16": 4, "fp16": 4, "tf32": 5, "fp32": 6}


def order(precision: str) -> int:
    """Narrowness of a layer precision (lower: narrower)."""
    return PRECISION_ORDER.get(precision, 9)


def census_text(summary: Mapping | None) -> str:
    """One line: ``fp16 37, fp32 4 of 41 compute layers; 6 movement, 1 fused (I/O fp32)``."""
    if not summary:
        return "-"
    if not summary.get("detailed", True):
        return f"{summary.get('layers', 0)} layers, precisions not recorded (plan built without layer details)"
    compute = summary.get("compute") or {}
    kinds = summary.get("kinds") or {}
    total = sum(compute.values())
    parts = [", ".join(f"{p} {n}" for p, n in compute.items()) + f" of {total} compute layers" if total
             else "no compute layers visible"]
    extra = []
    if kinds.get("movement"):
        extra.append(f"{kinds['movement']} movement")
    if kinds.get("opaque"):
        io = "/".join(summary.get("opaque_io") or ()) or "?"
        extra.append(f"{kinds['opaque']} fused (Myelin, I/O {io}: inside not reported)")
    if kinds.get("integer"):
        extra.append(f"{kinds['integer']} integer")
    return "; ".join(parts + ([", ".join(extra)] if extra else []))


def census_short(summary: Mapping | None, precision: str) -> str:
    """A table cell: compute layers in the requested reduced precision (``fp16 37/41``), else in the most common
    one (``fp32 4/4``); ``fused`` where every layer is a fused node TensorRT does not look into; ``-`` unknown."""
    if not summary or not summary.get("detailed", True):
        return "-"
    compute = summary.get("compute") or {}
    total = sum(compute.values())
    if not total:
        return "fused" if (summary.get("kinds") or {}).get("opaque") else "-"
    shown = precision if precision in REDUCED else max(compute, key=lambda p: (compute[p], -order(p)))
    count = sum(n for p, n in compute.items() if p in REDUCED.get(shown, (shown,)))
    return f"{shown} {count}/{total}"


def shortfall(precision: str, summary: Mapping | None, min_share: float = 0.0) -> str | None:
    """A sentence when a check asked for a reduced ``precision`` that (almost) no layer runs in, else None.

    ``min_share`` 0 asks for at least one layer; 0.5, for half of the compute layers. Nothing is said where
    the census cannot tell: no layer details, or no compute layer visible (all fused), or tf32 without
    tactic names."""
    if precision not in REDUCED or not summary or not summary.get("detailed", True):
        return None
    compute = summary.get("compute") or {}
    total = sum(compute.values())
    if not total:
        return None
    count = sum(n for p, n in compute.items() if p in REDUCED[precision])
    if precision == "tf32" and not count:
        return None  # TF32 shows only in tactic names, which not every TensorRT reports
    if count and count >= min_share * total:
        return None
    word = {"fp16": "half precision", "bf16": "bfloat16", "int8": "int8", "fp8": "fp8", "tf32": "tf32"}[precision]
    widest = max(compute, key=lambda p: (compute[p], -order(p)))
    what = (f"this check compared an engine that runs in {widest}" if not count
            else f"less than the {min_share:.0%} required (--trt-min-precision-share)")
    return (f"{precision} requested, {count} of {total} compute layers run in {word}: {what}. TensorRT may keep "
            "higher-precision kernels where they are faster (small models often run entirely in fp32); test a "
            "model large enough for the precision to matter, or a model that carries the types itself")


def census_change(before: Mapping | None, now: Mapping | None) -> str | None:
    """A sentence when the compute layers' precisions differ from those recorded with the engine golden."""
    if not before or not now or not before.get("detailed", True) or not now.get("detailed", True):
        return None
    if (before.get("compute") or {}) == (now.get("compute") or {}):
        return None
    return f"layer precisions changed since the engine golden was recorded: {census_text(before)} -> {census_text(now)}"
