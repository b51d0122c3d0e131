"""Building a TensorRT plan: parse the ONNX model, configure the builder, serialize (``build_plan``).

Also TensorRT's Python callback classes (logger, progress monitor, output allocator; shared with ``runtime``)
and ``python_gc_paused``, which every TensorRT call that may call back into Python runs under.
TensorRT calls used (all in the name-based API shared by 8.6, 10, 11 and TensorRT-RTX): ILogger,
init_libnvinfer_plugins, Builder.create_network, OnnxParser.parse_from_file/num_errors/get_error,
INetworkDefinition.num_inputs/get_input, ITensor.is_shape_tensor, Builder.create_builder_config,
IBuilderConfig.set_memory_pool_limit/builder_optimization_level/set_tactic_sources/
hardware_compatibility_level/set_flag/clear_flag/add_optimization_profile/create_timing_cache/
set_timing_cache/profiling_verbosity/progress_monitor, Builder.create_optimization_profile,
IOptimizationProfile.set_shape/set_shape_input, Builder.build_serialized_network, ITimingCache.serialize,
IOutputAllocator, IProgressMonitor, IDebugListener; for a localization INetworkDefinition.num_layers/get_layer/
num_outputs/get_output/mark_output (8.6), mark_debug (10.0+), mark_unfused_tensors_as_debug_tensors (10.12+, 11, RTX).
"""
from __future__ import annotations

import contextlib
import functools
import gc
import logging
from pathlib import Path

from pytest_trt.backends.tensorrt.plan import Flavor, Profile, Realization
from pytest_trt.backends.tensorrt.progress import BuildProgress
from pytest_trt.core.build_options import BuildOptions
from pytest_trt.errors import BackendError, ModelError

log = logging.getLogger("pytest_trt.tensorrt")
_SEVERITY = {"INTERNAL_ERROR": logging.CRITICAL, "ERROR": logging.ERROR, "WARNING": logging.WARNING,
             "INFO": logging.INFO, "VERBOSE": logging.DEBUG}


@functools.lru_cache(maxsize=None)
def callback_classes(trt):
    """TensorRT's Python callback interfaces, subclassed once per TensorRT module.

    Classes made per call would be cyclic garbage (a class refers to itself through its MRO), collected
    by the cyclic GC at some later allocation; see ``python_gc_paused`` for why that must stay rare."""

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


@functools.lru_cache(maxsize=None)
def debug_listener_class(trt):
    """An ``IDebugListener`` (TensorRT 10+, RTX) that keeps a device copy of every debug tensor it is given: the
    address TensorRT passes is valid only during the call."""

    class DebugListener(trt.IDebugListener):
        def __init__(self):
            trt.IDebugListener.__init__(self)
            self.tensors: dict[str, tuple] = {}   # name -> (DeviceBuffer or host bytes, dtype name, shape)
            self.errors: list[str] = []

        def process_debug_tensor(self, addr, location, type, shape, name, stream):
            from pytest_trt.backends.tensorrt import cuda
            from pytest_trt.backends.tensorrt.plan import numpy_dtype_name
            from pytest_trt.core.dtypes import numpy_dtype

            try:
                dtype = numpy_dtype_name(type.name)
                dims = tuple(int(d) for d in shape)
                nbytes = numpy_dtype(dtype).itemsize
                for d in dims:
                    nbytes *= d
                if location == trt.TensorLocation.HOST:
                    import ctypes

                    copy = bytes((ctypes.c_uint8 * nbytes).from_address(addr)) if nbytes else b""
                else:
                    copy = cuda.DeviceBuffer(nbytes)
                    cuda.copy_device(copy.ptr, addr, nbytes, stream)
                old = self.tensors.pop(name, None)
                if old is not None and hasattr(old[0], "close"):
                    old[0].close()
                self.tensors[name] = (copy, dtype, dims)
            except Exception as exc:  # noqa: BLE001 - never raise into TensorRT; reported after the run
                self.errors.append(f"{name}: {exc}")
            return True

        def free(self):
            for held, _, _ in self.tensors.values():
                if hasattr(held, "close"):
                    held.close()
            self.tensors.clear()

    return DebugListener


@contextlib.contextmanager
def python_gc_paused():
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


def load_plugins(trt, logger) -> None:
    """Register TensorRT's bundled plugins (once per process; TensorRT ignores repeats), so that a model or a
    cached plan with plugin layers (e.g. an ONNX op only a plugin implements) parses and deserializes."""
    init = getattr(trt, "init_libnvinfer_plugins", None)
    if init is not None and not init(logger, ""):
        log.warning("TensorRT could not register its bundled plugins; models or plans with plugin layers will fail")


@python_gc_paused()
def build_plan(trt, flavor: Flavor, model_path: Path, realization: Realization, profile: Profile | None,
               options: BuildOptions, timing_cache: bytes | None,
               progress: BuildProgress | None = None, observe: tuple[str, tuple[str, ...]] | None = None
               ) -> tuple[bytes, bytes | None]:
    """Parse ``model_path`` and build a serialized plan; returns (plan, serialized timing cache or None).

    TensorRT 10+ and RTX report build phases to ``progress``; 8.6 has no progress monitor (start and end only).
    ``observe``: (how, tensor names) to expose intermediate tensors for a localization (``mark_tensors``)."""
    Logger, Monitor, _ = callback_classes(trt)
    builder = network = parser = config = optimization_profile = cache = plan = None
    try:
        logger = Logger()
        load_plugins(trt, logger)
        builder = trt.Builder(logger)
        flags = 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH) if flavor.needs_explicit_batch_flag else 0
        network = builder.create_network(flags)
        parser = trt.OnnxParser(network, logger)
        if not parser.parse_from_file(str(model_path)):
            errors = [_parser_error(parser.get_error(i)) for i in range(parser.num_errors)]
            raise ModelError(f"{flavor.label} cannot parse {Path(model_path).name}: " + "; ".join(errors or logger.errors)
                             + ". Unsupported operators need a TensorRT plugin or a model change")
        _check_shape_inputs(network, profile, flavor, model_path)
        if observe is not None:
            mark_tensors(trt, network, *observe)
        config = builder.create_builder_config()
        if hasattr(trt, "ProfilingVerbosity"):  # layer precisions and tactics for the census (engine inspector)
            config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED
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
            _require(trt.HardwareCompatibilityLevel, options.hardware_compatibility.upper(), flavor,
                     f"hardware_compatibility={options.hardware_compatibility}")
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
            for name, lo, opt, hi in profile.values:
                optimization_profile.set_shape_input(name, lo, opt, hi)
            config.add_optimization_profile(optimization_profile)
        if flavor.has_timing_cache:
            cache = config.create_timing_cache(timing_cache or b"")
            if not config.set_timing_cache(cache, False):  # a cache from another device or version is refused
                log.warning("TensorRT refused the stored timing cache; building without it")
                cache = config.create_timing_cache(b"")
                config.set_timing_cache(cache, False)
        if flavor.has_progress_monitor:
            config.progress_monitor = Monitor(progress or BuildProgress(Path(model_path).name))
        plan = builder.build_serialized_network(network, config)
        if plan is None:
            detail = "; ".join(logger.errors[-3:]) or "no error was logged"
            hint = ""
            if options.version_compatible and "nvinfer_lean" in detail:
                hint = (". A version-compatible plan embeds TensorRT's lean runtime: install the TensorRT package that "
                        "ships libnvinfer_lean, or remove version_compatible from the build options")
            raise BackendError(f"{flavor.label} failed to build {Path(model_path).name} ({realization.describe()}): "
                               f"{detail}{hint}")
        return bytes(plan), (bytes(cache.serialize()) if cache is not None else None)
    finally:
        # Released here, in dependency order, even when the build fails: a traceback kept by pytest would
        # otherwise hold this frame's Builder alive until some later collection (see python_gc_paused).
        plan = cache = config = optimization_profile = parser = network = builder = None  # noqa: F841


def mark_tensors(trt, network, how: str, names) -> int:
    """Expose the network's tensors ``names`` (ONNX names: the parser keeps them) for a localization; how many.

    ``unfused``: ``mark_unfused_tensors_as_debug_tensors`` (TensorRT 10.12+, 11, RTX), every tensor the optimizer
    does not fuse away, fusions kept; ``debug``: ``mark_debug`` on each (10.0+), which keeps them from being fused;
    ``outputs``: ``mark_output`` on each (8.6), which breaks the fusions around them. Only float tensors that are not
    shape tensors nor outputs already are marked one by one."""
    if how == "unfused":
        if not network.mark_unfused_tensors_as_debug_tensors():
            raise BackendError("TensorRT refused to mark the network's unfused tensors as debug tensors")
        return -1
    wanted = set(names)
    floats = {getattr(trt, t) for t in ("float32", "float16", "bfloat16") if hasattr(trt, t)}
    outputs = {network.get_output(i).name for i in range(network.num_outputs)}
    marked = 0
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        for j in range(layer.num_outputs):
            tensor = layer.get_output(j)
            if (tensor is None or tensor.name not in wanted or tensor.name in outputs or tensor.dtype not in floats
                    or getattr(tensor, "is_shape_tensor", False)):
                continue
            if how == "debug":
                network.mark_debug(tensor)
            else:
                network.mark_output(tensor)
            outputs.add(tensor.name)
            marked += 1
    return marked


def _check_shape_inputs(network, profile, flavor: Flavor, model_path) -> None:
    """Every input TensorRT treats as a shape tensor has values in the profile (else one sentence)."""
    given = {name for name, *_ in profile.values} if profile is not None else set()
    for i in range(network.num_inputs):
        tensor = network.get_input(i)
        if getattr(tensor, "is_shape_tensor", False) and tensor.name not in given:
            raise BackendError(f"{flavor.label} treats input {tensor.name!r} of {Path(model_path).name} as a shape "
                               "tensor (its values set shapes inside the model), but pytest-trt found no node that "
                               "uses its values as a shape, so the optimization profile has none for it; feed it "
                               "through one of the operators listed in pytest_trt.backends.tensorrt.plan.SHAPE_SLOTS, "
                               "or make it a constant of the model")


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
