"""Cold vs warm engine build phase for the example models (real TensorRT-RTX builds on CPU, or TensorRT).

    python benchmarks/engine_cache.py [--backend tensorrt_rtx]

Builds every example model at fp32 and fp16 into an empty engine cache (cold), then asks again (warm),
in one run. Prints both times, the ratio and the build counts (target: warm >= 20x faster, 0 builds warm).
"""
import argparse
import tempfile
import time
from pathlib import Path

import pytest_trt
from pytest_trt.backends.registry import get_backend

ROOT = Path(__file__).resolve().parents[1]
MODELS = {"mlp.onnx": {"x": {"min": (1, 16), "opt": (4, 16), "max": (64, 16)}},
          "two_heads.onnx": {},
          "attention.onnx": {"tokens": {"min": (1, 1, 32), "opt": (1, 8, 32), "max": (1, 128, 32)}}}


def phase(backend: str, cache: str, build) -> tuple[float, list[str]]:
    events = get_backend(backend).events
    before = len(events)
    start = time.perf_counter()
    for name, shapes in MODELS.items():
        for precision in ("fp32", "fp16"):
            pytest_trt.build_engine(ROOT / "examples" / "models" / name, backend=backend, precision=precision,
                                    shapes=shapes, cache_dir=cache, build=build)
    return time.perf_counter() - start, [e["status"] for e in events[before:]]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--backend", default="tensorrt_rtx")
    parser.add_argument("--build-options", default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as cache:
        cold, cold_events = phase(args.backend, cache, args.build_options)
        warm, warm_events = phase(args.backend, cache, args.build_options)
    print(f"{args.backend} {get_backend(args.backend).describe()['version']}: "
          f"{len(cold_events)} engines (3 example models x fp32, fp16)")
    print(f"  cold build phase : {cold:8.3f} s   ({cold_events.count('built')} built)")
    print(f"  warm build phase : {warm:8.3f} s   ({warm_events.count('built')} built, {warm_events.count('loaded')} loaded)")
    ratio = cold / warm if warm else float("inf")
    met = ratio >= 20 and warm_events.count("built") == 0
    print(f"  warm is {ratio:.0f}x faster   (target >= 20x and 0 builds warm: {'met' if met else 'MISSED'})")


if __name__ == "__main__":
    main()
