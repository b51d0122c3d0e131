"""Inputs a user gives (arrays, Python lists, an ``.npz`` path) checked against the model, and the shape
rules every input follows: a concrete shape for each input, names the model knows, symbolic dims that agree.

Generated inputs (``make_inputs``) are in ``generated_inputs``, which follows these same rules.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from pytest_trt.errors import InputError
from pytest_trt.core.dtypes import numpy_dtype
from pytest_trt.core.model import ModelInfo, TensorSpec


def concrete_shape(spec: TensorSpec, given=None) -> tuple[int, ...]:
    """The shape to generate for ``spec``: its static dims, with dynamic ones taken from ``given``.

    ``given`` is a shape tuple or a ``{"min", "opt", "max"}`` mapping (the "opt" shape is used).
    """
    if isinstance(given, Mapping):
        given = given["opt"]
    if given is None:
        dynamic = [(i, d) for i, d in enumerate(spec.dims) if not isinstance(d, int) or d < 0]
        if dynamic:
            i, dim = dynamic[0]
            example = tuple(d if isinstance(d, int) and d >= 0 else "<size>" for d in spec.dims)
            label = f" ({dim!r})" if isinstance(dim, str) else ""
            raise InputError(f"input {spec.name!r} dim {i}{label} is dynamic and no shape was given; "
                             f"pass shapes={{{spec.name!r}: {tuple_text(example)}}} (a marker or function argument)")
        return tuple(int(d) for d in spec.dims)
    given = tuple(given)
    if len(given) != len(spec.dims):
        raise InputError(f"shapes[{spec.name!r}] = {tuple_text(given)} has {len(given)} dims but input "
                         f"{spec.describe()} has {len(spec.dims)}; give one size per dim")
    for i, (want, have) in enumerate(zip(spec.dims, given)):
        if isinstance(want, int) and want >= 0 and want != have:
            raise InputError(f"shapes[{spec.name!r}] gives dim {i} = {have} but the model fixes it at {want} "
                             f"(input {spec.describe()}); use {want}")
    return tuple(int(d) for d in given)


def shared_dims(info: ModelInfo) -> tuple:
    """The symbolic dims that more than one input names, with where: ``((dim, ((input, axis), ...)), ...)``.

    Worked out once per model content."""
    shared = _shared.get(info.sha256)
    if shared is None:
        places: dict[str, list] = {}
        for spec in info.inputs:
            for i, dim in enumerate(spec.dims):
                if isinstance(dim, str) and dim:
                    places.setdefault(dim, []).append((spec.name, i))
        shared = _shared[info.sha256] = tuple((dim, tuple(p)) for dim, p in places.items() if len(p) > 1)
    return shared


_shared: dict[str, tuple] = {}


def prepare_user_inputs(inputs, info: ModelInfo) -> dict[str, np.ndarray]:
    """Validate inputs a user gave (dict of arrays, one array, or an ``.npz`` path) against the model."""
    if isinstance(inputs, (str, os.PathLike)):
        inputs = load_npz_inputs(inputs)
    elif not isinstance(inputs, Mapping):
        if len(info.inputs) != 1:
            raise InputError(f"a single array was given but the model has {len(info.inputs)} inputs "
                             f"({_names(info.inputs)}); pass a dict {{name: array}}")
        inputs = {info.inputs[0].name: inputs}
    check_names("inputs", inputs, info)
    missing = [s.name for s in info.inputs if s.name not in inputs]
    if missing:
        raise InputError(f"inputs lack {', '.join(map(repr, missing))}; the model needs "
                         f"{_names(info.inputs)}")
    prepared = {}
    for spec in info.inputs:
        value = inputs[spec.name]
        python = isinstance(value, _PYTHON_VALUES) and not isinstance(value, np.generic)  # np.float64 is a float
        array = _from_python(spec, value) if python else np.asarray(value)
        if array.dtype != numpy_dtype(spec.dtype):
            raise InputError(f"input {spec.name!r} has dtype {array.dtype.name} but the model expects "
                             f"{spec.dtype}; convert it with .astype(np.{spec.dtype})")
        if array.ndim != len(spec.dims) or any(
                isinstance(w, int) and w >= 0 and w != h for w, h in zip(spec.dims, array.shape)):
            raise InputError(f"input {spec.name!r} has shape {tuple_text(array.shape)} but the model "
                             f"expects {spec.describe()}; reshape it to match")
        prepared[spec.name] = array
    shared = shared_dims(info)
    if shared:
        check_shared_dims(shared, {name: a.shape for name, a in prepared.items()}, "inputs=")
    return prepared


def check_shared_dims(shared: tuple, shapes: Mapping, what: str) -> None:
    """Inputs that share a symbolic dim (both 'batch') must agree on its size, as ONNX requires."""
    for dim, places in shared:
        (first, i), size = places[0], shapes[places[0][0]][places[0][1]]
        for name, j in places[1:]:
            if shapes[name][j] != size:
                who = f"input {name!r}" if name == first else f"inputs {first!r} and {name!r}"
                raise InputError(f"{what} gives {who} different sizes for the dim {dim!r} they share: "
                                 f"{size} ({first} dim {i}) and {shapes[name][j]} ({name} dim {j}); "
                                 "give both the same size")


# Python values (lists, nested lists, numbers) take the input's declared dtype when their values fit it:
# ints and bools exactly into integer, bool and float dtypes, floats into float dtypes (rounded to the
# nearest value, but never overflowing to inf). Arrays keep their dtype and must match.
_PYTHON_VALUES = (list, tuple, int, float)
_PYTHON_KINDS = {"U": "strings", "S": "bytes", "c": "complex numbers",
                 "O": "Python objects (None, mixed types, or ints beyond 64 bits)"}


def _from_python(spec: TensorSpec, value) -> np.ndarray:
    target = numpy_dtype(spec.dtype)
    fix = f"or pass an array of dtype {spec.dtype}"
    try:
        array = np.asarray(value)
    except ValueError:
        raise InputError(f"input {spec.name!r} is a nested list whose rows differ in length; give equal rows, "
                         f"{fix}") from None
    if array.size == 0:
        return array.astype(target)
    kind = array.dtype.kind
    if kind == "b":
        kind, array = "i", array.astype(np.int64)
    if kind not in "iuf":
        what = _PYTHON_KINDS.get(kind, f"{array.dtype.name} values")
        raise InputError(f"input {spec.name!r} is a list of {what}, which do not convert to {spec.dtype}; "
                         f"give numbers, {fix}")
    if kind == "f" and target.kind != "f":
        raise InputError(f"input {spec.name!r} is a list of floats but the model expects {spec.dtype}; "
                         f"give {'True/False' if target == np.bool_ else 'ints'}, {fix}")
    with np.errstate(over="ignore", invalid="ignore"):
        converted = array.astype(target)
    if kind == "f":
        bad = np.isfinite(array) & ~np.isfinite(converted)
        what = "beyond the range of"
    elif target.kind in "iu":   # ints of either sign compare exactly with the limits
        limits = np.iinfo(target)
        bad = (array < limits.min) | (array > limits.max)
        what = "that do not fit"
    elif target == np.bool_:
        bad = (array != 0) & (array != 1)
        what = "that do not fit"
    else:   # ints into a float dtype: Python compares int with float exactly
        bad = converted.astype(np.float64).astype(object) != array.astype(object)
        what = "that are not exact in"
    if bad.any():
        example = array[bad].ravel()[0].item()
        raise InputError(f"input {spec.name!r} has values {what} {spec.dtype} (e.g. {example!r}); give values "
                         f"{spec.dtype} can hold, {fix}")
    return converted


def load_npz_inputs(path) -> dict[str, np.ndarray]:
    """Inputs from an ``.npz`` file (never unpickled)."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            if f.read(4) != b"PK\x03\x04":   # else np.load guesses "pickled data", which misleads
                raise InputError(f"inputs file {str(path)!r} is not an .npz file (no zip header); "
                                 "save one with np.savez") from None
        with np.load(path, allow_pickle=False) as data:
            return {name: data[name] for name in data.files}
    except FileNotFoundError:
        raise InputError(f"inputs file {str(path)!r} does not exist; save one with np.savez") from None
    except InputError:
        raise
    except (ValueError, OSError) as exc:
        raise InputError(f"inputs file {str(path)!r} is not a readable .npz without pickle ({exc}); "
                         "save it with np.savez from plain arrays") from None


def check_names(what: str, mapping: Mapping, info: ModelInfo) -> None:
    unknown = [k for k in mapping if k not in info.input_names]
    if unknown:
        raise InputError(f"{what} names {', '.join(map(repr, unknown))}, which is not an input of "
                         f"{info.path.name}; its inputs are: {_names(info.inputs)}")


def _names(specs) -> str:
    return ", ".join(s.describe() for s in specs)


def tuple_text(values) -> str:
    values = tuple(values)
    inner = ", ".join(str(v) for v in values)
    return f"({inner},)" if len(values) == 1 else f"({inner})"
