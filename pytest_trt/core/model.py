"""ONNX introspection: input/output specs and a content hash that covers external data.

Only the graph's I/O is read, from the protobuf bytes (``onnx_wire``; onnx itself is not imported);
external weights are hashed as files, never loaded; results are cached per (path, size, mtime, inode)
of the model file and of each external data file, so a suite of many tests on one model pays for
this once, and new weights written by a fixture (or a re-export that keeps the graph) are seen at once.
"""
from __future__ import annotations

import functools
import hashlib
import os
import stat
from pathlib import Path

from pytest_trt.errors import ModelError
from pytest_trt.core.records import FrozenRecord, set_field

_HASH_BLOCK = 1 << 20


class TensorSpec(FrozenRecord):
    """One model input or output: name, numpy dtype name, and dims (int, symbolic name, or None)."""

    __slots__ = ("name", "dtype", "dims")

    def __init__(self, name: str, dtype: str, dims: tuple[int | str | None, ...]):
        set_field(self, "name", name)
        set_field(self, "dtype", dtype)
        set_field(self, "dims", dims)

    @property
    def is_dynamic(self) -> bool:
        return any(not isinstance(d, int) or d < 0 for d in self.dims)

    def describe(self) -> str:
        dims = ",".join("?" if d is None else str(d) for d in self.dims)
        return f"{self.name} ({self.dtype}[{dims}])"


class ModelInfo(FrozenRecord):
    """What pytest-trt needs to know about an ONNX model, without its weights in memory."""

    __slots__ = ("path", "sha256", "inputs", "outputs", "external_data")

    def __init__(self, path: Path, sha256: str, inputs: tuple[TensorSpec, ...], outputs: tuple[TensorSpec, ...],
                 external_data: tuple[str, ...]):
        set_field(self, "path", path)
        set_field(self, "sha256", sha256)
        set_field(self, "inputs", inputs)
        set_field(self, "outputs", outputs)
        set_field(self, "external_data", external_data)  # relative file names, sorted

    @property
    def input_names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.inputs)

    @property
    def output_names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.outputs)


_cache: dict[tuple, tuple[ModelInfo, tuple]] = {}   # model stamp -> (info, ((data file, its stamp), ...))


def load_model_info(path: str | os.PathLike) -> ModelInfo:
    """Read I/O specs and hash of the model at ``path`` (cached until it or its external data changes)."""
    given, text = path, os.fspath(path)
    path = _resolve(text) or Path(text).resolve()
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise ModelError(f"model file {str(path)!r} does not exist; check the path (relative paths "
                         "are resolved against the test file's folder, then the rootdir)") from None
    key = (str(path), st.st_size, st.st_mtime_ns, st.st_ino)
    cached = _cache.get(key)
    if cached is not None and (not cached[1] or _data_unchanged(cached[1])):
        return cached[0]   # a model without external data costs no further stat
    if stat.S_ISDIR(st.st_mode):
        raise ModelError(directory_problem(given, path))
    info, stamps = _read_model_info(path)
    _cache[key] = (info, stamps)
    return info


QDQ_OPS = ("QuantizeLinear", "DequantizeLinear")


def graph_nodes(path: str, sha256: str):
    """The main graph's nodes and stated dims (``onnx_wire.GraphNodes``) of the file at ``path`` with content
    ``sha256``, read once per content and shared by the input generator and the engine path; None when the node
    reader cannot walk the file (onnxruntime then reports it)."""
    return _graph_nodes(path, sha256)


@functools.lru_cache(maxsize=16)
def _graph_nodes(path: str, sha256: str):
    import mmap

    from pytest_trt.core.onnx_wire import WireError, read_nodes

    try:
        with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
            return read_nodes(data)
    except (OSError, ValueError, WireError):
        return None


def has_quantize_nodes(info: ModelInfo) -> bool:
    """True when the model's main graph has QuantizeLinear/DequantizeLinear nodes."""
    graph = graph_nodes(str(info.path), info.sha256)
    return graph is not None and any(node.op_type in QDQ_OPS for node in graph.nodes)


def _stamp(st: os.stat_result) -> tuple:
    return st.st_size, st.st_mtime_ns, st.st_ino


def _data_unchanged(stamps: tuple) -> bool:
    for path, stamp in stamps:
        try:
            st = os.stat(path)
        except OSError:
            return False  # gone: read again, which names the missing file
        if _stamp(st) != stamp:
            return False
    return True


def directory_problem(model, folder: Path) -> str:
    """The sentence for a model path that names a folder: which one, and an .onnx file in it to give instead."""
    try:
        found = sorted(p.name for p in Path(folder).glob("*.onnx"))
    except OSError:
        found = []
    fix = (f"not an ONNX file; give the .onnx file's path, e.g. model={os.path.join(str(model), found[0])!r}" if found
           else "not an ONNX file, and holds no .onnx file; give the path of the .onnx file itself")
    where = "" if os.fspath(model) == str(folder) else f" ({str(folder)!r})"
    return f"model path {str(model)!r} is a directory{where}, {fix}"


@functools.lru_cache(maxsize=256)
def _resolve(path: str) -> Path | None:
    """An absolute path, resolved once; None for a relative one, which means another file after a chdir."""
    return Path(path).resolve() if os.path.isabs(path) else None


def _read_model_info(path: Path) -> tuple[ModelInfo, tuple]:
    """The model's info and (path, stamp) of each external data file as it was when hashed."""
    from pytest_trt.core.onnx_wire import WireError, read_signature

    digest = hashlib.sha256()
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size == 0:
            raise ModelError(f"model {str(path)!r} is empty; re-export it or check that it is not a Git LFS pointer")
        import mmap

        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:  # big models: no copy in memory
            digest.update(data)
            try:
                signature = read_signature(data)
            except WireError as exc:
                raise ModelError(f"model {str(path)!r} is not a valid ONNX file ({exc}); "
                                 "re-export it or check that it is not a Git LFS pointer") from None
    if not signature.outputs:
        raise ModelError(f"model {str(path)!r} has no graph outputs; is it an ONNX model file?")
    inputs = tuple(_tensor_spec(v, path) for v in signature.inputs)
    outputs = tuple(_tensor_spec(v, path) for v in signature.outputs)
    external = sorted(signature.external_data)
    stamps = []
    for rel in external:
        data_path = path.parent / rel
        if not data_path.is_file():
            raise ModelError(f"model {str(path)!r} references external data {rel!r}, which is missing "
                             f"at {str(data_path)!r}; copy the data file next to the model")
        digest.update(b"\0external\0" + rel.encode() + b"\0")
        stamps.append((str(data_path), _hash_file(data_path, digest)))
    return ModelInfo(path, digest.hexdigest(), inputs, outputs, tuple(external)), tuple(stamps)


def _tensor_spec(value, path: Path) -> TensorSpec:
    from pytest_trt.core.onnx_wire import ELEM_TYPE_NAMES, ELEM_TYPES

    if value.elem_type is None:
        raise ModelError(f"model {str(path)!r}: I/O {value.name!r} is not a tensor "
                         "(sequences, maps and optionals are not supported)")
    dtype = ELEM_TYPES.get(value.elem_type)
    if dtype is None:
        kind = ELEM_TYPE_NAMES.get(value.elem_type, f"ONNX type {value.elem_type}")
        raise ModelError(f"model {str(path)!r}: I/O {value.name!r} has an element type "
                         f"({kind}) that numpy cannot hold")
    return TensorSpec(value.name, dtype, value.dims)


def _hash_file(path: Path, digest) -> tuple:
    """Hash the file's bytes; its stamp taken before reading, so a write meanwhile reads as a change next time."""
    with open(path, "rb") as f:
        stamp = _stamp(os.fstat(f.fileno()))
        while block := f.read(_HASH_BLOCK):
            digest.update(block)
    return stamp

