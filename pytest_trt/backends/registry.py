"""Finding backends: the built-ins by name, third parties through an entry-point group.

Third parties add a backend (see ``base.Backend`` for the protocol) without changing pytest-trt by
declaring, in their package metadata::

    [project.entry-points."pytest_trt.backends"]
    mybackend = "mypkg.backend:MyBackend"     # a class (or factory) taking no arguments

and selecting it with ``pytest --trt-backend mybackend``.
"""
from __future__ import annotations

import importlib

from pytest_trt.backends.base import REQUIRED, Backend, missing_members, with_defaults
from pytest_trt.backends.tensorrt import FLAVORS
from pytest_trt.errors import BackendError

ENTRY_POINT_GROUP = "pytest_trt.backends"
BUILTIN = {
    "onnxruntime": "pytest_trt.backends.onnxruntime:OnnxRuntimeBackend",
    "tensorrt": "pytest_trt.backends.tensorrt.backend:TensorRTBackend",
    "tensorrt_rtx": "pytest_trt.backends.tensorrt.backend:TensorRTRTXBackend",
}
# What --trt-backend=auto tries, in order, for the engine under test: the TensorRT flavors.
AUTO_ORDER = FLAVORS

_instances: dict[str, Backend] = {}


def _entry_points() -> dict:
    from importlib.metadata import entry_points

    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def known_backends() -> list[str]:
    """Names of built-in and installed third-party backends."""
    return sorted(set(BUILTIN) | set(_entry_points()))


def get_backend(name: str) -> Backend:
    """The backend registered under ``name`` (one instance per process), with every member of ``Backend``."""
    if name in _instances:
        return _instances[name]
    if name in BUILTIN:
        module, _, attr = BUILTIN[name].partition(":")
        factory = getattr(importlib.import_module(module), attr)
    else:
        eps = _entry_points()
        if name not in eps:
            raise BackendError(f"unknown backend {name!r}; known backends: {', '.join(known_backends())} "
                               f"(third-party backends register in the entry-point group {ENTRY_POINT_GROUP!r})")
        try:
            factory = eps[name].load()
        except Exception as exc:  # a broken third-party package must not read as ours
            raise BackendError(f"backend {name!r} failed to load from entry point {eps[name].value!r}: "
                               f"{type(exc).__name__}: {exc}; reinstall or fix that package") from exc
    backend = factory()
    if missing_members(backend):
        raise BackendError(f"backend {name!r} ({factory!r}) does not implement the pytest_trt Backend protocol "
                           f"({', '.join(REQUIRED)})")
    backend = _instances[name] = with_defaults(backend)
    return backend


def select_engine_backend(choice: str) -> tuple[Backend | None, str | None]:
    """The engine under test for ``--trt-backend`` (``auto``, ``none`` or a name), or why there is none."""
    if choice == "none":
        return None, "engine side disabled (--trt-backend none)"
    if choice == "auto":
        import importlib.util

        from pytest_trt.backends.tensorrt.probe import EXTRAS, machine_reason

        reasons = []
        for name in AUTO_ORDER:
            if importlib.util.find_spec(name) is None:
                continue  # only the flavors installed here have something to say
            reason = machine_reason(name)  # without importing the adapter where no engine can run
            if reason:
                reasons.append(reason)
                continue
            backend = get_backend(name)
            reason = backend.unavailable_reason()
            if reason is None:
                return backend, None
            reasons.append(reason)
        if not reasons:
            reasons = [f"neither tensorrt nor tensorrt_rtx is installed (pip install 'pytest-trt[{EXTRAS['tensorrt']}]', "
                       f"or 'pytest-trt[{EXTRAS['tensorrt_rtx']}]' for TensorRT-RTX)"]
        return None, "no TensorRT backend can run here: " + "; ".join(reasons)
    backend = get_backend(choice)
    reason = backend.unavailable_reason()
    return (backend, None) if reason is None else (None, f"backend {choice!r} cannot run here: {reason}")


def short_reason(reason: str) -> str:
    """A skip reason without its install hints ``(pip install ...)``, for what repeats it per check (JUnit
    properties): the terminal summary states the whole reason once per session."""
    import re

    return re.sub(r" \(pip install [^)]*\)", "", reason)
