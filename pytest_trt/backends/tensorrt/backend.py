"""TensorRT and TensorRT-RTX: build plans from ONNX (cached), run them with execute_async_v3.

A thin adapter: every decision (flavor capabilities, precision realization, profiles, build options,
dtype mapping, buffer plans, cache keys) is made by the pure functions in ``engine_plan`` and
``engine_cache``; this module only makes the TensorRT and CUDA calls. TensorRT calls used (all in
the name-based API shared by 8.6, 10, 11 and TensorRT-RTX): ILogger, Builder.create_network,
OnnxParser.parse_from_file/num_errors/get_error, Builder.create_builder_config,
IBuilderConfig.set_memory_pool_limit/builder_optimization_level/set_tactic_sources/
hardware_compatibility_level/set_flag/clear_flag/add_optimization_profile/create_timing_cache/
set_timing_cache/progress_monitor, Builder.create_optimization_profile, IOptimizationProfile.set_shape,
Builder.build_serialized_network, ITimingCache.serialize, Runtime.deserialize_cuda_engine,
ICudaEngine.num_io_tensors/get_tensor_name/get_tensor_mode/get_tensor_dtype/get_tensor_shape/
create_execution_context, IExecutionContext.set_input_shape/get_tensor_shape/set_tensor_address/
set_output_allocator/execute_async_v3, IOutputAllocator, IProgressMonitor.
"""
from __future__ import annotations

import contextlib
import functools
import gc
import importlib
import importlib.util
import logging
import re
import threading
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path

from pytest_trt.backends.tensorrt.progress import BuildProgress
from pytest_trt.backends.tensorrt.plan import (BuildOptions, Flavor, Profile, Realization, TensorIO, check_within_profile,
                           engine_inputs, numpy_dtype_name, parse_build_options, plan_outputs, plan_profiles,
                           realize_precision, restore_output_dtypes, shapes_for_run)
from pytest_trt.errors import BackendError, ModelError
from pytest_trt.backends.tensorrt.probe import install_hint, machine_reason

log = logging.getLogger("pytest_trt.tensorrt")
_SEVERITY = {"INTERNAL_ERROR": logging.CRITICAL, "ERROR": logging.ERROR, "WARNING": logging.WARNING,
             "INFO": logging.INFO, "VERBOSE": logging.DEBUG}
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
        shapes = shapes_for_run(model.inputs, options.get("shapes") or {}, inputs)
        outcome, profile = self.build(model, precision, shapes=shapes,
                                      build_options=options.get("build"), cache_dir=options.get("engine_dir"))
        check_within_profile(profile, inputs)
        engine = self._engines.get(outcome.key)
        if engine is None:
            engine = Engine(self.trt(), outcome.plan)
            self._engines[outcome.key] = engine
            if len(self._engines) > _MAX_ENGINES:
                self._engines.popitem(last=False)[1].close()
        else:
            self._engines.move_to_end(outcome.key)
        return restore_output_dtypes(engine.run(inputs), model.outputs)

    def close(self) -> None:
        """Free every engine this backend holds (the plugin calls this at session end)."""
        while self._engines:
            self._engines.popitem()[1].close()

    # ---------------------------------------------------------------------- build

    def build(self, model, precision: str, *, shapes: Mapping, build_options=None, cache_dir=None):
        """(CacheOutcome, Profile or None) for ``model`` (a ModelInfo) at ``precision``."""
        from pytest_trt.backends.tensorrt.cache import EngineCache, cache_key, key_fields, timing_key
        from pytest_trt.backends.tensorrt import convert as model_convert

        reason = self.build_reason()
        if reason:
            raise BackendError(f"backend {self.name!r} cannot build here: {reason}")
        options = parse_build_options(build_options)
        realization = realize_precision(self.flavor, precision, has_qdq=model_convert.has_qdq(model.path)
                                        if precision in ("int8", "fp8") else False)
        profile = plan_profiles(model.inputs, shapes)
        version = self.trt().__version__
        device = self.device
        fields = key_fields(model_sha256=model.sha256, flavor=self.name, version=version, device=device,
                            realization=realization.__dict__, profile=profile.as_dict() if profile else None,
                            build_options=options.key(),
                            converter=model_convert.CONVERTER if realization.convert_to else None)
        key = cache_key(fields)
        description = {**fields, "model_file": model.path.name, "precision": precision,
                       "realization_text": realization.describe()}
        timing = timing_key(self.name, version, device) if self.flavor.has_timing_cache else None

        def build(timing_cache: bytes | None):
            source = model.path
            with contextlib.ExitStack() as stack:
                if realization.convert_to:
                    source = stack.enter_context(model_convert.converted_model(model.path, realization.convert_to))
                log.info("building %s engine for %s (%s)", self.flavor.label, model.path.name, realization.describe())
                what = f"{self.flavor.label} engine for {model.path.name} ({realization.describe()})"
                with BuildProgress(what) as progress:
                    return build_plan(self.trt(), self.flavor, source, realization, profile, options, timing_cache,
                                      progress)

        outcome = EngineCache(cache_dir).get_or_build(key, description, build, timing)
        self.events.append({"model": model.path.name, "precision": precision, "status": outcome.status,
                            "seconds": outcome.seconds, "key": key})
        return outcome, profile


class TensorRTRTXBackend(TensorRTBackend):
    """Engine under test: NVIDIA TensorRT-RTX (strongly typed; builds on CPU, runs on RTX-class GPUs)."""

    name = "tensorrt_rtx"
    module = "tensorrt_rtx"


# ---------------------------------------------------------------------------- TensorRT calls

@functools.lru_cache(maxsize=None)
def _callback_classes(trt):
    """TensorRT's Python callback interfaces, subclassed once per TensorRT module.

    Classes made per call would be cyclic garbage (a class refers to itself through its MRO), collected
    by the cyclic GC at some later allocation; see ``_python_gc_paused`` for why that must stay rare."""

    class Logger(trt.ILogger):
        """Routes TensorRT messages to Python logging and keeps this object's errors."""

        def __init__(self):
            trt.ILogger.__init__(self)
            self.errors: list[str] = []

        def log(self, severity, msg):
            level = _SEVERITY.get(getattr(severity, "name", str(severity)).rsplit(".", 1)[-1], logging.INFO)
            if level >= logging.ERROR:
                self.errors.append(msg)
            log.log(level, "%s", msg)

    class Monitor(getattr(trt, "IProgressMonitor", object)):  # TensorRT 8.6 has none
        """Build phases to the log and, throttled, to a ``BuildProgress`` (TensorRT 10+, RTX)."""

        def __init__(self, progress: BuildProgress):
            trt.IProgressMonitor.__init__(self)
            self.progress = progress
            self.steps: dict[str, int] = {}

        def phase_start(self, phase_name, parent_phase, num_steps):
            self.steps[phase_name] = num_steps
            log.info("build phase %s started (%d steps)", phase_name, num_steps)
            if not parent_phase:
                self._report(phase_name)

        def step_complete(self, phase_name, step):
            self._report(phase_name, step + 1, self.steps.get(phase_name))
            return True  # keep building (False would cancel it)

        def _report(self, *args):
            try:  # called from TensorRT's threads: a failed terminal write must never reach the builder
                self.progress.phase(*args)
            except Exception:  # noqa: BLE001
                log.debug("progress line failed", exc_info=True)

        def phase_finish(self, phase_name):
            log.info("build phase %s finished", phase_name)

    class OutputAllocator(getattr(trt, "IOutputAllocator", object)):
        """For data-dependent output shapes: grows one device buffer, records the shape."""

        def __init__(self):
            trt.IOutputAllocator.__init__(self)
            self.buffer = None
            self.shape = ()

        @property
        def ptr(self) -> int:
            return self.buffer.ptr if self.buffer is not None else 0

        def reallocate_output(self, tensor_name, memory, size, alignment):
            from pytest_trt.backends.tensorrt import cuda

            if self.buffer is None or self.buffer.nbytes < size:
                self.free()
                self.buffer = cuda.DeviceBuffer(size)
            return self.buffer.ptr

        def reallocate_output_async(self, tensor_name, memory, size, alignment, stream):
            return self.reallocate_output(tensor_name, memory, size, alignment)

        def notify_shape(self, tensor_name, shape):
            self.shape = tuple(shape)

        def free(self):
            if self.buffer is not None:
                self.buffer.close()
                self.buffer = None

    return Logger, Monitor, OutputAllocator


@contextlib.contextmanager
def _python_gc_paused():
    """Python's cyclic garbage collector paused while TensorRT may call back into Python.

    TensorRT calls the logger and the progress monitor with its own locks held. A collection that starts
    inside such a callback (any allocation can start one) and frees an older TensorRT object left in a
    reference cycle (a Builder kept by an exception's traceback, say) waits on that same lock forever.
    Seen with TensorRT-RTX 1.7 on CPU: createInferBuilder -> logger.log -> gc -> ~IBuilder ->
    pthread_mutex_lock, a hung xdist worker. Garbage found meanwhile is collected after the block.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


@_python_gc_paused()
def build_plan(trt, flavor: Flavor, model_path: Path, realization: Realization, profile: Profile | None,
               options: BuildOptions, timing_cache: bytes | None,
               progress: BuildProgress | None = None) -> tuple[bytes, bytes | None]:
    """Parse ``model_path`` and build a serialized plan; returns (plan, serialized timing cache or None).

    TensorRT 10+ and RTX report build phases to ``progress``; 8.6 has no progress monitor (start and end only)."""
    Logger, Monitor, _ = _callback_classes(trt)
    builder = network = parser = config = optimization_profile = cache = plan = None
    try:
        logger = Logger()
        builder = trt.Builder(logger)
        flags = 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH) if flavor.needs_explicit_batch_flag else 0
        network = builder.create_network(flags)
        parser = trt.OnnxParser(network, logger)
        if not parser.parse_from_file(str(model_path)):
            errors = [_parser_error(parser.get_error(i)) for i in range(parser.num_errors)]
            raise ModelError(f"{flavor.label} cannot parse {Path(model_path).name}: " + "; ".join(errors or logger.errors)
                             + ". Unsupported operators need a TensorRT plugin or a model change")
        config = builder.create_builder_config()
        if options.workspace is not None:
            config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, options.workspace)
        if options.optimization_level is not None:
            config.builder_optimization_level = options.optimization_level
        if options.tactic_sources is not None:
            _require(config, "set_tactic_sources", flavor, "tactic_sources")
            mask = 0
            for source in options.tactic_sources:
                if not hasattr(trt.TacticSource, source):
                    raise BackendError(f"{flavor.label} has no tactic source {source}; it has: "
                                       f"{', '.join(n for n in dir(trt.TacticSource) if n.isupper())}")
                mask |= 1 << int(getattr(trt.TacticSource, source))
            config.set_tactic_sources(mask)
        if options.hardware_compatibility != "none":
            _require(trt, "HardwareCompatibilityLevel", flavor, "hardware_compatibility")
            config.hardware_compatibility_level = getattr(trt.HardwareCompatibilityLevel, options.hardware_compatibility.upper())
        if options.version_compatible:
            _require(trt.BuilderFlag, "VERSION_COMPATIBLE", flavor, "version_compatible")
            config.set_flag(trt.BuilderFlag.VERSION_COMPATIBLE)
        if realization.tf32:
            config.set_flag(trt.BuilderFlag.TF32)
        else:
            config.clear_flag(trt.BuilderFlag.TF32)
        for flag in realization.flags:
            config.set_flag(getattr(trt.BuilderFlag, flag))
        if profile is not None:
            optimization_profile = builder.create_optimization_profile()
            for name, lo, opt, hi in profile.shapes:
                optimization_profile.set_shape(name, lo, opt, hi)
            config.add_optimization_profile(optimization_profile)
        if flavor.has_timing_cache:
            cache = config.create_timing_cache(timing_cache or b"")
            config.set_timing_cache(cache, False)
        if flavor.has_progress_monitor:
            config.progress_monitor = Monitor(progress or BuildProgress(Path(model_path).name))
        plan = builder.build_serialized_network(network, config)
        if plan is None:
            detail = "; ".join(logger.errors[-3:]) or "no error was logged"
            raise BackendError(f"{flavor.label} failed to build {Path(model_path).name} ({realization.describe()}): {detail}")
        return bytes(plan), (bytes(cache.serialize()) if cache is not None else None)
    finally:
        # Released here, in dependency order, even when the build fails: a traceback kept by pytest would
        # otherwise hold this frame's Builder alive until some later collection (see _python_gc_paused).
        plan = cache = config = optimization_profile = parser = network = builder = None  # noqa: F841


def _require(obj, attribute: str, flavor: Flavor, option: str) -> None:
    """Builder options differ between TensorRT versions: a missing one is a sentence, not an AttributeError."""
    if not hasattr(obj, attribute):
        raise BackendError(f"{flavor.label} has no {attribute}, so the build option {option} cannot be used with it; "
                           f"remove {option} from the build options (--trt-build-options, the marker's or "
                           "build_engine()'s build=)")


def _parser_error(error) -> str:
    """One parser error with its node name and operator where this TensorRT version reports them."""
    parts = [str(error.desc())]
    node_name = _call(error, "node_name")
    operator = _call(error, "node_operator")
    if node_name or operator:
        parts.append(f"at node {node_name or '#' + str(error.node())}{f' ({operator})' if operator else ''}")
    elif error.node() >= 0:
        parts.append(f"at node #{error.node()}")
    return " ".join(parts)


def _call(obj, name):
    method = getattr(obj, name, None)
    try:
        return method() if method is not None else None
    except Exception:
        return None


class Engine:
    """A deserialized engine and its execution context; ``run`` is one synchronous inference.

    Use as a context manager (or call ``close``) to release the TensorRT objects deterministically.
    """

    _lock = threading.Lock()

    def __init__(self, trt, plan: bytes):
        self.trt = trt
        Logger, _, self._OutputAllocator = _callback_classes(trt)
        self._logger = Logger()
        with _python_gc_paused():
            self.runtime = trt.Runtime(self._logger)
            self.engine = self.runtime.deserialize_cuda_engine(plan)
            self.context = self.engine.create_execution_context() if self.engine is not None else None
        if self.engine is None:
            self.close()
            detail = "; ".join(self._logger.errors[-2:])
            cuda_error = re.search(r"cudaError \d+: [^)]*", detail)
            if cuda_error:  # the machine cannot run any plan (no GPU, old driver): not this plan's fault
                raise BackendError(f"TensorRT cannot use CUDA on this machine ({cuda_error.group(0)}), so no plan can "
                                   "run here; run it on a machine with an NVIDIA GPU and a driver recent enough for "
                                   "this TensorRT")
            raise BackendError("TensorRT could not deserialize the plan (built by another TensorRT version or for "
                               f"another GPU?){': ' + detail if detail else ''}; rebuild it (build_engine, or delete it "
                               "from the engine cache)")
        if self.context is None:
            self.close()
            detail = "; ".join(self._logger.errors[-2:]) or "no error was logged"
            raise BackendError(f"TensorRT could not create an execution context for this engine: {detail}")
        self.io = [TensorIO(name, self.engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT,
                            numpy_dtype_name(self.engine.get_tensor_dtype(name).name),
                            _dims(self.engine.get_tensor_shape(name)))
                   for name in (self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors))]

    def run(self, inputs: Mapping) -> dict:
        """Copy inputs in, ``execute_async_v3``, copy outputs out; every buffer is freed before returning."""
        import numpy as np

        from pytest_trt.backends.tensorrt import cuda
        from pytest_trt.core.dtypes import numpy_dtype

        host = engine_inputs(self.io, inputs)
        with self._lock, cuda.Stream() as stream, contextlib.ExitStack() as stack:
            for name, array in host.items():
                if not self.context.set_input_shape(name, array.shape):
                    raise BackendError(f"TensorRT rejected shape {tuple(array.shape)} for input {name!r}; "
                                       "it is outside the engine's optimization profile")
                device = stack.enter_context(cuda.DeviceBuffer(array.nbytes))
                pinned = stack.enter_context(cuda.PinnedBuffer(array.nbytes))
                pinned.view(array.dtype, array.shape)[...] = array
                cuda.copy_to_device(device.ptr, pinned, array.nbytes, stream)
                self.context.set_tensor_address(name, device.ptr)
            shapes = {t.name: _dims(self.context.get_tensor_shape(t.name)) for t in self.io if not t.is_input}
            buffers, dynamic = plan_outputs(self.io, shapes)
            staged = []
            for buf in buffers:
                device = stack.enter_context(cuda.DeviceBuffer(buf.nbytes))
                self.context.set_tensor_address(buf.name, device.ptr)
                staged.append((buf, device))
            allocators = {}
            for name in dynamic:
                allocator = self._OutputAllocator()
                stack.callback(allocator.free)
                self.context.set_output_allocator(name, allocator)
                allocators[name] = allocator
            with _python_gc_paused():  # the logger and output allocators are called back from inside
                ran = self.context.execute_async_v3(stream.handle)
            if not ran:
                raise BackendError("TensorRT execute_async_v3 returned false; see the TensorRT log above")
            outputs = {}
            for buf, device in staged:
                pinned = stack.enter_context(cuda.PinnedBuffer(buf.nbytes))
                cuda.copy_to_host(pinned, device.ptr, buf.nbytes, stream)
                outputs[buf.name] = (pinned, buf.dtype, buf.shape)
            stream.synchronize()
            for name, allocator in allocators.items():
                dtype = next(t.dtype for t in self.io if t.name == name)
                nbytes = int(np.prod(allocator.shape, dtype=np.int64)) * numpy_dtype(dtype).itemsize
                pinned = stack.enter_context(cuda.PinnedBuffer(nbytes))
                cuda.copy_to_host(pinned, allocator.ptr, nbytes, stream)
                outputs[name] = (pinned, dtype, allocator.shape)
            stream.synchronize()
            return {name: pinned.view(numpy_dtype(dtype), shape).copy() for name, (pinned, dtype, shape) in outputs.items()}

    def close(self) -> None:
        for attr in ("context", "engine", "runtime"):
            if getattr(self, attr, None) is not None:
                setattr(self, attr, None)  # TensorRT frees on release of the last reference

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def _dims(shape) -> tuple[int, ...]:
    """A TensorRT Dims as a tuple; unknown rank (nbDims -1, e.g. data-dependent outputs on 8.6) -> (-1,)."""
    try:
        return tuple(int(d) for d in shape)
    except ValueError:
        return (-1,)
