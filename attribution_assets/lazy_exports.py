"""A package's re-exports, imported on first use (PEP 562 module ``__getattr__``).

``attribution_assets.pipeline`` and ``attribution_assets.science.inversion`` re-export the names of
their modules, some of which import JAX and NumPyro (seconds to import): a process that reads only a
settings class, such as a Dagster code server loading the definitions, imports only that module.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any


def lazy_exports(
    package: str, exports: Mapping[str, Sequence[str]]
) -> tuple[list[str], Callable[[str], Any], Callable[[], list[str]]]:
    """``__all__``, ``__getattr__`` and ``__dir__`` for ``package`` (its ``__name__``, called from its
    ``__init__``): ``exports`` maps each module of the package to the names it gives; a name is imported
    from its module when first read and then kept in the package's namespace."""
    module_of = {name: module for module, names in exports.items() for name in names}
    namespace = vars(sys.modules[package])

    def __getattr__(name: str) -> Any:
        module = module_of.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{module}"), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted({*namespace, *module_of})

    return sorted(module_of), __getattr__, __dir__
