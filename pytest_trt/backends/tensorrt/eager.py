"""Eager engine API: ``build_engine`` returns plan bytes, ``run_engine`` returns outputs. No lazy chains."""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from pytest_trt.backends.tensorrt import FLAVORS
from pytest_trt.errors import BackendError

if TYPE_CHECKING:
    from pytest_trt.backends.base import PlanBuilder


def _backend(name: str) -> PlanBuilder:
    if name not in FLAVORS:
        raise BackendError(f"backend {name!r} builds no TensorRT engines; use one of: {', '.join(FLAVORS)}")
    from pytest_trt.backends.registry import get_backend

    return get_backend(name)


def build_engine(model, *, backend: str = "tensorrt", precision: str = "fp32", shapes: Mapping | None = None,
                 cache_dir=None, build: Mapping | str | None = None, shape_values: Mapping | None = None) -> bytes:
    """Build a serialized TensorRT plan for ``model``, or load it from ``cache_dir`` when cached.

    ``model`` is a path, or ``{"fp32": path, "fp16": path, ...}`` as in the marker: ``model[precision]`` is built
    as it is (no conversion), a precision without an entry from the fp32 file. ``shapes`` gives dynamic input
    shapes as in the marker (one shape, or min/opt/max per input); ``build`` holds builder options (workspace,
    optimization_level, tactic_sources, hardware_compatibility, version_compatible, converter).
    ``shape_values`` gives the values of shape-tensor inputs (inputs whose values set shapes inside the model,
    e.g. Expand's or Reshape's shape given as an input): ``{name: sequence of ints}``. TensorRT-RTX builds
    without a GPU.
    """
    from pytest_trt.core.build_options import parse_build_options
    from pytest_trt.core.model import load_model_info
    from pytest_trt.core.spec import CompareSpec, check_models, check_shapes, engine_model_info

    if isinstance(model, Mapping):
        from pytest_trt.core.tolerance import PRECISIONS

        models = check_models(model, PRECISIONS, Path.cwd(), None, where="build_engine")
        info = load_model_info(models["fp32"])
        model_info = engine_model_info(CompareSpec(model=info.path, models=models), precision, info, "build_engine")
    else:
        model_info = info = load_model_info(model)
    outcome, _ = _backend(backend).build(model_info, precision, shapes=check_shapes(shapes or {}),
                                         build_options=parse_build_options(build), cache_dir=cache_dir,
                                         convert=model_info is info,
                                         shape_values={k: tuple(int(v) for v in vs) for k, vs in
                                                       (shape_values or {}).items()})
    return outcome.plan


def _runnable(backend: str, what: str):
    """The backend, where a plan can run on this machine; else one sentence (no plan deserializes here)."""
    engine_backend = _backend(backend)
    reason = engine_backend.unavailable_reason()
    if reason:
        fix = "" if "pip install" in reason else "; run the plan on a machine with a GPU it supports"
        raise BackendError(f"{what} a {backend} plan on this machine: {reason}{fix}")
    return engine_backend


def engine_census(plan: bytes, *, backend: str = "tensorrt", version_compatible: bool = False) -> dict:
    """The precision census of a serialized plan: ``{"layers", "compute": {precision: count}, "kinds", "opaque_io",
    "detailed"}``, read through TensorRT's engine inspector (``pytest_trt.reports.census.census_text`` makes it
    one line). Plans built by pytest-trt carry layer details; others may only list layer names."""
    from pytest_trt.backends.tensorrt.runtime import Engine

    engine_backend = _runnable(backend, "engine_census cannot load")
    with Engine(engine_backend.trt(), bytes(plan), host_code_allowed=version_compatible) as engine:
        return engine.census()


def run_engine(plan: bytes, inputs: Mapping, *, backend: str = "tensorrt") -> dict:
    """Run a serialized plan once on ``inputs`` (``{name: array}``); returns ``{output name: array}``.

    The engine and its buffers are released before this returns. Where no plan can run (no cuda-python,
    no GPU), says so before TensorRT tries: it would report a plan it cannot deserialize.
    """
    from pytest_trt.backends.tensorrt.runtime import Engine

    engine_backend = _runnable(backend, "run_engine cannot run")
    with Engine(engine_backend.trt(), bytes(plan)) as engine:
        return engine.run(inputs)
