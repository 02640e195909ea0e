"""The read template every product reader follows, and the provenance attributes its output carries."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from attribution_assets.readers.bbox import BBox, validate_bbox
from attribution_assets.readers.checksum import file_checksum
from attribution_assets.readers.errors import ProductFormatError

T = TypeVar("T")


def read_product(
    path: str | os.PathLike[str],
    bbox: Sequence[float] | None,
    opener: Callable[[str | os.PathLike[str]], Any],
    file_kind: str,
    check: Callable[[Any, str | os.PathLike[str]], object],
    build: Callable[[Any, str | os.PathLike[str], BBox | None], T],
) -> T:
    """Open ``path`` with ``opener``, check its layout, build the carrier for ``bbox``, always close.

    Unreadable files and failing reads become :class:`ProductFormatError` naming the file;
    :class:`~attribution_assets.readers.errors.EmptyAOIError` and the layout checks' own errors pass
    through.
    """
    box = validate_bbox(path, bbox)
    try:
        handle = opener(path)
    except OSError as exc:
        raise ProductFormatError(path, "<file>", f"a readable {file_kind} file ({exc})") from exc
    try:
        check(handle, path)
        return build(handle, path, box)
    except ProductFormatError:
        raise
    except (RuntimeError, OSError, KeyError, ValueError, TypeError) as exc:
        raise ProductFormatError(path, "<file>", f"readable contents ({type(exc).__name__}: {exc})") from exc
    finally:
        handle.close()


def provenance_attrs(
    path: str | os.PathLike[str], product_version: str, instrument: str, start: str, end: str
) -> dict[str, str]:
    """The provenance attributes every reader output carries (times already ISO 8601 UTC ``Z``)."""
    return {
        "source_file": str(Path(path).resolve()),
        "product_version": product_version,
        "checksum": file_checksum(path),
        "instrument": instrument,
        "time_coverage_start": start,
        "time_coverage_end": end,
    }
