"""Whether the comparator uses its C kernel (``_scan.c``), decided in one place and without numpy,
so that pytest's header (shown in every session) can say so as cheaply as ``comparison`` decides it.

The kernel is used when ``pip install`` built it (a C compiler was present) and ``PYTEST_TRT_COMPARE``
is not ``numpy``; otherwise the comparator's numpy path runs, with the same reports.
"""
from __future__ import annotations

import os

ENV = "PYTEST_TRT_COMPARE"


def forced_numpy() -> bool:
    return os.environ.get(ENV, "").strip().lower() == "numpy"


def load():
    """The kernel module, or None where it is not built or ``PYTEST_TRT_COMPARE=numpy``."""
    if forced_numpy():
        return None
    try:
        from pytest_trt.comparison import _scan
    except ImportError:  # pragma: no cover - exercised where no compiler was available at install
        return None
    return _scan


def describe() -> str:
    """The header's words for it, found without importing the kernel or numpy."""
    from importlib.util import find_spec

    if forced_numpy():
        return f"numpy ({ENV}=numpy)"
    return "C kernel" if find_spec("pytest_trt.comparison._scan") is not None else "numpy (C kernel not built)"
