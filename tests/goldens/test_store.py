import io
import json
import zipfile
import zlib

import numpy as np
import pytest

import pytest_trt.goldens.store as golden
from pytest_trt.errors import GoldenError
import pytest_trt.core.files as files
from pytest_trt.core.files import atomic_writer
from pytest_trt.goldens.store import location_parts, read_golden, safe_component, write_golden

from shared import HINT


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
    assert loaded.meta["seed"] == 3 and loaded.meta["outputs"]["label"] == {
        "dtype": "int64", "shape": [1], "crc32": zlib.crc32(_npy_bytes(arrays["label"]))}
    for name, array in arrays.items():
        assert loaded.arrays[name].dtype == array.dtype and np.array_equal(loaded.arrays[name], array)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["reference.json", "reference.npz"]  # no temp files left
    assert read_golden(tmp_path, "engine-x-fp16", HINT) is None


def _npy_bytes(array) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, array, allow_pickle=False)
    return buffer.getvalue()


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
    assert _mapped(loaded.arrays["big"]) and np.array_equal(loaded.arrays["big"], big)
    assert not loaded.arrays["big"].flags.writeable
    assert not _mapped(loaded.arrays["small"]) and np.array_equal(loaded.arrays["small"], np.ones(3))


def _mapped(array) -> bool:
    import mmap

    while array is not None:
        if isinstance(array, mmap.mmap):
            return True
        array = getattr(array, "base", None) if not isinstance(array, memoryview) else array.obj
    return False


ODD_ARRAYS = {
    "scalar": np.array(3.5, dtype=np.float32),
    "empty": np.zeros((0, 4), dtype=np.float16),
    "fortran": np.asfortranarray(np.arange(12, dtype=np.int64).reshape(3, 4)),
    "bools": np.array([True, False, True]),
    "big_endian": np.arange(5, dtype=">i4"),
    "u8": np.arange(7, dtype=np.uint8),
}


@pytest.mark.parametrize("name", sorted(ODD_ARRAYS))
def test_fast_reader_matches_numpy(tmp_path, name):
    """The hand-written zip/npy reader agrees with np.load on every layout numpy writes."""
    array = ODD_ARRAYS[name]
    path = tmp_path / "x.npz"
    np.savez(path, a=array)  # numpy's own writer, not ours
    arrays, _ = golden._read_npz(path, HINT)
    expected = np.load(path)["a"]
    assert arrays["a"].dtype == expected.dtype and arrays["a"].shape == expected.shape
    assert np.array_equal(arrays["a"], expected)


def test_fast_reader_accepts_npy_format_2(tmp_path):
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.arange(6, dtype=np.float32), version=(2, 0))
    with zipfile.ZipFile(tmp_path / "x.npz", "w") as zf:
        zf.writestr("a.npy", buf.getvalue())
    assert np.array_equal(golden._read_npz(tmp_path / "x.npz", HINT)[0]["a"], np.arange(6, dtype=np.float32))


def test_bit_flip_in_data_fails_crc(tmp_path):
    write_golden(tmp_path, "reference", {"y": np.arange(100, dtype=np.float32)}, {})
    npz = tmp_path / "reference.npz"
    data = bytearray(npz.read_bytes())
    data[data.index(b"\x93NUMPY") + 200] ^= 0x04  # one bit of one float
    npz.write_bytes(bytes(data))
    with pytest.raises(GoldenError, match=r"is corrupt or truncated \(ValueError: member 'y.npy' fails its CRC-32 check\)"):
        read_golden(tmp_path, "reference", HINT)


def test_compressed_member_is_refused(tmp_path):
    path = tmp_path / "x.npz"
    np.savez_compressed(path, a=np.zeros(100))
    with pytest.raises(GoldenError, match="compressed or encrypted"):
        golden._read_npz(path, HINT)


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


def test_fast_reader_handles_zip64_records(tmp_path, monkeypatch):
    """Goldens over 4 GiB carry zip64 sizes and directory records; lower the limit to produce them here."""
    monkeypatch.setattr(zipfile, "ZIP64_LIMIT", 100)
    monkeypatch.setattr(zipfile, "ZIP_FILECOUNT_LIMIT", 1)
    arrays = {"a": np.arange(300, dtype=np.float32), "b": np.ones((2, 3))}
    write_golden(tmp_path, "reference", arrays, {})
    assert b"PK\x06\x06" in (tmp_path / "reference.npz").read_bytes()  # zip64 end record present
    monkeypatch.undo()
    loaded = read_golden(tmp_path, "reference", HINT)
    assert all(np.array_equal(loaded.arrays[k], v) for k, v in arrays.items())


def test_bit_flip_in_memory_mapped_member_fails_crc(tmp_path, monkeypatch):
    monkeypatch.setattr(golden, "MMAP_MIN_BYTES", 1024)
    write_golden(tmp_path, "reference", {"big": np.zeros(10_000, np.float32)}, {})
    npz = tmp_path / "reference.npz"
    data = bytearray(npz.read_bytes())
    data[20_000] ^= 0x01          # the lowest mantissa bit of one zero: 1e-45, within any tolerance
    npz.write_bytes(bytes(data))
    with pytest.raises(GoldenError, match=r"reference.npz' is corrupt or truncated \(ValueError: member 'big.npy' "
                                          r"fails its CRC-32 check\); regenerate it with: "):
        read_golden(tmp_path, "reference", HINT)


def test_torn_pair_from_an_interrupted_update_is_detected(tmp_path):
    """A crash between the npz rename and the sidecar rename leaves a new npz beside an old sidecar."""
    write_golden(tmp_path, "reference", {"y": np.zeros(4, np.float32)}, {"seed": 0})
    old_sidecar = (tmp_path / "reference.json").read_bytes()
    write_golden(tmp_path, "reference", {"y": np.ones(4, np.float32)}, {"seed": 0})
    (tmp_path / "reference.json").write_bytes(old_sidecar)
    with pytest.raises(GoldenError) as info:
        read_golden(tmp_path, "reference", HINT)
    assert str(info.value) == (f"golden {str(tmp_path / 'reference.npz')!r} and its sidecar come from different writes "
                               f"(an interrupted --update-golden?); regenerate it with: {HINT}")


def test_stale_temporaries_of_killed_writers_are_removed(tmp_path):
    import os
    import time

    stale, fresh = tmp_path / ".reference.npz.abc.tmp", tmp_path / ".reference.json.def.tmp"
    stale.write_bytes(b"partial")
    fresh.write_bytes(b"another writer, now")
    old = time.time() - 2 * files.STALE_TEMPORARY_SECONDS
    os.utime(stale, (old, old))
    write_golden(tmp_path, "reference", {"y": np.zeros(2)}, {})
    assert not stale.exists() and fresh.exists()


def test_unused_golden_folders(tmp_path):
    """Folders with goldens that no collected test uses are listed; a test's own folder and everything inside
    it (later calls' callN/ folders) never are, nor are folders outside the scanned modules."""
    from pytest_trt.plugin.summary import SessionSummary

    for folder in ["m/test_x", "m/test_x/call2", "m/test_x[1]", "m/Cls/test_y", "m/Cls/test_old", "m/deep/er/test_z",
                   "other/test_q"]:
        (tmp_path / folder).mkdir(parents=True)
        (tmp_path / folder / "reference.json").write_text("{}")
    (tmp_path / "m/empty").mkdir()
    summary = SessionSummary(known={"m/test_x", "m/Cls/test_y"}, scanned={"m"})
    assert summary.unused(tmp_path) == ["m/Cls/test_old", "m/deep/er/test_z", "m/test_x[1]"]
    summary.known.add("m/Cls")  # a class folder known as a whole covers its tests
    assert summary.unused(tmp_path) == ["m/deep/er/test_z", "m/test_x[1]"]
    assert SessionSummary(known=set(), scanned={"missing"}).unused(tmp_path) == []
