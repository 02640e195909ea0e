"""ArviZ's daily-stamp race: the package's import survives losing it, a plain ``import arviz`` does not."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

from attribution_assets.paths import REPO_ROOT

# In a fresh interpreter with its own cache directory and yesterday's stamp: the other process's
# rename of the shared temporary file lands first, and this one's rename finds no file (the race).
LOSE_THE_RACE = """
import pathlib, sys
real_replace = pathlib.Path.replace
lost = []
def replace(self, target):
    result = real_replace(self, target)
    if self.name == "daily_warning.tmp" and not lost:
        lost.append(self)
        raise FileNotFoundError(2, "No such file or directory", str(self))
    return result
pathlib.Path.replace = replace
if sys.argv[1] == "package":
    from attribution_assets.science.arviz_import import az
else:
    import arviz as az
print(az.__name__, len(lost))
"""


def _import_after_a_lost_race(tmp_path: Path, how: str) -> subprocess.CompletedProcess:
    cache = tmp_path / "cache"
    (cache / "arviz").mkdir(parents=True)
    (cache / "arviz" / "daily_warning").write_text("2000-01-01")
    env = {**os.environ, "XDG_CACHE_HOME": str(cache), "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.run([sys.executable, "-c", LOSE_THE_RACE, how], env=env, capture_output=True,
                          text=True, timeout=300)


@pytest.mark.parametrize("how", ["package", "plain"])
def test_importing_arviz_survives_losing_the_daily_stamp_race(tmp_path: Path, how: str) -> None:
    done = _import_after_a_lost_race(tmp_path, how)
    if how == "plain":  # the failure the package's import guards against
        assert done.returncode != 0 and "daily_warning" in done.stderr
        return
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["arviz", "1"], "the race was lost once, and the import went on"
    stamp = tmp_path / "cache" / "arviz" / "daily_warning"
    assert stamp.read_text() == date.today().isoformat()
