"""The precision census of an engine: which precision each layer really runs in, read from TensorRT's
``IEngineInspector`` JSON (plans built with ``ProfilingVerbosity.DETAILED``). Pure: no tensorrt, no numpy.

Why: a reduced-precision builder flag only *permits* fp16/int8/... kernels; TensorRT keeps fp32 ones where
they are faster or where no reduced kernel exists (a tiny model often runs entirely in fp32 under FP16).
A check that asked for fp16 therefore says how many layers run in half precision.

How a layer's precision is read: TensorRT reports each layer input's and output's format and data type
(``"Format/Datatype": "Channel major FP16 format where channel % 2 == 0"``, ``"Row major linear Int8 ..."``).
A layer runs in the narrowest floating or quantized type among them (an int8 convolution with an fp32 output
runs in int8). TF32 is not a data type: it shows only in tactic names (``...tf32...``), where TensorRT reports
them. Three kinds of layers are not counted as compute:

- data movement (reformats, no-ops, shuffles, copies): they run in whatever the neighbours need;
- fused "Myelin" nodes (``{ForeignNode[...]}``, TensorRT's compiler for attention, LSTMs, ...): the inspector
  reports only their I/O types, not what runs inside, so they are counted as opaque;
- layers whose tensors are all integer or boolean (shape arithmetic, gathers of indices).
"""
from __future__ import annotations

import json
import re
from collections.abc import Mapping

from pytest_trt.core.records import Record
from pytest_trt.reports.census import PRECISION_ORDER, order
from pytest_trt.errors import BackendError

# Data type words as TensorRT prints them inside "Format/Datatype": 8.6 writes "Row major linear FP16 format", the
# layers TensorRT 10/11 report from inside fused Myelin graphs write "Float", "Half", "BFloat16".
_TYPE_TOKENS = (("BFloat16", "bf16"), ("BF16", "bf16"), ("Float8", "fp8"), ("FP8", "fp8"), ("Float4", "fp4"),
                ("FP4", "fp4"), ("Int4", "int4"), ("UInt8", "uint8"), ("Int8", "int8"), ("Half", "fp16"),
                ("Float16", "fp16"), ("FP16", "fp16"), ("Float32", "fp32"), ("Float", "fp32"), ("FP32", "fp32"),
                ("Int32", "int32"), ("Int64", "int64"), ("Bool", "bool"))
_TOKEN_RE = re.compile(r"(?<![A-Za-z])(" + "|".join(t for t, _ in _TYPE_TOKENS) + r")(?![A-Za-z0-9])", re.IGNORECASE)
_TOKEN_NAME = {t.lower(): name for t, name in _TYPE_TOKENS}
# Layer types that move or reshape data (compared in lower case): TensorRT's own, and the bookkeeping steps
# TensorRT 10/11 list from inside Myelin graphs (reshape, shape_call, signal, wait).
_MOVEMENT = {"reformat", "noop", "shuffle", "copy", "identity", "constant", "slice", "concatenation", "gather",
             "squeeze", "unsqueeze", "cast", "reshape", "shape_call", "signal", "wait", "signal_and_wait",
             "signal_wait"}


def datatype(text: str) -> str | None:
    """The data type named in one ``Format/Datatype`` string ("Row major linear FP16 format" -> "fp16")."""
    match = _TOKEN_RE.search(text or "")
    return _TOKEN_NAME[match.group(1).lower()] if match else None


class LayerPrecision(Record):
    """One engine layer: its name, TensorRT's layer type, the kind it is counted as, and its precision."""

    __slots__ = ("name", "layer_type", "kind", "precision", "io_types", "tactic")

    def __init__(self, name: str, layer_type: str, kind: str, precision: str | None, io_types: tuple[str, ...],
                 tactic: str | None):
        self.name = name
        self.layer_type = layer_type
        self.kind = kind              # "compute", "movement", "opaque" (fused Myelin node), "integer"
        self.precision = precision    # fp32 / tf32 / fp16 / bf16 / int8 / fp8 / int4 / fp4 for compute layers
        self.io_types = io_types      # the distinct data types of its inputs and outputs
        self.tactic = tactic          # TensorRT's tactic name, where reported


class Census(Record):
    """Per-engine counts: compute layers by precision, plus movement, opaque and integer layers."""

    __slots__ = ("layers", "detailed")

    def __init__(self, layers: list[LayerPrecision], detailed: bool):
        self.layers = layers
        self.detailed = detailed      # False: the plan has no layer details (built without detailed profiling)

    @property
    def compute(self) -> list[LayerPrecision]:
        return [layer for layer in self.layers if layer.kind == "compute"]

    def counts(self) -> dict[str, int]:
        """Compute layers by precision, widest last (``{"fp16": 37, "fp32": 4}``)."""
        found: dict[str, int] = {}
        for layer in self.compute:
            found[layer.precision] = found.get(layer.precision, 0) + 1
        return dict(sorted(found.items(), key=lambda kv: (order(kv[0]), kv[0])))

    def kinds(self) -> dict[str, int]:
        found: dict[str, int] = {}
        for layer in self.layers:
            found[layer.kind] = found.get(layer.kind, 0) + 1
        return found

    def summary(self) -> dict:
        """What sidecars, rows and report.json record: counts by precision and by kind, and opaque I/O types."""
        opaque = sorted({t for layer in self.layers if layer.kind == "opaque" for t in layer.io_types})
        return {"layers": len(self.layers), "compute": self.counts(), "kinds": self.kinds(),
                "opaque_io": opaque, "detailed": self.detailed}


def parse_engine_information(text: str) -> Census:
    """The census of an engine from ``IEngineInspector.get_engine_information(LayerInformationFormat.JSON)``.

    A plan built without detailed profiling lists only layer names (``{"Layers": ["name", ...]}``): every
    layer is then unknown and ``detailed`` is False."""
    try:
        data = json.loads(text, strict=False)  # TensorRT writes raw control characters inside strings
    except (TypeError, ValueError) as exc:
        raise BackendError(f"TensorRT's engine inspector gave no JSON ({exc})") from None
    raw = data.get("Layers") if isinstance(data, Mapping) else None
    if not isinstance(raw, list):
        raise BackendError("TensorRT's engine inspector JSON has no 'Layers' list")
    layers, detailed = [], True
    for entry in raw:
        if isinstance(entry, Mapping):
            layers.append(classify(entry))
        else:  # ProfilingVerbosity.LAYER_NAMES_ONLY: a bare name
            detailed = False
            layers.append(LayerPrecision(str(entry), "?", "unknown", None, (), None))
    return Census(layers, detailed and bool(layers))


def classify(layer: Mapping) -> LayerPrecision:
    """One layer of the inspector's JSON as a ``LayerPrecision``."""
    name = str(layer.get("Name", "?"))
    layer_type = str(layer.get("LayerType", "?"))
    tensors = [t for key in ("Inputs", "Outputs") for t in (layer.get(key) or ()) if isinstance(t, Mapping)]
    types = tuple(dict.fromkeys(t for t in (datatype(str(x.get("Format/Datatype", ""))) for x in tensors) if t))
    tactic = layer.get("TacticName")
    tactic = str(tactic) if tactic else None
    if layer_type == "Myelin" or name.startswith("{ForeignNode"):
        return LayerPrecision(name, layer_type, "opaque", None, types, tactic)
    if layer_type.lower() in _MOVEMENT or name.startswith("Reformatting CopyNode"):
        return LayerPrecision(name, layer_type, "movement", None, types, tactic)
    floats = [t for t in types if t in PRECISION_ORDER]
    if not floats:
        return LayerPrecision(name, layer_type, "integer", None, types, tactic)
    precision = min(floats, key=order)
    if precision == "fp32" and tactic and re.search(r"tf32", tactic, re.IGNORECASE):
        precision = "tf32"
    return LayerPrecision(name, layer_type, "compute", precision, types, tactic)


def layer_outputs(text: str) -> dict[str, str]:
    """Tensor name -> the engine layer producing it, from the inspector's JSON: the tensors an engine keeps between
    its layers (the ONNX tensor names of a layer's outputs); a tensor absent here was fused away."""
    try:
        data = json.loads(text, strict=False)
    except (TypeError, ValueError):
        return {}
    produced = {}
    for layer in (data.get("Layers") or []) if isinstance(data, Mapping) else []:
        if isinstance(layer, Mapping):
            for tensor in layer.get("Outputs") or ():
                if isinstance(tensor, Mapping) and tensor.get("Name"):
                    produced[str(tensor["Name"])] = str(layer.get("Name", "?"))
    return produced
