"""The errors every product reader raises.

Every reader raises :class:`ProductFormatError` for a file that does not match its documented layout
and :class:`EmptyAOIError` when the requested bounding box holds no usable data. Both messages name
the file, so a failing event can be diagnosed from the run log alone.
"""

from __future__ import annotations

import os
from collections.abc import Sequence


class ProductFormatError(ValueError):
    """A product file does not match the layout its reader expects.

    Parameters
    ----------
    path: the offending file.
    variable: the variable, group, attribute or dimension that is wrong (``"<file>"`` for the whole file).
    expected: what the reader expected to find there.
    """

    def __init__(self, path: str | os.PathLike[str], variable: str, expected: str) -> None:
        self.path = str(path)
        self.variable = variable
        self.expected = expected
        super().__init__(f"{self.path}: variable {variable!r}: expected {expected}")

    def __reduce__(self) -> tuple[type, tuple[str, str, str]]:
        return (type(self), (self.path, self.variable, self.expected))


class EmptyAOIError(LookupError):
    """The bounding box holds no usable data in this file (a normal outcome, not a broken file).

    Parameters
    ----------
    path: the file that was read.
    bbox: the requested (west, south, east, north) box in degrees.
    reason: optional detail, e.g. "no pixel with qa_value >= 0.5".
    """

    def __init__(self, path: str | os.PathLike[str], bbox: Sequence[float] | None, reason: str = "") -> None:
        self.path = str(path)
        self.bbox = None if bbox is None else tuple(float(v) for v in bbox)
        self.reason = reason
        detail = f" ({reason})" if reason else ""
        super().__init__(f"{self.path}: no data inside bbox (west, south, east, north)={self.bbox}{detail}")

    def __reduce__(self) -> tuple[type, tuple[str, tuple[float, ...] | None, str]]:
        return (type(self), (self.path, self.bbox, self.reason))
