"""Whether a TensorRT backend can run on this machine at all, asked without importing its adapter.

On machines without TensorRT, cuda-python or a GPU (most CI) this answers ``--trt-backend auto`` for
the price of a module lookup; the adapter (and its planning module) loads only where an engine may run.
"""
from __future__ import annotations

import importlib.util

from ..errors import BackendError


def machine_reason(module: str) -> str | None:
    """Why the backend built on ``module`` (``tensorrt`` or ``tensorrt_rtx``) cannot run here for reasons
    outside TensorRT itself: not installed, no cuda-python, no GPU. None: TensorRT itself must be asked."""
    if importlib.util.find_spec(module) is None:
        return f"{module} is not installed"
    from .. import cuda

    # CUDA first: on CPU-only machines this answers without importing TensorRT (tens of milliseconds).
    try:
        cuda.runtime()
    except BackendError as exc:
        return f"{module} is installed but {exc}"
    if cuda.device_count() == 0:
        return f"{module} is installed but no CUDA GPU is visible"
    return None
