"""Per-column CH4 matched filter for pushbroom imaging spectrometers (EMIT).

The classic matched filter (Manolakis et al. 2014, IEEE Signal Processing Magazine 31(1) 24-33;
Thompson et al. 2015, AMT 8 4383-4397, and the JPL EMIT GHG code; Foote et al. 2020, IEEE TGRS 58(9)
6480-6492, "mag1c") estimates a CH4 path enhancement ``alpha`` (ppm·m) for every pixel ``x`` as

    alpha = (x - mu)^T C^-1 t / (t^T C^-1 t),        sd = 1 / sqrt(t^T C^-1 t),

with ``mu`` and ``C`` the mean radiance and covariance of the background and ``t = k * mu`` the target
signature (``k`` the band unit absorption ``d ln L / d c`` in 1/(ppm·m), negative where CH4 absorbs, so
an excess of CH4 gives a positive ``alpha``).

One module per job:

* :mod:`.screening`: pixels excluded from the statistics and reported invalid (fill, saturation,
  flares, clouds, a caller mask);
* :mod:`.column_statistics`: per detector column moments, pooled into column groups, their downdates
  and the eigenbasis of each group's correlation matrix;
* :mod:`.shrinkage`: the covariance shrinkage weight by leave-one-out likelihood (Theiler 2012);
* :mod:`.filter`: the filter itself (:func:`matched_filter`, :class:`MatchedFilterOptions`), the
  albedo correction and the plume-exclusion passes;
* :mod:`.scene`: the scene-level entry point (:func:`enhance_emit_scene`) and :func:`orthorectify`;
* :mod:`.columns`: the column blocks and thread pool the others share.

Everything is vectorised: per-column moments and quadratic forms are batched matrix products over
chunks of columns; no Python loop runs over pixels. Moments and the leave-one-out projections are
float64; the filter itself runs in float32 on radiance centred on its group mean.
"""

from attribution_assets.science.detection.matched_filter.filter import (
    DEFAULT_OPTIONS,
    MatchedFilterOptions,
    MatchedFilterResult,
    matched_filter,
)
from attribution_assets.science.detection.matched_filter.scene import (
    GltIndex,
    enhance_emit_scene,
    orthorectify,
)
from attribution_assets.science.detection.matched_filter.screening import (
    CH4_WINDOW_NM,
    FILL_VALUE,
    window_bands,
)

__all__ = [
    "CH4_WINDOW_NM",
    "DEFAULT_OPTIONS",
    "FILL_VALUE",
    "GltIndex",
    "MatchedFilterOptions",
    "MatchedFilterResult",
    "enhance_emit_scene",
    "matched_filter",
    "orthorectify",
    "window_bands",
]
