"""Running a serialized TensorRT plan: ``Engine`` deserializes it, stages buffers, runs ``execute_async_v3``.

TensorRT calls used (as in ``build``, the name-based API of 8.6, 10, 11 and TensorRT-RTX):
init_libnvinfer_plugins, Runtime.engine_host_code_allowed (version-compatible plans), Runtime.deserialize_cuda_engine,
ICudaEngine.num_io_tensors/get_tensor_name/get_tensor_mode/get_tensor_dtype/get_tensor_shape/get_tensor_location/
create_execution_context/create_engine_inspector, IEngineInspector.get_engine_information (LayerInformationFormat.JSON),
IExecutionContext.set_input_shape/get_tensor_shape/set_tensor_address/set_output_allocator/execute_async_v3, and for a
localization set_debug_listener/set_all_tensors_debug_state (10+) and unfused_tensors_debug_state (10.12+, 11, RTX);
CUDA memory and streams through ``cuda``. Shape-tensor inputs live in host memory (``TensorLocation.HOST``): their
address is a host pointer.
"""
from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Mapping

from pytest_trt.backends.tensorrt.build import callback_classes, load_plugins, python_gc_paused
from pytest_trt.backends.tensorrt.plan import TensorIO, engine_inputs, numpy_dtype_name, plan_outputs
from pytest_trt.errors import BackendError


class PlanLoadError(BackendError):
    """TensorRT could not deserialize a plan (another TensorRT version, GPU or driver, or damaged bytes)."""


class Engine:
    """A deserialized engine and its execution context; ``run`` is one synchronous inference.

    Use as a context manager (or call ``close``) to release the TensorRT objects deterministically.
    """

    _lock = threading.Lock()

    def __init__(self, trt, plan: bytes, host_code_allowed: bool = False):
        """``host_code_allowed``: the plan was built version-compatible (it embeds the lean runtime, host code
        that TensorRT runs only when the runtime allows it)."""
        self.trt = trt
        Logger, _, self._OutputAllocator = callback_classes(trt)
        self._logger = Logger()
        self._census = None
        with python_gc_paused():
            load_plugins(trt, self._logger)
            self.runtime = trt.Runtime(self._logger)
            if host_code_allowed and hasattr(self.runtime, "engine_host_code_allowed"):
                self.runtime.engine_host_code_allowed = True
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
            raise PlanLoadError("TensorRT could not deserialize the plan (built by another TensorRT version or for "
                                f"another GPU or driver?){': ' + detail if detail else ''}; rebuild it (build_engine, or "
                                "delete it from the engine cache)")
        if self.context is None:
            self.close()
            detail = "; ".join(self._logger.errors[-2:]) or "no error was logged"
            raise BackendError(f"TensorRT could not create an execution context for this engine: {detail}")
        self.io = [TensorIO(name, self.engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT,
                            numpy_dtype_name(self.engine.get_tensor_dtype(name).name),
                            _dims(self.engine.get_tensor_shape(name)))
                   for name in (self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors))]
        host = getattr(trt, "TensorLocation", None)
        self.host_inputs = frozenset(t.name for t in self.io if t.is_input and host is not None
                                     and self.engine.get_tensor_location(t.name) == host.HOST)

    def census(self) -> dict:
        """The precision census of this engine (``census.Census.summary()``), read once through the engine
        inspector."""
        if self._census is None:
            from pytest_trt.backends.tensorrt.census import parse_engine_information

            inspector = self.engine.create_engine_inspector()
            self._census = parse_engine_information(
                inspector.get_engine_information(self.trt.LayerInformationFormat.JSON)).summary()
        return self._census

    def layer_outputs(self) -> dict[str, str]:
        """Tensor name -> the layer producing it in this engine (``census.layer_outputs``); empty if unknown."""
        from pytest_trt.backends.tensorrt.census import layer_outputs

        inspector = self.engine.create_engine_inspector()
        return layer_outputs(inspector.get_engine_information(self.trt.LayerInformationFormat.JSON))

    def run(self, inputs: Mapping) -> dict:
        """Copy inputs in, ``execute_async_v3``, copy outputs out; every buffer is freed before returning."""
        with self.held(inputs) as held:
            return held.fetch(held.outputs)

    @contextlib.contextmanager
    def held(self, inputs: Mapping, listener=None):
        """One synchronous inference whose outputs stay in device memory until the block ends: yields a ``Held``
        whose ``fetch(names)`` copies some of them to the host. With ``listener`` (``build.debug_listener_class``,
        TensorRT 10+), every debug tensor the engine emits is kept too (``Held.debug``)."""
        from pytest_trt.backends.tensorrt import cuda

        host = engine_inputs(self.io, inputs)
        with self._lock, cuda.Stream() as stream, contextlib.ExitStack() as stack:
            for name, array in host.items():
                if not self.context.set_input_shape(name, array.shape):
                    raise BackendError(f"TensorRT rejected shape {tuple(array.shape)} for input {name!r}; "
                                       "it is outside the engine's optimization profile")
                if name in self.host_inputs:  # a shape tensor: TensorRT reads its values from host memory
                    self.context.set_tensor_address(name, array.ctypes.data)
                    continue
                device = stack.enter_context(cuda.DeviceBuffer(array.nbytes))
                pinned = stack.enter_context(cuda.PinnedBuffer(array.nbytes))
                pinned.view(array.dtype, array.shape)[...] = array
                cuda.copy_to_device(device.ptr, pinned, array.nbytes, stream)
                self.context.set_tensor_address(name, device.ptr)
            shapes = {t.name: _dims(self.context.get_tensor_shape(t.name)) for t in self.io if not t.is_input}
            buffers, dynamic = plan_outputs(self.io, shapes)
            devices = {}
            for buf in buffers:
                device = stack.enter_context(cuda.DeviceBuffer(buf.nbytes))
                self.context.set_tensor_address(buf.name, device.ptr)
                devices[buf.name] = (device.ptr, buf.dtype, buf.shape)
            allocators = {}
            for name in dynamic:
                allocator = self._OutputAllocator()
                stack.callback(allocator.free)
                self.context.set_output_allocator(name, allocator)
                allocators[name] = allocator
            if listener is not None:
                stack.callback(listener.free)
                if not self.context.set_debug_listener(listener):
                    raise BackendError("TensorRT refused the debug listener of this execution context")
                self.context.set_all_tensors_debug_state(True)
                if hasattr(self.context, "unfused_tensors_debug_state"):  # TensorRT 10.12+, 11, RTX
                    self.context.unfused_tensors_debug_state = True
            with python_gc_paused():  # the logger, output allocators and debug listener are called back from inside
                ran = self.context.execute_async_v3(stream.handle)
            if not ran:
                raise BackendError("TensorRT execute_async_v3 returned false; see the TensorRT log above")
            stream.synchronize()
            for name, allocator in allocators.items():
                dtype = next(t.dtype for t in self.io if t.name == name)
                devices[name] = (allocator.ptr, dtype, allocator.shape)
            if listener is not None and listener.errors:
                raise BackendError(f"debug tensors could not be copied: {'; '.join(listener.errors[:3])}")
            debug = {} if listener is None else listener.tensors
            yield Held(devices, debug, stream, [t.name for t in self.io if not t.is_input])

    def close(self) -> None:
        for attr in ("context", "engine", "runtime"):
            if getattr(self, attr, None) is not None:
                setattr(self, attr, None)  # TensorRT frees on release of the last reference

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


class Held:
    """The device-resident results of one ``Engine.held`` run; valid inside its block only."""

    def __init__(self, devices: dict, debug: dict, stream, outputs: list[str]):
        self.devices = devices      # output name -> (device pointer, dtype name, shape)
        self.debug = debug          # debug tensor name -> (DeviceBuffer or host bytes, dtype name, shape)
        self.stream = stream
        self.outputs = outputs      # the engine's output names

    def names(self) -> set[str]:
        return set(self.devices) | set(self.debug)

    def fetch(self, names) -> dict:
        """Host copies of the named outputs or debug tensors (names held by neither are left out)."""
        import numpy as np

        from pytest_trt.backends.tensorrt import cuda
        from pytest_trt.core.dtypes import numpy_dtype

        staged, result = [], {}
        with contextlib.ExitStack() as stack:
            for name in names:
                if name in self.devices:
                    ptr, dtype, shape = self.devices[name]
                elif name in self.debug:
                    held, dtype, shape = self.debug[name]
                    if isinstance(held, bytes):
                        result[name] = np.frombuffer(held, numpy_dtype(dtype)).reshape(shape).copy()
                        continue
                    ptr = held.ptr
                else:
                    continue
                nbytes = int(np.prod(shape, dtype=np.int64)) * numpy_dtype(dtype).itemsize
                pinned = stack.enter_context(cuda.PinnedBuffer(nbytes))
                cuda.copy_to_host(pinned, ptr, nbytes, self.stream)
                staged.append((name, pinned, dtype, shape))
            self.stream.synchronize()
            for name, pinned, dtype, shape in staged:
                result[name] = pinned.view(numpy_dtype(dtype), shape).copy()
        return result


def _dims(shape) -> tuple[int, ...]:
    """A TensorRT Dims as a tuple; unknown rank (nbDims -1, e.g. data-dependent outputs on 8.6) -> (-1,)."""
    try:
        return tuple(int(d) for d in shape)
    except ValueError:
        return (-1,)
