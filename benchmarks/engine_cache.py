"""Engine cache benchmarks for the example models (real TensorRT-RTX builds on CPU, or TensorRT): one runner cold
vs warm, and a fleet of runners with local caches vs one shared object-storage cache.

    python benchmarks/engine_cache.py [--backend tensorrt_rtx] [--runners 4]

Builds every example model at fp32 and fp16 into an empty engine cache (cold), then asks again (warm),
in one run. Prints both times, the ratio and the build counts (target: warm >= 20x faster, 0 builds warm).

Then the fleet, in the same run (needs ``pip install 'pytest-trt[remote]' 'moto[server]'``; skipped with one line
otherwise): ``--runners`` runner processes, started together (each imported and waiting, then released at once),
each build the same engines, in two waves of fresh runners with empty local folders, for two scenarios:

* local only: each runner's ``cache_dir`` is its own empty folder;
* shared: every runner uses ``cache_dir="s3://engines/bench"`` on moto's S3 server on loopback (s3fs pointed at it
  with ``AWS_ENDPOINT_URL_S3``), each with its own local copy folder (``PYTEST_TRT_ENGINE_LOCAL_DIR``); the second
  wave finds the remote cache warm (target: 0 builds).

Per scenario and wave it prints the builds across runners (events with status built or rebuilt), their build
seconds (summed over runners), loads, and the wave's wall time (release to last runner done); then the ratios
shared / local only of builds and build seconds per wave and over both waves.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest_trt
from pytest_trt.backends.registry import get_backend

ROOT = Path(__file__).resolve().parents[1]
MODELS = {"mlp.onnx": {"x": {"min": (1, 16), "opt": (4, 16), "max": (64, 16)}},
          "two_heads.onnx": {},
          "attention.onnx": {"tokens": {"min": (1, 1, 32), "opt": (1, 8, 32), "max": (1, 128, 32)}}}
BUCKET = "engines"
SHARED_URL = f"s3://{BUCKET}/bench"
BUILT = ("built", "rebuilt")


def phase(backend: str, cache: str, build) -> tuple[float, list[dict]]:
    """Build (or load) every example model at fp32 and fp16; (seconds, the backend's events for them)."""
    events = get_backend(backend).events
    before = len(events)
    start = time.perf_counter()
    for name, shapes in MODELS.items():
        for precision in ("fp32", "fp16"):
            pytest_trt.build_engine(ROOT / "examples" / "models" / name, backend=backend, precision=precision,
                                    shapes=shapes, cache_dir=cache, build=build)
    return time.perf_counter() - start, events[before:]


def single(args) -> None:
    with tempfile.TemporaryDirectory() as cache:
        cold, cold_events = phase(args.backend, cache, args.build_options)
        warm, warm_events = phase(args.backend, cache, args.build_options)
    cold_statuses = [e["status"] for e in cold_events]
    warm_statuses = [e["status"] for e in warm_events]
    print(f"{args.backend} {get_backend(args.backend).describe()['version']}: "
          f"{len(cold_events)} engines (3 example models x fp32, fp16)")
    print(f"  cold build phase : {cold:8.3f} s   ({cold_statuses.count('built')} built)")
    print(f"  warm build phase : {warm:8.3f} s   ({warm_statuses.count('built')} built, "
          f"{warm_statuses.count('loaded')} loaded)")
    ratio = cold / warm if warm else float("inf")
    met = ratio >= 20 and warm_statuses.count("built") == 0
    print(f"  warm is {ratio:.0f}x faster   (target >= 20x and 0 builds warm: {'met' if met else 'MISSED'})")


def runner(args) -> None:
    """One fleet runner (a subprocess): import everything, say ready, wait for the start file, run the phase,
    print one JSON line of [status, seconds] per engine."""
    backend = get_backend(args.backend)
    backend.trt()  # the TensorRT import is not part of the wave
    if args.runner.startswith("s3://"):
        import s3fs  # noqa: F401  (nor is s3fs's)
    print("ready", flush=True)
    while not os.path.exists(args.start_when):
        time.sleep(0.005)
    _, events = phase(args.backend, args.runner, args.build_options)
    print(json.dumps([[e["status"], e["seconds"]] for e in events]), flush=True)


def wave(args, env: dict, caches: list[str], local_dirs: list[Path], go: Path) -> dict:
    """Start one runner per cache together; builds, build seconds, loads and wall time across them."""
    command = [sys.executable, __file__, "--backend", args.backend, "--start-when", str(go)]
    if args.build_options:
        command += ["--build-options", args.build_options]
    processes = [subprocess.Popen(command + ["--runner", cache], env={**env, "PYTEST_TRT_ENGINE_LOCAL_DIR": str(d)},
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for cache, d in zip(caches, local_dirs)]
    for p in processes:
        line = p.stdout.readline().strip()
        if line != "ready":
            raise SystemExit(f"a fleet runner did not start: {line!r} {p.stderr.read()[-2000:]}")
    start = time.perf_counter()
    go.touch()
    events = []
    for p in processes:
        out, err = p.communicate(timeout=300)
        if p.returncode:
            raise SystemExit(f"a fleet runner failed: {err[-2000:]}")
        events += json.loads(out.strip().splitlines()[-1])
    wall = time.perf_counter() - start
    go.unlink()
    built = [seconds for status, seconds in events if status in BUILT]
    return {"builds": len(built), "build_s": sum(built), "loaded": sum(s == "loaded" for s, _ in events),
            "engines": len(events), "wall": wall}


def fleet(args) -> None:
    try:
        import logging

        import s3fs
        from moto.server import ThreadedMotoServer
    except ImportError as exc:
        print(f"fleet comparison skipped: {exc.name} is not installed (pip install 'pytest-trt[remote]' "
              "'moto[server]')")
        return
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        url = f"http://{host}:{port}"
        s3 = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
              "AWS_ENDPOINT_URL_S3": url}
        s3fs.S3FileSystem(key="testing", secret="testing", endpoint_url=url).mkdir(BUCKET)
        env = {k: v for k, v in os.environ.items() if k not in ("PYTEST_TRT_CACHE_SECRET",)}
        env.update(s3)
        n = args.runners
        results = {}
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            go = tmp / "go"
            for scenario in ("local only", "shared"):
                for w in (1, 2):
                    dirs = [tmp / scenario.replace(" ", "-") / f"wave{w}-runner{i}" for i in range(n)]
                    caches = [str(d) for d in dirs] if scenario == "local only" else [SHARED_URL] * n
                    results[scenario, w] = wave(args, env, caches, dirs, go)
    finally:
        server.stop()
    engines = results["local only", 1]["engines"] // n
    print(f"fleet: {n} runners started together, {engines} engines each, two waves of fresh runners "
          f"(empty local folders)")
    for scenario, label in (("local only", "local only (own folder each)"),
                            ("shared", f"shared ({SHARED_URL}, moto S3 on loopback)")):
        print(f"  {label}")
        for w in (1, 2):
            r = results[scenario, w]
            print(f"    wave {w}{' (warm remote)' if scenario == 'shared' and w == 2 else ''}: "
                  f"{r['builds']:3d} builds, {r['build_s']:7.3f} build s, {r['loaded']:3d} loaded, "
                  f"wall {r['wall']:6.2f} s")

    def ratio(a, b):
        return f"{a / b:.3f}" if b else "n/a"

    for w, label in ((1, "wave 1"), (2, "wave 2"), (None, "both waves")):
        waves = (1, 2) if w is None else (w,)
        shared = [results["shared", x] for x in waves]
        local = [results["local only", x] for x in waves]
        builds = sum(r["builds"] for r in shared), sum(r["builds"] for r in local)
        seconds = sum(r["build_s"] for r in shared), sum(r["build_s"] for r in local)
        walls = sum(r["wall"] for r in shared), sum(r["wall"] for r in local)
        print(f"  shared / local only, {label:10s}: builds {builds[0]}/{builds[1]} = {ratio(*builds)}, "
              f"build s {seconds[0]:.3f}/{seconds[1]:.3f} = {ratio(*seconds)}, wall {ratio(*walls)}")
    warm = results["shared", 2]["builds"]
    print(f"  second wave against the warm remote cache: {warm} builds "
          f"(target 0: {'met' if warm == 0 else 'MISSED'})")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--backend", default="tensorrt_rtx")
    parser.add_argument("--build-options", default=None)
    parser.add_argument("--runners", type=int, default=4, help="fleet runners per wave")
    parser.add_argument("--runner", help=argparse.SUPPRESS)       # internal: run as one fleet runner, this cache
    parser.add_argument("--start-when", help=argparse.SUPPRESS)   # internal: the file that releases the runners
    args = parser.parse_args()
    if args.runner:
        runner(args)
        return
    single(args)
    fleet(args)


if __name__ == "__main__":
    main()
