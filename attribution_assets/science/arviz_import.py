"""ArviZ, imported so that processes importing it at the same moment on a new day do not fail.

At import, ArviZ 0.2x writes a once-a-day stamp (``daily_warning`` in its user cache directory)
through one fixed temporary file name. On the first import of a day, processes importing it at
once (a daemon's code server and its run processes, parallel crawls or workers) race on that
file, and the loser's import raises ``FileNotFoundError`` when its temporary file has already been
renamed by the winner: a run would fail at midnight for no reason of its own. By then the winner
has written today's stamp, so importing again writes nothing. The package imports ArviZ only from
here (``from attribution_assets.science.arviz_import import az``). ArviZ's FutureWarning about its
coming refactor is silenced.
"""

from __future__ import annotations

import sys
import warnings
from types import ModuleType


def _import_arviz() -> ModuleType:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        try:
            import arviz
        except FileNotFoundError:  # lost the race on the daily stamp, which is today's now
            for name in [n for n in sys.modules if n == "arviz" or n.startswith("arviz.")]:
                del sys.modules[name]
            import arviz
    return arviz


az = _import_arviz()
