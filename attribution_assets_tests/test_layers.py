"""The import direction of the design: science, readers, catalog, access and pipeline never import
dagster; of alerting only the resource module does."""

from __future__ import annotations

import ast
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
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


def _parse(path: Path) -> ast.Module:
    """``path``'s syntax tree, parsed in a new thread. After the bad-input tests ran in the same
    thread, CPython 3.11.7's AST constructor finds its recursion-depth bookkeeping off and raises
    ``SystemError: AST constructor recursion depth mismatch``; a new thread starts with its own."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(ast.parse, path.read_text(), str(path)).result()


def _imported_modules(path: Path) -> set[str]:
    tree = _parse(path)
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("layer", PURE_LAYERS)
def test_pure_layers_do_not_import_dagster_in_source(layer: str):
    files = _pure_files(layer)
    assert files, f"layer {layer} has no modules"
    offenders = {
        str(f.relative_to(PACKAGE)): sorted(
            m for m in _imported_modules(f) if m.split(".")[0].startswith("dagster")
        )
        for f in files
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
    for path in sorted((PACKAGE / "science").rglob("*.py")):
        assert not (_imported_modules(path) & forbidden), f"{path.name} imports a file-format library"
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
