"""The backend protocol: what pytest-trt calls on a backend, and the defaults for what a backend may leave out.

A backend runs a model on given inputs and returns ``{output name: numpy array}``. Every backend has the
members of :class:`Backend`; a third-party backend need only implement the required ones (``REQUIRED``):
``get_backend`` gives one that leaves out an optional member (``OPTIONAL``) that member's no-op default,
so callers use each member directly.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

REQUIRED = ("name", "unavailable_reason", "precision_reason", "describe", "run")
OPTIONAL = ("events", "close", "census", "previews", "probe")


class Backend(Protocol):
    """What pytest-trt needs from a backend: the reference (onnxruntime) or an engine under test.

    Required: ``name``, ``unavailable_reason``, ``precision_reason``, ``describe``, ``run``.
    Optional, with a no-op default: ``events`` (empty), ``close`` (nothing to free), ``census`` (None),
    ``previews`` (none) and ``probe`` (None: its checks cannot be localized).
    """

    name: str

    def unavailable_reason(self) -> str | None:
        """None when this backend can run on this machine, else why not (one sentence)."""

    def precision_reason(self, precision: str) -> str | None:
        """None when ``precision`` can be realized, else why not."""

    def describe(self) -> dict:
        """Metadata stored with goldens: at least ``{"backend": name, "version": ...}``."""

    def run(self, model, inputs: Mapping, *, precision: str = "fp32", options: Mapping | None = None) -> dict:
        """Run ``model`` (a ``ModelInfo``) on ``inputs``; return all outputs by name.

        ``options`` (from the plugin): ``shapes`` (the marker's, validated), ``engine_dir`` (the engine cache
        folder or None), ``build`` (a ``BuildOptions`` or None for the builder's defaults) and ``convert``
        (False where ``model`` is the test's own file for ``precision``, ``model={"fp16": ...}`` in the marker:
        build it as it is, converting nothing); a backend uses those it understands."""

    @property
    def events(self) -> Sequence[dict]:
        """Optional. Builds and cache hits so far, oldest first, each ``{"model", "precision", "status",
        "seconds", "key"}``; the plugin's summary reads the ones a check added. Default: none."""

    def close(self) -> None:
        """Optional. Free what the backend holds (engines, device memory); the plugin calls it at session end.
        Default: nothing to free."""

    def census(self) -> dict | None:
        """Optional. The precision census of the engine the last ``run`` used: ``{"layers": n, "compute":
        {precision: count}, "kinds": {kind: count}, "opaque_io": [...], "detailed": bool}`` (see
        ``reports.census``), or None where the backend cannot tell. Default: None."""

    @property
    def previews(self) -> Sequence[str]:
        """Optional. Precisions this backend only approximates (onnxruntime's fp16/bf16: a converted model on CPU);
        every report labels those results a preview. Default: none."""

    def probe(self, model, *, precision: str = "fp32", options: Mapping | None = None, tensors=()) -> Probe:
        """Optional. ``model`` at ``precision`` with intermediate tensors exposed, for a localization (``tensors``:
        the ONNX tensor names wanted, in graph order). Default: None (the backend cannot expose them)."""


class Probe(Protocol):
    """A backend's intermediate tensors (``Backend.probe``); ``close`` frees what it holds."""

    method: str             # how tensors are exposed, in words ("marked outputs", "debug tensors", ...)
    fusions_broken: bool    # exposing them changed the engine (its failure may not reproduce)
    unexposed: str          # status of a wanted tensor a run did not return: "fused" or "absent"

    def tensors(self) -> Mapping[str, str]:
        """ONNX tensor name -> "observed", "fused" (computed inside a fused layer, not exposed) or "absent"."""

    def sample(self, inputs: Mapping):
        """A context manager: one run on ``inputs``; its ``fetch(names)`` returns those tensors (numpy arrays,
        held by the caller only until compared) and its ``outputs`` the model's outputs (after a fetch)."""

    def close(self) -> None:
        """Free the probe's sessions, engines and buffers."""


class PlanBuilder(Backend, Protocol):
    """An engine backend that builds TensorRT plans (``tensorrt``, ``tensorrt_rtx``), as ``build_engine`` and
    ``run_engine`` use it; no other backend has these members."""

    def trt(self):
        """The TensorRT module this backend builds and runs with (imported on first use)."""

    def build(self, model, precision: str, *, shapes: Mapping, build_options=None, cache_dir=None,
              convert: bool = True) -> tuple:
        """(CacheOutcome, Profile or None) for ``model`` (a ``ModelInfo``) at ``precision``; ``build_options``
        is a ``BuildOptions`` or None (the builder's defaults); ``convert`` False builds ``model`` as it is (a
        file already in ``precision``). Appends one entry to ``events``."""


def missing_members(backend) -> list[str]:
    """The required members ``backend`` lacks."""
    return [member for member in REQUIRED if not hasattr(backend, member)]


def with_defaults(backend) -> Backend:
    """``backend`` itself when it has every member, else a view of it that adds the optional ones it lacks."""
    if all(hasattr(backend, member) for member in OPTIONAL):
        return backend
    return _WithDefaults(backend)


def _no_close() -> None:
    pass


def _no_census() -> None:
    return None


class _WithDefaults:
    """A backend that left out optional members, completed with their defaults; everything else is its own."""

    __slots__ = ("backend",)

    def __init__(self, backend):
        self.backend = backend

    def __getattr__(self, member):
        try:
            return getattr(self.backend, member)
        except AttributeError:
            if member == "events":
                return ()
            if member == "close":
                return _no_close
            if member == "census":
                return _no_census
            if member == "previews":
                return ()
            if member == "probe":
                return None
            raise

    def __repr__(self) -> str:
        return repr(self.backend)
