"""``benchmarks/validation_misspecified.py --pool``: the table of earlier runs' events together, with
the distribution-free interval of each class's median |ln(Q_hat / Q)|."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from attribution_assets.paths import REPO_ROOT

SCRIPT = REPO_ROOT / "benchmarks" / "validation_misspecified.py"
SETTINGS = {"num_chains": 4, "num_warmup": 500, "seed": 1}


def _row(kind: str, abs_log_ratio: float | None, detected: bool, in90: bool) -> dict:
    sourced = kind != "none"
    return {"kind": kind, "truth_kg_h": 5000.0 if sourced else 0.0, "rate_in90": in90, "detected": detected,
            "rate_in_central90": in90, "position_in90": in90, "abs_log_ratio": abs_log_ratio,
            "location_error_m": 10.0 if sourced else None, "seconds": 2.0, "converged": True,
            "r_hat_max": 1.004, "ess_bulk_min": 900.0, "ess_tail_min": 800.0,
            "laplace_unresolved_directions": 0}


def _write(path: Path, seed: int, rows: list[dict], **changed) -> Path:
    path.write_text(json.dumps({"settings": {**SETTINGS, "seed": seed, **changed}, "args": {"seed": seed},
                                "events": rows}))
    return path


def _pool(*paths: Path, out: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), "--pool", *map(str, paths), "--out", str(out)],
                          capture_output=True, text=True, cwd=SCRIPT.parent, timeout=300)


def test_pooled_runs_give_the_table_of_all_their_events(tmp_path: Path) -> None:
    # nine strong events over two runs, |ln| 0.1 .. 0.9; the median is the 5th value, 0.5
    logs = [0.1 * k for k in range(1, 10)]
    first = _write(tmp_path / "a.json", 1, [_row("strong", x, True, x < 0.75) for x in logs[:4]]
                   + [_row("none", None, False, True)])
    second = _write(tmp_path / "b.json", 2, [_row("strong", x, x < 0.85, x < 0.75) for x in logs[4:]]
                    + [_row("none", None, True, True)])
    done = _pool(first, second, out=tmp_path / "pooled.json")
    assert done.returncode == 0, done.stderr[-3000:]
    pooled = json.loads((tmp_path / "pooled.json").read_text())
    strong, none = pooled["summary"]["strong"], pooled["summary"]["none"]
    assert len(pooled["events"]) == 11 and strong["n"] == 9 and none["n"] == 2
    assert strong["median_abs_log_ratio"] == pytest.approx(0.5)
    # order statistics: P(Bin(9, 1/2) <= 1) = 10/512 <= 0.025 < P(<= 2) = 46/512, so the 95 % interval
    # of the median runs from the 2nd to the 8th smallest value
    assert strong["median_abs_log_ratio_ci"] == pytest.approx([0.2, 0.8])
    assert strong["rate_coverage_90"]["k"] == 7 and strong["detected"]["k"] == 8
    assert none["detected"]["k"] == 1  # one false alarm of the two events without a source
    assert "| strong | 9 |" in done.stdout and "0.50 [0.20, 0.80]" in done.stdout


def test_runs_with_other_settings_are_not_pooled(tmp_path: Path) -> None:
    first = _write(tmp_path / "a.json", 1, [_row("strong", 0.2, True, True)])
    second = _write(tmp_path / "b.json", 2, [_row("strong", 0.3, True, True)], num_warmup=300)
    done = _pool(first, second, out=tmp_path / "pooled.json")
    assert done.returncode != 0
    assert "b.json: settings ['num_warmup'] differ from those of" in done.stderr
    assert not (tmp_path / "pooled.json").exists()


def test_a_truncated_run_is_named_and_no_run_is_overwritten(tmp_path: Path) -> None:
    good = _write(tmp_path / "a.json", 1, [_row("strong", 0.2, True, True)])
    truncated = tmp_path / "b.json"
    truncated.write_text(good.read_text()[:40])
    done = _pool(good, truncated, out=tmp_path / "pooled.json")
    assert done.returncode != 0 and f"{truncated}: cannot read it as JSON" in done.stderr
    before = good.read_text()
    done = _pool(good, _write(tmp_path / "c.json", 2, [_row("strong", 0.3, True, True)]), out=good)
    assert done.returncode != 0 and "is one of the pooled runs" in done.stderr
    assert good.read_text() == before
