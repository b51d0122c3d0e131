"""``python -m pytest_trt cache list|prune`` as real processes on engine caches filled by real TensorRT-RTX builds
(on CPU): rows and totals, pruning by age, TensorRT version and size, dry runs, read-only folders, damaged
entries, the key's lock, and bad arguments as one sentence."""
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time

import pytest

import pytest_trt
from pytest_trt.backends.tensorrt.cache_index import size_text
from pytest_trt.cli.cache import main, parse_duration, parse_size
from pytest_trt.core.files import file_lock

from models import scale_model

RTX = "tensorrt_rtx"
DAY = 86400
ENV = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_TRT_")}
PROG = "python -m pytest_trt cache"


def cli(*args, env=None, prefix=()):
    """``python -m pytest_trt cache ARGS`` in a process of its own."""
    return subprocess.run([*prefix, sys.executable, "-m", "pytest_trt", "cache", *map(str, args)],
                          capture_output=True, text=True, env=env or ENV, timeout=60)


def sidecars(cache):
    """The sidecars of ``cache``, by (model sha256's first 8, precision)."""
    metas = [json.loads(p.read_text()) for p in (cache / "plans").glob("*.json")]
    return {(m["model_sha256"][:8], m["precision"]): m for m in metas}


def age(cache, key, days):
    """Plan built and last used ``days`` ago."""
    then = time.time() - days * DAY
    for path in (cache / "plans" / f"{key}.plan", cache / "plans" / f"{key}.json", cache / "used" / key):
        path.parent.mkdir(exist_ok=True)
        path.touch()
        os.utime(path, (then, then))


def files(folder):
    """Every path under ``folder`` with its size and modification time: what a write would change."""
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in [folder, *folder.rglob("*")]}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A cache with three plans: m.onnx at fp32 and fp16, then m.onnx with other weights at fp32."""
    pytest.importorskip(RTX, reason="tensorrt-rtx-cu13 is not installed (pip install 'pytest-trt[rtx]')")
    root = tmp_path_factory.mktemp("built")
    model = scale_model(root / "m.onnx", dims=(2, 4), factor=2.0)
    for precision in ("fp32", "fp16"):
        pytest_trt.build_engine(model, backend=RTX, precision=precision, cache_dir=root / "cache")
    scale_model(model, dims=(2, 4), factor=3.0)
    pytest_trt.build_engine(model, backend=RTX, cache_dir=root / "cache")
    return root


@pytest.fixture
def cache(built, tmp_path):
    """A copy of the three-plan cache (times kept) and of m.onnx as its last plan was built from, in tmp_path."""
    shutil.copytree(built / "cache", tmp_path / "cache")
    shutil.copy2(built / "m.onnx", tmp_path / "m.onnx")
    return tmp_path / "cache"


# --------------------------------------------------------------------------------------------- list


def test_list_missing_and_empty_folder(tmp_path):
    missing = cli("list", tmp_path / "none")
    assert (missing.returncode, missing.stdout, missing.stderr) == (
        0, f"no engine cache at {str(tmp_path / 'none')!r} (the folder does not exist): 0 plans\n", "")
    empty = f"0 plans, 0 B; timing caches: 0, 0 B; in {str(tmp_path)!r}\n"
    assert cli("list", tmp_path).stdout == empty
    assert cli("list", env={**ENV, "PYTEST_TRT_ENGINE_DIR": str(tmp_path)}).stdout == empty


def test_list_three_plans(cache):
    import tensorrt_rtx

    result = cli("list", cache)
    assert result.returncode == 0 and result.stderr == ""
    header, *rows, total = result.stdout.splitlines()
    assert header.split() == ["KEY", "MODEL", "PRECISION", "TENSORRT", "GPU", "SIZE", "BUILT", "LAST", "USE"]
    metas = sidecars(cache)
    assert sorted(p for _, p in metas) == ["fp16", "fp32", "fp32"]
    assert len({sha for sha, _ in metas}) == 2          # the model changed between the fp32 builds
    assert len(rows) == 3
    size_sum = 0
    for (sha, precision), meta in metas.items():
        row = next(r for r in rows if r.startswith(meta["key"][:12] + " "))
        size = sum((cache / "plans" / f"{meta['key']}{ext}").stat().st_size for ext in (".plan", ".json"))
        size_sum += size
        for part in (f"m.onnx ({sha})", f" {precision} ", f"TensorRT-RTX {tensorrt_rtx.__version__}",
                     "no GPU (built on CPU)", size_text(size), f"{meta['created'][:10]} {meta['created'][11:16]}Z on "
                     f"{socket.gethostname()}"):
            assert part in row, (part, row)
        assert meta["built_by"] == {"host": socket.gethostname(), "pid": os.getpid(), "driver": None,
                                    "tensorrt": tensorrt_rtx.__version__, "time": meta["created"]}
    assert total == f"3 plans, {size_text(size_sum)}; timing caches: 0, 0 B; in {str(cache)!r}"
    listed = json.loads(cli("list", cache, "--json").stdout)
    assert sorted(p["key"] for p in listed["plans"]) == sorted(m["key"] for m in metas.values())
    assert listed["plan_bytes"] == size_sum


# -------------------------------------------------------------------------------------------- prune


def test_prune_by_age(cache):
    *old, fresh = [m["key"] for m in sidecars(cache).values()]
    for key in old:
        age(cache, key, 40)
    result = cli("prune", cache, "--older-than", "30d")
    assert result.returncode == 0 and result.stderr == ""
    *removed, summary = result.stdout.splitlines()
    assert sorted(line.split()[1] for line in removed) == sorted(k[:12] for k in old)
    assert all(line.startswith("removed ") and "(not used for 40 d)" in line for line in removed)
    assert re.fullmatch(r"removed 2 plans, freed [\d.]+ KiB \(\d+ bytes\); 1 plan left, [\d.]+ KiB", summary), summary
    assert sorted(p.name for p in (cache / "plans").iterdir()) == [f"{fresh}.json", f"{fresh}.plan"]
    assert not any((cache / "used" / key).exists() for key in old)
    assert list(json.loads((cache / "index.json").read_text())) == [fresh]
    assert cli("prune", cache, "--older-than", "30d").stdout.startswith("nothing to prune: 1 plan, ")


def test_prune_by_tensorrt_version(tmp_path, monkeypatch):
    """Two TensorRT versions share a folder; pruning one version's plans keeps the other's, which still load.
    The second version is this TensorRT-RTX reporting another version string (only one installs here), as in
    test_tensorrt_rtx's shared-folder test; builds, files and the prune process are real."""
    tensorrt_rtx = pytest.importorskip(RTX, reason="tensorrt-rtx-cu13 is not installed")
    model, cache = scale_model(tmp_path / "m.onnx", dims=(2, 4)), tmp_path / "cache"
    real = tensorrt_rtx.__version__
    plan = pytest_trt.build_engine(model, backend=RTX, cache_dir=cache)
    monkeypatch.setattr(tensorrt_rtx, "__version__", real + ".9")
    pytest_trt.build_engine(model, backend=RTX, cache_dir=cache)
    monkeypatch.setattr(tensorrt_rtx, "__version__", real)
    result = cli("prune", cache, "--tensorrt-version", real + ".9")
    assert result.returncode == 0, result.stderr
    assert f"(built by TensorRT-RTX {real}.9)" in result.stdout and "removed 1 plan, " in result.stdout
    assert [m["tensorrt"]["version"] for m in sidecars(cache).values()] == [real]
    from pytest_trt.backends.registry import get_backend

    assert pytest_trt.build_engine(model, backend=RTX, cache_dir=cache) == plan
    assert get_backend(RTX).events[-1]["status"] == "loaded"
    assert "removed 1 plan, " in cli("prune", cache, "--tensorrt-version", real.split(".")[0]).stdout


def test_prune_by_size_least_recently_used_first(cache):
    keys = [m["key"] for m in sidecars(cache).values()]
    for key, days in zip(keys, (3, 1, 2)):
        age(cache, key, days)
    sizes = {key: sum((cache / "plans" / f"{key}{ext}").stat().st_size for ext in (".plan", ".json")) for key in keys}
    result = cli("prune", cache, "--max-size", sum(sizes.values()) - 1)
    assert result.stdout.splitlines()[0].startswith(f"removed {keys[0][:12]} ")
    assert "least recently used while the cache exceeds" in result.stdout
    result = cli("prune", cache, "--max-size", f"{sizes[keys[1]] / 1024:.3f}K")
    assert result.stdout.splitlines()[0].startswith(f"removed {keys[2][:12]} ")
    assert f"freed {size_text(sizes[keys[2]])} ({sizes[keys[2]]} bytes); 1 plan left" in result.stdout
    assert [m["key"] for m in sidecars(cache).values()] == [keys[1]]


def test_dry_run_removes_nothing(cache):
    before = files(cache)
    result = cli("prune", cache, "--max-size", "0", "--dry-run")
    lines = result.stdout.splitlines()
    assert len(lines) == 4 and all(line.startswith("would remove ") for line in lines)
    assert lines[-1].startswith("would remove 3 plans, would free ") and lines[-1].endswith("0 plans left, 0 B")
    assert files(cache) == before


def test_damaged_sidecar_is_listed_and_pruned_only_when_asked(cache):
    metas = list(sidecars(cache).values())
    damaged = metas[0]["key"]
    (cache / "plans" / f"{damaged}.json").write_text("{")
    listing = cli("list", cache).stdout
    row = next(line for line in listing.splitlines() if line.startswith(damaged[:12]))
    assert "DAMAGED: sidecar unreadable (JSONDecodeError)" in row
    assert "3 plans, " in listing and "(1 damaged; prune --damaged removes them)" in listing
    result = cli("prune", cache, "--max-size", "0")
    assert "removed 2 plans" in result.stdout and damaged[:12] not in result.stdout
    assert sorted(p.name for p in (cache / "plans").iterdir()) == [f"{damaged}.json", f"{damaged}.plan"]
    result = cli("prune", cache, "--damaged")
    assert f"removed {damaged[:12]} " in result.stdout and "(damaged: sidecar unreadable" in result.stdout
    assert list((cache / "plans").iterdir()) == [] and json.loads((cache / "index.json").read_text()) == {}


def test_prune_waits_for_the_key_lock(cache):
    """A process building (or loading under the lock) holds the key's lock: prune removes that plan after it."""
    key = next(iter(sidecars(cache).values()))["key"]
    age(cache, key, 9)
    with file_lock(cache / "locks" / f"{key}.lock", keep=True):
        proc = subprocess.Popen([sys.executable, "-m", "pytest_trt", "cache", "prune", str(cache), "--older-than",
                                 "8d"], stdout=subprocess.PIPE, text=True, env=ENV)
        time.sleep(1.0)
        assert proc.poll() is None and (cache / "plans" / f"{key}.plan").exists()
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0 and f"removed {key[:12]} " in out
    assert not (cache / "plans" / f"{key}.plan").exists()


# ------------------------------------------------------------------------------- last use, read-only


HIT = ("import sys, warnings\nwarnings.simplefilter('error')\nimport pytest_trt\n"
       "from pytest_trt.backends.registry import get_backend\n"
       "pytest_trt.build_engine(sys.argv[1], backend='tensorrt_rtx', cache_dir=sys.argv[2])\n"
       "print(get_backend('tensorrt_rtx').events[-1]['status'])\n")


@pytest.fixture
def read_only(request):
    """``read_only(folder)``: a command prefix under which ``folder`` cannot be written. As root (who ignores
    permission bits) a read-only bind mount in a mount namespace of its own; as another user, chmod a-w."""
    def make(folder):
        if os.geteuid() != 0:
            paths = [folder, *folder.rglob("*")]
            modes = {p: p.stat().st_mode for p in paths}
            for p in paths:
                p.chmod(modes[p] & ~0o222)
            request.addfinalizer(lambda: [p.chmod(m) for p, m in modes.items()])
            return []
        if shutil.which("unshare") is None or subprocess.run(["unshare", "-m", "true"]).returncode:
            pytest.skip("running as root without mount namespaces (unshare -m): no way to make a folder read-only")
        return ["unshare", "-m", "sh", "-c", 'mount --bind -o ro "$0" "$0" && exec "$@"', str(folder)]
    return make


def test_hit_marks_last_use_and_read_only_folder_is_listed_and_served_without_writing(cache, read_only):
    key = next(m["key"] for m in sidecars(cache).values() if m["precision"] == "fp32"
               and m["model_sha256"] == pytest_trt.load_model_info(cache.parent / "m.onnx").sha256)
    age(cache, key, 5)
    marker = cache / "used" / key
    hit = subprocess.run([sys.executable, "-c", HIT, str(cache.parent / "m.onnx"), str(cache)], capture_output=True,
                         text=True, env=ENV, timeout=120)
    assert (hit.stdout, hit.stderr) == ("loaded\n", "")
    assert marker.stat().st_mtime > time.time() - 60           # writable: the hit is recorded
    age(cache, key, 5)
    before = files(cache)
    prefix = read_only(cache)
    listing = cli("list", cache, prefix=prefix)
    assert listing.returncode == 0 and listing.stderr == "" and listing.stdout.startswith("KEY ")
    assert len(listing.stdout.splitlines()) == 5
    hit = subprocess.run([*prefix, sys.executable, "-c", HIT, str(cache.parent / "m.onnx"), str(cache)],
                         capture_output=True, text=True, env=ENV, timeout=120)
    assert (hit.returncode, hit.stdout, hit.stderr) == (0, "loaded\n", "")
    pruned = cli("prune", cache, "--max-size", "0", prefix=prefix)
    assert (pruned.returncode, pruned.stdout) == (1, "")
    assert pruned.stderr == (f"{PROG} prune: cannot remove plans from {str(cache)!r} (read-only or not writable by "
                             "this user); run it where the folder is writable\n")
    assert files(cache) == before


# --------------------------------------------------------------------------------------- arguments


def test_durations_and_sizes():
    assert [parse_duration(t) for t in ("45s", "90m", "1.5h", "30d", "2w", "0s")] == [45, 5400, 5400, 30 * DAY,
                                                                                     14 * DAY, 0]
    assert [parse_size(t) for t in ("1234", "0", "100KB", "512M", "1.5GiB", "10G", "1t")] == [
        1234, 0, 100 << 10, 512 << 20, 3 << 29, 10 << 30, 1 << 40]


@pytest.mark.parametrize("args, message", [
    (["prune", "{d}", "--older-than", "30x"], "prune: --older-than '30x' has an unknown unit 'x'; use s, m (minutes), "
                                              "h, d or w, e.g. --older-than 30d"),
    (["prune", "{d}", "--older-than", "30"], "prune: --older-than '30' has no unit; add one, e.g. --older-than 30d "
                                             "(units: s, m, h, d, w)"),
    (["prune", "{d}", "--max-size", "-1G"], "prune: --max-size '-1G' is negative; give a size of at least 0, e.g. "
                                            "--max-size 10G"),
    (["prune", "{d}", "--max-size", "10Q"], "prune: --max-size '10Q' is not a size; give bytes or a number with K, M, "
                                            "G or T (binary: 10G is 10 GiB), e.g. --max-size 10G"),
    (["prune", "{d}"], "prune: give at least one rule: --older-than AGE, --tensorrt-version X, --max-size SIZE or "
                       "--damaged"),
    (["list"], f"list: no engine cache folder given; pass it ({PROG} list DIR) or set PYTEST_TRT_ENGINE_DIR"),
    (["list", "{d}/file"], "list: '{d}/file' is a file, not an engine cache folder; give the folder --trt-engine-dir "
                           "points at"),
    (["prune", "{d}", "--frob"], f"prune: unrecognized arguments: --frob; see {PROG} prune --help"),
    (["prune", "{d}", "--older-than"], f"prune: argument --older-than: expected one argument; see {PROG} prune --help"),
    (["purge", "{d}"], f": unknown command 'purge'; use {PROG} list [DIR] or {PROG} prune [DIR] ..."),
    ([], f": name a command: {PROG} list [DIR] or {PROG} prune [DIR] ... (see {PROG} --help)"),
])
def test_bad_arguments_are_one_sentence_and_status_2(tmp_path, monkeypatch, capsys, args, message):
    monkeypatch.delenv("PYTEST_TRT_ENGINE_DIR", raising=False)
    (tmp_path / "file").write_text("")
    assert main([a.format(d=tmp_path) for a in args]) == 2
    out, err = capsys.readouterr()
    assert (out, err) == ("", f"{PROG}{' ' if message[0] != ':' else ''}{message.format(d=tmp_path)}\n")
    assert list(tmp_path.iterdir()) == [tmp_path / "file"]


def test_command_line_status_and_imports(tmp_path):
    """Real processes: exit status 2 for bad arguments or an unknown command; listing imports no numpy, onnx or
    TensorRT (python -m pytest_trt stays quick where none is installed)."""
    bad = cli("prune", tmp_path, "--max-size", "-1G")
    assert (bad.returncode, bad.stdout, bad.stderr.count("\n")) == (2, "", 1)
    unknown = subprocess.run([sys.executable, "-m", "pytest_trt", "cache-list"], capture_output=True, text=True)
    assert unknown.returncode == 2 and unknown.stderr == ("python -m pytest_trt: unknown command 'cache-list'; use "
                                                          "one of: cache (python -m pytest_trt --help lists them)\n")
    script = ("import sys\nfrom pytest_trt.__main__ import main\nstatus = main(['cache', 'list', sys.argv[1]])\n"
              "print(status, sorted(m for m in ('numpy', 'onnx', 'onnxruntime', 'tensorrt', 'tensorrt_rtx') "
              "if m in sys.modules))\n")
    run = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True, env=ENV)
    assert run.stdout.splitlines()[-1] == "0 []"
