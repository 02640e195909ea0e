"""Live data access: NASA Earthdata (earthaccess) and the Copernicus CDS (cdsapi), with retry.

Pure Python, no dagster: the resources (``resources.EarthdataResource``, ``resources.CdsResource``) call
these functions. Downloads land in the product archive under their native names (Earthdata) or a
content-addressed name (ERA5), so the catalog crawl finds them.
"""

from attribution_assets.access.cds import (
    DEFAULT_VARIABLES,
    ERA5_DATASET,
    download_era5,
    era5_request,
    era5_target,
    has_cds_credentials,
)
from attribution_assets.access.earthdata import (
    PRODUCTS,
    SHORT_NAMES,
    EarthdataSearch,
    GranuleFetch,
    download_granules,
    granule_links,
    has_credentials,
    login,
)
from attribution_assets.access.live import CredentialsError, LiveDecision, decide_live
from attribution_assets.access.retry import with_backoff

__all__ = [
    "DEFAULT_VARIABLES",
    "ERA5_DATASET",
    "PRODUCTS",
    "SHORT_NAMES",
    "CredentialsError",
    "EarthdataSearch",
    "GranuleFetch",
    "LiveDecision",
    "decide_live",
    "download_era5",
    "download_granules",
    "era5_request",
    "era5_target",
    "granule_links",
    "has_cds_credentials",
    "has_credentials",
    "login",
    "with_backoff",
]
