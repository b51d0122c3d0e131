"""Deterministic model inputs: seeded generation, value ranges per input, and values fitted to the model.

The generator is counter-based (splitmix64 over the element index, keyed by seed and input name)
rather than numpy's Generator, whose streams may change between numpy versions: the same seed gives
bit-identical inputs on any machine, numpy version, and input order.

Default value ranges (override per test with ``input_range``):
floats uniform in [-1, 1); integers uniform in [0, 10); bools 50/50. Where the model's nodes would
reject those values (an index past the end of its table, a shape input that gives no usable shape),
they are regenerated within the bound or derived from the model's declared shapes (see
``_fit_to_model``); values that already fit keep their bits. Shapes follow the rules of ``inputs``.
"""
from __future__ import annotations

import functools
import hashlib
import math
from collections.abc import Mapping

import numpy as np

from pytest_trt.errors import InputError
from pytest_trt.core.dtypes import numpy_dtype
from pytest_trt.core.inputs import check_names, check_shared_dims, concrete_shape, shared_dims, tuple_text
from pytest_trt.core.model import ModelInfo

DEFAULT_FLOAT_RANGE = (-1.0, 1.0)
DEFAULT_INT_RANGE = (0, 10)
MAX_INPUT_BYTES = 2 << 30   # per generated input; a larger one is refused before anything is allocated
_CHUNK = 1 << 22            # elements generated at a time

_GAMMA = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_S11, _S27, _S30, _S31, _S63 = (np.uint64(k) for k in (11, 27, 30, 31, 63))


def random_bits(seed: int, name: str, count: int, start: int = 0) -> np.ndarray:
    """Pseudo-random uint64 values for indices ``start .. start+count-1``; each depends only on (seed, name, index)."""
    key = int.from_bytes(hashlib.sha256(f"{int(seed)}\0{name}".encode()).digest()[:8], "little")
    x = np.arange(start, start + count, dtype=np.uint64)
    t = np.empty_like(x)
    # uint64 arithmetic wraps silently (no overflow warnings for integer arrays), as splitmix64 wants.
    np.multiply(x, _GAMMA, out=x)
    np.add(x, np.uint64(key), out=x)
    np.bitwise_xor(x, np.right_shift(x, _S30, out=t), out=x)
    np.multiply(x, _MIX1, out=x)
    np.bitwise_xor(x, np.right_shift(x, _S27, out=t), out=x)
    np.multiply(x, _MIX2, out=x)
    np.bitwise_xor(x, np.right_shift(x, _S31, out=t), out=x)
    return x


def generate(spec_name: str, dtype: str, shape: tuple[int, ...], seed: int,
             value_range: tuple[float, float] | None = None) -> np.ndarray:
    """One deterministic array for input ``spec_name``.

    Large arrays are made ``_CHUNK`` elements at a time (same bits), so the uint64 and float64
    temporaries stay small next to the array itself.
    """
    np_dtype = numpy_dtype(dtype)
    count = math.prod(int(d) for d in shape)
    if count * np_dtype.itemsize > MAX_INPUT_BYTES:
        raise InputError(f"input {spec_name!r} of shape {tuple_text(shape)} ({dtype}) would take "
                         f"{_gib(count * np_dtype.itemsize)}, more than the {_gib(MAX_INPUT_BYTES)} pytest-trt "
                         "generates per input; give smaller sizes in shapes=, or pass your own arrays with inputs=")
    if np_dtype == np.bool_:
        low = high = None
    elif np_dtype.kind in "iu":
        low, high = value_range if value_range is not None else DEFAULT_INT_RANGE
        low, high = int(low), int(high)
        if high - low <= 0:
            raise InputError(f"input_range for {spec_name!r} is empty ({low}, {high}); give (low, high) with low < high")
        info = np.iinfo(np_dtype)
        if low < info.min or high - 1 > info.max:
            raise InputError(f"input_range ({low}, {high}) for {spec_name!r} does not fit {np_dtype.name} "
                             f"[{info.min}, {info.max}]; narrow the range")
    else:
        low, high = value_range if value_range is not None else DEFAULT_FLOAT_RANGE
        if not float(low) < float(high):
            raise InputError(f"input_range for {spec_name!r} is empty ({low}, {high}); give (low, high) with low < high")
        low, high = float(low), float(high)
    if count <= _CHUNK:
        return _values(random_bits(seed, spec_name, count), np_dtype, low, high).reshape(shape)
    out = np.empty(count, np_dtype)
    for start in range(0, count, _CHUNK):
        n = min(_CHUNK, count - start)
        out[start:start + n] = _values(random_bits(seed, spec_name, n, start), np_dtype, low, high)
    return out.reshape(shape)


def _values(bits: np.ndarray, np_dtype: np.dtype, low, high) -> np.ndarray:
    if np_dtype == np.bool_:
        return (bits >> _S63).astype(np.bool_)
    if np_dtype.kind in "iu":
        values = (bits % np.uint64(high - low)).astype(np.int64) + low
        return values.astype(np_dtype)
    unit = np.right_shift(bits, _S11, out=bits).astype(np.float64)
    unit *= (high - low) / (1 << 53)   # one multiply: (high-low) * k/2**53, same rounding
    unit += low
    return unit.astype(np_dtype)


def make_inputs(model, shapes: Mapping | None = None, seed: int = 0,
                input_range=None) -> dict[str, np.ndarray]:
    """Deterministic inputs for every model input: ``{name: array}``.

    ``model`` is a path or a ``ModelInfo``; ``shapes`` maps input names to shapes for dynamic dims;
    ``input_range`` is ``(low, high)`` for all inputs or ``{name: (low, high)}``.
    """
    info = _model_info(model)
    shapes = dict(shapes or {})
    check_names("shapes", shapes, info)
    ranges = _ranges_by_input(input_range, info)
    shared, fit = shared_dims(info), _fit_candidates(info)
    concrete = {spec.name: concrete_shape(spec, shapes.get(spec.name)) for spec in info.inputs}
    if shared:
        check_shared_dims(shared, concrete, "shapes=")
    arrays = {spec.name: generate(spec.name, spec.dtype, concrete[spec.name], seed, ranges.get(spec.name))
              for spec in info.inputs}
    if fit:
        _fit_to_model(info, fit, arrays, seed, skip=ranges)
    return arrays


def _fit_candidates(info: ModelInfo) -> tuple:
    """The inputs whose generated values the nodes using them may reject, worked out once per model content."""
    fit = _fits.get(info.sha256)
    if fit is None:
        # only integer inputs, and float inputs of rank 0 or 1, can index a table or give a shape
        maybe = [s for s in info.inputs if numpy_dtype(s.dtype).kind in "iu" or (
            numpy_dtype(s.dtype).kind == "f" and len(s.dims) <= 1)]
        uses = _graph_uses(str(info.path), info.sha256)[0] if maybe else {}
        fit = _fits[info.sha256] = tuple(s for s in maybe if s.name in uses)
    return fit


_fits: dict[str, tuple] = {}


def _gib(nbytes: int) -> str:
    gib = nbytes / (1 << 30)
    return f"{gib:,.0f} GiB" if gib >= 100 or gib == int(gib) else f"{gib:.1f} GiB"


def _ranges_by_input(input_range, info: ModelInfo) -> dict:
    if input_range is None:
        return {}
    if isinstance(input_range, Mapping):
        check_names("input_range", input_range, info)
        return dict(input_range)
    return {name: input_range for name in info.input_names}


def _model_info(model) -> ModelInfo:
    if isinstance(model, ModelInfo):
        return model
    from pytest_trt.core.model import load_model_info

    return load_model_info(model)


# Generated values the model's nodes would reject. An integer input that indexes a table (Gather's
# indices, an embedding lookup) must fall inside the indexed dimension; a small input that gives a
# shape (Reshape, Expand, Split sizes, Slice axes, ...) must give one the node can use (Tile repeats and
# ConstantOfShape's shape need nothing: the default range [0, 10) suits them). Values that
# already fit are kept, so inputs that worked before keep their bits; the others are regenerated within
# the bound, or derived from the shapes the model declares, or else the user is asked for them.

_INDEX_AXIS = {"Gather": 1, "GatherElements": 1, "ScatterElements": 1, "Scatter": 1}  # op -> indices slot
_INDEX_ND = {"GatherND": 1, "ScatterND": 1}
_SAME_VALUES = {"Cast", "Identity", "Reshape", "Squeeze", "Unsqueeze", "Flatten", "Transpose"}  # slot 0 keeps values
_REDUCE = {"ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2",
           "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare"}
_ROLE_SLOTS = {  # (op, input slot) pairs whose values the generator checks
    *((op, 0) for op in _SAME_VALUES), *_INDEX_AXIS.items(), *_INDEX_ND.items(), *((op, 1) for op in _REDUCE),
    ("Reshape", 1), ("Expand", 1), ("Split", 1), ("SplitToSequence", 1), ("Slice", 3), ("Slice", 4),
    ("Unsqueeze", 1), ("Squeeze", 1), ("CumSum", 1), ("Range", 2), ("TopK", 1), ("OneHot", 1), ("Resize", 2),
    ("Resize", 3), ("Upsample", 1)}


def _fit_to_model(info: ModelInfo, candidates, arrays: dict, seed: int, skip=()) -> None:
    """Replace, in ``arrays``, generated values that the nodes using ``candidates`` cannot accept.

    Inputs named in ``skip`` (an explicit ``input_range``) are left as given.
    """
    uses, stated = _graph_uses(str(info.path), info.sha256)

    def dims_of(name):
        return arrays[name].shape if name in arrays else stated.get(name)

    for spec in candidates:
        if spec.name in skip:
            continue
        values = arrays[spec.name]
        bound = _index_bound(spec.name, uses, dims_of, values)
        if bound is not None and values.size and (values.min() < 0 or values.max() >= bound):
            if bound <= 0:
                raise InputError(f"input {spec.name!r} indexes a dimension of size {bound}, so no index is "
                                 f"valid; give {spec.name!r} an empty shape or pass the inputs with inputs=")
            values = arrays[spec.name] = generate(spec.name, spec.dtype, values.shape, seed, (0, bound))
        if values.ndim > 1:
            continue
        for node, slot in uses.get(spec.name, ()):
            fitted = _shape_values(node, slot, values, dims_of)
            if isinstance(fitted, str):
                raise InputError(f"input {spec.name!r} gives the {fitted} of {node.op_type} node "
                                 f"{node.name or node.outputs[0]!r}, and the model's declared shapes do not "
                                 f"determine valid values; pass the inputs yourself with inputs={{name: array}}")
            if fitted is not None:
                values = arrays[spec.name] = np.asarray(fitted).astype(values.dtype).reshape(values.shape)


@functools.lru_cache(maxsize=16)
def _graph_uses(path: str, sha256: str) -> tuple[dict, dict]:
    """``({value: [(node, input slot), ...]}, {value: dims the file states})`` for the model's main graph.

    A graph the node reader cannot walk gives no uses: the values stay as generated, and onnxruntime
    reports the file.
    """
    from pytest_trt.core.model import graph_nodes

    graph = graph_nodes(path, sha256)
    if graph is None:
        return {}, {}
    uses: dict[str, list] = {}
    for node in graph.nodes:
        for slot, name in enumerate(node.inputs):
            if (node.op_type, slot) in _ROLE_SLOTS:
                uses.setdefault(name, []).append((node, slot))
    stated = dict(graph.dims)
    stated.update((n.outputs[0], n.attrs["_dims"]) for n in graph.nodes
                  if n.op_type == "Constant" and "_dims" in n.attrs and n.outputs)
    return uses, stated


def _index_bound(name: str, uses: dict, dims_of, values) -> int | None:
    """The size of the smallest dimension that ``name`` indexes (through value-keeping ops), if known."""
    bounds, todo, seen = [], [name], set()
    while todo:
        current = todo.pop()
        seen.add(current)
        for node, slot in uses.get(current, ()):
            data = dims_of(node.inputs[0])
            if node.op_type in _SAME_VALUES and slot == 0:
                todo.extend(o for o in node.outputs[:1] if o not in seen)
            elif data is None:
                continue
            elif _INDEX_AXIS.get(node.op_type) == slot:
                bounds.append(_dim_at(data, node.attrs.get("axis", 0)))
            elif _INDEX_ND.get(node.op_type) == slot and values.ndim:
                start = node.attrs.get("batch_dims", 0)
                bounds.extend(data[start:start + values.shape[-1]])
    known = [b for b in bounds if isinstance(b, int) and b >= 0]
    return min(known) if known else None


def _dim_at(dims, axis: int):
    return dims[axis] if -len(dims) <= axis < len(dims) else None


def _static(dims) -> bool:
    return dims is not None and all(isinstance(d, int) and d >= 0 for d in dims)


def _shape_values(node, slot: int, values, dims_of):
    """None when ``values`` suit input ``slot`` of ``node``; else values that do, or a str naming the
    role when the model's shapes do not determine any."""
    op, n, v = node.op_type, values.size, values.ravel()
    if n == 0 and op != "Reshape":   # an empty axes/sizes/split input means "none given"
        return None
    data = dims_of(node.inputs[0]) if node.inputs else None
    out = dims_of(node.outputs[0]) if node.outputs else None
    rank = len(data) if data is not None else None
    if op == "Reshape" and slot == 1:
        if _static(data) and _reshape_ok(v.tolist(), data, node.attrs.get("allowzero", 0)):
            return None
        if _static(out) and len(out) == n:
            return out
        if _static(data) and n:
            return (*data[:n - 1], math.prod(data[n - 1:])) if n <= rank else (*data, *(1,) * (n - rank))
        return "target shape"
    if op == "Expand" and slot == 1:
        if _static(data) and _broadcasts(v.tolist(), data):
            return None
        if _static(out) and len(out) == n and (not _static(data) or _broadcasts(out, data)):
            return out
        return np.ones(n)
    if op in ("Split", "SplitToSequence") and slot == 1:
        size = _dim_at(data, node.attrs.get("axis", 0)) if data is not None else None
        if values.ndim == 0:
            return None if v[0] >= 1 else np.ones(1)
        if isinstance(size, int) and size >= 0 and (v >= 0).all() and v.sum() == size:
            return None
        if not isinstance(size, int) or size < 0 or not n:
            return "split sizes"
        return [size // n] * (n - 1) + [size - size // n * (n - 1)]
    if op == "Slice" and slot == 3 or op in _REDUCE and slot == 1 or op == "Unsqueeze" and slot == 1:
        if op == "Unsqueeze":
            rank = rank + n if rank is not None else n
        if rank is not None and _distinct_axes(v.tolist(), rank):
            return None
        return np.arange(n) if rank is not None and n <= rank else "axes"
    if op == "Squeeze" and slot == 1:
        ones = [i for i, d in enumerate(data or ()) if d == 1]
        if _static(data) and _distinct_axes(v.tolist(), rank) and all(data[a] == 1 for a in v.tolist()):
            return None
        return ones[:n] if _static(data) and len(ones) >= n else "axes"
    if op == "CumSum" and slot == 1:
        return None if rank is not None and -rank <= v[0] < rank else np.zeros(1)
    if (op == "Slice" and slot == 4) or (op == "Range" and slot == 2):
        return None if (v != 0).all() else np.where(v == 0, 1, v)
    if op == "TopK" and slot == 1:
        size = _dim_at(data, node.attrs.get("axis", -1)) if data is not None else None
        if not isinstance(size, int) or size < 0:
            return "k"
        return None if 0 <= v[0] <= size else [min(1, size)]
    if op == "OneHot" and slot == 1:
        depth = _dim_at(out, node.attrs.get("axis", -1)) if _static(out) else None
        return None if (v > 0).all() else [depth or DEFAULT_INT_RANGE[1]]
    if op == "Resize" and slot == 2 or op == "Upsample" and slot == 1:
        if n == 0 or (v >= (1 if op == "Upsample" else 0)).all() and (v > 0).all():
            return None
        if _static(out) and _static(data) and len(out) == len(data) == n and all(data):
            return np.array(out, np.float64) / np.array(data, np.float64)
        return np.ones(n)
    if op == "Resize" and slot == 3:
        if n == 0 or (v > 0).all():
            return None
        return out if _static(out) and len(out) == n else data if _static(data) and rank == n else "sizes"
    return None


def _reshape_ok(shape: list, data, allowzero: int) -> bool:
    known, infer = 1, 0
    for i, d in enumerate(shape):
        if d == -1:
            infer += 1
        elif d == 0 and not allowzero:
            if i >= len(data):
                return False
            known *= data[i]
        elif d < 0:
            return False
        else:
            known *= d
    total = math.prod(data)
    return infer == 0 and known == total or infer == 1 and known > 0 and total % known == 0


def _broadcasts(shape, data) -> bool:
    return all(a >= 0 and (a == b or a == 1 or b == 1) for a, b in zip(reversed(list(shape)), reversed(data)))


def _distinct_axes(axes: list, rank: int) -> bool:
    normal = [a + rank if a < 0 else a for a in axes]
    return all(0 <= a < rank for a in normal) and len(set(normal)) == len(normal)
