"""Decisions around a TensorRT build and run, as pure functions: no tensorrt, no GPU needed.

The adapter (``backend``, ``build``, ``runtime``) only carries these decisions out. Here live:
- ``Flavor``: what a TensorRT release can do (8.6, 10, 11, TensorRT-RTX), from its name and version;
- ``realize_precision``: how a declared precision becomes builder flags or a converted model;
- ``plan_profiles``: optimization profiles from the marker's ``shapes`` and the values of shape-tensor inputs
  (``shape_tensor_inputs`` finds those in the ONNX graph);
- dtype mapping, ``engine_inputs`` and ``plan_outputs``: host arrays and device buffers for one run,
  int64 narrowing on 8.6.
Builder options (workspace, optimization level, tactic sources, compatibility) are validated where they are
given, into ``pytest_trt.core.build_options.BuildOptions``; ``build.build_plan`` sets them on the builder.
"""
from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence

from pytest_trt.backends.tensorrt import FLAVORS
from pytest_trt.errors import BackendError, InputError


@dataclasses.dataclass(frozen=True)
class Flavor:
    """One TensorRT release's capabilities; every version difference is decided here."""

    name: str                  # "tensorrt" or "tensorrt_rtx"
    version: tuple[int, ...]

    @classmethod
    def parse(cls, name: str, version: str) -> "Flavor":
        if name not in FLAVORS:
            raise ValueError(f"unknown TensorRT flavor {name!r}; expected one of {FLAVORS}")
        numbers = tuple(int(x) for x in re.findall(r"\d+", version)[:4])
        if not numbers:
            raise ValueError(f"cannot read a version from {version!r}")
        return cls(name, numbers)

    @property
    def label(self) -> str:
        return f"{'TensorRT-RTX' if self.is_rtx else 'TensorRT'} {'.'.join(map(str, self.version))}"

    @property
    def is_rtx(self) -> bool:
        return self.name == "tensorrt_rtx"

    @property
    def strongly_typed_only(self) -> bool:
        """No precision builder flags: reduced precision must be written into the ONNX model."""
        return self.is_rtx or self.version[0] >= 11

    @property
    def needs_explicit_batch_flag(self) -> bool:
        return not self.is_rtx and self.version[0] < 10

    @property
    def has_progress_monitor(self) -> bool:
        return self.is_rtx or self.version[0] >= 10

    @property
    def has_timing_cache(self) -> bool:
        return not self.is_rtx  # TensorRT-RTX keeps the API, but its timing-cache operations are no-ops

    @property
    def observation(self) -> str:
        """How a localization exposes intermediate tensors (``build.mark_tensors``): ``unfused`` debug tensors
        where ``mark_unfused_tensors_as_debug_tensors`` exists (10.12+, 11, RTX; fusions kept), ``debug``
        (``mark_debug``, 10.0-10.11; those tensors are not fused), ``outputs`` (8.6: marked outputs, fusions broken)."""
        if self.is_rtx or self.version >= (10, 12):
            return "unfused"
        return "debug" if self.version[0] >= 10 else "outputs"

    @property
    def narrows_int64(self) -> bool:
        """8.6's ONNX parser turns int64 I/O into int32 (the engine's I/O dtype says so)."""
        return not self.is_rtx and self.version[0] < 10

    @property
    def precision_flags(self) -> dict[str, str]:
        """Declared precision -> builder flag, where this release realizes precision by flags."""
        if self.strongly_typed_only:
            return {}
        flags = {"fp16": "FP16", "int8": "INT8", "fp8": "FP8"}
        if self.version >= (9,):
            flags["bf16"] = "BF16"
        return flags

    @property
    def removed_tactic_sources(self) -> tuple[str, ...]:
        """Tactic sources this release no longer has: TensorRT 11 removed cuBLAS, cuBLASLt and cuDNN."""
        return ("CUBLAS", "CUBLAS_LT", "CUDNN") if not self.is_rtx and self.version[0] >= 11 else ()

    @property
    def hardware_compatibility_levels(self) -> tuple[str, ...]:
        """Hardware compatibility levels besides "none": AMPERE_PLUS since 8.6; SAME_COMPUTE_CAPABILITY is in the
        Python bindings from TensorRT 10.9 (absent from 10.0-10.8)."""
        if self.is_rtx:
            return ("ampere_plus", "same_compute_capability")
        levels = ("ampere_plus",) if self.version >= (8, 6) else ()
        return levels + (("same_compute_capability",) if self.version >= (10, 9) else ())

    def option_problem(self, options) -> str | None:
        """One sentence when ``options`` (a BuildOptions) ask for something this release does not have."""
        fix = ("remove it from the build options (--trt-build-options, the marker's or build_engine()'s build=)")
        removed = [s for s in (options.tactic_sources or ()) if s in self.removed_tactic_sources]
        if removed:
            return (f"{self.label} has no tactic source {', '.join(removed)} (TensorRT 11 removed cuBLAS, cuBLASLt "
                    f"and cuDNN tactics); {fix}")
        level = options.hardware_compatibility
        if level != "none" and level not in self.hardware_compatibility_levels:
            since = "10.9" if level == "same_compute_capability" else "8.6"
            return (f"{self.label} has no hardware_compatibility={level} (TensorRT's Python bindings have it from "
                    f"{since}); {fix}, or use {' or '.join(self.hardware_compatibility_levels) or 'none'}")
        return None


@dataclasses.dataclass(frozen=True)
class Realization:
    """How one declared precision is built on one flavor."""

    precision: str
    flags: tuple[str, ...] = ()         # builder flags to set
    tf32: bool = False                  # BuilderFlag.TF32 on (TensorRT's default) or cleared
    convert_to: str | None = None       # "float16" / "bfloat16": convert the ONNX model first
    needs_qdq: bool = False             # int8/fp8 are only built from models with Q/DQ nodes

    def describe(self) -> str:
        parts = [f"flags {'+'.join(self.flags)}" if self.flags else "no precision flags",
                 "TF32 on" if self.tf32 else "TF32 off"]
        if self.convert_to:
            parts.append(f"model converted to {self.convert_to}")
        return ", ".join(parts)


def realize_precision(flavor: Flavor, precision: str, has_qdq: bool = False) -> Realization:
    """The build recipe for ``precision`` on ``flavor``; raises BackendError when it cannot be built."""
    if precision in ("fp32", "tf32"):
        return Realization(precision, tf32=precision == "tf32")
    if precision in ("int8", "fp8"):
        if not has_qdq:
            raise BackendError(f"{precision} needs a model with QuantizeLinear/DequantizeLinear (Q/DQ) nodes; "
                               "pytest-trt does not calibrate. Quantize the model (e.g. with TensorRT Model "
                               "Optimizer) and test that model")
        flag = flavor.precision_flags.get(precision)
        if flavor.strongly_typed_only:
            return Realization(precision, needs_qdq=True)  # the Q/DQ nodes carry the types
        if flag is None:
            raise BackendError(f"{flavor.label} cannot build {precision}")
        return Realization(precision, flags=(flag,), needs_qdq=True)
    if precision in ("fp16", "bf16"):
        if flavor.strongly_typed_only:
            return Realization(precision, convert_to="float16" if precision == "fp16" else "bfloat16")
        flag = flavor.precision_flags.get(precision)
        if flag is None:
            raise BackendError(f"{flavor.label} has no {precision.upper()} builder flag (added in TensorRT 9); "
                               f"test {precision} on TensorRT 10 or newer")
        return Realization(precision, flags=(flag,))
    raise BackendError(f"unknown precision {precision!r}")


# ---------------------------------------------------------------------------------- profiles

@dataclasses.dataclass(frozen=True)
class Profile:
    """min/opt/max shape per dynamic input, and min/opt/max values per shape-tensor input: one TensorRT
    optimization profile."""

    shapes: tuple[tuple[str, tuple[int, ...], tuple[int, ...], tuple[int, ...]], ...]
    values: tuple[tuple[str, tuple[int, ...], tuple[int, ...], tuple[int, ...]], ...] = ()

    def as_dict(self) -> dict:
        found = {name: {"min": list(lo), "opt": list(opt), "max": list(hi)} for name, lo, opt, hi in self.shapes}
        for name, lo, opt, hi in self.values:
            found[name] = {"values": {"min": list(lo), "opt": list(opt), "max": list(hi)}}
        return found


def plan_profiles(inputs: Sequence, shapes: Mapping, shape_values: Mapping | None = None) -> Profile | None:
    """The profile for the model's dynamic inputs (``inputs``: TensorSpec) and shape-tensor inputs, or None when
    all are static and none gives a shape.

    ``shapes[name]`` is one shape (min = opt = max) or ``{"min", "opt", "max"}``; ``shape_values[name]`` are the
    values of a shape-tensor input (the ones the check runs with: min = opt = max).
    """
    from pytest_trt.core.inputs import concrete_shape

    entries = []
    for spec in inputs:
        if not spec.is_dynamic:
            continue
        given = shapes.get(spec.name)
        if given is None:
            concrete_shape(spec, None)  # raises the 'dim is dynamic and no shape was given' error
        if isinstance(given, Mapping):
            lo, opt, hi = (concrete_shape(spec, given[k]) for k in ("min", "opt", "max"))
        else:
            lo = opt = hi = concrete_shape(spec, given)
        entries.append((spec.name, lo, opt, hi))
    values = tuple((name, v, v, v) for name, v in sorted((shape_values or {}).items()))
    return Profile(tuple(entries), values) if entries or values else None


# ONNX operator input slots whose values TensorRT needs at build time to know shapes: an engine input that reaches
# one of them is a *shape tensor* (host memory, values in the optimization profile).
SHAPE_SLOTS = frozenset({
    ("Reshape", 1), ("Expand", 1), ("ConstantOfShape", 0), ("Tile", 1), ("Slice", 1), ("Slice", 2), ("Slice", 3),
    ("Slice", 4), ("Range", 0), ("Range", 1), ("Range", 2), ("Resize", 3), ("Upsample", 1), ("TopK", 1),
    ("OneHot", 1), ("Pad", 1), ("Squeeze", 1), ("Unsqueeze", 1), ("Split", 1), ("CumSum", 1),
})
# Ops through which a shape tensor's values flow unchanged or by shape arithmetic (TensorRT keeps them on the host).
_SHAPE_ARITHMETIC = frozenset({"Cast", "Identity", "Concat", "Unsqueeze", "Squeeze", "Gather", "Slice", "Reshape",
                               "Add", "Sub", "Mul", "Div", "Max", "Min", "Neg", "Abs", "Floor", "Ceil", "Flatten"})


def shape_tensor_inputs(nodes: Sequence, input_names: Sequence[str]) -> tuple[str, ...]:
    """The graph inputs (``input_names``) whose values reach a shape operand (``SHAPE_SLOTS``) of some node
    (``nodes``: onnx_wire.Node), directly or through shape arithmetic."""
    producers = {out: node for node in nodes for out in node.outputs}
    todo = [node.inputs[slot] for node in nodes for (op, slot) in SHAPE_SLOTS
            if node.op_type == op and slot < len(node.inputs) and node.inputs[slot]]
    seen, wanted = set(), set(input_names)
    found = set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        if name in wanted:
            found.add(name)
            continue
        node = producers.get(name)
        if node is not None and node.op_type in _SHAPE_ARITHMETIC:
            todo.extend(i for i in node.inputs if i)
    return tuple(n for n in input_names if n in found)


def check_shape_values(inputs: Sequence, shape_inputs: Sequence[str], shape_values: Mapping, model_name: str) -> None:
    """Values for exactly the model's shape-tensor inputs (``shape_inputs``), as many as each input holds; else one
    sentence. ``inputs``: the model's TensorSpecs."""
    import math

    extra = [name for name in shape_values if name not in shape_inputs]
    if extra:
        raise BackendError(f"shape_values names {extra[0]!r}, which is not a shape-tensor input of {model_name}; its "
                           f"shape-tensor inputs are: {', '.join(shape_inputs) or 'none'}")
    for spec in inputs:
        values = shape_values.get(spec.name)
        if values is not None and not spec.is_dynamic and len(values) != math.prod(spec.dims):
            raise BackendError(f"shape_values[{spec.name!r}] has {len(values)} values, but input {spec.name!r} of "
                               f"{model_name} holds {math.prod(spec.dims)} ({spec.describe()})")
    missing = [name for name in shape_inputs if name not in shape_values]
    if missing:
        raise BackendError(f"input {missing[0]!r} of {model_name} is a shape tensor (its values set shapes inside the "
                           "model), and TensorRT needs its values to build the engine; give them (trt_compare builds "
                           "from the check's inputs; build_engine takes shape_values=)")


def shapes_for_run(inputs: Sequence, shapes: Mapping, arrays: Mapping) -> dict:
    """The marker's shapes, completed by the given arrays' shapes for dynamic inputs it does not name.

    A test that passes its own inputs needs no ``shapes=``: the engine's profile is those shapes.
    """
    completed = dict(shapes)
    for spec in inputs:
        if spec.is_dynamic and spec.name not in completed and spec.name in arrays:
            completed[spec.name] = tuple(int(d) for d in arrays[spec.name].shape)
    return completed


def check_within_profile(profile: Profile | None, inputs: Mapping) -> None:
    """An input shape outside the profile cannot run; say which input, dim and range."""
    if profile is None:
        return
    for name, lo, _, hi in profile.values:
        if name in inputs and tuple(int(v) for v in inputs[name].ravel()) != lo:  # built for these values only
            raise InputError(f"shape-tensor input {name!r} holds {inputs[name].ravel().tolist()}, but the engine was "
                             f"built for {list(lo)}; TensorRT needs a shape tensor's values at build time")
    for name, lo, _, hi in profile.shapes:
        if name not in inputs:
            continue
        shape = tuple(inputs[name].shape)
        for i, (a, s, b) in enumerate(zip(lo, shape, hi)):
            if not a <= s <= b:
                raise InputError(f"input {name!r} has shape {shape}, dim {i} = {s} is outside the engine's profile "
                                 f"[{a}, {b}] (min {lo}, max {hi}); widen shapes={{{name!r}: {{'min': ..., 'opt': ..., "
                                 f"'max': ...}}}} in the marker")


# -------------------------------------------------------------------------------------- dtypes

# TensorRT DataType member name -> numpy dtype name (ml_dtypes names for the narrow float types)
TRT_DTYPES = {"FLOAT": "float32", "HALF": "float16", "BF16": "bfloat16", "INT8": "int8", "INT32": "int32",
              "INT64": "int64", "UINT8": "uint8", "BOOL": "bool", "FP8": "float8_e4m3fn"}


def numpy_dtype_name(trt_dtype: str) -> str:
    try:
        return TRT_DTYPES[trt_dtype]
    except KeyError:
        raise BackendError(f"engine I/O type {trt_dtype} has no numpy equivalent (supported: "
                           f"{', '.join(TRT_DTYPES)})") from None


@dataclasses.dataclass(frozen=True)
class TensorIO:
    """One engine I/O tensor as TensorRT reports it (dtype already mapped to a numpy name)."""

    name: str
    is_input: bool
    dtype: str
    shape: tuple[int, ...]          # -1 where unknown until run time


@dataclasses.dataclass(frozen=True)
class Buffer:
    name: str
    dtype: str
    shape: tuple[int, ...]
    nbytes: int


def engine_inputs(io: Sequence[TensorIO], inputs: Mapping) -> dict:
    """Host arrays in the engine's input dtypes, contiguous; int64 -> int32 only when values fit."""
    import numpy as np

    from pytest_trt.core.dtypes import numpy_dtype

    prepared = {}
    wanted = [t for t in io if t.is_input]
    missing = [t.name for t in wanted if t.name not in inputs]
    if missing:
        raise InputError(f"engine inputs {', '.join(map(repr, missing))} got no array; the engine takes "
                         f"{', '.join(t.name for t in wanted)}")
    for t in wanted:
        array = np.asarray(inputs[t.name])
        target = numpy_dtype(t.dtype)
        if array.dtype != target:
            if array.dtype == np.int64 and target == np.int32:
                if array.size and (array.min() < np.iinfo(np.int32).min or array.max() > np.iinfo(np.int32).max):
                    raise InputError(f"input {t.name!r} holds int64 values outside int32, but this engine takes "
                                     "int32 (TensorRT 8.6 narrows int64 I/O); keep values within int32")
                array = array.astype(np.int32)
            elif array.dtype.kind == target.kind or (array.dtype.kind == "f" and target.kind == "V"):
                array = array.astype(target)
            else:
                raise InputError(f"input {t.name!r} is {array.dtype.name} but the engine takes {t.dtype}; "
                                 "pass an array of that dtype")
        prepared[t.name] = np.asarray(array, order="C")  # not ascontiguousarray: it makes rank 0 shape (1,)
    return prepared


def plan_outputs(io: Sequence[TensorIO], resolved_shapes: Mapping) -> tuple[list[Buffer], list[str]]:
    """(buffers to allocate before the run, names whose shape is data-dependent and need an allocator).

    ``resolved_shapes`` are ``context.get_tensor_shape`` after all input shapes were set.
    """
    from pytest_trt.core.dtypes import numpy_dtype

    buffers, dynamic = [], []
    for t in io:
        if t.is_input:
            continue
        shape = tuple(int(d) for d in resolved_shapes[t.name])
        if any(d < 0 for d in shape):
            dynamic.append(t.name)
            continue
        count = 1
        for d in shape:
            count *= d
        buffers.append(Buffer(t.name, t.dtype, shape, count * numpy_dtype(t.dtype).itemsize))
    return buffers, dynamic


def restore_output_dtypes(outputs: Mapping, model_outputs: Sequence) -> dict:
    """Outputs in the model's declared dtypes where the engine narrowed them (int32 for int64 on 8.6)."""
    import numpy as np

    declared = {s.name: s.dtype for s in model_outputs}
    restored = {}
    for name, array in outputs.items():
        want = declared.get(name)
        if want == "int64" and array.dtype == np.int32:
            array = array.astype(np.int64)
        restored[name] = array
    return restored
