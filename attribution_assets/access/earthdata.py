"""NASA Earthdata search and download through ``earthaccess`` (EMIT L1B, TROPOMI CH4, OCO-2 Lite).

Calls (earthaccess documentation, "Searching for data" / "Authentication"):
``earthaccess.login(strategy="environment" | "netrc" | "all")``,
``earthaccess.search_data(short_name=, version=, temporal=(t0, t1), bounding_box=(w, s, e, n))`` and
``earthaccess.download(urls, local_path=)``, and ``DataGranule.data_links()`` for a granule's HTTPS
file links. Only the granule files the system reads are fetched (an EMIT granule also holds an OBS file),
and only when no file of that name is known yet. Files are downloaded into a hidden staging folder and
moved into ``<archive>/<instrument lower>/`` under their native names (``atomic.move_into_place``), so
the catalog crawl (``catalog.crawl.crawl_archive``) recognises them and never sees a partial file.
"""

from __future__ import annotations

import logging
import netrc
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import ModuleType
from typing import Any

from attribution_assets.access.live import CredentialsError
from attribution_assets.access.retry import DEFAULT_RETRY_ON, with_backoff
from attribution_assets.atomic import move_into_place, staging_dir
from attribution_assets.catalog.filenames import parse_native_name
from attribution_assets.times import iso_z

EDL_HOST = "urs.earthdata.nasa.gov"
HOW_TO = (
    "set EARTHDATA_TOKEN (or EARTHDATA_USERNAME and EARTHDATA_PASSWORD), "
    f"or add 'machine {EDL_HOST}' to ~/.netrc"
)


@dataclass(frozen=True)
class Product:
    """An Earthdata collection: CMR short name, instrument (archive folder) and accepted versions."""

    short_name: str
    instrument: str
    versions: tuple[str, ...]
    default_version: str | None

    def reads(self, name: str) -> bool:
        """True when ``name`` is the native name of a granule file of this instrument that the readers
        take (``catalog.filenames.parse_native_name``); e.g. not an EMIT granule's OBS file."""
        native = parse_native_name(name)
        return native is not None and native.instrument == self.instrument


PRODUCTS: dict[str, Product] = {
    "EMITL1BRAD": Product("EMITL1BRAD", "EMIT", ("001",), "001"),
    "S5P_L2__CH4____HiR": Product("S5P_L2__CH4____HiR", "TROPOMI", (), None),
    "OCO2_L2_Lite_FP": Product("OCO2_L2_Lite_FP", "OCO2", ("11.1r", "11.2r"), "11.2r"),
}
"""Supported collections. TROPOMI: no version filter unless one is given (every collection is kept;
the crawl keeps the newest processing of each orbit)."""
SHORT_NAMES: dict[str, str] = {product.instrument: name for name, product in PRODUCTS.items()}
"""Instrument (as in the catalog) -> Earthdata short name."""


@dataclass(frozen=True)
class EarthdataSearch:
    """One granule search: collection, time window (UTC) and bounding box (west, south, east, north; deg)."""

    short_name: str
    time_start: datetime
    time_end: datetime
    bbox: tuple[float, float, float, float]
    version: str | None = None

    def __post_init__(self) -> None:
        product = PRODUCTS.get(self.short_name)
        if product is None:
            raise ValueError(
                f"unsupported Earthdata short name {self.short_name!r}; one of {sorted(PRODUCTS)}"
            )
        if self.version is None and product.default_version is not None:
            object.__setattr__(self, "version", product.default_version)
        if product.versions and self.version not in product.versions:
            raise ValueError(
                f"{self.short_name}: version must be one of {product.versions}, got {self.version!r}"
            )
        if len(self.bbox) != 4:
            raise ValueError(f"bbox must be (west, south, east, north), got {self.bbox!r}")
        west, south, east, north = (float(v) for v in self.bbox)
        if not -90.0 <= south <= north <= 90.0:
            raise ValueError(f"bbox latitudes must satisfy -90 <= south <= north <= 90, got {self.bbox!r}")
        object.__setattr__(self, "bbox", (west, south, east, north))
        if iso_z(self.time_end) < iso_z(self.time_start):
            raise ValueError(f"time_end {self.time_end} is before time_start {self.time_start}")

    @property
    def instrument(self) -> str:
        """Instrument name as in the catalog (``EMIT``, ``TROPOMI``, ``OCO2``)."""
        return PRODUCTS[self.short_name].instrument

    def search_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of ``earthaccess.search_data`` (``version`` only when one is set)."""
        kwargs: dict[str, Any] = {"short_name": self.short_name}
        if self.version is not None:
            kwargs["version"] = self.version
        kwargs["temporal"] = (iso_z(self.time_start), iso_z(self.time_end))
        kwargs["bounding_box"] = self.bbox
        return kwargs


def _netrc_has_edl(path: Path) -> bool:
    try:
        return netrc.netrc(str(path)).authenticators(EDL_HOST) is not None
    except (OSError, netrc.NetrcParseError):
        return False


def has_credentials(environ: Mapping[str, str] | None = None, netrc_path: Path | None = None) -> str | None:
    """The earthaccess login strategy the credentials support, or ``None`` when there are none.

    ``"environment"`` for ``EARTHDATA_TOKEN`` or ``EARTHDATA_USERNAME`` + ``EARTHDATA_PASSWORD``;
    ``"netrc"`` for a ``machine urs.earthdata.nasa.gov`` entry in ``~/.netrc`` (or ``NETRC``).
    """
    env = os.environ if environ is None else environ
    if env.get("EARTHDATA_TOKEN") or (env.get("EARTHDATA_USERNAME") and env.get("EARTHDATA_PASSWORD")):
        return "environment"
    if netrc_path is None:
        netrc_path = Path(env.get("NETRC") or Path.home() / ".netrc")
    if netrc_path.is_file() and _netrc_has_edl(netrc_path):
        return "netrc"
    return None


def login(strategy: str | None = None, client: ModuleType | Any | None = None) -> Any:
    """Log in to Earthdata with ``client.login(strategy=...)`` (default client: ``earthaccess``).

    ``strategy`` is ``"environment"``, ``"netrc"`` or ``"all"``; ``None`` picks the one
    :func:`has_credentials` finds. Raises :class:`CredentialsError` without calling the client when no
    credentials exist, so nothing ever prompts.
    """
    if strategy not in (None, "environment", "netrc", "all"):
        raise ValueError(f"strategy must be 'environment', 'netrc' or 'all', got {strategy!r}")
    found = has_credentials()
    if found is None:
        raise CredentialsError(f"no NASA Earthdata credentials: {HOW_TO}")
    if client is None:
        import earthaccess as client
    return client.login(strategy=strategy or found)


def granule_links(granules: Sequence[Any], product: Product) -> list[str]:
    """The HTTPS links of the files of ``granules`` (earthaccess ``DataGranule`` results) that the
    readers take (:meth:`Product.reads`); first occurrence kept, order preserved."""
    links: dict[str, None] = {}
    for granule in granules:
        for url in granule.data_links():
            if product.reads(file_name(url)):
                links.setdefault(url, None)
    return list(links)


def file_name(url: str) -> str:
    """The file name at the end of a data link (query string dropped)."""
    return url.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]


@dataclass(frozen=True)
class GranuleFetch:
    """What one search found and fetched: ``links`` (every matching file link), ``downloaded`` (local
    paths of files fetched now) and ``present`` (names not fetched because they were already known)."""

    search: EarthdataSearch
    links: tuple[str, ...]
    downloaded: tuple[Path, ...]
    present: tuple[str, ...]


def download_granules(
    search: EarthdataSearch,
    archive_dir: str | os.PathLike[str],
    client: ModuleType | Any | None = None,
    *,
    known: set[str] | frozenset[str] = frozenset(),
    attempts: int = 4,
    base_s: float = 2.0,
    retry_on: tuple[type[BaseException], ...] = DEFAULT_RETRY_ON,
    sleep: Callable[[float], None] = time.sleep,
    log: logging.Logger | Callable[[str], None] | None = None,
) -> GranuleFetch:
    """Search ``search`` and download the missing product files into ``<archive_dir>/<instrument lower>/``.

    ``client`` is anything with earthaccess's ``search_data(**kwargs)`` (returning granules with
    ``data_links()``) and ``download(urls, local_path=)`` (default: the ``earthaccess`` module; log in
    first with :func:`login`). A file is missing when its name is neither in ``known`` (e.g. the file
    names already in the catalog) nor present in the target folder. Both calls are retried with
    :func:`with_backoff`. Raises ``RuntimeError`` naming the links when the client returns fewer files
    than asked for (earthaccess returns an empty list when not logged in).
    """
    if client is None:
        import earthaccess as client
    product = PRODUCTS[search.short_name]
    target = Path(archive_dir) / search.instrument.lower()
    kwargs = search.search_kwargs()
    retry = {"attempts": attempts, "base_s": base_s, "retry_on": retry_on, "sleep": sleep, "log": log}
    granules: Sequence[Any] = with_backoff(lambda: client.search_data(**kwargs), **retry)
    links = granule_links(granules or [], product)
    present = [url for url in links if file_name(url) in known or (target / file_name(url)).is_file()]
    wanted = [url for url in links if url not in present]
    downloaded: list[Path] = []
    if wanted:
        with staging_dir(target) as staging:
            got = with_backoff(lambda: client.download(wanted, local_path=str(staging)), **retry)
            by_name = {Path(p).name: Path(p) for p in got or [] if p is not None}
            lost = [url for url in wanted if file_name(url) not in by_name]
            if lost:
                raise RuntimeError(
                    f"{search.short_name}: the download returned no file for {lost} (logged in to Earthdata?)"
                )
            downloaded = [move_into_place(by_name[file_name(url)], target / file_name(url)) for url in wanted]
    return GranuleFetch(search, tuple(links), tuple(downloaded), tuple(file_name(url) for url in present))
