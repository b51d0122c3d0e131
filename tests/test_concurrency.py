"""Concurrency and crashes with real processes: xdist workers on one engine cache and one golden
directory, writers killed with SIGKILL mid-write, locks left by dead processes."""
import json
import random
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter

import numpy as np
import pytest

from pytest_trt.backends.tensorrt.cache import EngineCache
from pytest_trt.errors import GoldenError
from pytest_trt.goldens.store import read_golden

from models import scale_model

from shared import INI


@pytest.mark.slow
def test_eight_workers_build_each_key_exactly_once(pytester):
    """48 tests over 6 engine keys (3 models x fp32/fp16) on 8 xdist workers, cold cache, real
    TensorRT-RTX builds on CPU: each key is built once, the other 42 requests wait and load."""
    pytest.importorskip("tensorrt_rtx", reason="tensorrt-rtx-cu13 is not installed")
    for k in range(3):
        scale_model(pytester.path / f"m{k}.onnx", dims=(2, 4), factor=1.0 + k)
    pytester.makeini(INI)
    cache, log = pytester.path / "engines", pytester.path / "builds.log"
    pytester.makepyfile(test_builds=f"""
        import pytest, pytest_trt
        from pytest_trt.backends.registry import get_backend

        @pytest.mark.parametrize("i", range(48))
        def test_build(i):
            model = "m%d.onnx" % (i % 3)
            precision = ("fp32", "fp16")[(i // 3) % 2]
            plan = pytest_trt.build_engine(model, backend="tensorrt_rtx", precision=precision, cache_dir={str(cache)!r})
            assert len(plan) > 0
            event = get_backend("tensorrt_rtx").events[-1]
            with open({str(log)!r}, "a") as f:  # O_APPEND: one short line per write stays whole
                f.write(event["key"] + " " + event["status"] + "\\n")
    """)
    result = pytester.runpytest_subprocess("-n", "8", "-W", "ignore::DeprecationWarning")
    result.assert_outcomes(passed=48)
    events = [line.split() for line in log.read_text().splitlines()]
    assert len(events) == 48
    built = Counter(key for key, status in events if status == "built")
    assert len({key for key, _ in events}) == 6
    assert sorted(built.values()) == [1] * 6, built          # exactly one build per key
    assert Counter(status for _, status in events) == {"built": 6, "loaded": 42}
    store = EngineCache(cache)
    for key in built:
        plan, problem = store._load(key)
        assert plan is not None and problem is None
    assert len(json.loads((cache / "index.json").read_text())) == 6
    assert not list(cache.rglob("*.tmp"))


GOLDEN_SUITE = """
    import pytest
    @pytest.mark.parametrize("seed", range(16))
    @pytest.mark.trt_compare(model="m.onnx", precision=["fp32", "fp16"])
    def test_x(trt_compare, seed):
        trt_compare(seed=seed)
"""


def _golden_bytes(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted((root / "golden").rglob("*")) if p.is_file()}


@pytest.mark.slow
def test_update_golden_with_eight_workers_never_loses_or_garbles(pytester):
    """16 reference goldens, each shared by a test's [fp32] and [fp16] items on different workers."""
    scale_model(pytester.path / "m.onnx", dims=(2, 4), factor=2.0)
    pytester.makeini(INI)
    pytester.makepyfile(test_a=GOLDEN_SUITE)
    result = pytester.runpytest_subprocess("-n", "8", "--update-golden")
    result.assert_outcomes(passed=32)
    result.stdout.fnmatch_lines(["*goldens in *golden: 16 created*"])
    first = _golden_bytes(pytester.path)
    assert len(first) == 32 and not any(name.endswith(".tmp") for name in first)
    # An update run over a subset must not delete or rewrite the goldens of the tests it did not run.
    result = pytester.runpytest_subprocess("-n", "8", "--update-golden", "-k", "not 1")  # [fp32] of seeds 0, 2-9
    result.assert_outcomes(passed=9)
    assert _golden_bytes(pytester.path) == first
    # New weights: every golden is rewritten once, atomically, and each pair is readable and consistent.
    scale_model(pytester.path / "m.onnx", dims=(2, 4), factor=3.0)
    result = pytester.runpytest_subprocess("-n", "8", "--update-golden")
    result.assert_outcomes(passed=32)
    result.stdout.fnmatch_lines(["*goldens in *golden: 16 updated*"])
    for folder in {p.parent for p in (pytester.path / "golden").rglob("reference.npz")}:
        read_golden(folder, "reference", "-")
    result = pytester.runpytest_subprocess("-n", "8")
    result.assert_outcomes(passed=32)
    result.stdout.fnmatch_lines(["*goldens in *golden: 16 unchanged*"])


WRITER = textwrap.dedent("""
    import sys
    from pathlib import Path
    import numpy as np
    from pytest_trt.backends.tensorrt.cache import EngineCache
    from pytest_trt.goldens.store import write_golden

    root = Path(sys.argv[1])
    cache = EngineCache(root / "cache")
    for sub in ("plans", "timing", "locks"):
        (root / "cache" / sub).mkdir(parents=True, exist_ok=True)
    base = np.zeros(1_000_000, np.float32)            # 4 MB: each write takes long enough to be hit
    i = int(sys.argv[2])
    print("ready", flush=True)
    while True:
        i += 1
        write_golden(root / "golden", "reference", {"y": base + i}, {"i": i})
        cache._store("k" * 64, bytes(2_000_000) + i.to_bytes(8, "little"), {"i": i}, 0.1)
        cache._write_timing("t", bytes(500_000) + i.to_bytes(8, "little"))
""")


def _check_after_kill(root) -> dict:
    """Every file under a final name is whole: readable and consistent, or refused with its sentence."""
    seen = {}
    try:
        golden = read_golden(root / "golden", "reference", "-")
    except GoldenError as exc:
        if "reference.json' is missing while its partner file exists" in str(exc):  # killed between the first
            seen["golden"] = "half pair detected"                                    # arrays and their first sidecar
        else:
            assert "come from different writes" in str(exc), exc   # torn pair: detected, never half a file
            seen["golden"] = "torn pair detected"
    else:
        if golden is not None:
            assert np.all(golden.arrays["y"] == golden.meta["i"])
            seen["golden"] = "intact"
    store = EngineCache(root / "cache")
    plan, problem = store._load("k" * 64)
    if plan is not None:
        meta = json.loads(store.plan_path("k" * 64).with_suffix(".json").read_text())
        assert int.from_bytes(plan[-8:], "little") == meta["i"]
        seen["plan"] = "intact"
    elif problem:
        if "is incomplete" in problem and "(FileNotFoundError)" in problem:  # killed between the first plan and its sidecar
            seen["plan"] = "half pair detected"
        else:
            assert "fails its checksum" in problem, problem      # plan and sidecar from different writes
            seen["plan"] = "torn pair detected"
    timing = store._read_timing("t") if (root / "cache" / "timing" / "t.cache").exists() else None
    if timing is not None:
        assert len(timing) == 500_008
    return seen


@pytest.mark.slow
def test_sigkill_mid_write_leaves_no_partial_file(tmp_path):
    """60 writers killed at random moments while writing a golden, an engine plan and a timing cache."""
    rng = random.Random(1)
    outcomes = Counter()
    kills = 0
    for round_ in range(60):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path), str(round_ * 1000)],
                                stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.0, 0.25))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
        kills += proc.returncode == -signal.SIGKILL
        for what, state in _check_after_kill(tmp_path).items():
            outcomes[(what, state)] += 1
    assert kills == 60
    assert outcomes[("golden", "intact")] > 0 and outcomes[("plan", "intact")] > 0
    print(dict(outcomes))


@pytest.mark.slow
def test_lock_of_a_killed_builder_does_not_block(tmp_path):
    holder = textwrap.dedent("""
        import sys, time
        from pytest_trt.backends.tensorrt.cache import EngineCache
        def build(timing):
            print("building", flush=True)
            time.sleep(600)
        EngineCache(sys.argv[1]).get_or_build("k" * 64, {}, build)
    """)
    proc = subprocess.Popen([sys.executable, "-c", holder, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "building"    # it holds the key's lock now
    proc.kill()
    proc.wait()
    proc.stdout.close()
    start = time.monotonic()
    outcome = EngineCache(tmp_path).get_or_build("k" * 64, {}, lambda timing: (b"plan", None))
    assert outcome.status == "built" and outcome.plan == b"plan"
    assert time.monotonic() - start < 5
