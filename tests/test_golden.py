import io
import json
import zipfile

import numpy as np
import pytest

import pytest_trt.golden as golden
from pytest_trt.errors import GoldenError
from pytest_trt.golden import atomic_writer, location_parts, read_golden, safe_component, write_golden

HINT = "pytest --update-golden t.py::test_x"


def test_pytest_regressions_collision_ids_stay_distinct():
    names = ["test_x[1.0]", "test_x[1_0]", "test_x[1-0]", "test_x[A]", "test_x[a]", "test_x[a b]", "test_x[a_b]"]
    encoded = [safe_component(n) for n in names]
    assert len(set(encoded)) == len(names)
    assert len({e.lower() for e in encoded}) == len(names)  # case-insensitive filesystems too
    assert encoded[:3] == names[:3]  # plain ids stay readable as they are


@pytest.mark.parametrize("hostile", ["..", ".", "../../etc/passwd", "/abs/path", "a/../../b", "C:\\win", "con",
                                     "ünïcode-名前", "x" * 5000, "", "\x00nul", "~tilde"])
def test_hostile_ids_cannot_escape(tmp_path, hostile):
    component = safe_component(hostile)
    assert "/" not in component and "\\" not in component and component not in (".", "..", "")
    assert len(component.encode()) <= 120 and not component.startswith(".")
    folder = tmp_path.joinpath(*location_parts(["tests", "test_m"], ["TestC"], f"test_x[{hostile}]"))
    assert folder.resolve().is_relative_to(tmp_path.resolve())
    folder.mkdir(parents=True)  # a real filesystem accepts it


def test_round_trip_and_metadata(tmp_path):
    arrays = {"logits": np.arange(6, dtype=np.float32).reshape(2, 3), "label": np.array([3], np.int64),
              "odd/name": np.ones(2, np.float16), "allow_pickle": np.zeros(1)}
    write_golden(tmp_path, "reference", arrays, {"seed": 3})
    loaded = read_golden(tmp_path, "reference", HINT)
    assert loaded.meta["seed"] == 3 and loaded.meta["outputs"]["label"] == {"dtype": "int64", "shape": [1]}
    for name, array in arrays.items():
        assert loaded.arrays[name].dtype == array.dtype and np.array_equal(loaded.arrays[name], array)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["reference.json", "reference.npz"]  # no temp files left
    assert read_golden(tmp_path, "engine-x-fp16", HINT) is None


def test_bfloat16_round_trip(tmp_path):
    import ml_dtypes
    arrays = {"y": np.linspace(0, 1, 5).astype(ml_dtypes.bfloat16)}
    write_golden(tmp_path, "reference", arrays, {})
    assert read_golden(tmp_path, "reference", HINT).arrays["y"].dtype.name == "bfloat16"


def test_large_arrays_are_memory_mapped(tmp_path, monkeypatch):
    monkeypatch.setattr(golden, "MMAP_MIN_BYTES", 1024)
    big = np.arange(10_000, dtype=np.float32).reshape(100, 100)
    write_golden(tmp_path, "reference", {"big": big, "small": np.ones(3)}, {})
    loaded = read_golden(tmp_path, "reference", HINT)
    assert isinstance(loaded.arrays["big"], np.memmap) and np.array_equal(loaded.arrays["big"], big)
    assert not isinstance(loaded.arrays["small"], np.memmap)


def test_pickled_member_is_refused(tmp_path):
    write_golden(tmp_path, "reference", {"y": np.ones(2)}, {})
    buf = io.BytesIO()
    np.save(buf, np.array([{"evil": 1}], dtype=object), allow_pickle=True)
    with zipfile.ZipFile(tmp_path / "reference.npz", "w") as zf:
        zf.writestr("y.npy", buf.getvalue())
    with pytest.raises(GoldenError, match="is corrupt or truncated .*regenerate it with: pytest --update-golden"):
        read_golden(tmp_path, "reference", HINT)


@pytest.mark.parametrize("damage", ["truncate", "garbage", "json", "json_format", "missing_npz", "shape"])
def test_corrupt_goldens_name_file_and_fix(tmp_path, damage):
    write_golden(tmp_path, "reference", {"y": np.arange(100, dtype=np.float32)}, {})
    npz, sidecar = tmp_path / "reference.npz", tmp_path / "reference.json"
    if damage == "truncate":
        npz.write_bytes(npz.read_bytes()[:200])
    elif damage == "garbage":
        npz.write_bytes(b"\x00" * 500)
    elif damage == "json":
        sidecar.write_text("{not json")
    elif damage == "json_format":
        sidecar.write_text(json.dumps({"hello": 1}))
    elif damage == "missing_npz":
        npz.unlink()
    elif damage == "shape":
        meta = json.loads(sidecar.read_text())
        meta["outputs"]["y"]["shape"] = [99]
        sidecar.write_text(json.dumps(meta))
    with pytest.raises(GoldenError) as info:
        read_golden(tmp_path, "reference", HINT)
    text = str(info.value)
    assert str(tmp_path) in text and text.endswith(HINT)


def test_atomic_writer_leaves_nothing_on_error(tmp_path):
    target = tmp_path / "f.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic_writer(target) as f:
            f.write(b"partial")
            raise RuntimeError("crash")
    assert target.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["f.bin"]
