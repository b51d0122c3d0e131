"""Damaged goldens: whatever happened to the files, a check reports "corrupt: path, and the command that
regenerates it" (never a traceback, never values that differ from what was written), and --update-golden
repairs it. Real goldens written by real checks, damaged byte by byte and field by field."""
import copy
import io
import json
import struct
import zipfile

import numpy as np
import pytest

from models import two_io_model
from pytest_trt.backends.registry import get_backend
from pytest_trt.core.check import CheckContext, run_check
from pytest_trt.reports.rows import record_check
from pytest_trt.errors import GoldenError
from pytest_trt.goldens.store import _read_npz, read_golden, write_golden
from pytest_trt.core.spec import CompareSpec

from shared import HINT, INI

DEEP = "[" * 100_000 + "]" * 100_000


def _sidecar_damages():
    """{id: change to the parsed sidecar}: the damage seen in the field, and more of its kind."""
    def outputs(value):  # the first output's entry
        return lambda m: m["outputs"].__setitem__(next(iter(m["outputs"])), value)

    def field(group, key, value):  # a field of the group's first entry
        return lambda m: m[group][next(iter(m[group]))].__setitem__(key, value)
    return {
        "outputs-entry-int": outputs(5), "outputs-entry-list": outputs([1]), "outputs-entry-null": outputs(None),
        "shape-str": field("outputs", "shape", "abc"), "shape-negative": field("outputs", "shape", [-1]),
        "shape-nested": field("outputs", "shape", [[2]]),
        "dtype-int": field("outputs", "dtype", 7), "dtype-unknown-float8": field("outputs", "dtype", "float8_nope"),
        "dtype-bfloat16-lie": field("outputs", "dtype", "bfloat16"),
        "crc32-str": field("outputs", "crc32", "x"), "crc32-list": field("outputs", "crc32", [1]),
        "inputs-entry-str": lambda m: m["inputs"].__setitem__("x", "a"),
        "inputs-list": lambda m: m.__setitem__("inputs", ["x"]), "inputs-str": lambda m: m.__setitem__("inputs", "x"),
        "producer-list": lambda m: m.__setitem__("producer", [1, 2]),
        "model-str": lambda m: m.__setitem__("model", "m.onnx"),
        "model-sha-int": lambda m: m["model"].__setitem__("sha256", 12),
        "deep-nesting": "deep",
    }


SIDECAR_DAMAGES = _sidecar_damages()
TYPE_DAMAGES = set(SIDECAR_DAMAGES) - {"dtype-unknown-float8", "dtype-bfloat16-lie", "shape-negative"}


def _one_output_golden(folder):
    write_golden(folder, "reference", {"y": np.arange(6, dtype=np.float32).reshape(2, 3)},
                 {"inputs": {"x": {"dtype": "float32", "shape": [2, 3], "sha256": "0" * 64}},
                  "model": {"file": "m.onnx", "sha256": "1" * 64}, "producer": {"backend": "onnxruntime"}})


def _damage_sidecar(path, damage):
    if damage == "deep-nesting":
        text = path.read_text()
        path.write_text(text[:text.rindex("}")] + f', "deep": {DEEP}}}')
        return
    meta = json.loads(path.read_text())
    SIDECAR_DAMAGES[damage](meta)
    path.write_text(json.dumps(meta))


@pytest.mark.parametrize("damage", sorted(SIDECAR_DAMAGES))
def test_damaged_sidecar_is_corrupt_with_path_and_fix(tmp_path, damage):
    _one_output_golden(tmp_path)
    _damage_sidecar(tmp_path / "reference.json", damage)
    with pytest.raises(GoldenError) as info:
        read_golden(tmp_path, "reference", HINT)
    text = str(info.value)
    if damage in TYPE_DAMAGES:  # values no writer can produce: named as such
        assert text.startswith(f"golden sidecar {str(tmp_path / 'reference.json')!r} is corrupt (")
    else:  # plausible values that disagree with the arrays
        assert text.startswith(f"golden {str(tmp_path / 'reference.npz')!r} output 'y' is float32[2, 3] but its sidecar says")
    assert text.endswith(f"; regenerate it with: {HINT}") and "\n" not in text


def test_sidecar_dtype_that_cannot_view_the_stored_bytes(tmp_path):
    """bfloat16 and float8 arrays are stored as raw void bytes and viewed through the sidecar's dtype name."""
    import ml_dtypes

    write_golden(tmp_path, "reference", {"y": np.ones((), ml_dtypes.bfloat16)}, {})
    sidecar = tmp_path / "reference.json"
    for dtype in ["float8_nope", "float8_e4m3fn", "bfloat16x"]:
        meta = json.loads(sidecar.read_text())
        meta["outputs"]["y"]["dtype"] = dtype
        sidecar.write_text(json.dumps(meta))
        with pytest.raises(GoldenError, match=f"output 'y' is .* but its sidecar says {dtype}"):
            read_golden(tmp_path, "reference", HINT)


def _zip64_golden(folder, monkeypatch):
    """A golden whose central directory carries zip64 extra fields (as goldens over 4 GiB do)."""
    with monkeypatch.context() as m:
        m.setattr(zipfile, "ZIP64_LIMIT", 10)
        write_golden(folder, "reference", {"y": np.arange(6, dtype=np.float32)}, {})
    return folder / "reference.npz"


def test_short_zip64_extra_field_is_corrupt(tmp_path, monkeypatch):
    npz = _zip64_golden(tmp_path, monkeypatch)
    data = bytearray(npz.read_bytes())
    entry = data.index(b"PK\x01\x02")
    nlen = struct.unpack_from("<H", data, entry + 28)[0]
    extra = entry + 46 + nlen
    assert struct.unpack_from("<H", data, extra)[0] == 1    # the zip64 extra field
    struct.pack_into("<H", data, extra + 2, 0)             # its length: no values where three are needed
    npz.write_bytes(bytes(data))
    with pytest.raises(GoldenError, match=r"reference.npz' is corrupt or truncated \(ValueError: .*zip64"):
        read_golden(tmp_path, "reference", HINT)


def _npy_with_header(header: str, payload: bytes) -> bytes:
    header = header + " " * (-(10 + len(header) + 1) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode("latin1") + payload


@pytest.mark.parametrize("shape", ["(-1,)", "(-2, -3)", "(2, -1)"])
def test_npy_header_with_a_negative_dimension_is_corrupt(tmp_path, shape):
    """np.frombuffer's count=-1 means "up to the end": the member would read on into the next one."""
    npz = tmp_path / "x.npz"
    with zipfile.ZipFile(npz, "w") as zf:
        zf.writestr("a.npy", _npy_with_header(f"{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}, }}",
                                              np.zeros(2, np.float32).tobytes()))
        zf.writestr("b.npy", _npy_with_header("{'descr': '<f4', 'fortran_order': False, 'shape': (64,), }",
                                              np.ones(64, np.float32).tobytes()))
    with pytest.raises(GoldenError, match=r"is corrupt or truncated \(ValueError: .*negative dimension"):
        _read_npz(str(npz), HINT)


# ------------------------------------------------------------------------- fuzzing a real check's goldens

@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """A real model and its reference and engine goldens, recorded by a real check (onnxruntime as the engine);
    the reference golden with the zip64 records of a golden over 4 GiB."""
    root = tmp_path_factory.mktemp("fuzz")
    spec = CompareSpec(model=two_io_model(root / "two.onnx"))
    run_check(spec, "fp32", _ctx(root, update=True), engine=get_backend("onnxruntime"))
    with pytest.MonkeyPatch.context() as m:
        m.setattr(zipfile, "ZIP64_LIMIT", 10)
        m.setattr(zipfile, "ZIP_FILECOUNT_LIMIT", 1)
        (root / "golden" / "t" / "reference.npz").unlink()
        run_check(spec, "fp32", _ctx(root, update=True))
    assert b"PK\x06\x06" in (root / "golden" / "t" / "reference.npz").read_bytes()
    files = {p.name: p.read_bytes() for p in (root / "golden" / "t").iterdir()}
    assert sorted(files) == ["engine-onnxruntime-fp32.json", "engine-onnxruntime-fp32.npz",
                             "reference.json", "reference.npz"]
    return root, spec, files


def _ctx(root, update=False):
    return CheckContext("t.py::test_x", root / "golden", ("t",), update_golden=update, rootdir=root)


def _check_survives(recorded, name, damaged: bytes) -> None:
    """A check over a damaged golden passes with the values written, or fails with one corrupt-golden sentence."""
    root, spec, files = recorded
    path = root / "golden" / "t" / name
    path.write_bytes(damaged)
    try:
        result = run_check(spec, "fp32", _ctx(root), engine=get_backend("onnxruntime"))
        record_check(result, "t.py::test_x", [])
    finally:
        path.write_bytes(files[name])
    if not result.passed:
        (problem,) = result.problems
        assert problem.endswith("regenerate it with: pytest --update-golden t.py::test_x"), problem
        assert "golden" in problem.split(" (")[0] and f"/{name.split('.')[0]}." in problem, problem


def _mutations(data: bytes):
    """Each byte inverted, zeroed and set to 0xff; every truncation; a few ranges duplicated or cut out."""
    for i in range(len(data)):
        for value in {data[i] ^ 0xFF, 0, 0xFF} - {data[i]}:
            yield data[:i] + bytes([value]) + data[i + 1:]
    for n in range(len(data)):
        yield data[:n]
    for i in range(0, len(data), 97):
        yield data[:i] + data[i + 30:]
        yield data[:i] + data[i:i + 30] + data[i:]


@pytest.mark.parametrize("name", ["reference.npz", "engine-onnxruntime-fp32.npz"])
def test_fuzzed_npz_never_escapes_as_anything_but_a_corrupt_golden(recorded, name):
    """Arrays reach a check only through read_golden: it returns exactly the values written, or GoldenError."""
    root, _, files = recorded
    folder, stem = root / "golden" / "t", name[:-4]
    written = {k: v.copy() for k, v in read_golden(folder, stem, HINT).arrays.items()}
    try:
        for damaged in _mutations(files[name]):
            (folder / name).write_bytes(damaged)
            try:
                golden = read_golden(folder, stem, HINT)
            except GoldenError as exc:
                assert str(exc).endswith(f"regenerate it with: {HINT}") and str(folder) in str(exc), exc
                continue
            assert golden.arrays.keys() == written.keys()
            for key, array in written.items():
                assert golden.arrays[key].dtype == array.dtype and np.array_equal(golden.arrays[key], array)
    finally:
        (folder / name).write_bytes(files[name])


def _json_paths(value, path=()):
    yield path
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _json_paths(item, (*path, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _json_paths(item, (*path, i))


REPLACEMENTS = [5, -1, 10 ** 400, 1e308 * 10, "a", "", [], [-1], [1.5], {}, {"a": {}}, None, True, "deep"]


@pytest.mark.parametrize("name", ["reference.json", "engine-onnxruntime-fp32.json"])
def test_fuzzed_sidecar_never_escapes_as_anything_but_a_corrupt_golden(recorded, name):
    """Every value of the sidecar, at every depth, replaced by values of every JSON type; and byte damage."""
    original = recorded[2][name]
    meta = json.loads(original)
    for path in _json_paths(meta):
        for replacement in REPLACEMENTS:
            damaged = copy.deepcopy(meta)
            if path:
                *head, last = path
                parent = damaged
                for key in head:
                    parent = parent[key]
                parent[last] = "@DEEP@" if replacement == "deep" else replacement
            else:
                damaged = replacement
            text = json.dumps(damaged).replace('"@DEEP@"', DEEP)
            _check_survives(recorded, name, text.encode())
    for i in range(0, len(original), 5):  # bytes: mostly invalid JSON, sometimes another valid value
        _check_survives(recorded, name, original[:i] + original[i + 1:])


# ------------------------------------------------------------------------------ through pytest, and repair

def _damage(golden_dir, damage, monkeypatch):
    npz, sidecar = golden_dir / "reference.npz", golden_dir / "reference.json"
    if damage in ("deep-nesting", "outputs-entry-int", "inputs-entry-str", "shape-str", "crc32-str"):
        _damage_sidecar(sidecar, damage)
    elif damage == "zip64-short-extra":
        meta = json.loads(sidecar.read_text())
        arrays = {k: np.array(v) for k, v in np.load(npz).items()}
        with monkeypatch.context() as m:
            m.setattr(zipfile, "ZIP64_LIMIT", 10)
            write_golden(golden_dir, "reference", arrays, {k: v for k, v in meta.items() if k != "outputs"})
        data = bytearray(npz.read_bytes())
        entry = data.index(b"PK\x01\x02")
        struct.pack_into("<H", data, entry + 46 + struct.unpack_from("<H", data, entry + 28)[0] + 2, 0)
        npz.write_bytes(bytes(data))
    elif damage == "negative-dimension":
        data = npz.read_bytes()
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:
            with zipfile.ZipFile(io.BytesIO(data)) as old:
                for info in old.infolist():
                    member = old.read(info)
                    zf.writestr(info.filename, member.replace(b"'shape': (2, 3)", b"'shape': (-1,)  "))
        npz.write_bytes(buf.getvalue())
        meta = json.loads(sidecar.read_text())
        with zipfile.ZipFile(npz) as zf:
            for info in zf.infolist():
                meta["outputs"][info.filename[:-4]]["crc32"] = info.CRC
        sidecar.write_text(json.dumps(meta))


PYTEST_DAMAGES = ["deep-nesting", "outputs-entry-int", "inputs-entry-str", "shape-str", "crc32-str",
                  "zip64-short-extra", "negative-dimension"]


def test_damaged_goldens_fail_cleanly_and_update_repairs_them(pytester, monkeypatch):
    """One test per kind of damage, and one undamaged: each damaged one fails alone with its sentence."""
    two_io_model(pytester.path / "models" / "two.onnx")
    pytester.makeini(INI)
    pytester.makepyfile(test_a="""
        import pytest
        @pytest.mark.parametrize("damage", DAMAGES + ["none"])
        @pytest.mark.trt_compare(model="models/two.onnx")
        def test_x(trt_compare, damage):
            trt_compare()
    """.replace("DAMAGES", repr(PYTEST_DAMAGES)))
    pytester.runpytest("--update-golden").assert_outcomes(passed=len(PYTEST_DAMAGES) + 1)
    for damage in PYTEST_DAMAGES:
        _damage(pytester.path / "golden" / "test_a" / f"test_x[{damage}]", damage, monkeypatch)
    result = pytester.runpytest()
    result.assert_outcomes(passed=1, failed=len(PYTEST_DAMAGES))
    assert "Traceback" not in result.stdout.str()
    for damage in PYTEST_DAMAGES:
        folder = pytester.path / "golden" / "test_a" / f"test_x[[]{damage}]"
        result.stdout.fnmatch_lines([f"E       golden*{folder}/reference.*' is corrupt*; "
                                     f"regenerate it with: pytest --update-golden 'test_a.py::test_x[[]{damage}]'",
                                     f"FAILED test_a.py::test_x[[]{damage}] - AssertionError: trt_compare*"])
    result = pytester.runpytest("--update-golden")
    result.assert_outcomes(passed=len(PYTEST_DAMAGES) + 1)
    result.stdout.fnmatch_lines([f"*goldens in *golden: {len(PYTEST_DAMAGES)} updated, 1 unchanged*"])
    pytester.runpytest().assert_outcomes(passed=len(PYTEST_DAMAGES) + 1)
