"""NASA Earthdata search and download through ``earthaccess`` (EMIT L1B, TROPOMI CH4, OCO-2 Lite).

Calls (earthaccess documentation, "Searching for data" / "Authentication"):
``earthaccess.login(strategy="environment" | "netrc" | "all")``,
``earthaccess.search_data(short_name=, version=, temporal=(t0, t1), bounding_box=(w, s, e, n))`` and
``earthaccess.download(urls, local_path=)``, and ``DataGranule.data_links()`` for a granule's HTTPS
file links. Only the granule files the system reads are fetched (an EMIT granule also holds an OBS file),
and only when no file of that name is known yet. Each file is fetched over https with the session
``earthaccess.get_requests_https_session()`` authorised at login (``access.http.fetch_file``: size
checked against ``Content-Length``, the UMM-G checksum where CMR publishes one, 401/403 not retried)
into a hidden staging folder and moved into ``<archive>/<instrument lower>/`` under its native name
(``atomic.move_into_place``), so the catalog crawl (``catalog.crawl.crawl_archive``) recognises it and
never sees a partial file.
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

from attribution_assets.access.http import HASHES, AccessRefused, fetch_file, redact
from attribution_assets.access.live import CredentialsError
from attribution_assets.access.retry import DEFAULT_RETRY_ON, with_backoff
from attribution_assets.atomic import move_into_place, staging_dir
from attribution_assets.catalog.filenames import parse_native_name
from attribution_assets.times import iso_z

EDL_HOST = "urs.earthdata.nasa.gov"
SERVICE = "NASA Earthdata"
HOW_TO = (
    "set EARTHDATA_TOKEN (or EARTHDATA_USERNAME and EARTHDATA_PASSWORD), "
    f"or add 'machine {EDL_HOST}' to ~/.netrc"
)
FIX_REFUSED = (
    f"renew EARTHDATA_TOKEN at https://{EDL_HOST}/profile (tokens expire after 60 days) or check "
    f"EARTHDATA_USERNAME/EARTHDATA_PASSWORD or the 'machine {EDL_HOST}' entry of ~/.netrc, and approve "
    "the data provider's application (LP DAAC, GES DISC) in your Earthdata profile"
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
    credentials exist, so nothing ever prompts, and :class:`~attribution_assets.access.http.AccessRefused`
    when the login is refused.
    """
    if strategy not in (None, "environment", "netrc", "all"):
        raise ValueError(f"strategy must be 'environment', 'netrc' or 'all', got {strategy!r}")
    found = has_credentials()
    if found is None:
        raise CredentialsError(f"no NASA Earthdata credentials: {HOW_TO}")
    if client is None:
        import earthaccess as client
    try:
        auth = client.login(strategy=strategy or found)
    except Exception as error:  # earthaccess raises its own types; the message must not carry a secret
        message = f"{SERVICE}: login with credentials from {found} failed: {redact(str(error))}"
        raise CredentialsError(message) from None
    if auth is None or getattr(auth, "authenticated", True) is False:
        raise AccessRefused(f"{SERVICE} refused the credentials from {found} at login; {FIX_REFUSED}")
    return auth


def granule_links(granules: Sequence[Any], product: Product) -> list[str]:
    """The HTTPS links of the files of ``granules`` (earthaccess ``DataGranule`` results) that the
    readers take (:meth:`Product.reads`); first occurrence kept, order preserved."""
    links: dict[str, None] = {}
    for granule in granules:
        for url in granule.data_links():
            if product.reads(file_name(url)):
                links.setdefault(url, None)
    return list(links)


def granule_checksums(granules: Sequence[Any]) -> dict[str, tuple[str, str]]:
    """File name -> (UMM-G ``Checksum.Algorithm``, hex value) for every file of ``granules`` whose CMR
    record publishes a checksum of a supported algorithm
    (``umm.DataGranule.ArchiveAndDistributionInformation[].Checksum``)."""
    found: dict[str, tuple[str, str]] = {}
    for granule in granules:
        umm = granule.get("umm", {}) if hasattr(granule, "get") else {}
        for item in umm.get("DataGranule", {}).get("ArchiveAndDistributionInformation", []) or []:
            checksum = item.get("Checksum") or {}
            if item.get("Name") and checksum.get("Algorithm") in HASHES and checksum.get("Value"):
                found[item["Name"]] = (checksum["Algorithm"], str(checksum["Value"]))
    return found


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
    session: Any | None = None,
    attempts: int = 4,
    base_s: float = 2.0,
    retry_on: tuple[type[BaseException], ...] = DEFAULT_RETRY_ON,
    sleep: Callable[[float], None] = time.sleep,
    log: logging.Logger | Callable[[str], None] | None = None,
    timeout_s: float = 60.0,
) -> GranuleFetch:
    """Search ``search`` and download the missing product files into ``<archive_dir>/<instrument lower>/``.

    ``client`` is anything with earthaccess's ``search_data(**kwargs)`` (returning granules with
    ``data_links()``) and ``get_requests_https_session()`` (default: the ``earthaccess`` module; log in
    first with :func:`login`); ``session`` overrides the session. A file is missing when its name is
    neither in ``known`` (e.g. the file names already in the catalog) nor present in the target folder.
    The search and each file are retried with :func:`with_backoff` (timeouts, connection errors, 5xx,
    short or corrupt bodies; ``timeout_s`` seconds per connection and read); a refused credential
    (401/403) raises ``http.AccessRefused`` at once, a plain ``http://`` link ``http.InsecureURL``. Each
    verified file is moved into place at once; a failed one leaves nothing (the staging folder goes).
    """
    if client is None:
        import earthaccess as client
    product = PRODUCTS[search.short_name]
    target = Path(archive_dir) / search.instrument.lower()
    kwargs = search.search_kwargs()
    retry = {"attempts": attempts, "base_s": base_s, "retry_on": retry_on, "sleep": sleep, "log": log}
    granules: Sequence[Any] = with_backoff(lambda: client.search_data(**kwargs), **retry)
    links = granule_links(granules or [], product)
    checksums = granule_checksums(granules or [])
    present = [url for url in links if file_name(url) in known or (target / file_name(url)).is_file()]
    wanted = [url for url in links if url not in present]
    downloaded: list[Path] = []
    if wanted:
        http = session if session is not None else client.get_requests_https_session()
        with staging_dir(target) as staging:
            for url in wanted:
                name = file_name(url)

                def fetch(url: str = url, name: str = name) -> Path:
                    return fetch_file(
                        http,
                        url,
                        staging / name,
                        service=SERVICE,
                        how_to=FIX_REFUSED,
                        checksum=checksums.get(name),
                        timeout_s=timeout_s,
                    )

                with_backoff(fetch, **retry)
                downloaded.append(move_into_place(staging / name, target / name))
    return GranuleFetch(search, tuple(links), tuple(downloaded), tuple(file_name(url) for url in present))
