"""Golden store: where a test's goldens live, and safe, atomic reads and writes.

Layout: ``<golden dir>/<test module path>/<Class>/<test name[params]>/`` holding
``reference.npz`` + ``reference.json`` (the reference outputs) and ``engine-<backend>-<precision>.npz``
+ ``.json`` (an engine's outputs). Each path component is a readable, injective encoding of the
pytest name, so distinct parametrize ids never share a file and no id can leave the golden directory.
Arrays are stored uncompressed and loaded without pickle; large arrays are memory-mapped.
"""
from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import re
import tempfile
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from .errors import GoldenError

FORMAT = "pytest-trt golden"
FORMAT_VERSION = 1
MMAP_MIN_BYTES = 16 << 20          # arrays at least this large are memory-mapped, not read
_PLAIN = re.compile(r"[a-z0-9_.\-\[\]=,+]{1,120}")
_WINDOWS_RESERVED = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(10)), *(f"lpt{i}" for i in range(10))}


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


@dataclasses.dataclass
class Golden:
    """A loaded golden: its arrays (possibly memory-mapped) and its sidecar metadata."""

    arrays: dict[str, np.ndarray]
    meta: dict
    path: Path


def golden_paths(folder: Path, stem: str) -> tuple[Path, Path]:
    return folder / f"{stem}.npz", folder / f"{stem}.json"


def read_golden(folder: Path, stem: str, regenerate_hint: str) -> Golden | None:
    """The golden ``stem`` in ``folder``, or None when it does not exist.

    Raises GoldenError, naming the file and ``regenerate_hint``, when it is corrupt or inconsistent.
    """
    npz, sidecar = golden_paths(folder, stem)
    if not npz.exists() and not sidecar.exists():
        return None
    for path in (npz, sidecar):
        if not path.exists():
            raise GoldenError(f"golden {str(path)!r} is missing while its partner file exists; "
                              f"regenerate it with: {regenerate_hint}")
    meta = _read_sidecar(sidecar, regenerate_hint)
    arrays = _read_npz(npz, regenerate_hint)
    declared = meta["outputs"]
    for name, info in declared.items():
        array = arrays.get(name)
        if array is None:
            raise GoldenError(f"golden {str(npz)!r} lacks output {name!r} that its sidecar lists; "
                              f"regenerate it with: {regenerate_hint}")
        if info.get("dtype") in ("bfloat16",) or str(info.get("dtype", "")).startswith("float8"):
            from .inputs import numpy_dtype

            if array.dtype.kind == "V":
                array = arrays[name] = array.view(numpy_dtype(info["dtype"]))
        if list(array.shape) != list(info.get("shape", [])) or array.dtype.name != info.get("dtype"):
            raise GoldenError(f"golden {str(npz)!r} output {name!r} is {array.dtype.name}{list(array.shape)} but its "
                              f"sidecar says {info.get('dtype')}{info.get('shape')}; regenerate it with: {regenerate_hint}")
    extra = set(arrays) - set(declared)
    if extra:
        raise GoldenError(f"golden {str(npz)!r} holds outputs its sidecar does not list ({', '.join(sorted(extra))}); "
                          f"regenerate it with: {regenerate_hint}")
    return Golden(arrays, meta, npz)


def write_golden(folder: Path, stem: str, arrays: Mapping[str, np.ndarray], meta: dict) -> None:
    """Write arrays then sidecar, each atomically (temporary file, fsync, rename)."""
    folder.mkdir(parents=True, exist_ok=True)
    npz, sidecar = golden_paths(folder, stem)
    meta = {"format": FORMAT, "format_version": FORMAT_VERSION, **meta,
            "outputs": {k: {"dtype": np.asarray(v).dtype.name, "shape": list(np.shape(v))} for k, v in arrays.items()}}
    with atomic_writer(npz) as f:
        with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
            for name, array in arrays.items():
                with zf.open(f"{name}.npy", "w", force_zip64=True) as member:
                    np.lib.format.write_array(member, np.ascontiguousarray(array), allow_pickle=False)
    with atomic_writer(sidecar) as f:
        f.write((_compact(json.dumps(meta, indent=1, sort_keys=True, default=_json_default)) + "\n").encode())


class atomic_writer:
    """Context manager: a binary file that appears under ``path`` only when fully written."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def __enter__(self):
        fd, self.tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        self.file = os.fdopen(fd, "wb")
        return self.file

    def __exit__(self, exc_type, exc, tb):
        try:
            if exc_type is None:
                self.file.flush()
                os.fsync(self.file.fileno())
            self.file.close()
            if exc_type is None:
                os.replace(self.tmp, self.path)
                _fsync_dir(self.path.parent)
        finally:
            if os.path.exists(self.tmp):
                os.unlink(self.tmp)
        return False


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _read_sidecar(path: Path, hint: str) -> dict:
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise GoldenError(f"golden sidecar {str(path)!r} is not valid JSON ({exc}); regenerate it with: {hint}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT or not isinstance(meta.get("outputs"), dict):
        raise GoldenError(f"golden sidecar {str(path)!r} is not a pytest-trt golden sidecar; regenerate it with: {hint}")
    if meta.get("format_version") != FORMAT_VERSION:
        raise GoldenError(f"golden sidecar {str(path)!r} has format version {meta.get('format_version')!r}, this "
                          f"pytest-trt reads {FORMAT_VERSION}; regenerate it with: {hint}")
    return meta


def _read_npz(path: Path, hint: str) -> dict[str, np.ndarray]:
    """Arrays of an uncompressed npz, pickle-free; members >= MMAP_MIN_BYTES are memory-mapped."""
    arrays = {}
    try:
        size = path.stat().st_size
        source = io.BytesIO(path.read_bytes()) if size < MMAP_MIN_BYTES else path  # small: one read() call
        with zipfile.ZipFile(source) as zf:
            for info in zf.infolist():
                if not info.filename.endswith(".npy"):
                    raise ValueError(f"unexpected member {info.filename!r}")
                name = info.filename[:-4]
                if info.compress_type == zipfile.ZIP_STORED and info.file_size >= MMAP_MIN_BYTES:
                    arrays[name] = _mmap_member(path, zf, info)
                else:
                    with zf.open(info) as member:
                        arrays[name] = np.lib.format.read_array(member, allow_pickle=False)
    except (zipfile.BadZipFile, ValueError, EOFError, OSError, KeyError) as exc:
        raise GoldenError(f"golden {str(path)!r} is corrupt or truncated ({type(exc).__name__}: {exc}); "
                          f"regenerate it with: {hint}") from None
    return arrays


def _mmap_member(path: Path, zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> np.ndarray:
    with open(path, "rb") as f:
        f.seek(info.header_offset)
        local = f.read(30)
        if local[:4] != b"PK\x03\x04":
            raise ValueError("bad local file header")
        name_len, extra_len = int.from_bytes(local[26:28], "little"), int.from_bytes(local[28:30], "little")
        f.seek(info.header_offset + 30 + name_len + extra_len)
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
        else:
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
        if dtype.hasobject:
            raise ValueError("object arrays are not allowed")
        offset = f.tell()
        if offset + dtype.itemsize * int(np.prod(shape, dtype=np.int64)) > path.stat().st_size:
            raise ValueError(f"member {info.filename!r} is truncated")
    return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape, order="F" if fortran else "C")


def array_digest(array: np.ndarray) -> str:
    """sha256 over dtype, shape and bytes: identifies an input exactly."""
    array = np.ascontiguousarray(array)
    digest = hashlib.sha256(f"{array.dtype.name}{list(array.shape)}".encode())
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
