"""The import direction of the design: science, readers, catalog, access and pipeline never import
dagster; of alerting only the resource module does."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "attribution_assets"
PURE_LAYERS = ("science", "readers", "catalog", "access", "pipeline", "alerting")
DAGSTER_ADAPTERS = {"alerting/resource.py"}
"""Modules of a pure layer that adapt it to Dagster (and only those may import it)."""


def _pure_files(layer: str) -> list[Path]:
    return [
        p for p in sorted((PACKAGE / layer).rglob("*.py"))
        if p.relative_to(PACKAGE).as_posix() not in DAGSTER_ADAPTERS
    ]


IMPORTS_SCRIPT = """
import ast, json, sys
out = {}
for path in sys.argv[1:]:
    names = set()
    for node in ast.walk(ast.parse(open(path).read(), filename=path)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    out[path] = sorted(names)
print(json.dumps(out))
"""
"""Prints the absolute imports of each file given. It runs in its own interpreter: in the test
process, after other tests, CPython 3.11.7's ``ast.parse`` raised ``SystemError: AST constructor
recursion depth mismatch`` on some of these files (and did so from a new thread too)."""


def _imported_modules(files: list[Path]) -> dict[Path, set[str]]:
    """The absolute imports of each of ``files``."""
    done = subprocess.run([sys.executable, "-c", IMPORTS_SCRIPT, *map(str, files)], capture_output=True,
                          text=True, check=True)
    return {Path(path): set(names) for path, names in json.loads(done.stdout).items()}


@pytest.mark.parametrize("layer", PURE_LAYERS)
def test_pure_layers_do_not_import_dagster_in_source(layer: str):
    files = _pure_files(layer)
    assert files, f"layer {layer} has no modules"
    offenders = {
        str(f.relative_to(PACKAGE)): sorted(m for m in imports if m.split(".")[0].startswith("dagster"))
        for f, imports in _imported_modules(files).items()
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_pure_layers_import_without_loading_dagster():
    modules = [
        f"attribution_assets.{p.relative_to(PACKAGE).with_suffix('').as_posix().replace('/', '.')}"
        for layer in PURE_LAYERS
        for p in _pure_files(layer)
        if p.name != "__init__.py"
    ]
    code = (
        "import importlib, sys\n"
        + "".join(f"importlib.import_module({m!r})\n" for m in modules)
        + "print(sorted(m for m in sys.modules if m.startswith('dagster')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_science_does_no_file_io():
    forbidden = {"netCDF4", "h5py", "duckdb", "pyarrow", "geopandas"}
    files = sorted((PACKAGE / "science").rglob("*.py"))
    for path, imports in _imported_modules(files).items():
        assert not (imports & forbidden), f"{path.name} imports a file-format library"
        assert "open(" not in path.read_text().replace("xr.open", ""), f"{path.name} opens files"


def test_readers_and_writers_do_not_import_dagster() -> None:
    code = (
        "import sys\n"
        "import attribution_assets.readers.emit, attribution_assets.readers.tropomi\n"
        "import attribution_assets.readers.ghgsat, attribution_assets.readers.oco2\n"
        "import attribution_assets.readers.era5, attribution_assets.samples.formats.era5\n"
        "import attribution_assets.samples.formats.emit, attribution_assets.samples.formats.tropomi\n"
        "import attribution_assets.samples.formats.ghgsat, attribution_assets.samples.formats.oco2\n"
        "loaded = [m for m in sys.modules if m == 'dagster' or m.startswith('dagster.')]\n"
        "assert not loaded, loaded\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1]
    )
    assert result.returncode == 0, result.stderr
