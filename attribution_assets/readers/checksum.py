"""The content fingerprint of a product file, shared by the readers' provenance and the catalog."""

from __future__ import annotations

import hashlib
import os

HEADTAIL_BYTES = 65536
"""Bytes hashed at each end of a file by :func:`file_checksum`."""
CHECKSUM_ALGORITHM = "sha256-headtail-v1"


def file_checksum(path: str | os.PathLike[str]) -> str:
    """Content fingerprint of a file: ``"sha256-headtail-v1:<size in bytes>:<64 hex>"``.

    The sha256 covers the size (decimal ASCII and a newline), the first 64 KiB and the last 64 KiB of the
    file (the whole file when it is at most 128 KiB). It reads at most 128 KiB whatever the file size, so
    provenance and the catalog share one cheap fingerprint; the algorithm is named in the value because
    it does not cover every byte of a large file. The same content always gives the same value (the
    modification time is not part of it).
    """
    with open(path, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        digest = hashlib.sha256(f"{size}\n".encode())
        digest.update(handle.read(HEADTAIL_BYTES))
        if size > HEADTAIL_BYTES:
            handle.seek(max(size - HEADTAIL_BYTES, HEADTAIL_BYTES))
            digest.update(handle.read(HEADTAIL_BYTES))
    return f"{CHECKSUM_ALGORITHM}:{size}:{digest.hexdigest()}"
