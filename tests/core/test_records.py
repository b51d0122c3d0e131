"""The plain record classes that stand in for dataclasses: equality, hashing, immutability, copies."""
import pickle

import pytest

from pytest_trt.reports.rows import CheckRecord, OutputRow
from pytest_trt.comparison.report import Extreme, OutputReport
from pytest_trt.core.model import TensorSpec
from pytest_trt.core.spec import CompareSpec
from pytest_trt.core.tolerance import Tolerance


def test_equality_is_by_class_and_fields():
    assert TensorSpec("x", "float32", (1, 2)) == TensorSpec("x", "float32", (1, 2))
    assert TensorSpec("x", "float32", (1, 2)) != TensorSpec("x", "float16", (1, 2))
    assert Extreme(1.0, (0,), 1.0, 0.0) != (1.0, (0,), 1.0, 0.0, None)


def test_tolerance_equality_and_hash_ignore_where_values_came_from():
    a = Tolerance(1e-3, 1e-3, sources={"atol": "marker"})
    b = Tolerance(1e-3, 1e-3, sources={"atol": "default for fp16"})
    assert a == b and hash(a) == hash(b)
    assert a != Tolerance(1e-3, 2e-3)


def test_frozen_records_refuse_changes_and_replace_makes_a_copy():
    spec = CompareSpec(seed=1)
    with pytest.raises(AttributeError, match="immutable.*replace"):
        spec.seed = 2
    with pytest.raises(AttributeError):
        del spec.seed
    changed = spec.replace(seed=2)
    assert (spec.seed, changed.seed) == (1, 2)
    assert changed.precisions == spec.precisions and changed.tolerances is spec.tolerances
    with pytest.raises(TypeError, match="no field sed; its fields are: model, precisions"):
        spec.replace(sed=3)


def test_mutable_records_are_unhashable_and_defaults_are_not_shared():
    first, second = CompareSpec(), CompareSpec()
    assert first.shapes is not second.shapes
    report = OutputReport("y", True, None, (1,), (1,), "float32", "float32", None)
    with pytest.raises(TypeError):
        hash(report)
    report.statistic_failures.append("x")
    assert OutputReport("y", True, None, (1,), (1,), "float32", "float32", None).statistic_failures == []


def test_as_dict_converts_nested_records_and_round_trips_through_json_rows():
    report = OutputReport("y", False, "values", (2,), (2,), "float32", "float32", Tolerance(0.0, 0.0),
                          max_abs=Extreme(0.5, (1,), 1.5, 1.0, 0.0))
    data = report.as_dict()
    assert data["max_abs"] == {"value": 0.5, "index": (1,), "actual": 1.5, "expected": 1.0, "allowed": 0.0, "share": None}
    assert data["tolerance"]["atol"] == 0.0 and data["statistics"] == {}
    row = OutputRow("reference vs golden", "y", "fp32", True, False, 0.0, 0.0, 0.1, 1e-5, 1e-5, None, None, False)
    record = CheckRecord("t.py::test_x", "fp32", True, "none", "skipped", "unchanged", None, 0.0, [row])
    assert CheckRecord.from_json(record.to_json()) == record


def test_repr_names_the_class_and_every_field():
    assert repr(TensorSpec("x", "int64", (2,))) == "TensorSpec(name='x', dtype='int64', dims=(2,))"


def test_records_pickle():
    spec = TensorSpec("x", "float32", ("batch", 3))
    assert pickle.loads(pickle.dumps(spec)) == spec
