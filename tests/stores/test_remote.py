"""stores/remote.py against a real S3 server (moto on loopback) with real s3fs and real TensorRT-RTX builds on CPU:
one build per key for a fleet started together, leases of killed runners taken over, tampered plans rebuilt and
never loaded, a stopped server falling back to local builds."""
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import warnings

import pytest

import pytest_trt
from pytest_trt.backends.tensorrt.cache import EngineCacheWarning
from pytest_trt.errors import BackendError
from pytest_trt.stores import engine_cache, remote

from models import scale_model

pytest.importorskip("tensorrt_rtx", reason="tensorrt-rtx-cu13 is not installed (pip install 'pytest-trt[rtx]')")
RTX = "tensorrt_rtx"
URL = "s3://engines/ci"

# A runner: builds (or loads) every model given, prints one JSON line of what the cache did per key.
# PAUSE_BEFORE_BUILD makes its builds slower (a test can kill it while it holds a lease, and runners that did not
# wait for each other would overlap for sure); START_WHEN names a file to wait for, to start runners together.
RUNNER = r"""
import json, os, sys, time
import pytest_trt
from pytest_trt.backends.registry import get_backend
from pytest_trt.backends.tensorrt import backend as trt_backend
pause = float(os.environ.get("PAUSE_BEFORE_BUILD", "0"))
if pause:
    real = trt_backend.build_plan
    def slow(*args, **kwargs):
        print("building", flush=True)
        time.sleep(pause)
        return real(*args, **kwargs)
    trt_backend.build_plan = slow
go = os.environ.get("START_WHEN")  # start together: wait for this file once imported
if go:
    print("ready", flush=True)
    while not os.path.exists(go):
        time.sleep(0.01)
url, models = sys.argv[1], sys.argv[2:]
for m in models:
    pytest_trt.build_engine(m, backend="tensorrt_rtx", cache_dir=url, shapes={"x": (2, 4)})
print(json.dumps([(e["key"], e["status"]) for e in get_backend("tensorrt_rtx").events]), flush=True)
"""


def models(tmp_path, n):
    return [str(scale_model(tmp_path / f"m{i}.onnx", factor=float(i + 2))) for i in range(n)]


def runner(s3, tmp_path, name, model_paths, **env):
    environment = {**os.environ, **s3.env, remote.LOCAL_DIR_ENV: str(tmp_path / "runners" / name),
                   "PYTEST_TRT_LEASE_SECONDS": "2", **env}
    environment.pop(remote.SECRET_ENV, None)
    return subprocess.Popen([sys.executable, "-c", RUNNER, URL, *model_paths], env=environment,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(process, timeout=120):
    out, err = process.communicate(timeout=timeout)
    assert process.returncode == 0, err[-3000:]
    return json.loads(out.strip().splitlines()[-1])


def build(model, **kwargs):
    return pytest_trt.build_engine(model, backend=RTX, cache_dir=URL, shapes={"x": (2, 4)}, **kwargs)


def last_status():
    from pytest_trt.backends.registry import get_backend

    return get_backend(RTX).events[-1]["status"]


def test_four_runners_started_together_build_each_key_once_and_a_second_wave_builds_nothing(s3, tmp_path):
    paths = models(tmp_path, 3)
    go = tmp_path / "go"
    wave = [runner(s3, tmp_path, f"a{i}", paths[i % 3:] + paths[:i % 3], START_WHEN=str(go),
                   PAUSE_BEFORE_BUILD="1") for i in range(4)]
    assert [p.stdout.readline().strip() for p in wave] == ["ready"] * 4
    start = time.perf_counter()
    go.touch()
    results = [finish(p) for p in wave]
    cold = time.perf_counter() - start
    builds = {}
    for events in results:
        assert len(events) == 3
        for key, status in events:
            assert status in ("built", "loaded"), events
            builds[key] = builds.get(key, 0) + (status == "built")
    assert len(builds) == 3 and all(n == 1 for n in builds.values()), builds
    assert not s3.fs.exists("engines/ci/leases") or not s3.fs.ls("engines/ci/leases", detail=False)  # released
    index = json.loads(s3.fs.cat("engines/ci/index.json"))
    assert sorted(index) == sorted(builds)
    start = time.perf_counter()
    second = [finish(runner(s3, tmp_path, f"b{i}", paths)) for i in range(2)]
    assert all(status == "loaded" for events in second for _, status in events), second
    print(f"cold wave of 4: {cold:.1f} s; warm runners: {time.perf_counter() - start:.1f} s")


def test_a_runner_killed_while_holding_a_lease_does_not_stop_the_others(s3, tmp_path):
    path = models(tmp_path, 1)
    holder = runner(s3, tmp_path, "killed", path, PAUSE_BEFORE_BUILD="60")
    assert holder.stdout.readline().strip() == "building"  # it holds the lease now
    assert len(s3.fs.ls("engines/ci/leases", detail=False)) == 1
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    start = time.perf_counter()
    others = [runner(s3, tmp_path, f"o{i}", path) for i in range(3)]
    statuses = [status for p in others for _, status in finish(p)]
    assert statuses.count("built") == 1 and statuses.count("loaded") == 2, statuses
    assert time.perf_counter() - start < 40  # the lease expires after 2 s unrenewed


def test_a_tampered_plan_is_rebuilt_and_never_loaded(s3, tmp_path, monkeypatch):
    monkeypatch.setenv(remote.SECRET_ENV, "fleet secret")
    (model,) = models(tmp_path, 1)
    good = build(model)
    assert last_status() == "built"
    (sidecar,) = [p for p in s3.fs.ls("engines/ci/plans", detail=False) if p.endswith(".json")]
    meta = json.loads(s3.fs.cat(sidecar))
    assert meta["signature"] == remote.signature("fleet secret", meta["key"], hashlib.sha256(good).hexdigest())
    # An attacker with write access replaces the plan and fixes up the checksum, but cannot sign it.
    evil = good[:-16] + b"\0" * 16
    s3.fs.pipe_file(sidecar[:-5] + ".plan", evil)
    s3.fs.pipe_file(sidecar, json.dumps({**meta, "plan_sha256": hashlib.sha256(evil).hexdigest()}).encode())
    handed_out = []  # every plan the store hands to the backend (which deserializes what it is given)
    real_get = remote.RemoteEngineCache._get

    def spy(self, *args):
        outcome = real_get(self, *args)
        handed_out.append(outcome.plan)
        return outcome

    monkeypatch.setattr(remote.RemoteEngineCache, "_get", spy)
    import shutil

    shutil.rmtree(tmp_path / "local")
    with pytest.warns(EngineCacheWarning, match=r"has a signature that does not verify with PYTEST_TRT_CACHE_SECRET; "
                                                r"it was not loaded .*; rebuilt it"):
        plan = build(model)
    assert last_status() == "rebuilt" and plan != evil and handed_out == [plan]
    assert s3.fs.cat(sidecar[:-5] + ".plan") == plan  # the store holds the signed rebuild again
    assert remote.signature("fleet secret", meta["key"], hashlib.sha256(plan).hexdigest()) == \
        json.loads(s3.fs.cat(sidecar))["signature"]
    shutil.rmtree(tmp_path / "local")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert build(model) == plan and last_status() == "loaded" and handed_out == [plan, plan]


def test_a_plan_without_a_signature_is_not_loaded_once_a_secret_is_set(s3, tmp_path, monkeypatch):
    (model,) = models(tmp_path, 1)
    build(model)
    monkeypatch.setenv(remote.SECRET_ENV, "s")
    with pytest.warns(EngineCacheWarning, match=r"is not signed with PYTEST_TRT_CACHE_SECRET"):
        build(model)
    assert last_status() == "rebuilt"


def test_a_corrupted_download_is_rebuilt_with_a_warning(s3, tmp_path):
    import shutil

    (model,) = models(tmp_path, 1)
    good = build(model)
    (plan_path,) = [p for p in s3.fs.ls("engines/ci/plans", detail=False) if p.endswith(".plan")]
    s3.fs.pipe_file(plan_path, good[: len(good) // 2])
    shutil.rmtree(tmp_path / "local")
    with pytest.warns(EngineCacheWarning, match=r"fails its checksum \(truncated, corrupted or replaced\); rebuilt it"):
        plan = build(model)
    assert last_status() == "rebuilt" and len(plan) == len(good) and s3.fs.cat(plan_path) == plan


def test_a_stopped_server_is_one_sentence_and_the_run_builds_locally(s3, tmp_path):
    first, second, third = models(tmp_path, 3)
    build(first)
    s3.stop()
    start = time.perf_counter()
    with pytest.warns(EngineCacheWarning) as caught:
        build(second)
        build(third)
        build(first)  # the local copy
    messages = [str(w.message) for w in caught if issubclass(w.category, EngineCacheWarning)]
    assert len(messages) == 1, messages
    assert messages[0].startswith("engine cache 's3://engines/ci' cannot be reached (") and \
        "building engines locally in" in messages[0] and "\n" not in messages[0], messages[0]
    assert time.perf_counter() - start < 30
    assert len(list((tmp_path / "local" / "plans").glob("*.plan"))) == 3


def test_a_store_without_conditional_writes_says_so_once_and_builds_once_per_runner(s3, tmp_path, monkeypatch):
    monkeypatch.setitem(remote._CONDITIONAL, URL, False)
    (model,) = models(tmp_path, 1)
    build(model)
    assert last_status() == "built" and not s3.fs.exists("engines/ci/leases")
    assert s3.fs.exists("engines/ci/index.json")


def test_a_url_without_its_package_names_the_extra(monkeypatch):
    with pytest.raises(BackendError, match=r"^engine cache 'gs://b/x' is a gs:// URL, which needs fsspec and gcsfs: "
                                           r"pip install 'pytest-trt\[remote\]' gcsfs$"):
        engine_cache("gs://b/x")
    monkeypatch.setitem(sys.modules, "fsspec", None)
    with pytest.raises(BackendError, match=r"^engine cache 's3://b/x' is a URL, which needs fsspec and s3fs: "
                                           r"pip install 'pytest-trt\[remote\]'$"):
        engine_cache("s3://b/x")


def test_cache_list_and_prune_work_on_the_store(s3, tmp_path, capsys):
    """python -m pytest_trt cache list|prune with an s3:// URL: the store's plans, their last use (a runner's
    download), and removal (sidecar, plan, marker, index entry)."""
    from pytest_trt.cli.cache import main

    for m in models(tmp_path, 2):
        pytest_trt.build_engine(m, backend=RTX, cache_dir=URL, shapes={"x": (2, 4)})
    assert main(["list", URL]) == 0
    out = capsys.readouterr().out
    assert "2 plans" in out and f"in '{URL}'" in out and out.count("TensorRT-RTX") == 2
    assert main(["list", URL, "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)["plans"]
    assert len(listed) == 2 and all(p["problem"] is None and p["host"] for p in listed)
    assert main(["prune", URL, "--max-size", "0", "--dry-run"]) == 0
    assert "would remove 2 plans" in capsys.readouterr().out
    assert len(s3.fs.find("engines/ci/plans")) == 4                       # the dry run removed nothing
    assert main(["prune", URL, "--max-size", "0"]) == 0
    assert "removed 2 plans" in capsys.readouterr().out
    assert s3.fs.find("engines/ci/plans") == []
    assert json.loads(s3.fs.cat("engines/ci/index.json")) == {}
    assert main(["list", URL]) == 0 and "0 plans" in capsys.readouterr().out
