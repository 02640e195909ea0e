"""Formula-safe CSV for files that people open in spreadsheets (OWASP "CSV injection" rule).

A spreadsheet treats a cell that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return as a
formula, so a crafted text such as ``=HYPERLINK("http://...")`` in an operator's ``event_id`` would run
when an analyst opens the file. Every text cell that starts with one of those characters is written with
a leading ``'``, which spreadsheets show as text. Plain numbers (``-103.61``, ``+1e-3``) are left as they
are: they are data, not formulas.

Every CSV the project writes for analysts goes through :func:`write_safe_csv`.
"""

from __future__ import annotations

import os
import re
from typing import Any

import pandas as pd

from attribution_assets.atomic import atomic_path

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
"""Leading characters that make a spreadsheet cell a formula (OWASP CSV injection)."""
_PLAIN_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")


def formula_safe_text(text: str) -> str:
    """``text`` with a leading ``'`` if it starts with a formula character and is not a plain number."""
    if text.startswith(FORMULA_PREFIXES) and _PLAIN_NUMBER.fullmatch(text) is None:
        return "'" + text
    return text


def formula_safe_value(value: Any) -> Any:
    """:func:`formula_safe_text` for text; any other value (numbers, missing values) unchanged."""
    return formula_safe_text(value) if isinstance(value, str) else value


def formula_safe_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` whose text cells (object and string columns) are formula-safe."""
    safe = frame.copy()
    for column in safe.columns:
        if safe[column].dtype == object or pd.api.types.is_string_dtype(safe[column].dtype):
            safe[column] = safe[column].map(formula_safe_value, na_action="ignore")
    return safe


def write_safe_csv(frame: pd.DataFrame, path: str | os.PathLike[str], **to_csv: Any) -> None:
    """Write ``frame`` as formula-safe CSV at ``path``, atomically (temporary file, then rename).

    ``to_csv`` passes on to :meth:`pandas.DataFrame.to_csv` (``index=False`` unless given).
    """
    to_csv.setdefault("index", False)
    with atomic_path(path) as tmp:
        formula_safe_frame(frame).to_csv(tmp, **to_csv)
