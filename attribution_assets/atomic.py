"""Atomic file writes: nothing is half-written when a step fails, and nothing is left behind for good
when a process is killed in the middle of one.

A write goes to a hidden temporary file beside the target, ``.<name>.<pid>-<token>@<host>.part``. When the
block succeeds the file is fsynced, renamed over the target (``os.replace``: atomic on POSIX and Windows)
and, on POSIX, the folder is fsynced too, so after a crash or a power loss the target is either the old
file or the new one, never a mix. Downloads in progress live in hidden ``.staging-<pid>-<token>@<host>``
folders. A process killed by SIGKILL cannot remove either; :func:`remove_orphans`, called when a run
starts, removes those whose writer is gone (same host, process no longer alive) or that have not changed
for ``max_age_s``.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ORPHAN_MAX_AGE_S = 24 * 3600.0
"""Age (s since the last change) after which a temporary file or staging folder is removed even when its
writer's process id is in use (a reused id, or a writer on another host)."""

_MAX_NAME_BYTES = 255
_PART = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)-(?P<token>[0-9a-f]+)@(?P<host>[A-Za-z0-9-]*)\.part$")
_LEGACY_PART = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.part$")  # before the host was in the name
_STAGING = re.compile(r"^\.staging-(?P<pid>\d+)-[A-Za-z0-9_]+@(?P<host>[A-Za-z0-9-]*)$")
_LEGACY_STAGING = re.compile(r"^\.staging-[A-Za-z0-9_]+$")


def host_tag() -> str:
    """This machine's name as it appears in temporary names: letters, digits and ``-``, at most 40."""
    return re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:40]


def temporary_path(target: str | os.PathLike[str]) -> Path:
    """A new hidden temporary name beside ``target`` that names this process and host (see module doc)."""
    target = Path(target)
    suffix = f".{os.getpid()}-{secrets.token_hex(4)}@{host_tag()}.part"
    name = target.name
    overflow = len(f".{name}{suffix}".encode()) - _MAX_NAME_BYTES
    if overflow > 0:  # a very long target name: shorten its copy in the temporary name
        name = name.encode()[: max(len(name.encode()) - overflow, 1)].decode(errors="ignore") or "x"
    return target.with_name(f".{name}{suffix}")


def fsync_path(path: str | os.PathLike[str]) -> None:
    """Flush a file (or, on POSIX, a folder's entries) to stable storage.

    Folders are skipped on Windows, which cannot open them; file systems that do not support syncing a
    folder (``EINVAL``, ``ENOTSUP``) are tolerated.
    """
    path = Path(path)
    is_dir = path.is_dir()
    if is_dir and os.name == "nt":
        return
    flags = os.O_RDONLY if is_dir or os.name != "nt" else os.O_RDWR
    fd = os.open(path, flags | getattr(os, "O_BINARY", 0))
    try:
        os.fsync(fd)
    except OSError as error:
        if not is_dir or error.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise
    finally:
        os.close(fd)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; fsync it and rename it to ``path`` only if the block
    succeeds, then fsync the folder (POSIX). On failure the temporary path is removed and ``path`` is
    unchanged.

    The temporary name starts with ``.`` and ends with ``.part`` (see :func:`temporary_path`), so archive
    crawls skip it and :func:`remove_orphans` can tell whether its writer still runs.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_path(target)
    try:
        yield tmp
        fsync_path(tmp)
        os.replace(tmp, target)
        fsync_path(target.parent)
    finally:
        if tmp.exists() or tmp.is_symlink():
            _remove(tmp)


@contextlib.contextmanager
def staging_dir(folder: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a new hidden folder (``.staging-<pid>-<token>@<host>``) inside ``folder`` for downloads in
    progress; remove it and whatever is left in it afterwards.

    It lies on the target's file system, so :func:`move_into_place` is a rename, and archive crawls skip
    hidden folders, so a half-finished download is never catalogued.
    """
    parent = Path(folder)
    parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".staging-{os.getpid()}-", suffix=f"@{host_tag()}", dir=parent))
    try:
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def move_into_place(staged: str | os.PathLike[str], target: str | os.PathLike[str]) -> Path:
    """Move a finished file (e.g. from :func:`staging_dir`) to ``target`` through :func:`atomic_path`."""
    with atomic_path(target) as tmp:
        os.replace(staged, tmp)
    return Path(target)


def process_alive(pid: int) -> bool:
    """True when a process with id ``pid`` exists on this host (a zombie counts as alive).

    Without a safe probe (Windows, where ``os.kill`` terminates) every process counts as alive, so only
    the age rule of :func:`remove_orphans` applies there.
    """
    if pid == os.getpid() or os.name == "nt":
        return True
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _writer(name: str, is_dir: bool) -> tuple[int | None, str | None] | None:
    """(pid, host) of a temporary name made by this module; ``None`` when the name is not one.

    ``pid`` is ``None`` for legacy staging folders (no id in the name); ``host`` is ``None`` for legacy
    names (written on this host by an earlier version).
    """
    if is_dir:
        if match := _STAGING.match(name):
            return int(match["pid"]), match["host"]
        return (None, None) if _LEGACY_STAGING.match(name) else None
    if match := _PART.match(name):
        return int(match["pid"]), match["host"]
    if match := _LEGACY_PART.match(name):
        return int(match["pid"]), None
    return None


def _last_change(path: Path, is_dir: bool) -> float:
    """Latest modification time (s since the epoch) of a file, or of a folder and its direct entries."""
    times = [path.lstat().st_mtime]
    if is_dir:
        with os.scandir(path) as entries:
            times.extend(entry.stat(follow_symlinks=False).st_mtime for entry in entries)
    return max(times)


def is_orphan(path: Path, max_age_s: float = ORPHAN_MAX_AGE_S, now: float | None = None) -> bool:
    """True when ``path`` is a temporary file or staging folder of this module whose writer is gone: it
    was written on this host by a process that no longer exists, or it has not changed for ``max_age_s``
    seconds."""
    is_dir = path.is_dir() and not path.is_symlink()
    writer = _writer(path.name, is_dir)
    if writer is None:
        return False
    pid, host = writer
    if pid is not None and host in (None, host_tag()) and not process_alive(pid):
        return True
    try:
        age_s = (time.time() if now is None else now) - _last_change(path, is_dir)
    except FileNotFoundError:  # finished (renamed or removed) meanwhile
        return False
    return age_s > max_age_s


def remove_orphans(
    root: str | os.PathLike[str], max_age_s: float = ORPHAN_MAX_AGE_S, now: float | None = None
) -> list[Path]:
    """Remove the orphaned temporary files and staging folders (:func:`is_orphan`) anywhere under
    ``root`` (symbolic links are not followed); returns what was removed, sorted. A missing ``root``
    has none; an orphan that cannot be removed (a read-only archive) is left in place. Call it when a
    run starts, before the run writes."""
    root = Path(root)
    candidates: list[Path] = []
    if root.is_dir():
        for directory, subdirs, files in os.walk(root):
            here = Path(directory)
            staging = [name for name in subdirs if _writer(name, True) is not None]
            subdirs[:] = [name for name in subdirs if name not in staging]  # never entered
            candidates.extend(here / name for name in staging)
            candidates.extend(here / name for name in files if name.endswith(".part"))
    removed = []
    for path in candidates:
        if is_orphan(path, max_age_s, now):
            with contextlib.suppress(OSError):
                _remove(path)
            if not path.exists():
                removed.append(path)
    return sorted(removed)
