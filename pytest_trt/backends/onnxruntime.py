"""ONNX Runtime: the reference backend (CPU), also usable as an engine under test.

Sessions are created once per (model, providers) and reused across tests in the process. As the engine under
test (``--trt-backend onnxruntime``), fp16 and bf16 run the model converted to that precision (the converter
strongly typed TensorRT builds use, ``backends.convert``): a CPU **preview** of the precision loss, labelled as
such in every report, never a TensorRT result. ``probe`` exposes intermediate tensors for a localization.
"""
from __future__ import annotations

import contextlib
import functools
import re
from collections import OrderedDict
from collections.abc import Mapping, Sequence

import numpy as np

from pytest_trt.errors import BackendError, ModelError, first_line

_MAX_SESSIONS = 8
_sessions: OrderedDict = OrderedDict()
PREVIEWS = ("fp16", "bf16")   # precisions this backend runs as a converted model (a preview)
PREVIEW_NOTE = "CPU preview: the model converted to {precision} and run by onnxruntime, not a TensorRT engine"


def session_for(model, providers: Sequence[str] = ("CPUExecutionProvider",), precision: str = "fp32",
                converter: str | None = None):
    """A cached ``onnxruntime.InferenceSession`` for ``model`` (a ``ModelInfo``); at a ``PREVIEWS`` precision,
    for the model converted to it by ``converter`` (default: the builds' default)."""
    key = (str(model.path), model.sha256, tuple(providers), precision, converter)
    session = _sessions.get(key)
    if session is not None:
        _sessions.move_to_end(key)
        return session
    source = str(model.path) if precision == "fp32" else converted_bytes(model, precision, converter)
    session = new_session(source, model, providers)
    _sessions[key] = session
    if len(_sessions) > _MAX_SESSIONS:
        _sessions.popitem(last=False)
    return session


def converted_bytes(model, precision: str, converter: str | None) -> bytes:
    """``model`` as the preview runs it at ``precision`` (fp16/bf16), serialized (external data held inline):
    converted by ``converter``, every reduced tensor rounded where it is produced (``convert.emulate``). The last
    two are kept: a check's run and its localization convert once."""
    from pytest_trt.backends import convert

    return _converted(str(model.path), model.sha256, precision, converter or convert.DEFAULT_CONVERTER)


@functools.lru_cache(maxsize=2)
def _converted(path: str, sha256: str, precision: str, converter: str) -> bytes:
    from pytest_trt.backends import convert

    reason = convert.converter_reason(converter)
    if reason:
        raise BackendError(reason)
    target = {"fp16": "float16", "bf16": "bfloat16"}[precision]
    return convert.emulate(convert.convert_file(path, target, converter), target).SerializeToString()


def new_session(source, model, providers: Sequence[str]):
    """An ``InferenceSession`` for ``source`` (a path, or model bytes whose external data lies beside
    ``model``'s file); a model onnxruntime cannot load is one sentence."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 4  # fatal only: run errors come back as exceptions, which our sentence quotes
    if isinstance(source, bytes):
        options.add_session_config_entry("session.model_external_initializers_file_folder_path",
                                         str(model.path.parent))
    try:
        return ort.InferenceSession(source, sess_options=options, providers=list(providers))
    except Exception as exc:  # onnxruntime raises its own exception types for invalid graphs
        text = ort_error_text(exc)
        fix = ("save it with an IR version this onnxruntime reads (set model.ir_version before onnx.save) "
               "or upgrade onnxruntime" if "IR version" in text
               else "check it with onnx.checker.check_model(path, full_check=True)")
        raise ModelError(f"onnxruntime cannot load model {str(model.path)!r}: {text}; {fix}") from None


# "[ONNXRuntimeError] : 2 : INVALID_ARGUMENT : Load model from /x.onnx failed:" and
# "/onnxruntime_src/onnxruntime/core/graph/model.cc:256 onnxruntime::Model::Model(...) " say nothing to users.
_ORT_PREFIX = r"^\[ONNXRuntimeError\]\s*:\s*\d+\s*:\s*\w+\s*:\s*(?:Load model from .*? failed:\s*)?"
_ORT_SOURCE = r"\S+\.(?:cc|cpp|cxx|h|hpp):\d+\s+(?:(?:[\w:<>*&]+\s+)?[^\s(]+\([^()]*\)\s+)?"


def ort_error_text(exc: BaseException) -> str:
    """onnxruntime's message without its error-code prefix, the model path it repeats, and C++ source locations.

    The patterns are compiled on the first error (re caches them), not when every session imports this module."""
    text = re.sub(_ORT_SOURCE, "", re.sub(_ORT_PREFIX, "", first_line(exc))).strip()
    return text or first_line(exc)


class OnnxRuntimeBackend:
    """Runs models with onnxruntime (CPU provider unless told otherwise): fp32 as written; fp16 and bf16 as a
    preview (the model converted to that precision)."""

    name = "onnxruntime"
    events = ()   # it builds nothing
    previews = PREVIEWS

    def __init__(self, providers: Sequence[str] = ("CPUExecutionProvider",)):
        self.providers = tuple(providers)

    def unavailable_reason(self) -> str | None:
        import importlib.util

        return None if importlib.util.find_spec("onnxruntime") else "onnxruntime is not installed"

    def precision_reason(self, precision: str) -> str | None:
        if precision == "fp32" or precision in PREVIEWS:
            return None
        return (f"onnxruntime runs the model as written (fp32) or converted to fp16/bf16 as a preview, and cannot "
                f"realize precision {precision!r}")

    def describe(self) -> dict:
        import onnxruntime as ort

        return {"backend": self.name, "version": ort.__version__, "providers": list(self.providers)}

    def run(self, model, inputs: Mapping, *, precision: str = "fp32", options: Mapping | None = None) -> dict:
        reason = self.precision_reason(precision)
        if reason:
            raise BackendError(reason)
        session = session_for(model, self.providers, precision, _converter(options, precision))
        names = [o.name for o in session.get_outputs()]
        try:
            values = session.run(names, dict(inputs))
        except Exception as exc:
            raise BackendError(f"onnxruntime failed to run {model.path.name}{_at(precision)}: "
                               f"{ort_error_text(exc)}") from None
        return {name: np.asarray(v) for name, v in zip(names, values)}

    def probe(self, model, *, precision: str = "fp32", options: Mapping | None = None, tensors=()) -> OnnxRuntimeProbe:
        """Intermediate tensors of ``model`` at ``precision`` (as ``run`` computes them), for a localization."""
        reason = self.precision_reason(precision)
        if reason:
            raise BackendError(reason)
        converter = _converter(options, precision)
        return OnnxRuntimeProbe(model, self.providers, precision, converter)

    def close(self) -> None:
        """Nothing to free: sessions are cached per process (``session_for``), shared by every instance."""


def _converter(options: Mapping | None, precision: str) -> str | None:
    build = (options or {}).get("build")
    return getattr(build, "converter", None) if precision in PREVIEWS else None


def _at(precision: str) -> str:
    return "" if precision == "fp32" else f" converted to {precision} (preview)"


class OnnxRuntimeProbe:
    """Intermediate tensors from onnxruntime: the model with the tensors of one pass added as graph outputs.

    onnxruntime keeps every graph output of a run in memory whichever ones are fetched, so each pass gets its own
    session exposing only its tensors (one session at a time)."""

    method = "graph outputs (onnxruntime)"
    fusions_broken = False
    unexposed = "absent"

    def __init__(self, model, providers, precision: str, converter: str | None):
        import onnx

        self.model, self.providers, self.precision = model, tuple(providers), precision
        self.preview = precision in PREVIEWS
        data = (converted_bytes(model, precision, converter) if self.preview else
                onnx.load(str(model.path), load_external_data=False).SerializeToString())
        self._base = data
        self._sessions: dict[tuple, object] = {}

    def tensors(self) -> dict[str, str]:
        """Every tensor a node of the (converted) model produces: all observable here."""
        from pytest_trt.core.onnx_wire import read_nodes

        return {o: "observed" for node in read_nodes(self._base).nodes for o in node.outputs if o}

    @contextlib.contextmanager
    def sample(self, inputs: Mapping):
        yield _OrtSample(self, dict(inputs))

    def session(self, names: tuple[str, ...]):
        """The session exposing ``names``; only the latest is kept (a localization runs every sample through one
        pass before the next), so its weights and arena are held once."""
        session = self._sessions.get(names)
        if session is None:
            import onnx

            self._sessions.clear()
            proto = onnx.ModelProto.FromString(self._base)
            present = {o.name for o in proto.graph.output}
            proto.graph.output.extend(onnx.ValueInfoProto(name=n) for n in names if n not in present)
            session = self._sessions[names] = new_session(proto.SerializeToString(), self.model, self.providers)
        return session

    def close(self) -> None:
        self._sessions.clear()


class _OrtSample:
    """One input set through the probe: each ``fetch`` is one pass (a run of the session exposing its tensors)."""

    def __init__(self, probe: OnnxRuntimeProbe, inputs: dict):
        self.probe, self.inputs = probe, inputs
        self.outputs: dict | None = None   # the model's outputs, from the first pass

    def fetch(self, names) -> dict:
        session = self.probe.session(tuple(names))
        outputs = [o.name for o in self.probe.model.outputs]
        wanted = list(dict.fromkeys([*names, *(outputs if self.outputs is None else ())]))
        try:
            values = session.run(wanted, self.inputs)
        except Exception as exc:
            raise BackendError(f"onnxruntime failed to run {self.probe.model.path.name}{_at(self.probe.precision)} "
                               f"with intermediate tensors exposed: {ort_error_text(exc)}") from None
        got = {name: np.asarray(v) for name, v in zip(wanted, values)}
        if self.outputs is None:
            self.outputs = {name: got[name] for name in outputs}
        return {name: got[name] for name in names}
