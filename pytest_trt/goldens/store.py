"""Golden store: where a test's goldens live, and safe, atomic reads and writes.

Layout: ``<golden dir>/<test module path>/<Class>/<test name[params]>/`` holding
``reference.npz`` + ``reference.json`` (the reference outputs) and ``engine-<backend>-<precision>.npz``
+ ``.json`` (an engine's outputs). Each path component is a readable, injective encoding of the
pytest name, so distinct parametrize ids never share a file and no id can leave the golden directory.
Arrays are stored uncompressed and loaded without pickle (by ``npz``, the reader of this format); large
arrays are memory-mapped.
"""
from __future__ import annotations

import functools
import glob
import hashlib
import json
import os
import re
import struct
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from pytest_trt.core.dtypes import dtype_name
from pytest_trt.errors import GoldenError
from pytest_trt.core.files import atomic_writer, remove_stale_temporaries
from pytest_trt.core.records import Record
from pytest_trt.goldens.npz import file_bytes, read_npz

FORMAT = "pytest-trt golden"
FORMAT_VERSION = 1
MMAP_MIN_BYTES = 16 << 20          # arrays at least this large are memory-mapped, not read
_PLAIN = re.compile(r"[a-z0-9_.\-\[\]=,+]{1,120}")
_WINDOWS_RESERVED = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(10)), *(f"lpt{i}" for i in range(10))}


@functools.lru_cache(maxsize=1024)   # module and class names repeat for every test in them
def safe_component(name: str) -> str:
    """One path component for ``name``: itself when plainly safe, else a readable prefix + hash.

    Plain means lowercase letters, digits and ``_.-[]=,+`` only, at most 120 characters, not
    starting with ``.``, not a Windows device name. Anything else (uppercase, ``/``, ``..``, unicode,
    very long ids) becomes ``<sanitized prefix>~<12 hex of sha256>``; ``~`` never occurs in plain
    names, so the mapping is injective and stable on case-insensitive filesystems too.
    """
    if _PLAIN.fullmatch(name) and not name.startswith(".") and name.split(".")[0] not in _WINDOWS_RESERVED:
        return name
    prefix = re.sub(r"[^a-z0-9_\-\[\]=,+]", "_", name.lower())[:60].lstrip("._") or "_"
    return f"{prefix}~{hashlib.sha256(name.encode('utf-8', 'surrogatepass')).hexdigest()[:12]}"


def location_parts(module_parts: Sequence[str], classes: Sequence[str], test_name: str) -> tuple[str, ...]:
    """Encoded path components, relative to the golden directory, for one test."""
    return tuple(safe_component(p) for p in (*module_parts, *classes, test_name))


def stem_for(kind: str, backend: str | None = None, precision: str | None = None) -> str:
    """File stem inside a test's golden folder: ``reference`` or ``engine-<backend>-<precision>``."""
    if kind == "reference":
        return "reference"
    return safe_component(f"engine-{backend}-{precision}")


class Golden(Record):
    """A loaded golden: its arrays (possibly memory-mapped) and its sidecar metadata."""

    __slots__ = ("arrays", "meta", "path")

    def __init__(self, arrays: dict[str, np.ndarray], meta: dict, path: str):
        self.arrays = arrays
        self.meta = meta
        self.path = path        # the .npz file


def golden_paths(folder: str | Path, stem: str) -> tuple[Path, Path]:
    """(arrays .npz, sidecar .json) of the golden ``stem`` in ``folder``."""
    npz, sidecar = _golden_files(folder, stem)
    return Path(npz), Path(sidecar)


def _golden_files(folder, stem: str) -> tuple[str, str]:
    """``golden_paths`` as plain strings, for the per-check read (pathlib costs microseconds per path)."""
    base = os.path.join(folder, stem)
    return base + ".npz", base + ".json"


def _missing_partner(path: str, hint: str) -> GoldenError:
    return GoldenError(f"golden {path!r} is missing while its partner file exists; regenerate it with: {hint}")


def read_golden(folder: str | Path, stem: str, regenerate_hint: str) -> Golden | None:
    """The golden ``stem`` in ``folder``, or None when it does not exist.

    Raises GoldenError, naming the file and ``regenerate_hint``, when it is corrupt or inconsistent.
    Paths are plain strings here and files are read with os.read: this runs once per check, and
    pathlib and file objects cost more than the reads themselves on small goldens.
    """
    npz, sidecar = _golden_files(folder, stem)
    try:
        text = file_bytes(sidecar)
    except FileNotFoundError:
        if not os.path.exists(npz):
            return None
        raise _missing_partner(sidecar, regenerate_hint) from None
    except OSError as exc:
        raise GoldenError(f"golden {sidecar!r} cannot be read ({exc.strerror or type(exc).__name__}); "
                          "check that the golden directory (--golden-dir) is a readable directory") from None
    meta = _read_sidecar(sidecar, text, regenerate_hint)
    arrays, crcs = _read_npz(npz, regenerate_hint)
    declared = meta["outputs"]
    for name, info in declared.items():  # each entry's fields are type-checked here, where they are used
        if type(info) is not dict:
            raise _corrupt_sidecar(sidecar, f"outputs[{name!r}] is {_brief(info)}, not an object", regenerate_hint)
        array = arrays.get(name)
        if array is None:
            raise GoldenError(f"golden {str(npz)!r} lacks output {name!r} that its sidecar lists; "
                              f"regenerate it with: {regenerate_hint}")
        crc, dtype, shape = info.get("crc32"), info.get("dtype"), info.get("shape")
        if crc is not None and crc != crcs[name]:
            if type(crc) is not int:
                raise _corrupt_sidecar(sidecar, f"outputs[{name!r}] crc32 is {_brief(crc)}, not a CRC-32",
                                       regenerate_hint)
            raise GoldenError(f"golden {str(npz)!r} and its sidecar come from different writes (an interrupted "
                              f"--update-golden?); regenerate it with: {regenerate_hint}")
        if array.dtype.kind == "V" and type(dtype) is str and (dtype == "bfloat16" or dtype.startswith("float8")):
            array = arrays[name] = _ml_view(array, dtype)
        if list(array.shape) != shape or dtype_name(array.dtype) != dtype:
            if type(dtype) is not str or type(shape) is not list or not all(type(d) is int for d in shape):
                raise _corrupt_sidecar(sidecar, f"outputs[{name!r}] is {_brief(info)}, not a dtype name and a "
                                                "list of sizes", regenerate_hint)
            raise GoldenError(f"golden {str(npz)!r} output {name!r} is {array.dtype.name}{list(array.shape)} but its "
                              f"sidecar says {dtype}{shape}; regenerate it with: {regenerate_hint}")
    extra = set(arrays) - set(declared)
    if extra:
        raise GoldenError(f"golden {str(npz)!r} holds outputs its sidecar does not list ({', '.join(sorted(extra))}); "
                          f"regenerate it with: {regenerate_hint}")
    return Golden(arrays, meta, npz)


def _ml_view(array: np.ndarray, dtype: str) -> np.ndarray:
    """Raw bytes stored for an ml_dtypes array (bfloat16, float8_*) viewed as ``dtype``; unchanged when that
    dtype is unknown or of another width (then the caller reports the mismatch)."""
    from pytest_trt.core.dtypes import numpy_dtype

    try:
        wanted = numpy_dtype(dtype)
    except (TypeError, AttributeError):
        return array
    return array.view(wanted) if wanted.itemsize == array.dtype.itemsize else array


def write_golden(folder: str | Path, stem: str, arrays: Mapping[str, np.ndarray], meta: dict,
                 root: str | Path | None = None) -> None:
    """Write arrays then sidecar, each atomically (temporary file, fsync, rename).

    ``root`` is the golden directory: nothing is written unless ``folder``, symlinks resolved, lies in it.
    Raises GoldenError naming the file and the cause when the filesystem refuses (read-only, full,
    not a directory) or a symlinked folder leads out of ``root``; a failed write leaves the previous golden in place.
    """
    try:
        if root is not None:
            _check_inside(Path(folder), Path(root))
        _write_golden(folder, stem, arrays, meta)
    except OSError as exc:
        raise GoldenError(f"cannot write golden {str(golden_paths(folder, stem)[0])!r} "
                          f"({exc.strerror or type(exc).__name__}); make the golden directory writable, "
                          "free space, or choose another with --golden-dir") from None


def _check_inside(folder: Path, root: Path) -> None:
    """Raise GoldenError naming the symlinked folder between ``root`` and ``folder`` that leads out of ``root``.

    Checked when writing only (a few lstat calls); reading through such a link harms nothing. Symlinked
    golden *files* need no check: the atomic rename replaces the link itself."""
    real_root = os.path.realpath(root)

    def inside(path: Path) -> bool:
        real = os.path.realpath(path)
        return real == real_root or real.startswith(real_root.rstrip(os.sep) + os.sep)

    if inside(folder):
        return
    link = root
    for part in folder.relative_to(root).parts:
        link = link / part
        if link.is_symlink() and not inside(link):
            raise GoldenError(f"golden folder {str(link)!r} is a symlink to {os.path.realpath(link)!r}, outside the "
                              f"golden directory {str(root)!r}; --update-golden writes only inside it: replace the "
                              "symlink with a real folder (or copy its goldens in), or choose the golden directory "
                              "with --golden-dir")
    raise GoldenError(f"golden folder {str(folder)!r} lies outside the golden directory {str(root)!r} once symlinks "
                      "are resolved; --update-golden writes only inside it: replace the symlinks with real folders")


def _write_golden(folder: str | Path, stem: str, arrays: Mapping[str, np.ndarray], meta: dict) -> None:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    npz, sidecar = golden_paths(folder, stem)
    for name in (npz.name, sidecar.name):   # this golden's temporaries only: the folder may hold others' too
        remove_stale_temporaries(folder, f".{glob.escape(name)}.*.tmp")
    with atomic_writer(npz) as f:
        with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
            for name, array in arrays.items():
                with zf.open(f"{name}.npy", "w", force_zip64=True) as member:
                    # not np.ascontiguousarray: it turns rank 0 into shape (1,), a golden that never matches again
                    np.lib.format.write_array(member, np.asarray(array, order="C"), allow_pickle=False)
            crcs = {info.filename[:-4]: info.CRC for info in zf.infolist()}
    # The sidecar names each member's CRC-32: a pair torn by a crash between the two renames is detected.
    meta = {"format": FORMAT, "format_version": FORMAT_VERSION, **meta,
            "outputs": {k: {"dtype": np.asarray(v).dtype.name, "shape": list(np.shape(v)), "crc32": crcs[k]}
                        for k, v in arrays.items()}}
    with atomic_writer(sidecar) as f:
        f.write((_compact(json.dumps(meta, indent=1, sort_keys=True, default=_json_default)) + "\n").encode())


def _read_sidecar(path: str, text: bytes, hint: str) -> dict:
    try:
        meta = json.loads(text.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise GoldenError(f"golden sidecar {str(path)!r} is not valid JSON ({exc}); regenerate it with: {hint}") from None
    except RecursionError:
        raise _corrupt_sidecar(path, "nested too deeply to parse", hint) from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT or not isinstance(meta.get("outputs"), dict):
        raise GoldenError(f"golden sidecar {str(path)!r} is not a pytest-trt golden sidecar; regenerate it with: {hint}")
    if meta.get("format_version") != FORMAT_VERSION:
        raise GoldenError(f"golden sidecar {str(path)!r} has format version {meta.get('format_version')!r}, this "
                          f"pytest-trt reads {FORMAT_VERSION}; regenerate it with: {hint}")
    problem = _sidecar_problem(meta)
    if problem:
        raise _corrupt_sidecar(path, problem, hint)
    return meta


def _sidecar_problem(meta: dict) -> str | None:
    """What makes the parsed sidecar's top-level groups unfit for the code that reads them (None: fit), so
    no damaged value reaches it as a TypeError; ``outputs`` entries are checked where read_golden reads them.
    Plain loops and type tests: this runs on every golden read."""
    producer, model = meta.get("producer"), meta.get("model")
    problem = _objects_problem(meta, "inputs")
    if problem:
        return problem
    if producer is not None and type(producer) is not dict:
        return f"producer is {_brief(producer)}, not an object"
    if model is not None and (type(model) is not dict or type(model.get("sha256", "")) is not str):
        return f"model is {_brief(model)}, not an object with a sha256 digest"
    problem = _objects_problem(meta, "errors_vs_reference")  # engine goldens: drift baselines
    if problem:
        return problem
    for entry in (meta.get("errors_vs_reference") or {}).values():
        for v in entry.values():   # numbers float() takes
            if type(v) is not float and (type(v) is not int or abs(v) > 1 << 1000):
                return f"errors_vs_reference holds {_brief(entry)}, not numbers"
    return None


def _objects_problem(meta: dict, key: str) -> str | None:
    """Why ``meta[key]``, when present, is not an object of objects (None: it is)."""
    group = meta.get(key)
    if group is None:
        return None
    if type(group) is not dict:
        return f"{key} is {_brief(group)}, not an object"
    for entry in group.values():
        if type(entry) is not dict:
            return f"{key} holds {_brief(entry)}, not an object"
    return None


def _corrupt_sidecar(path: str, problem: str, hint: str) -> GoldenError:
    return GoldenError(f"golden sidecar {str(path)!r} is corrupt ({problem}); regenerate it with: {hint}")


def _brief(value) -> str:
    """A damaged value as a message shows it: short, whatever its length or depth."""
    import reprlib

    return reprlib.repr(value)


def _read_npz(path: str, hint: str) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """Arrays of our uncompressed npz and their CRC-32s (``npz.read_npz``); members >= MMAP_MIN_BYTES are
    memory-mapped. A missing, corrupt or truncated file is a GoldenError naming ``hint``."""
    try:
        return read_npz(path, MMAP_MIN_BYTES)
    except FileNotFoundError:
        raise _missing_partner(path, hint) from None
    except (ValueError, EOFError, OSError, KeyError, IndexError, struct.error, TypeError, OverflowError) as exc:
        raise GoldenError(f"golden {str(path)!r} is corrupt or truncated ({type(exc).__name__}: {exc}); "
                          f"regenerate it with: {hint}") from None


def array_digest(array: np.ndarray) -> str:
    """sha256 over dtype, shape and bytes: identifies an input exactly."""
    array = np.ascontiguousarray(array)
    digest = hashlib.sha256(f"{dtype_name(array.dtype)}{list(array.shape)}".encode())
    digest.update(array.reshape(-1).view(np.uint8))
    return digest.hexdigest()


def _compact(text: str) -> str:
    """Put lists of plain values (shapes, providers) on one line: diffs of sidecars stay readable."""
    return re.sub(r"\[\s+([^\[\]{}]*?)\s+\]", lambda m: "[" + ", ".join(x.strip() for x in m.group(1).split(",")) + "]", text)


def _json_default(value):
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    if isinstance(value, (tuple, set)):
        return list(value)
    if isinstance(value, Path):
        return value.as_posix()
    raise TypeError(f"cannot store {type(value).__name__} in a golden sidecar")
