"""TensorRT and TensorRT-RTX as backends: availability, metadata, build orchestration (engine cache, events)
and running through ``runtime.Engine``.

A thin adapter: every decision (flavor capabilities, precision realization, profiles, dtype mapping, buffer
plans, cache keys) is made by the pure functions in ``plan`` and ``cache``, builder options arrive validated
(``pytest_trt.core.build_options``); the TensorRT calls are in ``build`` (parse and build a plan) and
``runtime`` (deserialize and run one).
"""
from __future__ import annotations

import contextlib
import dataclasses
import functools
import importlib
import importlib.util
import logging
import warnings
from collections import OrderedDict
from collections.abc import Mapping

from pytest_trt.backends.tensorrt.build import build_plan
from pytest_trt.backends.tensorrt.plan import (Flavor, check_shape_values, check_within_profile, plan_profiles,
                                               realize_precision, restore_output_dtypes, shape_tensor_inputs,
                                               shapes_for_run)
from pytest_trt.backends.tensorrt.probe import install_hint, machine_reason
from pytest_trt.backends.tensorrt.progress import BuildProgress
from pytest_trt.backends.tensorrt.runtime import Engine, PlanLoadError
from pytest_trt.backends.tensorrt.cache import EngineCacheWarning, cache_key, key_fields, timing_key
from pytest_trt.stores import engine_cache
from pytest_trt.backends.tensorrt.cache_index import provenance
from pytest_trt.core.build_options import BuildOptions
from pytest_trt.errors import BackendError

log = logging.getLogger("pytest_trt.tensorrt")
# TensorRT-RTX's runtime supports these compute capabilities (not 9.0, the H100/H200).
RTX_RUNTIME_CAPABILITIES = ("7.5", "8.0", "8.6", "8.7", "8.9", "12.0", "12.1")
_MAX_ENGINES = 4


class TensorRTBackend:
    """Engine under test: NVIDIA TensorRT (8.6, 10, 11)."""

    name = "tensorrt"
    module = "tensorrt"

    def __init__(self):
        self._engines: OrderedDict = OrderedDict()   # cache key -> Engine (deserialized once per process)
        self.events: list[dict] = []                 # builds and cache hits, read by the plugin's summary
        self._census: dict | None = None             # census summary of the engine the last run used
        self._last: Engine | None = None             # the engine the last run used (a localization reads its layers)

    # ------------------------------------------------------------------ protocol

    def trt(self):
        """The TensorRT module (imported on first use)."""
        try:
            return importlib.import_module(self.module)
        except ImportError as exc:
            raise BackendError(f"{self.module} is not installed or cannot load ({exc}); install it with: "
                               f"{install_hint(self.module)}") from None

    @functools.cached_property
    def flavor(self) -> Flavor:
        return Flavor.parse(self.name, self.trt().__version__)

    def build_reason(self) -> str | None:
        """None when this machine can build plans with this backend."""
        if importlib.util.find_spec(self.module) is None:
            return f"{self.module} is not installed ({install_hint(self.module)})"
        try:
            self.trt()
        except BackendError as exc:
            return str(exc)
        return None

    def unavailable_reason(self) -> str | None:
        reason = machine_reason(self.module)
        if reason:
            return reason
        reason = self.build_reason()
        if reason:
            return reason
        if self.flavor.is_rtx:
            from pytest_trt.backends.tensorrt import cuda

            cc = cuda.device_info()["compute_capability"]
            if cc not in RTX_RUNTIME_CAPABILITIES:
                return (f"the TensorRT-RTX runtime does not run on compute capability {cc} "
                        f"(supported: {', '.join(RTX_RUNTIME_CAPABILITIES)}); it can still build plans here")
        return None

    def precision_reason(self, precision: str) -> str | None:
        try:
            realize_precision(self.flavor, precision, has_qdq=True)
        except BackendError as exc:
            return str(exc)
        return None

    @functools.cached_property
    def device(self) -> dict:
        """The GPU plans are built for; ``{"name": None, ...}`` when building without one (TensorRT-RTX on CPU)."""
        from pytest_trt.backends.tensorrt import cuda

        try:
            if cuda.device_count():
                return cuda.device_info()
        except BackendError:
            pass
        return {"name": None, "compute_capability": None, "runtime": None, "driver": None}

    def describe(self) -> dict:
        device = self.device
        return {"backend": self.name, "version": self.trt().__version__, "flavor": self.flavor.label,
                "gpu": device.get("name"), "compute_capability": device.get("compute_capability"),
                "cuda_runtime": device.get("runtime"), "driver": device.get("driver")}

    def run(self, model, inputs: Mapping, *, precision: str = "fp32", options: Mapping | None = None) -> dict:
        """Build (or load from the engine cache) and run ``model`` at ``precision``; outputs by name."""
        reason = self.build_reason()
        if reason:
            raise BackendError(f"backend {self.name!r} cannot build here: {reason}")
        options = dict(options or {})
        self._census = None
        request = self.build_request(model, inputs, options)
        build_options = request["build_options"]
        outcome, profile = self.build(model, precision, **request)
        check_within_profile(profile, inputs)
        engine = self._engines.get(outcome.key)
        if engine is None:
            host_code = bool(build_options and build_options.version_compatible)
            try:
                engine = Engine(self.trt(), outcome.plan, host_code_allowed=host_code)
            except PlanLoadError as exc:
                if outcome.status != "loaded":
                    raise
                # A cached plan that no longer deserializes (same GPU, another driver or library build): rebuilt.
                warnings.warn(EngineCacheWarning(f"cached engine for {model.path.name} ({precision}) no longer loads "
                                                 f"on this machine ({exc}); rebuilt it"), stacklevel=2)
                outcome, profile = self.build(model, precision, replace=outcome.plan, **request)
                engine = Engine(self.trt(), outcome.plan, host_code_allowed=host_code)
            self._engines[outcome.key] = engine
            if len(self._engines) > _MAX_ENGINES:
                self._engines.popitem(last=False)[1].close()
        else:
            self._engines.move_to_end(outcome.key)
        self._last = engine
        outputs = restore_output_dtypes(engine.run(inputs), model.outputs)
        try:
            self._census = engine.census()
        except Exception as exc:  # noqa: BLE001 - the census informs; it must never fail a check that ran
            log.warning("no precision census for %s: %s", model.path.name, exc)
        return outputs

    def build_request(self, model, inputs: Mapping, options: Mapping) -> dict:
        """``build``'s keyword arguments for running ``model`` on ``inputs`` with the plugin's ``options``: the
        profile's shapes (and shape-tensor values) from the inputs, builder options, cache folder, conversion."""
        shape_values = {name: tuple(int(v) for v in inputs[name].ravel())
                        for name in graph_facts(model).shape_inputs if name in inputs}
        return dict(shapes=shapes_for_run(model.inputs, options.get("shapes") or {}, inputs),
                    build_options=options.get("build"), cache_dir=options.get("engine_dir"),
                    shape_values=shape_values, convert=options.get("convert", True))

    def census(self) -> dict | None:
        """The precision census (summary dict) of the engine the last ``run`` used; None if it could not be read."""
        return self._census

    def probe(self, model, *, precision: str = "fp32", options: Mapping | None = None, tensors=()):
        """``model`` at ``precision`` built once more with its intermediate tensors exposed (``observe``), for a
        localization; the engine the last ``run`` used tells which of them it fuses."""
        from pytest_trt.backends.tensorrt.observe import TensorRTProbe

        return TensorRTProbe(self, model, precision, dict(options or {}), tuple(tensors), self._last)

    def close(self) -> None:
        """Free every engine this backend holds (the plugin calls this at session end)."""
        while self._engines:
            self._engines.popitem()[1].close()

    # ---------------------------------------------------------------------- build

    def build(self, model, precision: str, *, shapes: Mapping, build_options: BuildOptions | None = None,
              cache_dir=None, shape_values: Mapping | None = None, replace: bytes | None = None,
              convert: bool = True, observe: tuple[str, tuple[str, ...]] | None = None):
        """(CacheOutcome, Profile or None) for ``model`` (a ModelInfo) at ``precision``; ``build_options``
        None: TensorRT's defaults. ``shape_values``: the values of shape-tensor inputs (they are part of the
        profile). ``replace``: a cached plan that failed to deserialize, rebuilt under the same key. ``convert``
        False: ``model`` is the test's own file for ``precision``, built as it is (strongly typed flavors take
        its types; flags still apply on the others). ``observe``: (how, tensor names) exposed for a localization
        (``build.mark_tensors``); such a plan has its own cache key."""
        from pytest_trt.backends import convert as model_convert

        reason = self.build_reason()
        if reason:
            raise BackendError(f"backend {self.name!r} cannot build here: {reason}")
        options = build_options or BuildOptions()
        problem = self.flavor.option_problem(options)
        if problem:
            raise BackendError(problem)
        facts = graph_facts(model)
        realization = realize_precision(self.flavor, precision, has_qdq=facts.has_qdq)
        if not convert:
            realization = dataclasses.replace(realization, convert_to=None)
        converter = options.converter or model_convert.DEFAULT_CONVERTER
        if realization.convert_to and model_convert.converter_reason(converter):
            raise BackendError(model_convert.converter_reason(converter))
        check_shape_values(model.inputs, facts.shape_inputs, shape_values or {}, model.path.name)
        profile = plan_profiles(model.inputs, shapes, shape_values)
        version = self.trt().__version__
        device = self.device
        fields = key_fields(model_sha256=model.sha256, flavor=self.name, version=version, device=device,
                            realization=realization.__dict__, profile=profile.as_dict() if profile else None,
                            build_options=options.key(),
                            converter=model_convert.converter_id(converter) if realization.convert_to else None)
        if observe is not None:
            fields["observe"] = [observe[0], sorted(observe[1])]
        key = cache_key(fields)
        description = {**fields, "model_file": model.path.name, "precision": precision,
                       "realization_text": realization.describe(),
                       "built_by": provenance(version, device.get("driver"))}   # not in the key: who, not what
        timing = timing_key(self.name, version, device) if self.flavor.has_timing_cache else None

        def build(timing_cache: bytes | None):
            source = model.path
            with contextlib.ExitStack() as stack:
                if realization.convert_to:
                    source = stack.enter_context(model_convert.converted_model(model.path, realization.convert_to,
                                                                               converter))
                log.info("building %s engine for %s (%s)", self.flavor.label, model.path.name, realization.describe())
                what = f"{self.flavor.label} engine for {model.path.name} ({realization.describe()})"
                with BuildProgress(what) as progress:
                    return build_plan(self.trt(), self.flavor, source, realization, profile, options, timing_cache,
                                      progress, observe)

        cache = engine_cache(cache_dir)
        outcome = (cache.get_or_build(key, description, build, timing) if replace is None
                   else cache.replace(key, replace, description, build, timing))
        self.events.append({"model": model.path.name, "precision": precision, "status": outcome.status,
                            "seconds": outcome.seconds, "key": key})
        return outcome, profile


class GraphFacts:
    """What the engine path needs from a model's graph: Q/DQ nodes (int8/fp8) and shape-tensor inputs."""

    __slots__ = ("has_qdq", "shape_inputs")

    def __init__(self, has_qdq: bool, shape_inputs: tuple[str, ...]):
        self.has_qdq = has_qdq
        self.shape_inputs = shape_inputs


def graph_facts(model) -> GraphFacts:
    """``GraphFacts`` of ``model`` (a ModelInfo), worked out once per model content from the nodes ``core.model``
    reads."""
    return _graph_facts(model)


@functools.lru_cache(maxsize=32)
def _graph_facts(model) -> GraphFacts:   # ModelInfo is immutable and hashable (path, sha256, I/O)
    from pytest_trt.core.model import graph_nodes, has_quantize_nodes

    graph = graph_nodes(str(model.path), model.sha256)
    shape_inputs = shape_tensor_inputs(graph.nodes, model.input_names) if graph is not None else ()
    return GraphFacts(has_quantize_nodes(model), shape_inputs)


class TensorRTRTXBackend(TensorRTBackend):
    """Engine under test: NVIDIA TensorRT-RTX (strongly typed; builds on CPU, runs on RTX-class GPUs)."""

    name = "tensorrt_rtx"
    module = "tensorrt_rtx"
