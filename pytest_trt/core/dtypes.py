"""dtype facts in one home: a numpy dtype for an ONNX/TensorRT-style name (with ml_dtypes' bfloat16 and float8
types), a dtype's name (cached), and each float dtype's epsilon. Importing it loads no numpy."""
from __future__ import annotations

import functools
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np


@functools.lru_cache(maxsize=64)
def numpy_dtype(name: str) -> np.dtype:
    """numpy dtype for a name, including ml_dtypes' bfloat16 and float8 types."""
    import numpy as np

    try:
        return np.dtype(name)
    except TypeError:
        import ml_dtypes  # registers bfloat16, float8_* with numpy

        return np.dtype(getattr(ml_dtypes, name))


@functools.lru_cache(maxsize=64)
def dtype_name(dtype: np.dtype) -> str:
    """``dtype.name``, cached: numpy builds that string on every access (microseconds per call)."""
    return dtype.name


DTYPE_EPSILON = {"float64": 2.0 ** -52, "float32": 2.0 ** -23, "float16": 2.0 ** -10, "bfloat16": 2.0 ** -7,
                 "float8_e4m3fn": 2.0 ** -3, "float8_e4m3fnuz": 2.0 ** -3, "float8_e5m2": 2.0 ** -2,
                 "float8_e5m2fnuz": 2.0 ** -2}


def coarser_float(*dtypes: str | None) -> str | None:
    """Of the given dtype names, the float dtype with the largest epsilon (None when none is a known float)."""
    known = [d for d in dtypes if d in DTYPE_EPSILON]
    return max(known, key=DTYPE_EPSILON.__getitem__) if known else None
