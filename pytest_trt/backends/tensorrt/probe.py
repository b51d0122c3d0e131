"""Whether a TensorRT backend can run on this machine at all, asked without importing its adapter.

On machines without TensorRT, cuda-python or a GPU (most CI) this answers ``--trt-backend auto`` for
the price of a module lookup; the adapter (and its planning module) loads only where an engine may run.
"""
from __future__ import annotations

import functools
import importlib.util

from pytest_trt.errors import BackendError

EXTRAS = {"tensorrt": "trt", "tensorrt_rtx": "rtx"}   # the pytest-trt extra that installs each, with cuda-python


def install_hint(module: str) -> str:
    """The pip command that installs ``module`` and cuda-python (the extra of the TensorRT flavor named)."""
    return f"pip install 'pytest-trt[{EXTRAS.get(module, 'trt')}]'"


@functools.lru_cache(maxsize=None)
def machine_reason(module: str) -> str | None:
    """Why the backend built on ``module`` (``tensorrt`` or ``tensorrt_rtx``) cannot run here for reasons
    outside TensorRT itself: not installed, no cuda-python, no GPU. None: TensorRT itself must be asked.

    Asked once per module and process (GPU assignment, ``--trt-backend auto`` and the adapter all ask):
    what is installed and which GPUs are visible do not change while a process runs, and a failed
    cuda-python import would otherwise be retried on every call."""
    if importlib.util.find_spec(module) is None:
        return f"{module} is not installed ({install_hint(module)})"
    from pytest_trt.backends.tensorrt import cuda

    # CUDA first: on CPU-only machines this answers without importing TensorRT (tens of milliseconds).
    try:
        cuda.runtime()
    except BackendError:  # cuda-python cannot be imported; the fix is the extra of this flavor, not always [trt]
        return f"{module} is installed but cuda-python is not ({install_hint(module)})"
    if cuda.device_count() == 0:
        return f"{module} is installed but no CUDA GPU is visible"
    return None
