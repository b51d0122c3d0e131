"""200 marked tests on one small model vs the same 200 checks written by hand (onnxruntime + numpy).

    python benchmarks/suite_overhead.py

Both suites run as real pytest subprocesses on the example MLP, in one run, after their goldens exist:
- marked: `@pytest.mark.trt_compare(model=..., seed=i)`, reference checked against goldens (no engine here);
- by hand: one module-scoped InferenceSession, seeded numpy inputs, np.load(golden) + assert_allclose.
Runs alternate between the two suites (so drifting machine load hits both alike) and bytecode caching
is on, as on a user's machine (this workplace sets PYTHONDONTWRITEBYTECODE=1, which would charge
every run for compiling each imported module). Prints the best and median of REPEATS wall times, the
ratio of the bests (target: marked / by hand <= 1.0), and the spread of the paired runs' ratios, which
says how small a difference the machine can resolve.
"""
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TESTS = 200
REPEATS = 15

MARKED = textwrap.dedent("""
    import pytest
    @pytest.mark.parametrize("i", range({tests}))
    @pytest.mark.trt_compare(model="mlp.onnx", shapes={{"x": (4, 16)}})
    def test_marked(trt_compare, i):
        trt_compare(seed=i)
""")

BY_HAND = textwrap.dedent("""
    import numpy as np, onnxruntime as ort, pytest
    from pathlib import Path
    HERE = Path(__file__).parent
    @pytest.fixture(scope="module")
    def session():
        return ort.InferenceSession(str(HERE / "mlp.onnx"), providers=["CPUExecutionProvider"])
    @pytest.mark.parametrize("i", range({tests}))
    def test_by_hand(session, i):
        x = np.random.default_rng(i).uniform(-1, 1, (4, 16)).astype(np.float32)
        y = session.run(None, {{"x": x}})[0]
        path = HERE / "golden_by_hand" / f"{{i}}.npy"
        if not path.exists():
            path.parent.mkdir(exist_ok=True)
            np.save(path, y)
        np.testing.assert_allclose(y, np.load(path), rtol=1e-5, atol=1e-5)
""")


def write_suites(work: Path, tests: int = TESTS) -> tuple[str, str]:
    """The two suites of ``tests`` checks in ``work`` (with the example MLP); returns their file names."""
    shutil.copy(ROOT / "examples" / "models" / "mlp.onnx", work / "mlp.onnx")
    (work / "pytest.ini").write_text("[pytest]\n")
    marked, by_hand = f"test_marked_{tests}.py", f"test_by_hand_{tests}.py"
    (work / marked).write_text(MARKED.format(tests=tests))
    (work / by_hand).write_text(BY_HAND.format(tests=tests))
    return marked, by_hand


def pytest_env() -> dict:
    """The environment both suites run in: bytecode caching on, as on a user's machine."""
    return {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def run(cwd: Path, test_file: str, *extra: str) -> float:
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", test_file, *extra],
                          cwd=cwd, capture_output=True, text=True, env=pytest_env())
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{test_file} failed:\n{proc.stdout[-2000:]}")
    return elapsed


def main():
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        marked_file, by_hand_file = write_suites(work)
        run(work, marked_file, "--update-golden")
        run(work, by_hand_file)
        times = {"marked": [], "by hand": []}
        for _ in range(REPEATS):
            times["marked"].append(run(work, marked_file))
            times["by hand"].append(run(work, by_hand_file))
    marked, by_hand = min(times["marked"]), min(times["by hand"])
    print(f"{TESTS} checks, {REPEATS} alternating pytest runs each (wall time, interpreter start included)")
    print(f"  {'':24s}   best   median")
    for label, key in (("marked with trt_compare", "marked"), ("written by hand", "by hand")):
        print(f"  {label:24s} {min(times[key]):5.2f} s {statistics.median(times[key]):5.2f} s")
    print(f"  ratio marked / by hand  : {marked / by_hand:5.2f} (best), "
          f"{statistics.median(times['marked']) / statistics.median(times['by hand']):5.2f} (median)   "
          f"(target <= 1.0: {'met' if marked <= by_hand else 'MISSED'})")
    # Each marked run is followed by its hand-written twin: the spread of those pairs' ratios shows how much
    # of a difference this machine can resolve (on a noisy VM, a few percent either way).
    pairs = sorted(m / h for m, h in zip(times["marked"], times["by hand"]))
    q1, q3 = pairs[len(pairs) // 4], pairs[(3 * len(pairs)) // 4]
    print(f"  paired runs' ratios     : median {statistics.median(pairs):.2f}, quartiles {q1:.2f}-{q3:.2f}, "
          f"range {pairs[0]:.2f}-{pairs[-1]:.2f}")


if __name__ == "__main__":
    main()
