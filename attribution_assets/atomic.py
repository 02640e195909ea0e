"""Atomic file writes: nothing is half-written when a step fails."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; rename it to ``path`` only if the block succeeds.

    The temporary name starts with ``.`` and ends with ``.part``, so archive crawls skip it.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.part")
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


@contextlib.contextmanager
def staging_dir(folder: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a new hidden folder (``.staging-*``) inside ``folder`` for downloads in progress; remove it
    and whatever is left in it afterwards.

    It lies on the target's file system, so :func:`move_into_place` is a rename, and archive crawls skip
    hidden folders, so a half-finished download is never catalogued.
    """
    parent = Path(folder)
    parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=parent))
    try:
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def move_into_place(staged: str | os.PathLike[str], target: str | os.PathLike[str]) -> Path:
    """Move a finished file (e.g. from :func:`staging_dir`) to ``target`` through :func:`atomic_path`."""
    with atomic_path(target) as tmp:
        os.replace(staged, tmp)
    return Path(target)
