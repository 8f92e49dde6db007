"""Crash-safe file writes: a reader sees the old file or the new one, never a torn one.

Files and directories end up with the modes a plain ``open`` / ``mkdir`` would give them under
the process's umask (``tempfile`` creates its temporaries 0600 / 0700, which would hide models
and results from colleagues on a shared machine)."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["atomic_directory", "atomic_write", "remove_partial_writes"]

# Names of the temporaries below: tempfile's ".NAME." + 8 random characters + ".tmp", and the
# ".NAME.old" a directory swap sets aside.
_TEMPORARY = re.compile(r"^\.(?P<name>.+)\.[a-z0-9_]{8}\.tmp$")
_SET_ASIDE = re.compile(r"^\.(?P<name>.+)\.old$")


def atomic_write(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path``, flush it to disk, then rename it over
    ``path`` (an atomic replace on POSIX and Windows). A crash at any point leaves the previous
    contents of ``path`` intact."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        if hasattr(os, "fchmod"):
            os.fchmod(handle, 0o666 & ~_umask())
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    try:  # make the rename itself durable
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
    except OSError:  # directories cannot be opened this way everywhere (Windows)
        pass


@contextmanager
def atomic_directory(path: str | os.PathLike) -> Iterator[Path]:
    """Build a directory in a temporary place and swap it in when the block succeeds::

        with atomic_directory("runs/model") as tmp:
            model.save_pretrained(tmp)

    A crash inside the block leaves the previous ``path`` untouched; the swap renames the old
    directory aside, renames the new one into place, then deletes the old one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    try:
        os.chmod(temporary, 0o777 & ~_umask())
        yield temporary
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    old = path.with_name(f".{path.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if path.exists():
        os.replace(path, old)
    os.replace(temporary, path)
    shutil.rmtree(old, ignore_errors=True)


def remove_partial_writes(directory: str | os.PathLike) -> list[Path]:
    """Clean up after writes of :func:`atomic_write` / :func:`atomic_directory` that a crash or
    SIGKILL interrupted in ``directory``: their temporaries are deleted, and a directory swap
    killed between its two renames is completed backwards (the set-aside previous version goes
    back in place). Returns the paths removed or restored. Only names of this module's own
    temporaries are touched."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    touched = []
    for entry in sorted(directory.iterdir()):
        if _TEMPORARY.match(entry.name):
            shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
            touched.append(entry)
        elif (match := _SET_ASIDE.match(entry.name)) and entry.is_dir() and not entry.is_symlink():
            original = entry.with_name(match["name"])
            if original.exists():
                shutil.rmtree(entry)
            else:
                os.replace(entry, original)
            touched.append(entry)
    return touched


_umask_lock = threading.Lock()


def _umask() -> int:
    """The process's umask (read without changing it where Linux shows it in /proc)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    with _umask_lock:  # elsewhere the only way to read it is to set it and set it back
        mask = os.umask(0o022)
        os.umask(mask)
    return mask
