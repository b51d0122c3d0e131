"""Read an ONNX file's I/O signature and external-data references straight from its protobuf bytes
(``read_signature``), and, for the input generator, the main graph's nodes (``read_nodes``).

Why not ``onnx.load``: it imports onnx and protobuf (~70 ms, paid by every CPU-only test session)
and materializes every embedded weight, while pytest-trt only needs graph inputs/outputs and the
names of external data files. This reader walks the wire format and skips weight payloads without
copying them. It is checked against ``onnx`` itself in the tests.
"""
from __future__ import annotations

from pytest_trt.core.records import FrozenRecord, set_field

# onnx.TensorProto.DataType -> numpy dtype name (ml_dtypes names for the narrow float types)
ELEM_TYPES = {
    1: "float32", 2: "uint8", 3: "int8", 4: "uint16", 5: "int16", 6: "int32", 7: "int64", 9: "bool",
    10: "float16", 11: "float64", 12: "uint32", 13: "uint64", 14: "complex64", 15: "complex128",
    16: "bfloat16", 17: "float8_e4m3fn", 18: "float8_e4m3fnuz", 19: "float8_e5m2", 20: "float8_e5m2fnuz",
    21: "uint4", 22: "int4", 23: "float4_e2m1fn",
}
ELEM_TYPE_NAMES = {8: "string"}  # types numpy cannot hold as plain arrays

# field numbers of onnx.proto3 messages this reader visits
_MODEL_GRAPH = 7
_GRAPH_NODE, _GRAPH_INITIALIZER, _GRAPH_INPUT, _GRAPH_OUTPUT = 1, 5, 11, 12
_NODE_ATTRIBUTE = 5
_ATTR_T, _ATTR_G, _ATTR_TENSORS, _ATTR_GRAPHS = 5, 6, 10, 11
_TENSOR_NAME, _TENSOR_EXTERNAL_DATA, _TENSOR_DATA_LOCATION = 8, 13, 14
_VALUE_NAME, _VALUE_TYPE = 1, 2
_TYPE_TENSOR = 1
_TENSOR_TYPE_ELEM, _TENSOR_TYPE_SHAPE = 1, 2
_SHAPE_DIM, _DIM_VALUE, _DIM_PARAM = 1, 1, 2
_EXTERNAL = 1  # TensorProto.DataLocation.EXTERNAL


class WireError(ValueError):
    """The bytes are not a well-formed ONNX protobuf."""


class ValueInfo(FrozenRecord):
    """A graph input or output as written in the file."""

    __slots__ = ("name", "elem_type", "dims")

    def __init__(self, name: str, elem_type: int | None, dims: tuple[int | str | None, ...]):
        set_field(self, "name", name)
        set_field(self, "elem_type", elem_type)    # None: not a tensor (sequence, map, optional, sparse)
        set_field(self, "dims", dims)


class GraphSignature(FrozenRecord):
    __slots__ = ("inputs", "outputs", "external_data")

    def __init__(self, inputs: tuple[ValueInfo, ...], outputs: tuple[ValueInfo, ...], external_data: frozenset[str]):
        set_field(self, "inputs", inputs)              # initializers listed as inputs are left out
        set_field(self, "outputs", outputs)
        set_field(self, "external_data", external_data)  # file names referenced by any tensor, subgraphs included


def read_signature(data) -> GraphSignature:
    """The signature of the ONNX model held in ``data`` (bytes, mmap or memoryview)."""
    with memoryview(data) as view:  # released on return or error, so the caller can close an mmap
        graph = None
        for field, value in _fields(view, 0, len(view)):
            if field == _MODEL_GRAPH and isinstance(value, tuple):
                graph = value
        if graph is None:
            return GraphSignature((), (), frozenset())
        inputs, outputs, initializers, external = [], [], set(), set()
        _walk_graph(view, graph, inputs, outputs, initializers, external, top=True)
    return GraphSignature(tuple(v for v in inputs if v.name not in initializers), tuple(outputs), frozenset(external))


def _walk_graph(view, span, inputs, outputs, initializers, external, top: bool) -> None:
    for field, value in _fields(view, *span):
        if not isinstance(value, tuple):
            continue
        if field == _GRAPH_INITIALIZER:
            name = _tensor(view, value, external)
            if top:
                initializers.add(name)
        elif field == _GRAPH_NODE:
            for nfield, attr in _fields(view, *value):
                if nfield == _NODE_ATTRIBUTE and isinstance(attr, tuple):
                    _walk_attribute(view, attr, external)
        elif top and field == _GRAPH_INPUT:
            inputs.append(_value_info(view, value))
        elif top and field == _GRAPH_OUTPUT:
            outputs.append(_value_info(view, value))


def _walk_attribute(view, span, external) -> None:
    for field, value in _fields(view, *span):
        if not isinstance(value, tuple):
            continue
        if field in (_ATTR_T, _ATTR_TENSORS):
            _tensor(view, value, external)
        elif field in (_ATTR_G, _ATTR_GRAPHS):
            _walk_graph(view, value, [], [], set(), external, top=False)


def _tensor(view, span, external) -> str:
    name, location, files = "", 0, []
    for field, value in _fields(view, *span):
        if field == _TENSOR_NAME and isinstance(value, tuple):
            name = _text(view, value)
        elif field == _TENSOR_DATA_LOCATION and isinstance(value, int):
            location = value
        elif field == _TENSOR_EXTERNAL_DATA and isinstance(value, tuple):
            entry = {k: _text(view, v) for k, v in _fields(view, *value) if isinstance(v, tuple)}
            if entry.get(1) == "location" and 2 in entry:
                files.append(entry[2])
    if location == _EXTERNAL:
        external.update(files)
    return name


def _value_info(view, span) -> ValueInfo:
    name, elem, dims = _value(view, span)
    return ValueInfo(name, elem, dims or ())


def _value(view, span) -> tuple[str, int | None, tuple | None]:
    """A ValueInfoProto's name, tensor element type (None: not a tensor) and dims (None: no shape stated,
    unlike a scalar's ())."""
    name, elem, dims = "", None, None
    for field, value in _fields(view, *span):
        if field == _VALUE_NAME and isinstance(value, tuple):
            name = _text(view, value)
        elif field == _VALUE_TYPE and isinstance(value, tuple):
            for tfield, tvalue in _fields(view, *value):
                if tfield == _TYPE_TENSOR and isinstance(tvalue, tuple):
                    elem, dims = _tensor_type(view, tvalue)
    return name, elem, dims


def _tensor_type(view, span) -> tuple[int, tuple | None]:
    elem, dims = 0, None
    for field, value in _fields(view, *span):
        if field == _TENSOR_TYPE_ELEM and isinstance(value, int):
            elem = value
        elif field == _TENSOR_TYPE_SHAPE and isinstance(value, tuple):
            dims = tuple(_dim(view, d) for f, d in _fields(view, *value) if f == _SHAPE_DIM and isinstance(d, tuple))
    return elem, dims


def _dim(view, span) -> int | str | None:
    result = None
    for field, value in _fields(view, *span):
        if field == _DIM_VALUE and isinstance(value, int):
            result = _signed(value)
        elif field == _DIM_PARAM and isinstance(value, tuple):
            result = _text(view, value)
    return result


def _text(view, span) -> str:
    try:
        return bytes(view[span[0]:span[1]]).decode("utf-8")
    except UnicodeDecodeError:
        raise WireError("a string field is not UTF-8") from None


def _fields(view, start: int, end: int):
    """(field number, value) per field in ``view[start:end]``: ints for varints, (start, end) spans for
    length-delimited fields, None for fixed-width ones."""
    pos = start
    while pos < end:
        key, pos = _varint(view, pos, end)
        field, wire = key >> 3, key & 7
        if field == 0:
            raise WireError("field number 0")
        if wire == 0:
            value, pos = _varint(view, pos, end)
            yield field, value
        elif wire == 2:
            length, pos = _varint(view, pos, end)
            if pos + length > end:
                raise WireError("a field runs past the end of its message (file truncated?)")
            yield field, (pos, pos + length)
            pos += length
        elif wire == 1:
            pos += 8
            yield field, None
        elif wire == 5:
            pos += 4
            yield field, None
        else:
            raise WireError(f"unknown wire type {wire}")
    if pos != end:
        raise WireError("a fixed-width field runs past the end of its message")


def _varint(view, pos: int, end: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= end or shift > 63:
            raise WireError("a varint runs past the end of its message")
        byte = view[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


# What the input generator needs to know about the nodes that use the graph's inputs.
_NODE_INPUT, _NODE_OUTPUT, _NODE_NAME, _NODE_OP_TYPE, _NODE_DOMAIN = 1, 2, 3, 4, 7
_ATTR_NAME, _ATTR_I, _ATTR_INTS = 1, 3, 8
_GRAPH_VALUE_INFO = 13
_TENSOR_DIMS = 1


class Node(FrozenRecord):
    """A node of the main graph, default ONNX domain, with its integer attributes."""

    __slots__ = ("op_type", "name", "inputs", "outputs", "attrs")

    def __init__(self, op_type: str, name: str, inputs: tuple[str, ...], outputs: tuple[str, ...], attrs: dict):
        set_field(self, "op_type", op_type)
        set_field(self, "name", name)
        set_field(self, "inputs", inputs)
        set_field(self, "outputs", outputs)
        set_field(self, "attrs", attrs)      # attribute name -> int or tuple of ints


class GraphNodes(FrozenRecord):
    __slots__ = ("nodes", "dims")

    def __init__(self, nodes: tuple[Node, ...], dims: dict):
        set_field(self, "nodes", nodes)
        set_field(self, "dims", dims)        # value name -> dims, from initializers, Constant nodes, value_info, outputs


def read_nodes(data) -> GraphNodes:
    """The main graph's default-domain nodes and the dims the file states for its values.

    Slower than ``read_signature`` (every node's strings are decoded), so it is read only for models
    whose inputs may index a table or give a shape.
    """
    nodes, dims = [], {}
    with memoryview(data) as view:
        for field, graph in _fields(view, 0, len(view)):
            if field != _MODEL_GRAPH or not isinstance(graph, tuple):
                continue
            for gfield, value in _fields(view, *graph):
                if not isinstance(value, tuple):
                    continue
                if gfield == _GRAPH_NODE:
                    node = _node(view, value)
                    if node is not None:
                        nodes.append(node)
                elif gfield == _GRAPH_INITIALIZER:
                    name, shape = _tensor_dims(view, value)
                    dims[name] = shape
                elif gfield in (_GRAPH_VALUE_INFO, _GRAPH_OUTPUT):
                    name, _, shape = _value(view, value)
                    if shape is not None:
                        dims.setdefault(name, shape)
    return GraphNodes(tuple(nodes), dims)


def _node(view, span) -> Node | None:
    inputs, outputs, name, op_type, domain, attrs, value = [], [], "", "", "", {}, None
    for field, v in _fields(view, *span):
        if not isinstance(v, tuple):
            continue
        if field == _NODE_INPUT:
            inputs.append(_text(view, v))
        elif field == _NODE_OUTPUT:
            outputs.append(_text(view, v))
        elif field == _NODE_NAME:
            name = _text(view, v)
        elif field == _NODE_OP_TYPE:
            op_type = _text(view, v)
        elif field == _NODE_DOMAIN:
            domain = _text(view, v)
        elif field == _NODE_ATTRIBUTE:
            attr_name, single, ints, tensor = "", None, [], None
            for afield, a in _fields(view, *v):
                if afield == _ATTR_NAME and isinstance(a, tuple):
                    attr_name = _text(view, a)
                elif afield == _ATTR_I and isinstance(a, int):
                    single = _signed(a)
                elif afield == _ATTR_INTS:
                    ints.extend(_packed(view, a) if isinstance(a, tuple) else [_signed(a)] if isinstance(a, int) else [])
                elif afield == _ATTR_T and isinstance(a, tuple):
                    tensor = a
            if tensor is not None and attr_name == "value":
                value = _tensor_dims(view, tensor)[1]
            elif ints:
                attrs[attr_name] = tuple(ints)
            elif single is not None:
                attrs[attr_name] = single
    if domain not in ("", "ai.onnx"):
        return None
    if op_type == "Constant" and value is not None:
        attrs["_dims"] = value
    return Node(op_type, name, tuple(inputs), tuple(outputs), attrs)


def _tensor_dims(view, span) -> tuple[str, tuple[int, ...]]:
    name, dims = "", []
    for field, value in _fields(view, *span):
        if field == _TENSOR_NAME and isinstance(value, tuple):
            name = _text(view, value)
        elif field == _TENSOR_DIMS:
            if isinstance(value, tuple):
                dims.extend(_packed(view, value))
            elif isinstance(value, int):
                dims.append(_signed(value))
    return name, tuple(dims)


def _packed(view, span) -> list[int]:
    values, pos = [], span[0]
    while pos < span[1]:
        value, pos = _varint(view, pos, span[1])
        values.append(_signed(value))
    return values


def _signed(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value
