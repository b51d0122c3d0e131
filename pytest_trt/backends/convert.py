"""Reduced-precision ONNX models for strongly typed TensorRT (11, TensorRT-RTX): fp16 / bf16 by casts.

Strongly typed builders take the tensor types from the model, so "fp16" means a model whose compute
is in float16. Why our own converter: onnxconverter-common 1.16's ``convert_float_to_float16``
produces invalid graphs for attention blocks (a tensor cast twice under one name, or ``Div`` fed
half and float). This one is simple enough to be type-consistent by construction:

- every node runs in float16/bfloat16 except numerically sensitive or type-fixed ops (``KEEP_FP32``);
- each float tensor gets one cast per target type, named uniquely, inserted where a consumer needs it;
- float initializers used in reduced precision are stored converted;
- graph inputs and outputs keep their float32 types (casts at the boundary), so the same inputs and
  comparisons apply. The result is checked with onnx's full checker and shape inference.

``converter=autocast`` (a builder option) converts with NVIDIA ModelOpt AutoCast instead (``autocast``); the
engine cache key records which converter and version made the model (``converter_id``).
"""
from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path

from pytest_trt.errors import ModelError

CONVERTER = "pytest-trt casts v1"
DEFAULT_CONVERTER = "casts"   # where the builder options name none (core.build_options.CONVERTERS: the choices)
# Ops kept in float32: reductions and normalizations (accumulate in fp32), exp/log/pow family, ops whose
# output type comes from an attribute or a fixed-type input, quantization, control flow.
KEEP_FP32 = frozenset({
    "LayerNormalization", "GroupNormalization", "InstanceNormalization", "BatchNormalization",
    "ReduceMean", "ReduceSum", "ReduceSumSquare", "ReduceL1", "ReduceL2", "ReduceLogSum", "ReduceLogSumExp", "ReduceProd",
    "Softmax", "LogSoftmax", "Exp", "Log", "Pow", "Sqrt", "Reciprocal", "Erf",
    "Cast", "CastLike", "Constant", "ConstantOfShape", "EyeLike", "Range", "RandomNormal", "RandomNormalLike",
    "RandomUniform", "RandomUniformLike", "Multinomial", "Resize", "Upsample",
    "QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear",
    "If", "Loop", "Scan", "NonMaxSuppression", "TopK", "RoiAlign",
})


def convert(model, target: str = "float16"):
    """A copy of ``model`` (onnx.ModelProto) computing in ``target`` ("float16" or "bfloat16")."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    elem = {"float16": TensorProto.FLOAT16, "bfloat16": TensorProto.BFLOAT16}[target]
    model = onnx.ModelProto.FromString(model.SerializeToString())
    inferred = onnx.shape_inference.infer_shapes(model)
    types = {v.name: v.type.tensor_type.elem_type
             for v in (*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output)}
    graph = model.graph
    for init in graph.initializer:
        types[init.name] = init.data_type
    FLOAT = TensorProto.FLOAT
    initializers = {i.name: i for i in graph.initializer}
    graph_outputs = {o.name for o in graph.output}
    reduced_name = {}        # float32 tensor -> its reduced-precision twin (a cast or converted initializer)
    new_nodes = []
    location = {}            # tensor -> "low" or "fp32": the precision it is actually produced in

    for name in (*[i.name for i in graph.input], *initializers):
        location[name] = "fp32"

    def low(name: str) -> str:
        """The reduced-precision version of float32 tensor ``name``, created once."""
        if name not in reduced_name:
            twin = f"{name}__{target}"
            if name in initializers and initializers[name].data_type == FLOAT:
                array = numpy_helper.to_array(initializers[name]).astype(np.float32)
                if target == "bfloat16":
                    import ml_dtypes

                    raw = array.astype(ml_dtypes.bfloat16)
                    tensor = helper.make_tensor(twin, elem, raw.shape, raw.view(np.uint16).tobytes(), raw=True)
                else:
                    tensor = numpy_helper.from_array(np.clip(array, -65504, 65504).astype(np.float16), twin)
                graph.initializer.append(tensor)
            else:
                new_nodes.append(helper.make_node("Cast", [name], [twin], to=elem, name=f"{twin}__cast"))
            reduced_name[name] = twin
        return reduced_name[name]

    fp32_name = {}           # reduced tensor (original name) -> float32 twin for fp32 consumers

    def high(name: str) -> str:
        if name not in fp32_name:
            twin = f"{name}__float32"
            new_nodes.append(helper.make_node("Cast", [name], [twin], to=FLOAT, name=f"{twin}__cast"))
            fp32_name[name] = twin
        return fp32_name[name]

    renamed_outputs = {}
    for node in graph.node:
        has_subgraph = any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for a in node.attribute)
        in_low = node.op_type not in KEEP_FP32 and not has_subgraph and node.domain in ("", "ai.onnx")
        for i, name in enumerate(node.input):
            if not name or types.get(name) not in (FLOAT, elem):
                continue
            produced = location.get(name, "fp32")
            if in_low and produced == "fp32":
                node.input[i] = low(name)
            elif not in_low and produced == "low":
                node.input[i] = high(name)
        new_nodes.append(node)
        for j, name in enumerate(node.output):
            if in_low and types.get(name) == FLOAT:
                location[name] = "low"
                if name in graph_outputs:  # keep the output's name and float32 type: cast at the boundary
                    node.output[j] = renamed_outputs[name] = f"{name}__{target}_out"
                    new_nodes.append(helper.make_node("Cast", [node.output[j]], [name], to=FLOAT, name=f"{name}__cast_out"))
                    location[name] = "fp32"
                    fp32_name[node.output[j]] = name
            else:
                location[name] = "fp32"
    # consumers referring to renamed graph outputs read the reduced twin through their fp32 cast (the output itself)
    del graph.node[:]
    graph.node.extend(new_nodes)
    used = {name for node in graph.node for name in node.input} | {o.name for o in graph.output}
    kept = [init for init in graph.initializer if init.name in used]  # fp32 originals now read by no one
    del graph.initializer[:]
    graph.initializer.extend(kept)
    del graph.value_info[:]
    try:
        converted = onnx.shape_inference.infer_shapes(model, strict_mode=True)
        onnx.checker.check_model(converted, full_check=True)
    except Exception as exc:
        hint = (" (some bfloat16 ops, Conv among them, need opset 22; this converter keeps the model's opset)"
                if target == "bfloat16" else "")
        raise ModelError(f"converting the model to {target} gave an invalid graph{hint} ({str(exc).splitlines()[0]}); "
                         f"use converter=autocast (pip install 'pytest-trt[autocast]'; it raises the opset), or give "
                         f"this precision its own file (model={{'fp32': ..., '{'bf16' if target == 'bfloat16' else 'fp16'}'"
                         ": ...})") from None
    return converted  # with the inferred value_info: onnxruntime 1.31 crashes on some fp16 graphs without it


def converter_reason(converter: str) -> str | None:
    """Why ``converter`` cannot convert on this machine (a sentence with the fix), or None."""
    if converter == "autocast":
        from pytest_trt.backends import autocast

        return autocast.unavailable_reason()
    return None


def converter_id(converter: str) -> str:
    """The converter and its version, as the engine cache key records it."""
    if converter == "autocast":
        from pytest_trt.backends import autocast

        return autocast.converter_id()
    return CONVERTER


def emulate(converted, target: str):
    """A float32 model computing what ``converted`` (a model ``convert``/AutoCast made) computes, with every
    ``target`` tensor rounded to ``target`` where it is produced (overflow to Inf included), for a CPU preview.

    onnxruntime's CPU provider runs many float16 ops by casting them to float32 and drops the cast pairs it
    inserted around them, so a converted model run as is never rounds (nor overflows) between such ops. Here each
    reduced tensor keeps its name and holds its rounded value: a node computes in float32, ``Cast`` to
    ``target`` and back gives the stored value; weights are stored rounded. What is lost: arithmetic inside a
    node is float32 (TensorRT's fp16 kernels mostly accumulate in float32 too)."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    elem = {"float16": TensorProto.FLOAT16, "bfloat16": TensorProto.BFLOAT16}[target]
    FLOAT = TensorProto.FLOAT
    model = onnx.ModelProto.FromString(converted.SerializeToString())
    inferred = onnx.shape_inference.infer_shapes(model)
    types = {v.name: v.type.tensor_type.elem_type
             for v in (*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output)}
    graph = model.graph

    def widened(tensor):
        array = numpy_helper.to_array(tensor)
        if tensor.data_type == TensorProto.BFLOAT16 and array.dtype != np.float32:
            import ml_dtypes

            array = array.view(ml_dtypes.bfloat16) if array.dtype == np.uint16 else array
        return numpy_helper.from_array(np.asarray(array, dtype=np.float32), tensor.name)

    for i, init in enumerate(graph.initializer):
        if init.data_type == elem:
            graph.initializer[i].CopyFrom(widened(init))
    nodes = []
    for node in graph.node:
        if node.op_type == "Constant":
            for a in node.attribute:
                if a.name == "value" and a.t.data_type == elem:
                    a.t.CopyFrom(widened(a.t))
        to = next((a for a in node.attribute if a.name == "to"), None) if node.op_type == "Cast" else None
        if to is not None and to.i == elem:   # a cast into reduced precision: round, stay float32
            rounded = node.output[0]
            node.output[0] = f"{rounded}__{target}_stored"
            nodes += [node, helper.make_node("Cast", [node.output[0]], [rounded], to=FLOAT, name=f"{rounded}__widen")]
            continue
        nodes.append(node)
        if node.op_type == "Cast":
            continue
        for j, name in enumerate(node.output):
            if name and types.get(name) == elem:
                raw = node.output[j] = f"{name}__wide"
                nodes += [helper.make_node("Cast", [raw], [f"{name}__{target}_stored"], to=elem,
                                           name=f"{name}__round"),
                          helper.make_node("Cast", [f"{name}__{target}_stored"], [name], to=FLOAT,
                                           name=f"{name}__widen")]
    del graph.node[:]
    graph.node.extend(nodes)
    del graph.value_info[:]
    return model


def convert_file(path, target: str, converter: str = DEFAULT_CONVERTER):
    """The model at ``path`` converted to ``target`` ("float16" or "bfloat16") by ``converter``
    ("casts" or "autocast"), an onnx.ModelProto with its weights inside."""
    import onnx

    if converter == "autocast":
        from pytest_trt.backends import autocast

        return autocast.convert(path, target)
    try:
        model = onnx.load(str(path))  # external data loaded: the converted model is self-contained
    except Exception as exc:
        raise ModelError(f"cannot load {str(path)!r} for conversion: {exc}") from None
    return convert(model, target)


@contextlib.contextmanager
def converted_model(path, target: str, converter: str = DEFAULT_CONVERTER):
    """A temporary file holding ``path``'s model converted to ``target`` by ``converter``; removed on exit."""
    import onnx

    converted = convert_file(path, target, converter)
    with tempfile.TemporaryDirectory(prefix="pytest-trt-convert-") as tmp:
        out = Path(tmp) / f"{Path(path).stem}.{target}.onnx"
        large = converted.ByteSize() > 1_800_000_000
        onnx.save(converted, str(out), save_as_external_data=large, location=out.name + ".data" if large else None)
        yield out
