"""NVIDIA ModelOpt AutoCast as the fp16/bf16 converter for strongly typed TensorRT (``converter=autocast``).

AutoCast (``modelopt.onnx.autocast.convert_to_mixed_precision``) is the converter NVIDIA recommends for
TensorRT 11 and TensorRT-RTX: it runs the fp32 model once in onnxruntime on random inputs (Polygraphy's
seeded data loader, values in [-1, 1], dynamic dims 1) and keeps in fp32 the nodes whose values exceed
``DATA_MAX``; every other node computes in the reduced type. pytest-trt calls it with the model's inputs
and outputs kept in float32 (``keep_io_types``), like its own converter, so the same inputs and
comparisons apply, and checks the result with onnx's full checker.

Installed with ``pip install 'pytest-trt[autocast]'``: ModelOpt without its ``[onnx]`` extra (which pins
onnxruntime-gpu and cupy-cuda12x) plus the packages AutoCast imports. ``modelopt.onnx`` imports torch,
so the first conversion in a process costs a few seconds more.
"""
from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

from pytest_trt.errors import BackendError, ModelError, first_line

INSTALL = "pip install 'pytest-trt[autocast]'"
DATA_MAX = 512            # AutoCast's default: nodes with |value| above this stay in fp32
# What ``import modelopt.onnx.autocast`` needs besides modelopt and torch (the [autocast] extra installs them).
_IMPORTS = ("modelopt", "torch", "onnx_graphsurgeon", "onnxscript", "onnxslim", "polygraphy")


def version() -> str | None:
    """The installed nvidia-modelopt version, or None."""
    from importlib.metadata import PackageNotFoundError, version as dist_version

    try:
        return dist_version("nvidia-modelopt")
    except PackageNotFoundError:
        return None


def unavailable_reason() -> str | None:
    """Why AutoCast cannot convert here (one sentence with the install command), or None."""
    missing = [name for name in _IMPORTS if importlib.util.find_spec(name) is None]
    if missing:
        return (f"converter 'autocast' needs NVIDIA ModelOpt AutoCast, but {', '.join(missing)} "
                f"{'is' if len(missing) == 1 else 'are'} not installed; install it with: {INSTALL}, "
                "or use converter=casts")
    try:
        _api()
    except Exception as exc:  # installed but broken: say what the import said
        return (f"converter 'autocast' cannot import modelopt.onnx.autocast ({first_line(exc)}); reinstall it "
                f"with: {INSTALL}, or use converter=casts")
    return None


def converter_id() -> str:
    """What the engine cache key records for this converter: its version and settings."""
    return f"modelopt autocast {version()} data_max={DATA_MAX} keep_io_types"


@functools.lru_cache(maxsize=None)
def _api():
    from modelopt.onnx.autocast import configure_logging, convert_to_mixed_precision

    configure_logging("WARNING")  # AutoCast logs each step at INFO
    return convert_to_mixed_precision


def convert(path, target: str = "float16"):
    """``path``'s model converted by AutoCast to ``target`` ("float16" or "bfloat16"), an onnx.ModelProto."""
    import onnx

    reason = unavailable_reason()
    if reason:
        raise BackendError(reason)
    low = {"float16": "fp16", "bfloat16": "bf16"}[target]
    try:
        model = _api()(str(Path(path)), low_precision_type=low, keep_io_types=True, data_max=DATA_MAX,
                       providers=["cpu"])
    except Exception as exc:
        raise ModelError(f"ModelOpt AutoCast could not convert {Path(path).name} to {target} ({first_line(exc)}); "
                         "test this precision with a model exported in that precision (model={'fp32': ..., "
                         f"'{'fp16' if low == 'fp16' else 'bf16'}': ...}}), or use converter=casts") from None
    try:
        onnx.checker.check_model(model, full_check=True)
    except Exception as exc:
        raise ModelError(f"ModelOpt AutoCast converted {Path(path).name} to an invalid {target} graph "
                         f"({first_line(exc)}); use converter=casts or a model exported in {target}") from None
    return model
