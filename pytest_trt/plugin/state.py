"""The plugin's state for one pytest session: its options, summary and marker caches, and the engine under test.

The engine backend is chosen at the first check, not at configure: choosing imports TensorRT and CUDA,
which a session without checks must not pay for. Before it is chosen, this process is put on its GPU
(one per pytest-xdist worker).
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from pytest_trt.errors import TrtCompareError

STATE = pytest.StashKey["PluginState"]()


class PluginState:
    def __init__(self, config: pytest.Config, options):
        from pytest_trt.plugin.summary import SessionSummary

        self.config = config
        self.options = options              # options.Options
        self.summary = SessionSummary()
        self.specs: dict[tuple, tuple] = {}  # (id(Mark), test path) -> (Mark, CompareSpec)
        self.spec_errors: dict[str, str] = {}  # test function (marker.definition_key) -> its marker's error sentence
        # Test files named with node ids (path::test): only some of their tests run, so none of their golden
        # folders is reported unused.
        here = Path(config.invocation_params.dir)
        self.partial_files = {(here / arg.split("::")[0]).resolve() for arg in config.args if "::" in arg}
        self._engine = None
        self.gpu: int | None = None         # the GPU this process uses (set when a TensorRT backend may run)

    def engine(self):
        """(backend or None, reason) for the engine under test; decided once per session."""
        if self._engine is None:
            from pytest_trt.backends.registry import AUTO_ORDER, select_engine_backend

            problem = self._assign_gpu()
            self._engine = select_engine_backend(self.options.backend)
            if problem and self._engine[0] is not None and self._engine[0].name in AUTO_ORDER:
                self._engine = (None, problem)
        return self._engine

    def close(self) -> None:
        """Free the engine backend's engines and execution contexts (before the interpreter tears CUDA down)."""
        engine = self._engine[0] if self._engine is not None else None
        if engine is not None:
            engine.close()

    def _assign_gpu(self) -> str | None:
        """Put this process on its GPU (one per xdist worker) before any engine exists; the reason when
        that fails. Skipped where no TensorRT backend can run, so CUDA is not loaded for nothing."""
        from pytest_trt.backends.registry import AUTO_ORDER
        from pytest_trt.backends.tensorrt.probe import machine_reason

        if self.options.backend not in ("auto", *AUTO_ORDER):
            return None
        if all(machine_reason(m) for m in AUTO_ORDER):  # not installed, no cuda-python, or no GPU visible
            return None  # the backend itself says why it cannot run

        from pytest_trt.backends.tensorrt import cuda
        from pytest_trt.backends.tensorrt.gpu import assign_device, worker_index

        try:
            self.gpu = assign_device(worker_index(os.environ.get("PYTEST_XDIST_WORKER")), self.options.devices,
                                     cuda.device_count())
            cuda.set_device(self.gpu)
        except TrtCompareError as exc:
            return str(exc)
        return None
