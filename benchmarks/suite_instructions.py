"""suite_overhead.py's comparison counted in instructions instead of seconds: resolves differences of 0.1%.

    python benchmarks/suite_instructions.py        (needs valgrind: apt-get install valgrind; ~2 minutes on 2 cores)

Wall time on a shared VM swings by 10% from run to run, more than the difference suite_overhead.py looks
for. Valgrind's callgrind counts the instructions each thread executes instead; for one pytest run the
main thread's count repeats to within 0.01% (PYTHONHASHSEED fixed, bytecode cached). Runs the marked
suite and the hand-written one of suite_overhead.py with 2 and with 200 tests, then prints:
- the main thread's instructions of each run, and the ratio marked / by hand at 200 tests (the target: <= 1.0);
- the fixed cost (the 2-test run: interpreter, imports, collection, session start and end) and the cost
  per test ((200-test run - 2-test run) / 198), so a change can be placed on one or the other.
Other threads (onnxruntime's and OpenBLAS's pools) are listed apart: they mostly spin while waiting for
work, so their counts follow the scheduler, not the code. What instructions leave out: time spent
waiting on the disk or the kernel, and how fast each instruction runs (cache misses).
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from suite_overhead import TESTS, pytest_env, write_suites  # noqa: E402

SMALL = 2


def counted(work: Path, test_file: str) -> tuple[int, int]:
    """(main thread's instructions, all other threads' instructions) of one pytest run under callgrind."""
    out = work / f"callgrind.{test_file}"
    env = {**pytest_env(), "PYTHONHASHSEED": "0"}
    command = ["valgrind", "--tool=callgrind", "--separate-threads=yes", f"--callgrind-out-file={out}.%p",
               sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", test_file]
    proc = subprocess.run(command, cwd=work, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise SystemExit(f"{test_file} failed under valgrind:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    counts = {}
    for path in work.glob(f"callgrind.{test_file}.*"):
        thread = int(path.name.rsplit("-", 1)[1]) if "-" in path.name else 0
        match = re.search(r"^summary: (\d+)", path.read_text(errors="replace"), re.M)
        if match:
            counts[thread] = int(match.group(1))
        path.unlink()
    return counts.pop(1), sum(counts.values())


def main():
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed; install it (apt-get install valgrind) or use suite_overhead.py")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        files = {}
        for tests in (SMALL, TESTS):
            files["marked", tests], files["by hand", tests] = write_suites(work, tests)
        for (kind, _), name in files.items():  # goldens, and bytecode caches for both suites
            extra = ["--update-golden"] if kind == "marked" else []
            subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", name, *extra],
                           cwd=work, capture_output=True, env=pytest_env(), check=True)
        with ThreadPoolExecutor(max_workers=max(1, min(4, os.cpu_count() or 1))) as pool:
            counts = dict(zip(files, pool.map(lambda name: counted(work, name), files.values())))
    print(f"pytest runs under callgrind, instructions executed (millions); {TESTS} and {SMALL} checks per suite")
    print(f"  {'':24s} {f'{TESTS} tests':>10s} {f'{SMALL} tests':>10s} {'per test':>10s}   other threads ({TESTS})")
    per_test = {}
    for label, kind in (("marked with trt_compare", "marked"), ("written by hand", "by hand")):
        (big, others), (small, _) = counts[kind, TESTS], counts[kind, SMALL]
        per_test[kind] = (big - small) / (TESTS - SMALL)
        print(f"  {label:24s} {big / 1e6:10.1f} {small / 1e6:10.1f} {per_test[kind] / 1e6:10.3f}   {others / 1e6:.1f}")
    ratio = counts["marked", TESTS][0] / counts["by hand", TESTS][0]
    print(f"  ratio marked / by hand, main thread, {TESTS} tests: {ratio:.4f}   "
          f"(target <= 1.0: {'met' if ratio <= 1.0 else 'MISSED'})")
    print(f"  fixed cost ratio ({SMALL} tests): {counts['marked', SMALL][0] / counts['by hand', SMALL][0]:.4f}; "
          f"per-test ratio: {per_test['marked'] / per_test['by hand']:.4f}")


if __name__ == "__main__":
    main()
