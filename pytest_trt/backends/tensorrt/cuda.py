"""The CUDA runtime through cuda-python: streams, device and pinned host buffers, copies, device facts.

Every call's status is checked; a failure raises ``CudaError`` naming the call and CUDA's own error
name and text. Resources are context managers and are freed deterministically on exit.
"""
from __future__ import annotations

import ctypes
import functools

from pytest_trt.errors import BackendError


class CudaError(BackendError):
    """A CUDA runtime call failed."""


@functools.lru_cache(maxsize=1)
def runtime():
    """The ``cudart`` module of cuda-python (``cuda.bindings.runtime``, or ``cuda.cudart`` before 12.6)."""
    try:
        from cuda.bindings import runtime as cudart
    except ImportError:
        try:
            from cuda import cudart
        except ImportError:
            raise BackendError("cuda-python is not installed; install it with: pip install 'pytest-trt[trt]' "
                               "(or pip install cuda-python)") from None
    return cudart


def check(result, call: str):
    """Unpack a cuda-python ``(error, *values)`` tuple; raise CudaError unless the error is cudaSuccess."""
    cudart = runtime()
    err, values = (result[0], result[1:]) if isinstance(result, tuple) else (result, ())
    if err != cudart.cudaError_t.cudaSuccess:
        raise CudaError(f"CUDA call {call} failed: {_error_text(err)}")
    if not values:
        return None
    return values[0] if len(values) == 1 else values


def _error_text(err) -> str:
    cudart = runtime()
    try:
        name = cudart.cudaGetErrorName(err)[1].decode()
        text = cudart.cudaGetErrorString(err)[1].decode()
        return f"{name} ({text})"
    except Exception:  # the error name lookup itself must not hide the original failure
        return str(err)


def device_count() -> int:
    """Number of CUDA devices; 0 when there is no driver or no device (never raises)."""
    try:
        cudart = runtime()
        err, count = cudart.cudaGetDeviceCount()
    except Exception:
        return 0
    return count if err == cudart.cudaError_t.cudaSuccess else 0


def device_info(index: int | None = None) -> dict:
    """Name, compute capability, driver and runtime versions of a device (the current one by default)."""
    cudart = runtime()
    if index is None:
        index = check(cudart.cudaGetDevice(), "cudaGetDevice")
    props = check(cudart.cudaGetDeviceProperties(index), "cudaGetDeviceProperties")
    name = props.name.decode(errors="replace").rstrip("\0") if isinstance(props.name, bytes) else str(props.name)
    return {"index": index, "name": name, "compute_capability": f"{props.major}.{props.minor}",
            "driver": _version(check(cudart.cudaDriverGetVersion(), "cudaDriverGetVersion")),
            "runtime": _version(check(cudart.cudaRuntimeGetVersion(), "cudaRuntimeGetVersion"))}


def _version(number: int) -> str:
    return f"{number // 1000}.{(number % 1000) // 10}"


def set_device(index: int) -> None:
    check(runtime().cudaSetDevice(index), f"cudaSetDevice({index})")


def current_device() -> int:
    """The GPU index this thread's CUDA calls go to (``cudaGetDevice``)."""
    return int(check(runtime().cudaGetDevice(), "cudaGetDevice"))


class _Resource:
    """Context-manager protocol shared by the CUDA resources: ``close`` on exit, errors propagate."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


class Stream(_Resource):
    """A CUDA stream; ``handle`` is the integer TensorRT's ``execute_async_v3`` takes."""

    def __init__(self):
        cudart = runtime()
        self._stream = check(cudart.cudaStreamCreateWithFlags(cudart.cudaStreamNonBlocking), "cudaStreamCreateWithFlags")

    @property
    def handle(self) -> int:
        return int(self._stream)

    @property
    def raw(self):
        return self._stream

    def synchronize(self) -> None:
        check(runtime().cudaStreamSynchronize(self._stream), "cudaStreamSynchronize")

    def close(self) -> None:
        if self._stream is not None:
            stream, self._stream = self._stream, None
            check(runtime().cudaStreamDestroy(stream), "cudaStreamDestroy")


class DeviceBuffer(_Resource):
    """``nbytes`` of device memory (at least 1 byte, so every tensor gets a valid address)."""

    def __init__(self, nbytes: int):
        self.nbytes = int(nbytes)
        self.ptr = int(check(runtime().cudaMalloc(max(self.nbytes, 1)), f"cudaMalloc({self.nbytes})"))

    def close(self) -> None:
        if self.ptr:
            ptr, self.ptr = self.ptr, 0
            check(runtime().cudaFree(ptr), "cudaFree")


class PinnedBuffer(_Resource):
    """``nbytes`` of page-locked host memory, viewable as a numpy array; async copies need it."""

    def __init__(self, nbytes: int):
        self.nbytes = int(nbytes)
        self.ptr = int(check(runtime().cudaMallocHost(max(self.nbytes, 1)), f"cudaMallocHost({self.nbytes})"))

    def view(self, dtype, shape):
        """A numpy array over this buffer (valid until ``close``)."""
        import numpy as np

        dtype = np.dtype(dtype)
        count = 1
        for d in shape:
            count *= int(d)
        if count * dtype.itemsize > self.nbytes:
            raise ValueError(f"view of {count} x {dtype} does not fit {self.nbytes} pinned bytes")
        raw = (ctypes.c_uint8 * max(self.nbytes, 1)).from_address(self.ptr)
        return np.frombuffer(raw, dtype=dtype, count=count).reshape(shape)

    def close(self) -> None:
        if self.ptr:
            ptr, self.ptr = self.ptr, 0
            check(runtime().cudaFreeHost(ptr), "cudaFreeHost")


def copy_to_device(dst: int, src: PinnedBuffer, nbytes: int, stream: Stream) -> None:
    cudart = runtime()
    if nbytes:
        check(cudart.cudaMemcpyAsync(dst, src.ptr, nbytes, cudart.cudaMemcpyKind.cudaMemcpyHostToDevice, stream.raw),
              "cudaMemcpyAsync(host to device)")


def copy_to_host(dst: PinnedBuffer, src: int, nbytes: int, stream: Stream) -> None:
    cudart = runtime()
    if nbytes:
        check(cudart.cudaMemcpyAsync(dst.ptr, src, nbytes, cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost, stream.raw),
              "cudaMemcpyAsync(device to host)")


def copy_device(dst: int, src: int, nbytes: int, stream_handle: int) -> None:
    """Copy ``nbytes`` device to device once the work queued on ``stream_handle`` (an integer handle) is done;
    returns when the copy is complete."""
    cudart = runtime()
    if nbytes:
        check(cudart.cudaStreamSynchronize(cudart.cudaStream_t(stream_handle)), "cudaStreamSynchronize")
        check(cudart.cudaMemcpy(dst, src, nbytes, cudart.cudaMemcpyKind.cudaMemcpyDeviceToDevice),
              "cudaMemcpy(device to device)")
