"""Backend registry: built-ins, TensorRT slots reported honestly, third-party entry points."""
import os
import subprocess
import sys
import textwrap

import pytest

from shared import install_backend

from pytest_trt.backends.registry import get_backend, known_backends, select_engine_backend
from pytest_trt.errors import BackendError


def test_builtins_and_slots():
    assert {"onnxruntime", "tensorrt", "tensorrt_rtx"} <= set(known_backends())
    assert get_backend("onnxruntime").unavailable_reason() is None
    trt = get_backend("tensorrt")
    assert trt.unavailable_reason() == "tensorrt is not installed (pip install 'pytest-trt[trt]')"
    with pytest.raises(BackendError, match="backend 'tensorrt' cannot build here: tensorrt is not installed"):
        trt.run(None, {})
    assert select_engine_backend("none") == (None, "engine side disabled (--trt-backend none)")
    backend, reason = select_engine_backend("auto")
    assert backend is None and reason.startswith("no TensorRT backend can run here: ")
    assert select_engine_backend("onnxruntime")[0].name == "onnxruntime"


def test_builtins_have_every_protocol_member():
    from pytest_trt.backends.base import OPTIONAL, REQUIRED

    for name in ("onnxruntime", "tensorrt", "tensorrt_rtx"):
        backend = get_backend(name)
        assert all(hasattr(backend, member) for member in REQUIRED + OPTIONAL), name
    assert get_backend("onnxruntime").events == () and get_backend("onnxruntime").close() is None


def test_a_backend_without_optional_members_gets_their_defaults():
    from pytest_trt.backends.base import missing_members, with_defaults

    class Minimal:
        name = "minimal"
        def unavailable_reason(self): return None
        def precision_reason(self, precision): return None
        def describe(self): return {"backend": "minimal", "version": "1"}
        def run(self, model, inputs, *, precision="fp32", options=None): return dict(inputs)

    class Closing(Minimal):
        closed = False
        def close(self): self.closed = True

    backend = with_defaults(Minimal())
    assert missing_members(Minimal()) == [] and missing_members(object()) == ["name", "unavailable_reason",
                                                                            "precision_reason", "describe", "run"]
    assert backend.name == "minimal" and backend.run(None, {"a": 1}) == {"a": 1}
    assert backend.events == () and backend.close() is None and backend.census() is None
    closing = with_defaults(Closing())
    closing.close()
    assert closing.events == () and closing.backend.closed   # its own close, the default events
    full = Closing()
    full.events = []
    full.census = lambda: {"layers": 1}
    full.previews = ()
    full.probe = lambda model, **kw: None
    assert with_defaults(full) is full
    assert backend.previews == () and backend.probe is None   # no preview, cannot be localized
    with pytest.raises(AttributeError):
        backend.build


def test_unknown_backend():
    with pytest.raises(BackendError, match="unknown backend 'nope'; known backends: .*pytest_trt.backends"):
        get_backend("nope")


def test_third_party_backend_via_entry_point(pytester):
    """A real distribution (dist-info with entry_points.txt) on sys.path adds a backend, no pytest-trt change."""
    install_backend(pytester.path / "site", "echo_backend", textwrap.dedent("""
        import numpy as np
        class EchoBackend:
            name = "echo"
            def unavailable_reason(self): return None
            def precision_reason(self, precision): return None
            def describe(self): return {"backend": "echo", "version": "1.0"}
            def run(self, model, inputs, *, precision="fp32", options=None):
                return {"s": inputs["a"] * 2 + np.float32(0.5), "i": inputs["b"] + 1}
    """), "echo", "EchoBackend")
    site = pytester.path / "site"
    from models import two_io_model
    two_io_model(pytester.path / "two.onnx")
    pytester.makepyfile(test_a="""
        import pytest
        @pytest.mark.trt_compare(model="two.onnx")
        def test_x(trt_compare):
            trt_compare()
    """)
    pytester.makeini("[pytest]\naddopts = -p no:cacheprovider\n")
    proc = subprocess.run([sys.executable, "-m", "pytest", "--trt-backend", "echo", "--update-golden"],
                          cwd=pytester.path, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(site)})
    # the echo engine is off by 0.5 on 's': a numeric failure reported against the reference, named by backend
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "engine (echo, fp32) vs reference (onnxruntime): 1 of 2 outputs differ" in proc.stdout
    assert "engine under test: echo" in proc.stdout
