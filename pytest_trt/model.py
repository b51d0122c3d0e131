"""ONNX introspection: input/output specs and a content hash that covers external data.

Only the graph structure is parsed (external weights are hashed as files, never loaded), and results
are cached per (path, size, mtime) so a suite of many tests on one model pays for this once.
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
from pathlib import Path

from .errors import ModelError, first_line

_HASH_BLOCK = 1 << 20


@dataclasses.dataclass(frozen=True)
class TensorSpec:
    """One model input or output: name, numpy dtype name, and dims (int, symbolic name, or None)."""

    name: str
    dtype: str
    dims: tuple[int | str | None, ...]

    @property
    def is_dynamic(self) -> bool:
        return any(not isinstance(d, int) or d < 0 for d in self.dims)

    def describe(self) -> str:
        dims = ",".join("?" if d is None else str(d) for d in self.dims)
        return f"{self.name} ({self.dtype}[{dims}])"


@dataclasses.dataclass(frozen=True)
class ModelInfo:
    """What pytest-trt needs to know about an ONNX model, without its weights in memory."""

    path: Path
    sha256: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    external_data: tuple[str, ...]  # relative file names, sorted

    def input(self, name: str) -> TensorSpec:
        for spec in self.inputs:
            if spec.name == name:
                return spec
        raise KeyError(name)

    @property
    def input_names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.inputs)

    @property
    def output_names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.outputs)


_cache: dict[tuple, ModelInfo] = {}


def load_model_info(path: str | os.PathLike) -> ModelInfo:
    """Read I/O specs and hash of the model at ``path`` (cached until the file changes)."""
    path = Path(path).resolve()
    try:
        st = path.stat()
    except FileNotFoundError:
        raise ModelError(f"model file {str(path)!r} does not exist; check the path (relative paths "
                         "are resolved against the test file's folder, then the rootdir)") from None
    key = (str(path), st.st_size, st.st_mtime_ns)
    info = _cache.get(key)
    if info is None:
        info = _read_model_info(path)
        _cache[key] = info
    return info


def _read_model_info(path: Path) -> ModelInfo:
    import onnx
    from google.protobuf.message import DecodeError

    if path.is_dir():
        raise ModelError(f"model path {str(path)!r} is a directory; give the path of an .onnx file")
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except (DecodeError, RuntimeError, ValueError) as exc:
        raise ModelError(f"model {str(path)!r} is not a valid ONNX file ({first_line(exc)}); "
                         "re-export it or check that it is not a Git LFS pointer") from None
    graph = proto.graph
    if not graph.output:
        raise ModelError(f"model {str(path)!r} has no graph outputs; is it an ONNX model file?")
    initializers = {init.name for init in graph.initializer}
    inputs = tuple(_tensor_spec(v, path) for v in graph.input if v.name not in initializers)
    outputs = tuple(_tensor_spec(v, path) for v in graph.output)
    external = sorted(_external_locations(proto))
    digest = hashlib.sha256()
    _hash_file(path, digest)
    for rel in external:
        data_path = path.parent / rel
        if not data_path.is_file():
            raise ModelError(f"model {str(path)!r} references external data {rel!r}, which is missing "
                             f"at {str(data_path)!r}; copy the data file next to the model")
        digest.update(b"\0external\0" + rel.encode() + b"\0")
        _hash_file(data_path, digest)
    return ModelInfo(path, digest.hexdigest(), inputs, outputs, tuple(external))


def _tensor_spec(value_info, path: Path) -> TensorSpec:
    import onnx

    tensor_type = value_info.type.tensor_type
    if not value_info.type.HasField("tensor_type"):
        raise ModelError(f"model {str(path)!r}: I/O {value_info.name!r} is not a tensor "
                         "(sequences, maps and optionals are not supported)")
    try:
        dtype = onnx.helper.tensor_dtype_to_np_dtype(tensor_type.elem_type)
    except (KeyError, ValueError):
        raise ModelError(f"model {str(path)!r}: I/O {value_info.name!r} has an element type "
                         f"(ONNX type {tensor_type.elem_type}) that numpy cannot hold") from None
    dims: list[int | str | None] = []
    for dim in tensor_type.shape.dim:
        if dim.HasField("dim_value"):
            dims.append(int(dim.dim_value))
        elif dim.HasField("dim_param"):
            dims.append(dim.dim_param)
        else:
            dims.append(None)
    return TensorSpec(value_info.name, _dtype_name(dtype), tuple(dims))


def _dtype_name(dtype) -> str:
    import numpy as np

    return np.dtype(dtype).name


def _external_locations(proto) -> set[str]:
    """File names of external data referenced by any tensor, in subgraphs too."""
    locations: set[str] = set()

    def visit_tensor(tensor):
        if tensor.data_location == 1:  # onnx.TensorProto.EXTERNAL
            locations.update(e.value for e in tensor.external_data if e.key == "location")

    def visit_graph(graph):
        for tensor in graph.initializer:
            visit_tensor(tensor)
        for node in graph.node:
            for attr in node.attribute:
                if attr.HasField("t"):
                    visit_tensor(attr.t)
                for tensor in attr.tensors:
                    visit_tensor(tensor)
                if attr.HasField("g"):
                    visit_graph(attr.g)
                for sub in attr.graphs:
                    visit_graph(sub)

    visit_graph(proto.graph)
    return locations


def _hash_file(path: Path, digest) -> None:
    with open(path, "rb") as f:
        while block := f.read(_HASH_BLOCK):
            digest.update(block)

