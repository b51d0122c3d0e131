"""Our own reader of the golden ``.npz`` files: a zip of uncompressed ``.npy`` members, read pickle-free.

Why not ``zipfile`` and ``np.load``: a golden check reads hundreds of small files per session, and
numpy's header parser alone (``ast.literal_eval``) costs more than comparing a small output; a file
object costs more than ``os.read`` of a small file. So the zip directory and the ``.npy`` headers are
parsed here, small members are read whole, and large ones are memory-mapped and viewed in place (no
copy). Every member, memory-mapped or not, is checked against its CRC-32, so a bit flip fails instead
of passing silently. Damage shows as ValueError (and kin), which the golden store turns into its message.
"""
from __future__ import annotations

import io
import math
import os
import re
import struct
import zlib

import numpy as np


def read_npz(path: str, mmap_min: int) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """Arrays of an uncompressed npz and their CRC-32s, pickle-free; members >= ``mmap_min`` bytes are
    memory-mapped, the others read. Raises FileNotFoundError, or ValueError (struct.error, ...) naming the damage."""
    data = file_bytes(path, mmap_min)
    arrays, crcs = {}, {}
    for name, start, length, crc in _stored_members(data):
        if not name.endswith(".npy"):
            raise ValueError(f"unexpected member {name!r}")
        if length < mmap_min:
            blob = bytes(data[start:start + length])
            if zlib.crc32(blob) != crc:
                raise ValueError(f"member {name!r} fails its CRC-32 check")
            arrays[name[:-4]] = _npy_array(blob, 0, length)
        else:
            with memoryview(data) as whole, whole[start:start + length] as view:
                ok = zlib.crc32(view) == crc   # ~3.5 GB/s; also brings the pages in for the comparison
            if not ok:
                raise ValueError(f"member {name!r} fails its CRC-32 check")
            arrays[name[:-4]] = _npy_array(data, start, length)
        crcs[name[:-4]] = crc
    return arrays, crcs


_O_RDONLY = os.O_RDONLY | getattr(os, "O_BINARY", 0)


def file_bytes(path: str, mmap_min: int | None = None):
    """A whole file's bytes, or a read-only memory map where it holds at least ``mmap_min`` bytes.

    os.open/os.read: for the small files read once per check, a file object costs more than the read."""
    fd = os.open(path, _O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        if mmap_min is not None and size >= mmap_min:
            import mmap

            return mmap.mmap(fd, 0, access=mmap.ACCESS_READ)
        data = os.read(fd, size + 1)
        if len(data) != size:  # a short read, or the file grew: read on until end of file
            chunks = [data]
            while chunk := os.read(fd, max(size, 1 << 16)):
                chunks.append(chunk)
            data = b"".join(chunks)
        return data
    finally:
        os.close(fd)


_EOCD = struct.Struct("<4s4H2LH")
_EOCD64_LOCATOR = struct.Struct("<4sLQL")
_EOCD64 = struct.Struct("<4sQ2H2L4Q")
_CENTRAL = struct.Struct("<4s4B4HL2L5H2L")
_LOCAL = struct.Struct("<4s2B4HL2L2H")


def _stored_members(data) -> list[tuple[str, int, int, int]]:
    """(name, data offset, length, crc32) of each member of an uncompressed zip, from its central directory."""
    eocd = data.rfind(b"PK\x05\x06", max(0, len(data) - 22 - 0xFFFF))
    if eocd < 0:
        raise ValueError("no zip end-of-directory record (file truncated?)")
    _, _, _, _, count, _, cd_offset, _ = _EOCD.unpack_from(data, eocd)
    if count == 0xFFFF or cd_offset == 0xFFFFFFFF:
        sig, _, eocd64, _ = _EOCD64_LOCATOR.unpack_from(data, eocd - _EOCD64_LOCATOR.size)
        if sig != b"PK\x06\x07":
            raise ValueError("bad zip64 locator")
        sig, *_, count, _, cd_offset = _EOCD64.unpack_from(data, eocd64)
        if sig != b"PK\x06\x06":
            raise ValueError("bad zip64 end-of-directory record")
    members, pos = [], cd_offset
    for _ in range(count):
        (sig, _, _, _, _, flags, method, _, _, crc, csize, usize, nlen, xlen, clen, _, _, _, offset
         ) = _CENTRAL.unpack_from(data, pos)
        if sig != b"PK\x01\x02":
            raise ValueError("bad zip central directory entry")
        name = bytes(data[pos + 46:pos + 46 + nlen]).decode("utf-8")
        extra = bytes(data[pos + 46 + nlen:pos + 46 + nlen + xlen])
        pos += 46 + nlen + xlen + clen
        if method != 0 or flags & 1:
            raise ValueError(f"member {name!r} is compressed or encrypted; goldens are stored uncompressed")
        usize, csize, offset = _zip64_fields(extra, usize, csize, offset)
        lsig, *_, lnlen, lxlen = _LOCAL.unpack_from(data, offset)
        if lsig != b"PK\x03\x04":
            raise ValueError(f"bad local header for member {name!r}")
        start = offset + _LOCAL.size + lnlen + lxlen
        if start + usize > len(data):
            raise ValueError(f"member {name!r} is truncated")
        members.append((name, start, usize, crc))
    return members


def _zip64_fields(extra: bytes, usize: int, csize: int, offset: int) -> tuple[int, int, int]:
    i = 0
    while i + 4 <= len(extra):
        tag, length = struct.unpack_from("<2H", extra, i)
        if tag == 1:
            values = list(struct.unpack_from(f"<{length // 8}Q", extra, i + 4))[::-1]
            needed = (usize, csize, offset).count(0xFFFFFFFF)
            if len(values) < needed:
                raise ValueError(f"zip64 extra field holds {len(values)} of the {needed} sizes its entry needs")
            if usize == 0xFFFFFFFF:
                usize = values.pop()
            if csize == 0xFFFFFFFF:
                csize = values.pop()
            if offset == 0xFFFFFFFF:
                offset = values.pop()
        i += 4 + length
    return usize, csize, offset


_NPY_HEADER = re.compile(r"\{'descr': '([<>|=][a-zA-Z]\d*)', 'fortran_order': (True|False), 'shape': \(([\d, ]*)\), \}\s*")


def _npy_array(data, start: int, length: int) -> np.ndarray:
    """One ``.npy`` held in ``data[start:start+length]``, as a read-only view (never unpickled)."""
    if bytes(data[start:start + 6]) != b"\x93NUMPY":
        raise ValueError("member is not a .npy array")
    major = data[start + 6]
    if major == 1:
        header_len, header_at = struct.unpack_from("<H", data, start + 8)[0], start + 10
    elif major in (2, 3):
        header_len, header_at = struct.unpack_from("<L", data, start + 8)[0], start + 12
    else:
        raise ValueError(f"unsupported .npy version {major}")
    header = bytes(data[header_at:header_at + header_len]).decode("utf-8" if major == 3 else "latin1")
    match = _NPY_HEADER.fullmatch(header)
    if match:
        dtype = np.dtype(match.group(1))
        fortran = match.group(2) == "True"
        shape = tuple(int(d) for d in match.group(3).replace(" ", "").split(",") if d)
    else:  # not the layout numpy writes for plain dtypes: let numpy parse it (still pickle-free)
        read = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = read(io.BytesIO(bytes(data[start + 8:header_at + header_len])))
        if any(d < 0 for d in shape):  # (the fast pattern takes digits only) np.frombuffer reads count -1 to the end
            raise ValueError(f"array header has a negative dimension {tuple(shape)}")
    if dtype.hasobject:
        raise ValueError("object arrays are not allowed")
    count = math.prod(shape)
    offset = header_at + header_len
    if offset + count * dtype.itemsize > start + length:
        raise ValueError("array data is truncated")
    array = np.frombuffer(data, dtype=dtype, count=count, offset=offset)
    return array.reshape(shape[::-1]).T if fortran else array.reshape(shape)
