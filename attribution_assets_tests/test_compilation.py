"""The persistent XLA compilation cache is configurable and can be switched off."""

from __future__ import annotations

import jax
import pytest

from attribution_assets.compilation import CACHE_ENV, enable_compilation_cache


@pytest.fixture
def restore_cache_dir():
    before = jax.config.jax_compilation_cache_dir
    yield
    jax.config.update("jax_compilation_cache_dir", before)


def test_cache_directory_from_argument_and_environment(tmp_path, monkeypatch, restore_cache_dir) -> None:
    chosen = enable_compilation_cache(tmp_path / "a")
    assert chosen == tmp_path / "a" and chosen.is_dir()
    assert jax.config.jax_compilation_cache_dir == str(tmp_path / "a")
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "b"))
    assert enable_compilation_cache() == tmp_path / "b"
    assert jax.config.jax_compilation_cache_dir == str(tmp_path / "b")


def test_cache_can_be_switched_off(monkeypatch, tmp_path, restore_cache_dir) -> None:
    jax.config.update("jax_compilation_cache_dir", str(tmp_path))
    monkeypatch.setenv(CACHE_ENV, "off")
    assert enable_compilation_cache() is None
    assert jax.config.jax_compilation_cache_dir == str(tmp_path)  # left as it was
