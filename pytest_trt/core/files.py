"""Files that appear whole or not at all, and locks that die with their holder.

Shared by the golden store and the engine cache: both write with ``atomic_writer`` (temporary file,
fsync, rename, fsync of the directory) and serialize writers of one file with ``file_lock``.
"""
from __future__ import annotations

import contextlib
import os
import stat
import time
from pathlib import Path

from pytest_trt.errors import TrtCompareError

STALE_TEMPORARY_SECONDS = 3600


class atomic_writer:
    """Context manager: a binary file that appears under ``path`` only when fully written.

    The temporary file is created with mode 0666 less the umask, like any file the user creates
    (``tempfile.mkstemp`` would make every golden and plan 0600)."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def __enter__(self):
        fd, self.tmp = _create_temporary(self.path)
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


def _create_temporary(path: Path) -> tuple[int, Path]:
    """A new ``.<name>.<random>.tmp`` beside ``path``, opened for writing, mode 0666 less the umask."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0)
    while True:
        tmp = path.parent / f".{path.name}.{os.urandom(6).hex()}.tmp"
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue


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


def remove_stale_temporaries(folder: Path, pattern: str = ".*.tmp") -> None:
    """``atomic_writer`` temporaries of writers killed mid-write (older than an hour: no live writer takes that long)."""
    now = time.time()
    for tmp in Path(folder).glob(pattern):
        try:
            if now - tmp.stat().st_mtime > STALE_TEMPORARY_SECONDS:
                tmp.unlink()
        except OSError:
            pass


@contextlib.contextmanager
def file_lock(path: Path, keep: bool = False):
    """Exclusive advisory lock held while the block runs; released by the OS if the process dies.

    The lock file is removed when the lock is released (POSIX), so a folder of locks named after
    goldens stays empty between runs instead of growing with every name ever locked. A process that
    waited on a file its holder removed finds the path gone or replaced and locks anew. ``keep``
    leaves the file in place: for folders that other machines may share over NFS, where a file removed
    while another client waits on it becomes a stale handle. When the folder cannot hold our locks,
    see ``_lock_folder``.
    """
    path = _lock_folder(Path(path).parent) / Path(path).name
    if os.name == "nt":  # pragma: no cover - Windows: an open file cannot be removed, so it stays
        import msvcrt

        with open(path, "a+b") as f:
            f.seek(0)
            while True:
                try:
                    msvcrt.locking(f.fileno(), msvcrt.LK_LOCK, 1)
                    break
                except OSError:
                    time.sleep(0.1)
            try:
                yield
            finally:
                f.seek(0)
                msvcrt.locking(f.fileno(), msvcrt.LK_UNLCK, 1)
        return
    import fcntl

    while True:
        fd = _open_lock_file(path)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            held = os.fstat(fd)
            try:
                now = os.lstat(path)
            except FileNotFoundError:
                now = None
        except BaseException:
            os.close(fd)
            raise
        if now is not None and (now.st_ino, now.st_dev) == (held.st_ino, held.st_dev):
            break
        os.close(fd)  # its holder removed it while we waited: lock the file now at that path
    try:
        yield
    finally:
        try:
            if not keep:
                os.unlink(path)  # while still held: a waiter then sees the path gone and retries
        except OSError:
            pass
        os.close(fd)


def _open_lock_file(path: Path) -> int:
    flags = os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        return os.open(path, os.O_RDWR | flags, 0o666)
    except PermissionError:  # another user's lock file in a shared cache: flock works on a read-only descriptor
        return os.open(path, os.O_RDONLY | flags & ~os.O_CREAT)


_LOCK_FOLDER_FALLBACKS = 9


def _lock_folder(folder: Path) -> Path:
    """``folder``, created if missing; when it cannot hold our locks (a file at that path, a folder we cannot
    write, or, in a shared sticky folder such as /tmp, one that another user made or a symlink), the first
    usable ``folder-1`` ... ``folder-9`` beside it. Every process of this user picks the same one, so they
    still exclude each other."""
    for candidate in (folder, *(folder.with_name(f"{folder.name}-{i}") for i in range(1, _LOCK_FOLDER_FALLBACKS + 1))):
        if _usable_lock_folder(candidate):
            return candidate
    raise TrtCompareError(f"cannot create lock files in {str(folder)!r} (it is a file, another user's folder, or not "
                          f"writable, and so are {folder.name}-1 to -{_LOCK_FOLDER_FALLBACKS} beside it); remove them "
                          "or point TMPDIR at a folder of your own")


def _usable_lock_folder(folder: Path) -> bool:
    try:
        folder.mkdir(mode=0o700, parents=True)
    except FileExistsError:
        pass
    except OSError:
        return False
    try:
        st = os.lstat(folder)
        if hasattr(os, "getuid") and os.stat(folder.parent).st_mode & stat.S_ISVTX:
            if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid():
                return False  # anyone may create names in a sticky folder: only our own real folder is safe
        elif not folder.is_dir():
            return False
    except OSError:
        return False
    return os.access(folder, os.W_OK | os.X_OK)
