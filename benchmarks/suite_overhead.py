"""200 marked tests on one small model vs the same 200 checks written by hand (onnxruntime + numpy).

    python benchmarks/suite_overhead.py

Both suites run as real pytest subprocesses on the example MLP, in one run, after their goldens exist:
- marked: `@pytest.mark.trt_compare(model=..., seed=i)`, reference checked against goldens (no engine here);
- by hand: one module-scoped InferenceSession, seeded numpy inputs, np.load(golden) + assert_allclose.
Prints the best of REPEATS wall times and the ratio (target: marked / by hand <= 1.0).
"""
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TESTS = 200
REPEATS = 3

MARKED = textwrap.dedent("""
    import pytest
    @pytest.mark.parametrize("i", range(%d))
    @pytest.mark.trt_compare(model="mlp.onnx", shapes={"x": (4, 16)})
    def test_marked(trt_compare, i):
        trt_compare(seed=i)
""" % TESTS)

BY_HAND = textwrap.dedent("""
    import numpy as np, onnxruntime as ort, pytest
    from pathlib import Path
    HERE = Path(__file__).parent
    @pytest.fixture(scope="module")
    def session():
        return ort.InferenceSession(str(HERE / "mlp.onnx"), providers=["CPUExecutionProvider"])
    @pytest.mark.parametrize("i", range(%d))
    def test_by_hand(session, i):
        x = np.random.default_rng(i).uniform(-1, 1, (4, 16)).astype(np.float32)
        y = session.run(None, {"x": x})[0]
        path = HERE / "golden_by_hand" / f"{i}.npy"
        if not path.exists():
            path.parent.mkdir(exist_ok=True)
            np.save(path, y)
        np.testing.assert_allclose(y, np.load(path), rtol=1e-5, atol=1e-5)
""" % TESTS)


def run(cwd: Path, test_file: str, *extra: str) -> float:
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", test_file, *extra],
                          cwd=cwd, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{test_file} failed:\n{proc.stdout[-2000:]}")
    return elapsed


def main():
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        shutil.copy(ROOT / "examples" / "models" / "mlp.onnx", work / "mlp.onnx")
        (work / "pytest.ini").write_text("[pytest]\n")
        (work / "test_marked.py").write_text(MARKED)
        (work / "test_by_hand.py").write_text(BY_HAND)
        run(work, "test_marked.py", "--update-golden")
        run(work, "test_by_hand.py")
        marked = min(run(work, "test_marked.py") for _ in range(REPEATS))
        by_hand = min(run(work, "test_by_hand.py") for _ in range(REPEATS))
    print(f"{TESTS} checks, best of {REPEATS} pytest runs (wall time, interpreter start included)")
    print(f"  marked with trt_compare : {marked:6.2f} s")
    print(f"  written by hand         : {by_hand:6.2f} s")
    print(f"  ratio marked / by hand  : {marked / by_hand:6.2f}   (target <= 1.0: {'met' if marked <= by_hand else 'MISSED'})")


if __name__ == "__main__":
    main()
