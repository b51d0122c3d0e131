"""A ``Localization`` as words: the failure message's lines, the full table (artifact) and report.json's data."""
from __future__ import annotations

from pytest_trt.comparison.report import budget_text, column, size_text
from pytest_trt.core.localization import Localization, TensorError, shorten


def headline(loc: Localization) -> str:
    """``first diverging node: <name> (<op>)`` with how many samples agree, or why none was found."""
    if loc.first is None:
        return f"first diverging node: none found ({_why_none(loc)})"
    n = len(loc.samples)
    agree = next(count for node, _, count in loc.tally() if node == loc.first.node)
    samples = f"; first in {agree} of {n} samples" if n > 1 else ""
    return f"first diverging node: {loc.first.node} ({loc.first.op}){samples}"


def message(loc: Localization) -> str:
    """The lines a failed check's message carries: headline, the node's error, the short path, how it ran."""
    lines = [headline(loc)]
    if loc.first is not None:
        lines.append(f"  {_error_words(loc.first)}")
        inputs = [f"{name} {_short_error(e)}" for name, e in loc.inputs]
        if inputs:
            lines.append(f"  its inputs: {', '.join(inputs)}")
        if loc.nonfinite is not None and loc.nonfinite.name != loc.first.name:
            e = loc.nonfinite
            lines.append(f"  first NaN/Inf: {e.node} ({e.op}), tensor {e.name!r}: {e.nonfinite} of {e.size} elements "
                         "NaN or Inf on one side only (overflow?)")
        if loc.jump is not None and loc.jump[0].name != loc.first.name and loc.jump[1] >= 10:
            e, factor = loc.jump
            lines.append(f"  largest jump: {e.node} ({e.op}), tensor {e.name!r}: {_budget(e)} of its budget, "
                         f"{factor:.0f}x its inputs' largest share (the first node may only carry an error it got)")
        others = [f"{node} ({op}) {count}" for node, op, count in loc.tally()[1:]]
        if others:
            lines.append(f"  other samples first diverged at: {', '.join(others)}")
        if loc.path:
            lines.append(f"  error along the path to output {loc.failing_output!r}:")
            keep = [e.name for e in (loc.nonfinite, loc.jump[0] if loc.jump else None) if e is not None]
            lines.extend("    " + row for row in path_rows(loc.path, keep))
    lines.append(f"  {how(loc)}")
    lines.extend(f"  note: {n}" for n in loc.notes)
    return "\n".join(lines)


def how(loc: Localization) -> str:
    c = loc.counts
    parts = [f"{c.get('compared', 0)} tensors compared"]
    for status in ("fused", "absent"):
        if c.get(status):
            parts.append(f"{c[status]} {status}")
    fused_here = sum(1 for e in loc.tensors if e.fused_in_engine)
    if fused_here:
        parts.append(f"{fused_here} of them fused in the engine under test")
    side = f"{loc.engine} {loc.precision}" + (" (CPU preview, not a TensorRT result)" if loc.preview else "")
    broken = "; exposing them broke the engine's fusions" if loc.fusions_broken else ""
    repro = ("" if loc.reproduced is None else
             "; its outputs fail there as well" if loc.reproduced else "; its outputs PASS there")
    return (f"localized with {side} through {loc.method}{broken}{repro}: {', '.join(parts)}; "
            f"{len(loc.samples)} sample(s), {loc.passes} pass(es) each, {size_text(loc.peak_bytes)} held at "
            f"most, {loc.seconds:.2f} s")


def path_rows(path: list[TensorError], keep=()) -> list[str]:
    table = [("node", "op", "tensor", "max abs", "budget")]
    for e in shorten(path, keep=keep):
        if e is None:
            table.append(("...", "", "", "", ""))
        else:
            table.append((e.node, e.op, e.name, _max_abs(e), _budget(e)))
    widths = [min(max(len(row[i]) for row in table), 48) for i in range(5)]
    return ["  ".join(cell[:w].ljust(w) for cell, w in zip(row, widths)).rstrip() for row in table]


def full_table(loc: Localization) -> str:
    """Every observed tensor of the first sample in graph order (the artifact ``localization.txt``)."""
    lines = [message(loc), "", "every tensor, graph order (first sample):"]
    table = [("node", "op", "tensor", "status", "max abs", "budget", "engine layer")]
    for e in loc.tensors:
        status = e.status + (" (fused in engine)" if e.fused_in_engine else "")
        mark = " <- first" if loc.first is not None and e.name == loc.first.name else ""
        table.append((e.node, e.op, e.name, status, _max_abs(e),
                      _budget(e) + mark, e.layer or ""))
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    lines.extend("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in table)
    return "\n".join(lines) + "\n"


def as_json(loc: Localization) -> dict:
    def error(e):
        return None if e is None else {k: getattr(e, k) for k in TensorError.__slots__}

    return {"headline": headline(loc), "precision": loc.precision, "engine": loc.engine, "preview": loc.preview,
            "method": loc.method, "fusions_broken": loc.fusions_broken, "reproduced": loc.reproduced,
            "samples": loc.samples, "first": error(loc.first),
            "first_by_sample": [e.node if e is not None else None for e in loc.firsts],
            "tally": [{"node": n, "op": op, "samples": c} for n, op, c in loc.tally()],
            "inputs": [{"tensor": n, "error": error(e)} for n, e in loc.inputs],
            "first_nonfinite": error(loc.nonfinite),
            "largest_jump": None if loc.jump is None else {"tensor": error(loc.jump[0]), "factor": loc.jump[1]},
            "failing_output": loc.failing_output, "path": [error(e) for e in loc.path],
            "counts": loc.counts, "passes": loc.passes, "peak_bytes": loc.peak_bytes, "seconds": loc.seconds,
            "notes": loc.notes, "tensors": [error(e) for e in loc.tensors]}


def _max_abs(e: TensorError) -> str:
    if e.max_abs is None:
        return "-"
    return column(e.max_abs).strip() + (f" +{e.nonfinite} NaN/Inf" if e.nonfinite else "")


def _budget(e: TensorError) -> str:
    return budget_text(e.share)

def _error_words(e: TensorError) -> str:
    what = f"tensor {e.name!r}: max abs error {column(e.max_abs).strip()} (finite elements), {_budget(e)} of its budget"
    if e.atol is not None:
        what += f" (atol {e.atol:g}, rtol {e.rtol:g})"
    if e.mismatches:
        what += f"; {e.mismatches} of {e.size} elements outside"
    if e.nonfinite:
        what += f", {e.nonfinite} of them NaN or Inf on one side only (overflow?)"
    if e.problem:
        what += f"; the sides differ in {e.problem}"
    if e.layer:
        what += f"; engine layer {e.layer!r}"
    if e.fused_in_engine:
        what += " (fused in the engine under test: observed only in the localization build)"
    return what


def _short_error(e: TensorError | None) -> str:
    if e is None:
        return "(graph input or weight: not compared)"
    if e.status != "compared":
        return f"({e.status})"
    return f"({column(e.max_abs).strip()}, {_budget(e)})"


def _why_none(loc: Localization) -> str:
    if not loc.counts.get("compared"):
        return "the engine exposed none of the model's tensors"
    return "every exposed intermediate tensor is within its tolerance"
