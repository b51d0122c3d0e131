"""Import cost of pytest_trt (target: <= 30 ms, and neither onnxruntime nor tensorrt loaded).

    python benchmarks/import_time.py

Prints the best of N fresh interpreters for `import pytest_trt`, beside `import numpy` and
`import onnxruntime` measured the same way in the same run.
"""
import subprocess
import sys
import time

N = 15


def best(statement: str) -> float:
    base, timed = [], []
    for _ in range(N):
        for target, code in ((base, "pass"), (timed, statement)):
            start = time.perf_counter()
            subprocess.run([sys.executable, "-c", code], check=True)
            target.append(time.perf_counter() - start)
    return (min(timed) - min(base)) * 1e3


def main():
    check = subprocess.run([sys.executable, "-c", "import sys, pytest_trt; print(sorted(m for m in ('numpy', 'onnx', "
                            "'onnxruntime', 'tensorrt', 'cuda') if m in sys.modules))"], capture_output=True, text=True, check=True)
    ours, numpy_ms, ort_ms = best("import pytest_trt"), best("import numpy"), best("import onnxruntime")
    print(f"import pytest_trt : {ours:7.1f} ms   (heavy modules loaded: {check.stdout.strip()})")
    print(f"import numpy      : {numpy_ms:7.1f} ms   ratio pytest_trt/numpy = {ours / numpy_ms:.2f}")
    print(f"import onnxruntime: {ort_ms:7.1f} ms   ratio pytest_trt/onnxruntime = {ours / ort_ms:.3f}")
    print(f"target <= 30 ms: {'met' if ours <= 30 else 'MISSED'}")


if __name__ == "__main__":
    main()
