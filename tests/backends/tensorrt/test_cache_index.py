"""Reading a cache folder into records (real files, damaged in each way) and deciding what a prune removes."""
import json
import os
import re
import socket
import time

import pytest

from pytest_trt.backends.tensorrt.cache import EngineCache
from pytest_trt.backends.tensorrt.cache_index import (PlanRecord, age_text, choose_prunes, provenance, read_records,
                                                      size_text, version_matches)

DAY = 86400.0
NOW = 1_800_000_000.0


def record(key, *, days=0.0, size=100, version="10.3.0.26", problem=None):
    return PlanRecord(key, model_file="m.onnx", precision="fp32", flavor="tensorrt", version=version, size=size,
                      last_use=NOW - days * DAY, problem=problem)


def keys(chosen):
    return [r.key for r, _ in chosen]


def test_prune_by_age_takes_plans_unused_for_longer_oldest_first():
    records = [record("new", days=1), record("old", days=40), record("older", days=90), record("edge", days=30)]
    chosen = choose_prunes(records, now=NOW, older_than=30 * DAY)
    assert keys(chosen) == ["older", "old"]
    assert [why for _, why in chosen] == ["not used for 90 d", "not used for 40 d"]


def test_prune_by_version_matches_whole_dotted_parts():
    records = [record("a", version="10.3.0.26"), record("b", version="10.30.1"), record("c", version="8.6.1"),
               record("d", version="10.3")]
    assert sorted(keys(choose_prunes(records, now=NOW, versions=["10.3"]))) == ["a", "d"]
    assert keys(choose_prunes(records, now=NOW, versions=["8", "10.30.1"])) == ["b", "c"]
    assert choose_prunes(records, now=NOW, versions=["10.3"])[0][1] == "built by TensorRT 10.3.0.26"
    assert version_matches("10.3.0.26", "10.3.") and not version_matches(None, "10")


def test_prune_by_size_removes_least_recently_used_until_it_fits():
    records = [record("a", days=3, size=300), record("b", days=1, size=200), record("c", days=2, size=100)]
    assert keys(choose_prunes(records, now=NOW, max_size=600)) == []
    assert keys(choose_prunes(records, now=NOW, max_size=599)) == ["a"]
    assert keys(choose_prunes(records, now=NOW, max_size=250)) == ["a", "c"]
    assert keys(choose_prunes(records, now=NOW, max_size=0)) == ["a", "c", "b"]
    # the size rule counts what the other rules leave
    assert keys(choose_prunes(records, now=NOW, older_than=2.5 * DAY, max_size=250)) == ["a", "c"]
    assert keys(choose_prunes(records, now=NOW, older_than=2.5 * DAY, max_size=300)) == ["a"]


def test_damaged_entries_go_only_when_asked_but_count_for_size():
    records = [record("bad", days=100, size=500, problem="sidecar unreadable"), record("good", days=1, size=100)]
    assert keys(choose_prunes(records, now=NOW, older_than=DAY / 2)) == ["good"]
    assert keys(choose_prunes(records, now=NOW, max_size=550)) == ["good"]     # 600 on disk, the damaged one stays
    chosen = choose_prunes(records, now=NOW, damaged=True)
    assert chosen == [(records[0], "damaged: sidecar unreadable")]
    assert keys(choose_prunes(records, now=NOW, damaged=True, max_size=550)) == ["bad"]


def test_provenance_names_host_process_versions_and_time():
    built_by = provenance("10.3.0.26", "12.4")
    assert built_by["host"] == socket.gethostname() and built_by["pid"] == os.getpid()
    assert built_by["tensorrt"] == "10.3.0.26" and built_by["driver"] == "12.4"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", built_by["time"])


def test_texts():
    assert [size_text(n) for n in (0, 1023, 1024, 1536 * 1024, 10 << 30)] == ["0 B", "1023 B", "1.0 KiB", "1.5 MiB",
                                                                           "10.0 GiB"]
    assert [age_text(s) for s in (-1, 59, 60, 7200, 40 * DAY)] == ["0 s", "59 s", "1 min", "2 h", "40 d"]


# ------------------------------------------------------------------ records from real cache folders


def filled(tmp_path):
    cache = EngineCache(tmp_path)
    for key, data in (("a" * 64, b"plan-a"), ("b" * 64, b"plan-bb")):
        cache.get_or_build(key, {"model_file": "m.onnx", "precision": "fp16", "model_sha256": "9" * 64,
                                 "tensorrt": {"flavor": "tensorrt_rtx", "version": "1.7.1"},
                                 "device": {"name": "NVIDIA RTX A6000", "compute_capability": "8.6"},
                                 "built_by": {"host": "runner-7", "pid": 42, "driver": "13.0", "time": "then"}},
                           lambda timing, data=data: (data, None))
    return tmp_path


def test_records_say_what_each_plan_is(tmp_path):
    a, b = read_records(filled(tmp_path))
    sidecar = json.loads((tmp_path / "plans" / f"{'a' * 64}.json").read_text())
    assert sidecar["built_by"]["time"] == sidecar["created"]     # stamped when stored
    assert a.as_dict() == {"key": "a" * 64, "model_file": "m.onnx", "model_sha256": "9" * 64, "precision": "fp16",
                           "flavor": "tensorrt_rtx", "version": "1.7.1", "gpu": "NVIDIA RTX A6000",
                           "compute_capability": "8.6",
                           "size": 6 + (tmp_path / "plans" / f"{'a' * 64}.json").stat().st_size,
                           "built": sidecar["created"], "host": "runner-7", "pid": 42, "driver": "13.0",
                           "last_use": (tmp_path / "plans" / f"{'a' * 64}.plan").stat().st_mtime,
                           "plan_sha256": sidecar["plan_sha256"], "problem": None}
    assert b.tensorrt == "TensorRT-RTX 1.7.1" and b.problem is None


def test_last_use_is_the_used_marker_when_newer(tmp_path):
    cache = EngineCache(filled(tmp_path))
    plan, then = tmp_path / "plans" / f"{'a' * 64}.plan", time.time() - 10 * DAY
    os.utime(plan, (then, then))
    assert read_records(tmp_path)[0].last_use == then       # never hit: built then
    cache.get_or_build("a" * 64, {}, lambda timing: pytest.fail("cached: must load"))
    used = tmp_path / "used" / ("a" * 64)
    assert read_records(tmp_path)[0].last_use == used.stat().st_mtime > time.time() - 60


@pytest.mark.parametrize("damage, problem", [
    ("sidecar-not-json", "sidecar unreadable (JSONDecodeError)"),
    ("sidecar-list", "sidecar is not a JSON object"),
    ("no-sidecar", "no sidecar (its .json is missing)"),
    ("no-plan", "no plan file (its sidecar is alone)"),
    ("other-key", "sidecar records another key than its file name"),
    ("truncated", "plan is 3 bytes, its sidecar says 6"),
])
def test_damaged_entries_are_records_with_a_problem(tmp_path, damage, problem):
    filled(tmp_path)
    plan = tmp_path / "plans" / f"{'a' * 64}.plan"
    sidecar = plan.with_suffix(".json")
    if damage == "sidecar-not-json":
        sidecar.write_text("{")
    elif damage == "sidecar-list":
        sidecar.write_text("[]")
    elif damage == "no-sidecar":
        sidecar.unlink()
    elif damage == "no-plan":
        plan.unlink()
    elif damage == "other-key":
        sidecar.write_text(sidecar.read_text().replace("a" * 64, "c" * 64))
    else:
        plan.write_bytes(b"pla")
    (tmp_path / "plans" / f".{plan.name}.123456.tmp").write_bytes(b"a writer's temporary")
    a, b = read_records(tmp_path)
    assert (a.key, a.problem, b.problem) == ("a" * 64, problem, None)
    assert a.size == sum(p.stat().st_size for p in (plan, sidecar) if p.exists())
    if damage in ("no-plan", "other-key", "truncated"):
        assert a.model_file == "m.onnx"          # what the sidecar says is still shown


def test_no_plans_folder_is_no_records(tmp_path):
    assert read_records(tmp_path / "missing") == [] and read_records(tmp_path) == []


def test_remove_takes_plan_sidecar_and_marker_and_keeps_a_plan_rebuilt_meanwhile(tmp_path):
    cache = EngineCache(filled(tmp_path))
    cache.mark_used("a" * 64)
    a, b = read_records(tmp_path)
    freed = cache.remove({"a" * 64: a.plan_sha256, "b" * 64: "0" * 64})     # b's sha256 is not what it records
    assert freed == {"a" * 64: a.size}
    assert sorted(p.name for p in (tmp_path / "plans").iterdir()) == [f"{'b' * 64}.json", f"{'b' * 64}.plan"]
    assert list((tmp_path / "used").iterdir()) == []
    assert list(json.loads((tmp_path / "index.json").read_text())) == ["b" * 64]
    assert cache.remove({"b" * 64: None}) == {"b" * 64: b.size}
    assert json.loads((tmp_path / "index.json").read_text()) == {}
