"""JAX set-up: the XLA CPU flag, and the persistent compilation cache (configurable, can be switched off)."""

from __future__ import annotations

import os
import subprocess
import sys

import jax
import pytest

from attribution_assets.compilation import (
    CACHE_DIR_JAX_ENV,
    CACHE_ENV,
    MIN_COMPILE_TIME_JAX_ENV,
    MIN_COMPILE_TIME_S,
    YNN_REDUCE_OFF_FLAG,
    configure_jax,
    enable_compilation_cache,
    no_compilation_cache,
    set_xla_flags,
    xla_flags,
)


@pytest.fixture(autouse=True)
def restore_jax_environment(monkeypatch):
    """``enable_compilation_cache`` sets JAX's variables in ``os.environ``: as they were after each test."""
    for name in (CACHE_DIR_JAX_ENV, MIN_COMPILE_TIME_JAX_ENV):
        monkeypatch.setenv(name, "")  # records the value before the test, or its absence
        monkeypatch.delenv(name)


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
    monkeypatch.setenv(CACHE_DIR_JAX_ENV, str(tmp_path))  # as a parent process passes it on
    monkeypatch.setenv(CACHE_ENV, "off")
    assert enable_compilation_cache() is None
    assert jax.config.jax_compilation_cache_dir is None
    assert CACHE_DIR_JAX_ENV not in os.environ


def test_xla_flag_switches_off_the_ynn_reduce_fusion_on_jaxlib_0_10() -> None:
    assert xla_flags("", (0, 10)) == YNN_REDUCE_OFF_FLAG
    assert xla_flags("--xla_foo=1", (0, 10)) == f"--xla_foo=1 {YNN_REDUCE_OFF_FLAG}"
    chosen = "--xla_cpu_experimental_ynn_fusion_type=none"
    assert xla_flags(chosen, (0, 10)) == chosen  # an explicit choice is kept
    assert xla_flags("--xla_foo=1", (0, 11)) == "--xla_foo=1"


@pytest.mark.filterwarnings("ignore:XLA_FLAGS set after JAX initialised:RuntimeWarning")
def test_configure_jax_sets_the_flag_and_the_cache(tmp_path, monkeypatch, restore_cache_dir) -> None:
    monkeypatch.setenv("XLA_FLAGS", "--xla_foo=1")
    expected = xla_flags("--xla_foo=1")
    assert configure_jax(tmp_path / "c") == tmp_path / "c"
    assert os.environ["XLA_FLAGS"] == expected
    assert set_xla_flags() == expected  # idempotent
    assert jax.config.jax_compilation_cache_dir == str(tmp_path / "c")


def test_importing_the_package_sets_no_flag_and_starts_no_backend() -> None:
    """The flag can still be set after the imports: no module computes with JAX at import time."""
    code = (
        "import os\n"
        "import attribution_assets, attribution_assets.science.forward.operators\n"
        "import attribution_assets.science.met.wind\n"
        "from attribution_assets.compilation import _backend_initialised\n"
        "assert 'XLA_FLAGS' not in os.environ, os.environ['XLA_FLAGS']\n"
        "assert not _backend_initialised()\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr


def test_attribute_event_sets_jax_up_as_the_dagster_runs_do(tmp_path) -> None:
    """A notebook that calls ``attribute_event`` in a fresh interpreter runs with production's XLA
    option and compilation cache (without the option its answer differed in the last digits)."""
    code = (
        "import os, sys, jax\n"
        "from attribution_assets.events import read_alerts\n"
        "from attribution_assets.paths import SAMPLE_ALERTS\n"
        "from attribution_assets.pipeline import attribute_event\n"
        "try:\n"
        "    attribute_event(read_alerts(SAMPLE_ALERTS)[0], sys.argv[1], output=sys.argv[2])\n"
        "except Exception as error:\n"
        "    print(type(error).__name__, file=sys.stderr)\n"
        "print(os.environ.get('XLA_FLAGS', ''))\n"
        "print(jax.config.jax_compilation_cache_dir)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    env[CACHE_ENV] = str(tmp_path / "cache")
    archive = tmp_path / "empty_archive"
    archive.mkdir()
    result = subprocess.run([sys.executable, "-c", code, str(archive), str(tmp_path / "out")],
                            capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    flags, cache = result.stdout.splitlines()[-2:]
    assert flags == xla_flags("")
    assert cache == str(tmp_path / "cache")
    assert "Error" in result.stderr  # an empty archive holds no overpass of the event


def test_the_code_location_loads_without_the_sampling_stack(tmp_path) -> None:
    """A code server, a crawl or a roll-up loads the definitions and never samples: loading them imports
    neither JAX, NumPyro, ArviZ, Matplotlib nor SciPy's statistics (2.8 s of a 4.6 s load on 2 cores,
    now 1.8 s), and JAX, imported
    later by an event's step, still finds the XLA flag and the compilation cache they configured."""
    code = (
        "import os, sys\n"
        "import attribution_assets.definitions\n"
        "heavy = ('jax', 'numpyro', 'arviz', 'matplotlib', 'scipy.stats')\n"
        "heavy = sorted(m for m in heavy if m in sys.modules)\n"
        "assert not heavy, heavy\n"
        "import jax\n"
        "print(os.environ['XLA_FLAGS'])\n"
        "print(jax.config.jax_compilation_cache_dir)\n"
        "print(jax.config.jax_persistent_cache_min_compile_time_secs)\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", CACHE_DIR_JAX_ENV)}
    env[CACHE_ENV] = str(tmp_path / "cache")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    flags, cache, threshold = result.stdout.splitlines()[-3:]
    assert flags == xla_flags("")
    assert cache == str(tmp_path / "cache")
    assert float(threshold) == MIN_COMPILE_TIME_S


def test_a_child_process_can_be_started_without_the_inherited_cache(tmp_path, monkeypatch,
                                                                    restore_cache_dir) -> None:
    """``enable_compilation_cache`` passes the cache directory on to child processes through JAX's
    variable; a benchmark's fresh interpreter, which must compile everything, gets an environment
    without it (its JAX would otherwise load programs another process compiled)."""
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    enable_compilation_cache()
    assert os.environ[CACHE_DIR_JAX_ENV] == str(tmp_path / "cache")
    code = "import jax; print(jax.config.jax_compilation_cache_dir)"
    inherited = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert inherited.stdout.strip() == str(tmp_path / "cache")
    env = no_compilation_cache(os.environ)
    assert env[CACHE_ENV] == "off" and CACHE_DIR_JAX_ENV not in env
    fresh = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert fresh.returncode == 0, fresh.stderr
    assert fresh.stdout.strip() == "None"
