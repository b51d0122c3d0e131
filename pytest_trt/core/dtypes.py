"""dtype names both ways: a numpy dtype for an ONNX/TensorRT-style name (with ml_dtypes' bfloat16 and float8
types), and a dtype's name (cached)."""
from __future__ import annotations

import functools

import numpy as np


@functools.lru_cache(maxsize=64)
def numpy_dtype(name: str) -> np.dtype:
    """numpy dtype for a name, including ml_dtypes' bfloat16 and float8 types."""
    try:
        return np.dtype(name)
    except TypeError:
        import ml_dtypes  # registers bfloat16, float8_* with numpy

        return np.dtype(getattr(ml_dtypes, name))


@functools.lru_cache(maxsize=64)
def dtype_name(dtype: np.dtype) -> str:
    """``dtype.name``, cached: numpy builds that string on every access (microseconds per call)."""
    return dtype.name
