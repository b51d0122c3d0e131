"""A TensorRT engine's intermediate tensors, for a localization: the engine side of ``Backend.probe``.

The model is built once more with its tensors exposed, the way the release allows (``Flavor.observation``):

- ``unfused`` (TensorRT 10.12+, 11, RTX): ``mark_unfused_tensors_as_debug_tensors``: fusions are kept; a tensor
  the optimizer fused away is never emitted and is reported as fused, not as diverging;
- ``debug`` (10.0-10.11): ``mark_debug`` on each ONNX tensor: those tensors are not fused, so the engine differs
  from the one under test;
- ``outputs`` (8.6): ``mark_output`` on each ONNX tensor: the fusions around them are broken likewise.

With ``debug`` and ``outputs``, the engine under test's own layers (its inspector) tell which tensors it keeps
between layers: by default (``observe="kept"``) only those are marked, so its fusions stay and the tensors inside
them are reported as fused; ``observe="all"`` marks every tensor (fusions broken; ``fused_in_engine`` says which
ones the engine under test fuses). Either way the localization reports whether the failure still reproduces in
the build that exposes them. Debug tensors reach an ``IDebugListener`` (copied to device buffers of ours during the run);
marked outputs are output buffers. Either way, the host receives only the tensors of the pass it asks for.
"""
from __future__ import annotations

import contextlib
from collections.abc import Mapping

from pytest_trt.backends.tensorrt.plan import restore_output_dtypes

METHODS = {
    "unfused": ("unfused debug tensors (mark_unfused_tensors_as_debug_tensors)", False),
    "debug": ("debug tensors (mark_debug)", True),
    "outputs": ("marked outputs", True),
}


class TensorRTProbe:
    """Built on the first sample (its inputs fix the shapes), reused for the others; ``close`` frees the engine."""

    def __init__(self, backend, model, precision: str, options: Mapping, tensors: tuple[str, ...], under_test=None):
        self.backend, self.model, self.precision, self.options = backend, model, precision, options
        self.wanted = tensors
        self.how = backend.flavor.observation
        self.method, self.fusions_broken = METHODS[self.how]
        # A wanted tensor the run did not emit: fused away (unfused marking emits every tensor that survives), or
        # not exposed (marking one by one skips integer and shape tensors and those the parser folded away).
        self.unexposed = "fused" if self.how == "unfused" else "absent"
        self.preview = False
        self.engine = None
        self._layers = {}
        if under_test is not None:
            try:
                self._layers = under_test.layer_outputs()
            except Exception:  # noqa: BLE001 - without layer names every tensor is marked
                self._layers = {}
        self.fused: set[str] = set()
        if self.how != "unfused" and self._layers and options.get("observe", "kept") == "kept":
            # Mark only the tensors the engine under test keeps between its layers: its fusions stay as they are,
            # the tensors inside them are reported as fused.
            kept = tuple(name for name in tensors if name in self._layers)
            self.fused = set(tensors) - set(kept)
            self.wanted = kept
            self.method += " of the tensors the engine under test keeps between its layers"
            self.fusions_broken = False

    def tensors(self) -> dict[str, str]:
        """Before the build all wanted tensors count as observable (``fetch`` leaves out those never emitted); those
        the engine under test fuses are "fused" where only its kept tensors are marked."""
        return {**{name: "fused" for name in self.fused}, **{name: "observed" for name in self.wanted}}

    def layers(self) -> dict[str, str]:
        return dict(self._layers)

    def fused_in_engine(self) -> set[str]:
        """Tensors the engine under test fuses away, which this build exposes (fusions broken); empty when the
        build keeps fusions (those tensors are simply not emitted) or the layers are unknown."""
        if not self.fusions_broken or not self._layers:
            return set()
        return {name for name in self.wanted if name not in self._layers}

    def _build(self, inputs: Mapping):
        from pytest_trt.backends.tensorrt.runtime import Engine

        request = self.backend.build_request(self.model, inputs, self.options)
        outcome, _ = self.backend.build(self.model, self.precision, observe=(self.how, self.wanted), **request)
        build_options = request["build_options"]
        host_code = bool(build_options and build_options.version_compatible)
        self.engine = Engine(self.backend.trt(), outcome.plan, host_code_allowed=host_code)

    @contextlib.contextmanager
    def sample(self, inputs: Mapping):
        if self.engine is None:
            self._build(inputs)
        listener = None
        if self.how != "outputs":
            from pytest_trt.backends.tensorrt.build import debug_listener_class

            listener = debug_listener_class(self.backend.trt())()
        with self.engine.held(inputs, listener) as held:
            yield _Sample(held, self.model)

    def close(self) -> None:
        if self.engine is not None:
            self.engine.close()
            self.engine = None


class _Sample:
    def __init__(self, held, model):
        self.held = held
        self.outputs = restore_output_dtypes(held.fetch(model.output_names), model.outputs)

    def fetch(self, names) -> dict:
        """The named tensors this run holds; a name the engine never emitted (fused away) is left out."""
        return self.held.fetch(names)
