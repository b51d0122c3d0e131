"""Where an engine diverges from the reference: pure decisions of a localization.

A localization compares the intermediate tensors of the reference and the engine under test in the order the
ONNX graph computes them (ONNX requires nodes in topological order), each under the check's tolerance for the
precision (the "budget" of a tensor is the largest share of its bound any element uses; above 1 it diverges).
This module decides, without running anything:

- which tensors are worth observing (``observable``): every node output except constants;
- which of them one pass holds (``plan_passes``): passes are sized to a byte budget from the tensors' shapes, so
  peak memory is one pass's tensors, never the sum of all intermediates;
- the first diverging node of one sample (``first_divergence``) and how often each node is the first over
  several samples (``tally``);
- the path along which the error grows from that node to a failing output (``path_to``), and two landmarks on
  the way: where NaN/Inf first appear (``first_nonfinite``: an overflow) and the node that multiplies the error
  it receives the most (``largest_jump``: a node whose inputs were close and whose output is far off).

Running the sides is ``core.localize``'s; the text and JSON of a ``Localization`` are ``reports.localization``'s.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from pytest_trt.core.records import Record

SKIPPED_OPS = frozenset({"Constant"})   # their values are the model's, never computed differently
PATH_ROWS = 12                          # rows of the error-growth table (the middle is elided beyond)


class Tensor(Record):
    """One observable tensor: its name and the ONNX node producing it, in graph order."""

    __slots__ = ("name", "node", "op", "order")

    def __init__(self, name: str, node: str, op: str, order: int):
        self.name = name
        self.node = node      # the ONNX node's name ("<op>#<index>" when the model names none)
        self.op = op
        self.order = order    # position of the producing node in the graph


class TensorError(Record):
    """How one tensor compared in one sample.

    ``status``: ``compared`` (values compared), ``fused`` (the engine computes it inside a fused layer and does
    not expose it), ``absent`` (not in the engine's network, e.g. removed by constant folding), ``not float``
    (integer or bool tensors: shapes and indices, compared exactly where both sides have them)."""

    __slots__ = ("name", "node", "op", "order", "status", "max_abs", "share", "mismatches", "size", "passed",
                 "atol", "rtol", "problem", "layer", "fused_in_engine", "nonfinite")

    def __init__(self, tensor: Tensor, status: str, max_abs: float | None = None, share: float | None = None,
                 mismatches: int = 0, size: int = 0, passed: bool = True, atol: float | None = None,
                 rtol: float | None = None, problem: str | None = None, nonfinite: int = 0):
        self.name, self.node, self.op, self.order = tensor.name, tensor.node, tensor.op, tensor.order
        self.status = status
        self.max_abs = max_abs        # greatest |engine - reference|
        self.share = share            # greatest share of an element's bound (the tensor's budget used; > 1 fails)
        self.mismatches = mismatches  # elements outside their bound, NaN/Inf mismatches included
        self.size = size
        self.passed = passed
        self.atol, self.rtol = atol, rtol
        self.problem = problem        # "shape"/"dtype" where the sides disagree on more than values
        self.nonfinite = nonfinite    # elements NaN or Inf on one side only (overflow), among the mismatches
        self.layer: str | None = None  # the engine layer computing it in the engine under test, where known
        self.fused_in_engine = False   # fused there; observed only because the localization build exposed it

    @property
    def diverged(self) -> bool:
        return self.status == "compared" and not self.passed


class Localization(Record):
    """The result of localizing one check: per sample the first diverging node, and the first sample's table.

    ``first`` is the node the most samples name first (ties: the earliest in the graph); ``path`` the tensors
    from its output to ``failing_output`` with their errors (first sample that diverged there)."""

    __slots__ = ("precision", "engine", "reference", "method", "fusions_broken", "preview", "samples", "firsts",
                 "first", "inputs", "path", "failing_output", "tensors", "nonfinite", "jump", "counts", "reproduced", "peak_bytes", "passes",
                 "seconds", "notes")

    def __init__(self, precision: str, engine: str, reference: str, method: str, fusions_broken: bool,
                 preview: bool = False):
        self.precision = precision
        self.engine = engine                  # label of the engine side ("tensorrt 8.6.1", "onnxruntime (preview)")
        self.reference = reference
        self.method = method                  # how the engine exposed its tensors (one sentence)
        self.fusions_broken = fusions_broken  # exposing them changed the engine (marked outputs, mark_debug)
        self.preview = preview                # the engine side is a CPU preview, not a TensorRT result
        self.samples: list[int] = []          # the seeds localized (-1: the test's own inputs)
        self.firsts: list[TensorError | None] = []  # per sample: the first diverging tensor, or None
        self.first: TensorError | None = None
        self.inputs: list[tuple[str, TensorError | None]] = []  # the first node's inputs (None: graph input, weight)
        self.nonfinite: TensorError | None = None  # the first tensor with NaN/Inf on one side only (first sample)
        self.jump: tuple[TensorError, float] | None = None  # the tensor whose share grew most over its inputs'
        self.path: list[TensorError] = []
        self.failing_output: str | None = None
        self.tensors: list[TensorError] = []  # every observable tensor of the first sample, graph order
        self.counts: dict[str, int] = {}      # status -> tensors (first sample)
        self.reproduced: bool | None = None   # the engine's outputs in the localization run still fail
        self.peak_bytes = 0                   # most bytes of tensors held at once (both sides)
        self.passes = 0                       # runs of each side per sample
        self.seconds = 0.0
        self.notes: list[str] = []

    @property
    def found(self) -> bool:
        return self.first is not None

    def tally(self) -> list[tuple[str, str, int]]:
        """(node, op, samples naming it first), most often first; samples without divergence are left out."""
        return tally(self.firsts)


def node_label(name: str, op: str, index: int) -> str:
    return name or f"{op}#{index}"


def observable(nodes: Sequence, exclude: Iterable[str] = ()) -> list[Tensor]:
    """The tensors a localization observes, in graph order: every output of every node but ``SKIPPED_OPS``,
    without ``exclude`` (graph inputs, initializers). ``nodes`` have ``op_type``, ``name``, ``outputs``."""
    excluded = set(exclude)
    tensors, seen = [], set()
    for index, node in enumerate(nodes):
        if node.op_type in SKIPPED_OPS:
            continue
        label = node_label(node.name, node.op_type, index)
        for output in node.outputs:
            if output and output not in excluded and output not in seen:
                seen.add(output)
                tensors.append(Tensor(output, label, node.op_type, index))
    return tensors


def plan_passes(names: Sequence[str], sizes: Mapping[str, int | None], budget: int) -> list[list[str]]:
    """``names`` in graph order cut into passes whose tensors (``sizes``: bytes, both sides together) fit ``budget``;
    a tensor larger than ``budget`` gets a pass of its own. A size not known before running (data-dependent shapes)
    counts as the largest known one (or a sixteenth of the budget where none is known)."""
    known = [v for v in sizes.values() if v]
    fallback = max(known) if known else max(budget // 16, 1)
    passes, current, held = [], [], 0
    for name in names:
        size = sizes.get(name) or fallback
        if current and held + size > budget:
            passes.append(current)
            current, held = [], 0
        current.append(name)
        held += size
    if current:
        passes.append(current)
    return passes


def first_divergence(errors: Iterable[TensorError]) -> TensorError | None:
    """The first tensor in graph order whose values diverge (every tensor before it passed or was not seen)."""
    return min((e for e in errors if e.diverged), key=lambda e: e.order, default=None)


def tally(firsts: Iterable[TensorError | None]) -> list[tuple[str, str, int]]:
    counts: dict[str, list] = {}
    for e in firsts:
        if e is not None:
            entry = counts.setdefault(e.node, [e.op, 0, e.order])
            entry[1] += 1
    return [(node, op, n) for node, (op, n, _) in sorted(counts.items(), key=lambda kv: (-kv[1][1], kv[1][2]))]


def pick_first(firsts: Sequence[TensorError | None]) -> TensorError | None:
    """The node most samples name first (ties: earliest in the graph), as the first sample that named it saw it."""
    ranked = tally(firsts)
    if not ranked:
        return None
    node = ranked[0][0]
    return next(e for e in firsts if e is not None and e.node == node)


def path_to(start: str, output: str, nodes: Sequence, errors: Mapping[str, TensorError]) -> list[TensorError]:
    """The tensors from ``start`` to ``output`` along which the error grows: walking back from ``output``, each
    step takes the input of the producing node that descends from ``start`` and used most of its budget.
    Tensors without an error record (graph inputs, constants) are not steps. Empty when ``output`` does not
    depend on ``start``."""
    producer, consumers = {}, {}
    for node in nodes:
        for o in node.outputs:
            producer[o] = node
        for i in node.inputs:
            consumers.setdefault(i, []).append(node)
    descendants, stack = {start}, [start]
    while stack:  # every tensor computed from start
        for node in consumers.get(stack.pop(), ()):
            for o in node.outputs:
                if o and o not in descendants:
                    descendants.add(o)
                    stack.append(o)
    if output not in descendants:
        return []
    path, current, guard = [], output, len(producer) + 1
    while guard:
        guard -= 1
        if current in errors:
            path.append(errors[current])
        if current == start:
            break
        node = producer.get(current)
        steps = [i for i in (node.inputs if node is not None else ()) if i in descendants]
        if not steps:
            break
        current = max(steps, key=lambda i: (errors[i].share or 0.0) if i in errors else -1.0)
    path.reverse()
    return path


def first_nonfinite(errors: Iterable[TensorError]) -> TensorError | None:
    """The first tensor in graph order with NaN or Inf on one side only: where an overflow shows."""
    return min((e for e in errors if e.status == "compared" and e.nonfinite), key=lambda e: e.order, default=None)


def largest_jump(errors: Mapping[str, TensorError], nodes: Sequence) -> tuple[TensorError, float] | None:
    """The diverging tensor whose share of its budget grew most over the largest share among its node's inputs
    (graph inputs and weights count as 0; 1% is the floor), with that factor. A node that only carries or
    scales an error it received has a small factor; the node that loses the precision has a large one."""
    best = None
    for e in errors.values():
        if not e.diverged or e.share is None:
            continue
        node = nodes[e.order]
        shares = [errors[i].share or 0.0 for i in node.inputs if i in errors and errors[i].status == "compared"]
        factor = e.share / max(max(shares, default=0.0), 0.01)
        if best is None or factor > best[1]:
            best = (e, factor)
    return best


def shorten(path: list[TensorError], rows: int = PATH_ROWS, keep: Iterable[str] = ()) -> list[TensorError | None]:
    """``path`` with its middle replaced by None (one per gap) where it has more than ``rows`` steps; the tensors
    named in ``keep`` (landmarks) stay."""
    if len(path) <= rows:
        return list(path)
    head = rows // 2
    tail = len(path) - (rows - head - 1)
    kept = set(keep)
    shown = [i for i, e in enumerate(path) if i < head or i >= tail or e.name in kept]
    out, last = [], -1
    for i in shown:
        if i != last + 1:
            out.append(None)
        out.append(path[i])
        last = i
    return out
