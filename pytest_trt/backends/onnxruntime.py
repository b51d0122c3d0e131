"""ONNX Runtime: the reference backend (CPU), also usable as an engine under test.

Sessions are created once per (model, providers) and reused across tests in the process.
"""
from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Mapping, Sequence

import numpy as np

from pytest_trt.errors import BackendError, ModelError, first_line

_MAX_SESSIONS = 8
_sessions: OrderedDict = OrderedDict()


def session_for(model, providers: Sequence[str] = ("CPUExecutionProvider",)):
    """A cached ``onnxruntime.InferenceSession`` for ``model`` (a ``ModelInfo``)."""
    key = (str(model.path), model.sha256, tuple(providers))
    session = _sessions.get(key)
    if session is not None:
        _sessions.move_to_end(key)
        return session
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 4  # fatal only: run errors come back as exceptions, which our sentence quotes
    try:
        session = ort.InferenceSession(str(model.path), sess_options=options, providers=list(providers))
    except Exception as exc:  # onnxruntime raises its own exception types for invalid graphs
        text = ort_error_text(exc)
        fix = ("save it with an IR version this onnxruntime reads (set model.ir_version before onnx.save) "
               "or upgrade onnxruntime" if "IR version" in text
               else "check it with onnx.checker.check_model(path, full_check=True)")
        raise ModelError(f"onnxruntime cannot load model {str(model.path)!r}: {text}; {fix}") from None
    _sessions[key] = session
    if len(_sessions) > _MAX_SESSIONS:
        _sessions.popitem(last=False)
    return session


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
    """Runs models with onnxruntime (CPU provider unless told otherwise); fp32 only."""

    name = "onnxruntime"
    events = ()   # it builds nothing

    def __init__(self, providers: Sequence[str] = ("CPUExecutionProvider",)):
        self.providers = tuple(providers)

    def unavailable_reason(self) -> str | None:
        import importlib.util

        return None if importlib.util.find_spec("onnxruntime") else "onnxruntime is not installed"

    def precision_reason(self, precision: str) -> str | None:
        if precision == "fp32":
            return None
        return f"onnxruntime runs the model as written and cannot realize precision {precision!r} (it supports fp32)"

    def describe(self) -> dict:
        import onnxruntime as ort

        return {"backend": self.name, "version": ort.__version__, "providers": list(self.providers)}

    def run(self, model, inputs: Mapping, *, precision: str = "fp32", options: Mapping | None = None) -> dict:
        reason = self.precision_reason(precision)
        if reason:
            raise BackendError(reason)
        session = session_for(model, self.providers)
        names = [o.name for o in session.get_outputs()]
        try:
            values = session.run(names, dict(inputs))
        except Exception as exc:
            raise BackendError(f"onnxruntime failed to run {model.path.name}: {ort_error_text(exc)}") from None
        return {name: np.asarray(v) for name, v in zip(names, values)}

    def close(self) -> None:
        """Nothing to free: sessions are cached per process (``session_for``), shared by every instance."""
