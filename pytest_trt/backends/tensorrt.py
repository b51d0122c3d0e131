"""TensorRT and TensorRT-RTX backend slots.

The adapter that builds and runs engines is not part of this release (tracked as its own issue).
Until it lands these backends say so plainly: they report themselves unavailable, with the reason,
and never run anything or pretend to.
"""
from __future__ import annotations

import importlib.util
from collections.abc import Mapping

from ..errors import BackendError


class _TensorRTSlot:
    name = ""
    module = ""

    def unavailable_reason(self) -> str | None:
        if importlib.util.find_spec(self.module) is None:
            return f"{self.module} is not installed"
        return f"{self.module} is installed, but this pytest-trt release has no {self.name} adapter yet"

    def precision_reason(self, precision: str) -> str | None:
        return self.unavailable_reason()

    def describe(self) -> dict:
        return {"backend": self.name, "version": None}

    def run(self, model, inputs: Mapping, *, precision: str = "fp32", options: Mapping | None = None) -> dict:
        raise BackendError(f"backend {self.name!r} cannot run: {self.unavailable_reason()}")


class TensorRTBackend(_TensorRTSlot):
    name = "tensorrt"
    module = "tensorrt"


class TensorRTRTXBackend(_TensorRTSlot):
    name = "tensorrt_rtx"
    module = "tensorrt_rtx"
