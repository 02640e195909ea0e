"""Live data access: NASA Earthdata (earthaccess) and the Copernicus CDS (cdsapi), with retry.

Pure Python, no dagster: the resources (``resources.EarthdataResource``, ``resources.CdsResource``) call
these functions. Downloads land in the product archive under their native names (Earthdata) or a
content-addressed name (ERA5), so the catalog crawl finds them. Timeouts, connection errors, 5xx and
short or corrupt downloads are retried with backoff; a refused credential (401/403) is not
(:class:`AccessRefused`); credentials only travel over https (:class:`InsecureURL`); messages are
redacted (:func:`redact`).
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
from attribution_assets.access.http import AccessRefused, IncompleteDownload, InsecureURL, fetch_file, redact
from attribution_assets.access.live import CredentialsError, LiveDecision, decide_live
from attribution_assets.access.retry import with_backoff

__all__ = [
    "DEFAULT_VARIABLES",
    "ERA5_DATASET",
    "PRODUCTS",
    "AccessRefused",
    "SHORT_NAMES",
    "CredentialsError",
    "EarthdataSearch",
    "GranuleFetch",
    "IncompleteDownload",
    "InsecureURL",
    "LiveDecision",
    "decide_live",
    "download_era5",
    "download_granules",
    "era5_request",
    "era5_target",
    "fetch_file",
    "granule_links",
    "has_cds_credentials",
    "has_credentials",
    "login",
    "redact",
    "with_backoff",
]
