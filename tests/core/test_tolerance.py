import pytest

from pytest_trt.errors import SpecError
from pytest_trt.core.tolerance import DEFAULT_TOLERANCES, PRECISIONS, check_tolerances, resolve


def test_default_table_covers_every_precision():
    assert set(DEFAULT_TOLERANCES) == set(PRECISIONS)
    t = resolve("fp16", "y")
    assert (t.atol, t.rtol) == (1e-3, 1e-3)
    assert t.sources["atol"] == "default for fp16"


def test_resolution_order_and_sources():
    tolerances = check_tolerances({
        "fp16": {"atol": 2e-2, "logits": {"rtol": 5e-2}},
        "logits": {"atol": 1e-4, "rtol": 1e-4, "cosine": 0.99},
    })
    marker = {"atol": 1e-3, "rtol": 1e-3}
    t = resolve("fp16", "logits", tolerances, marker)
    assert (t.atol, t.sources["atol"]) == (2e-2, "tolerances['fp16']")
    assert (t.rtol, t.sources["rtol"]) == (5e-2, "tolerances['fp16']['logits']")
    assert (t.cosine, t.sources["cosine"]) == (0.99, "tolerances['logits']")
    t = resolve("fp32", "logits", tolerances, marker)
    assert (t.atol, t.sources["atol"]) == (1e-4, "tolerances['logits']")
    t = resolve("fp32", "other", tolerances, marker)
    assert (t.atol, t.sources["atol"]) == (1e-3, "marker")
    t = resolve("bf16", "other", tolerances, {})
    assert (t.rtol, t.sources["rtol"]) == (1.6e-2, "default for bf16")
    assert "atol=0.01 (default for bf16)" in t.describe()


def test_unknown_precision_in_resolve():
    with pytest.raises(SpecError, match="precision 'fp64' is unknown"):
        resolve("fp64", "y")
