"""The engine cache and its locks on real filesystems: read-only mounts, a cache dir that is a file or cannot be
written, stale temporaries, damaged index and sidecars, lock folders that are files or another user's."""
import builtins
import errno
import io
import json
import os
import stat
import subprocess
import sys
import tempfile
import time
import warnings

import pytest

import pytest_trt
from pytest_trt.core import files
from pytest_trt.backends.tensorrt.cache import EngineCache, EngineCacheWarning
from pytest_trt.errors import BackendError

from models import scale_model

KEY, OTHER, THIRD = "a" * 64, "b" * 64, "c" * 64


def plan_of(data: bytes):
    return lambda timing: (data, None)


def never_build(timing):
    raise AssertionError("a populated cache must load, not build")


def refuse_writes_under(monkeypatch, folder):
    """A read-only mount under ``folder``. Tests here run as root, which chmod does not stop, so this is a
    stand-in: creating, opening for writing, renaming or removing anything under ``folder`` raises EROFS and
    access(W_OK) is false, as the kernel does on a read-only mount (mkdir of an existing folder still says
    EEXIST). Reading is untouched."""
    root = os.path.realpath(folder)

    def inside(path):
        if isinstance(path, int):
            return False
        path = os.path.realpath(os.fsdecode(os.fspath(path)))
        return path == root or path.startswith(root + os.sep)

    def refuse(path):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), os.fsdecode(os.fspath(path)))

    real_open, real_os_open = builtins.open, os.open

    def guarded_open(file, mode="r", *args, **kwargs):
        if inside(file) and any(c in mode for c in "wax+"):
            refuse(file)
        return real_open(file, mode, *args, **kwargs)

    def guarded_os_open(path, flags, *args, **kwargs):
        if inside(path) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND):
            refuse(path)
        return real_os_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", guarded_open)
    monkeypatch.setattr(io, "open", guarded_open)
    def guarded_access(path, mode, *args, _real=os.access, **kwargs):
        return False if inside(path) and mode & os.W_OK else _real(path, mode, *args, **kwargs)

    def guarded_mkdir(path, *args, _real=os.mkdir, **kwargs):
        if inside(path) and os.path.lexists(path):
            raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), os.fsdecode(os.fspath(path)))
        if inside(path):
            refuse(path)
        return _real(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", guarded_os_open)
    monkeypatch.setattr(os, "access", guarded_access)
    monkeypatch.setattr(os, "mkdir", guarded_mkdir)
    for name in ("unlink", "remove", "rename", "replace", "rmdir", "utime", "chmod"):
        def guarded(path, *args, _real=getattr(os, name), **kwargs):
            if inside(path):
                refuse(path)
            return _real(path, *args, **kwargs)
        monkeypatch.setattr(os, name, guarded)


def test_populated_cache_loads_on_a_read_only_mount(tmp_path, monkeypatch):
    """Plans built by a real TensorRT-RTX build, then served from a read-only cache: no lock, no write."""
    pytest.importorskip("tensorrt_rtx", reason="tensorrt-rtx-cu13 is not installed")
    from pytest_trt.backends.registry import get_backend

    model, cache = scale_model(tmp_path / "m.onnx", dims=(2, 4)), tmp_path / "cache"
    plan = pytest_trt.build_engine(model, backend="tensorrt_rtx", cache_dir=cache)
    refuse_writes_under(monkeypatch, cache)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert pytest_trt.build_engine(model, backend="tensorrt_rtx", cache_dir=cache) == plan
    assert get_backend("tensorrt_rtx").events[-1]["status"] == "loaded"


def test_read_only_cache_without_the_plan_is_one_sentence(tmp_path, monkeypatch):
    cache = EngineCache(tmp_path)
    cache.get_or_build(KEY, {}, plan_of(b"plan-a"))
    refuse_writes_under(monkeypatch, tmp_path)
    assert cache.get_or_build(KEY, {}, never_build).status == "loaded"
    with pytest.raises(BackendError) as info:
        cache.get_or_build(OTHER, {}, plan_of(b"plan-b"))
    assert str(info.value) == (f"cannot write to the engine cache directory {str(tmp_path)!r} (read-only or not "
                               "writable by this user); make it writable, free space, or give --trt-engine-dir (ini trt_engine_dir) "
                               "another folder")


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root ignores permission bits")
def test_unwritable_cache_dir_by_permissions(tmp_path):
    tmp_path.chmod(0o555)
    try:
        with pytest.raises(BackendError, match=r"cannot write to the engine cache directory .* \(Permission denied\); make it writable"):
            EngineCache(tmp_path / "cache").get_or_build(KEY, {}, plan_of(b"p"))
    finally:
        tmp_path.chmod(0o755)


def test_cache_dir_that_is_a_file_is_one_sentence(tmp_path):
    (tmp_path / "cache").write_text("not a folder")
    with pytest.raises(BackendError) as info:
        EngineCache(tmp_path / "cache").get_or_build(KEY, {}, plan_of(b"p"))
    assert str(info.value) == (f"engine cache directory {str(tmp_path / 'cache')!r} is a file, not a folder; remove "
                               "it or give --trt-engine-dir (ini trt_engine_dir) another path")


def test_stale_temporaries_are_removed_fresh_ones_kept(tmp_path):
    cache = EngineCache(tmp_path)
    cache.get_or_build(KEY, {}, plan_of(b"p"), timing="t")
    old = time.time() - 2 * files.STALE_TEMPORARY_SECONDS
    stale = [tmp_path / "plans" / f".{KEY}.plan.dead01.tmp", tmp_path / "plans" / f".{KEY}.json.dead02.tmp",
             tmp_path / ".index.json.dead03.tmp", tmp_path / "timing" / ".t.cache.dead04.tmp"]
    fresh = tmp_path / "plans" / f".{OTHER}.plan.live01.tmp"   # a writer busy right now
    for path in (*stale, fresh):
        path.write_bytes(b"partial")
    for path in stale:
        os.utime(path, (old, old))
    cache.get_or_build(OTHER, {}, plan_of(b"q"))
    assert [p for p in stale if p.exists()] == [] and fresh.exists()


@pytest.mark.parametrize("damage", ["[" * 100_000, '{"k": ' * 100_000, "{not json", '["a", "list"]',
                                    '{"k": {"nested": "entry"}}', "\udcff"],
                         ids=["nested-lists", "nested-objects", "not-json", "a-list", "non-text-entry", "not-utf8"])
def test_damaged_index_is_rebuilt_from_the_sidecars(tmp_path, damage):
    cache = EngineCache(tmp_path)
    cache.get_or_build(KEY, {"model_file": "a.onnx"}, plan_of(b"pa"))
    cache.get_or_build(OTHER, {"model_file": "b.onnx"}, plan_of(b"pb"))
    (tmp_path / "index.json").write_bytes(damage.encode("utf-8", "surrogateescape"))
    with pytest.warns(EngineCacheWarning, match=r"engine cache index .* was damaged; rebuilt it from the plans' sidecars"):
        cache.get_or_build(THIRD, {"model_file": "c.onnx"}, plan_of(b"pc"))
    index = json.loads((tmp_path / "index.json").read_text())
    assert sorted(index) == [KEY, OTHER, THIRD]
    assert [index[k].split(" | ")[0] for k in (KEY, OTHER, THIRD)] == ["a.onnx", "b.onnx", "c.onnx"]


def test_missing_index_is_rebuilt_whole_without_a_warning(tmp_path):
    cache = EngineCache(tmp_path)
    cache.get_or_build(KEY, {}, plan_of(b"pa"))
    cache.get_or_build(OTHER, {}, plan_of(b"pb"))
    (tmp_path / "index.json").unlink()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cache.get_or_build(THIRD, {}, plan_of(b"pc"))
    assert sorted(json.loads((tmp_path / "index.json").read_text())) == [KEY, OTHER, THIRD]


@pytest.mark.parametrize("damage", ["[" * 100_000, '{"key": ' * 100_000, '{"key": 1, "tensorrt": [], "device": 3}'],
                         ids=["nested-lists", "nested-objects", "wrong-types"])
def test_damaged_sidecar_is_rebuilt_with_a_warning(tmp_path, damage):
    cache = EngineCache(tmp_path)
    cache.get_or_build(KEY, {}, plan_of(b"pa"))
    (tmp_path / "plans" / f"{KEY}.json").write_text(damage)
    with pytest.warns(EngineCacheWarning, match="rebuilt it"):
        outcome = cache.get_or_build(KEY, {}, plan_of(b"pa"))
    assert outcome.status == "rebuilt" and cache.get_or_build(KEY, {}, never_build).status == "loaded"


# ------------------------------------------------------------------------------------------- locks

def test_lock_files_do_not_accumulate(tmp_path):
    for i in range(100):
        with files.file_lock(tmp_path / "locks" / f"{i}.lock"):
            pass
    assert list((tmp_path / "locks").iterdir()) == []


def test_golden_locks_do_not_accumulate(tmp_path, sticky_tmp):
    from pytest_trt.goldens.policy import golden_lock

    for i in range(50):
        with golden_lock(tmp_path / "golden" / f"test_{i}" / "reference.npz"):
            pass
    assert list(sticky_tmp.iterdir()) == []


def test_removed_lock_files_still_exclude(tmp_path):
    """Four processes increment one counter 200 times each under one lock whose file is removed at every
    release: a process that waited on a removed file must lock the new one, or increments are lost."""
    script = (
        "import sys\nfrom pathlib import Path\nfrom pytest_trt.core.files import file_lock\n"
        "root = Path(sys.argv[1])\n"
        "for _ in range(200):\n"
        "    with file_lock(root / 'locks' / 'counter.lock'):\n"
        "        n = int((root / 'counter').read_text())\n"
        "        (root / 'counter').write_text(str(n + 1))\n")
    (tmp_path / "counter").write_text("0")
    procs = [subprocess.Popen([sys.executable, "-c", script, str(tmp_path)]) for _ in range(4)]
    assert [p.wait() for p in procs] == [0, 0, 0, 0]
    assert (tmp_path / "counter").read_text() == "800"


def test_lock_folder_that_is_a_file(tmp_path):
    (tmp_path / "locks").write_text("")
    with files.file_lock(tmp_path / "locks" / "a.lock"):
        assert (tmp_path / "locks-1" / "a.lock").exists()
    assert (tmp_path / "locks").read_text() == ""


@pytest.fixture
def sticky_tmp(tmp_path, monkeypatch):
    """A temp folder like /tmp (mode 1777) as tempfile.gettempdir(); the golden store's lock folder lives there."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    tmp.chmod(0o1777)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    return tmp / f"pytest-trt-locks-{os.getuid()}"


def golden_lock_works(tmp_path):
    from pytest_trt.goldens.policy import golden_lock

    with golden_lock(tmp_path / "golden" / "reference.npz"):
        pass
    return True


@pytest.mark.parametrize("squatter", ["file", "symlink", "other user's folder"])
def test_golden_lock_folder_taken_in_shared_tmp(tmp_path, sticky_tmp, squatter):
    if squatter == "file":
        sticky_tmp.write_text("")
    elif squatter == "symlink":
        (tmp_path / "elsewhere").mkdir()
        sticky_tmp.symlink_to(tmp_path / "elsewhere")
    else:
        if os.geteuid() != 0:
            pytest.skip("making a folder owned by another user needs root")
        sticky_tmp.mkdir()
        os.chown(sticky_tmp, 4242, 4242)
    assert golden_lock_works(tmp_path)
    mine = sticky_tmp.with_name(sticky_tmp.name + "-1")
    st = os.lstat(mine)
    assert stat.S_ISDIR(st.st_mode) and st.st_uid == os.getuid() and stat.S_IMODE(st.st_mode) == 0o700
    assert list(mine.iterdir()) == []
    if squatter == "symlink":
        assert list((tmp_path / "elsewhere").iterdir()) == []   # nothing created through the link


def test_golden_lock_folder_is_private(tmp_path, sticky_tmp):
    assert golden_lock_works(tmp_path)
    st = os.lstat(sticky_tmp)
    assert stat.S_IMODE(st.st_mode) == 0o700 and list(sticky_tmp.iterdir()) == []


def test_no_usable_lock_folder_is_one_sentence(tmp_path):
    from pytest_trt.errors import TrtCompareError

    for name in ["locks", *(f"locks-{i}" for i in range(1, 10))]:
        (tmp_path / name).write_text("")
    with pytest.raises(TrtCompareError) as info:
        with files.file_lock(tmp_path / "locks" / "a.lock"):
            pass
    assert str(info.value) == (f"cannot create lock files in {str(tmp_path / 'locks')!r} (it is a file, another "
                               "user's folder, or not writable, and so are locks-1 to -9 beside it); remove them or "
                               "point TMPDIR at a folder of your own")
