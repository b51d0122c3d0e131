"""The fixture that runs a comparator test on both inner loops: the C kernel and the numpy path must agree."""
import pytest

from pytest_trt.comparison import scan


@pytest.fixture(autouse=True, params=["kernel", "numpy"])
def comparator_path(request, monkeypatch):
    """Every test in a module that imports this runs twice: on the C kernel and on the numpy path."""
    if request.param == "kernel" and scan._kernel is None:
        pytest.skip("the C kernel (pytest_trt/_scan.c) was not built: no C compiler at install")
    if request.param == "numpy":
        monkeypatch.setattr(scan, "_kernel", None)
    return request.param
