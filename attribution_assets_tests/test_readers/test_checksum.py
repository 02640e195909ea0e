"""The file fingerprint shared by reader provenance and the catalog."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from attribution_assets.readers.checksum import HEADTAIL_BYTES, file_checksum


def test_checksum_is_the_named_head_tail_sha256(tmp_path: Path) -> None:
    path = tmp_path / "blob.bin"
    payload = os.urandom(3 * 1024 * 1024 + 17)
    path.write_bytes(payload)
    head, tail = payload[:HEADTAIL_BYTES], payload[-HEADTAIL_BYTES:]
    expected = hashlib.sha256(f"{len(payload)}\n".encode() + head + tail).hexdigest()
    assert file_checksum(path) == f"sha256-headtail-v1:{len(payload)}:{expected}"
    os.utime(path, ns=(0, 10**18))
    assert file_checksum(path) == f"sha256-headtail-v1:{len(payload)}:{expected}"
    changed_head = bytes([payload[0] ^ 0xFF]) + payload[1:]  # always a different first byte
    path.write_bytes(changed_head)
    assert file_checksum(path) != f"sha256-headtail-v1:{len(payload)}:{expected}"
    path.write_bytes(payload + b"x")
    assert file_checksum(path).startswith(f"sha256-headtail-v1:{len(payload) + 1}:")


def test_checksum_of_a_small_file_covers_every_byte(tmp_path: Path) -> None:
    path = tmp_path / "small.bin"
    payload = os.urandom(2 * HEADTAIL_BYTES - 5)
    path.write_bytes(payload)
    expected = hashlib.sha256(f"{len(payload)}\n".encode() + payload).hexdigest()
    assert file_checksum(path) == f"sha256-headtail-v1:{len(payload)}:{expected}"
    with pytest.raises(FileNotFoundError, match="absent.nc"):
        file_checksum(tmp_path / "absent.nc")
