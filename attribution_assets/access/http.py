"""HTTP download with the checks the archive relies on, and the hygiene of credentials.

:func:`fetch_file` streams one URL through a ``requests`` session (for Earthdata the session that
``earthaccess.login`` authorised) into a staging path and verifies the byte count against
``Content-Length`` and, where the service publishes one, the checksum; a short or corrupt body raises
:class:`IncompleteDownload` (an ``OSError``: retried by :func:`~attribution_assets.access.retry.with_backoff`)
and leaves no file. 401 and 403 raise :class:`AccessRefused` (never retried), other 4xx raise
:class:`HTTPFailure`, 5xx, 408 and 429 raise :class:`ServerError` (retried). Credentials only travel over
``https://`` (:func:`require_https`, also for every redirect hop). :func:`redact` replaces the secrets of
the environment, ``~/.cdsapirc`` and ``~/.netrc`` in any text that leaves the access layer.
"""

from __future__ import annotations

import hashlib
import netrc
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import requests

from attribution_assets.access.live import CredentialsError

SECRET_VARIABLES = ("EARTHDATA_TOKEN", "EARTHDATA_PASSWORD", "CDSAPI_KEY")
"""Environment variables whose values are secrets."""
RETRIED_STATUS = frozenset({408, 429})
"""Client-side status codes that are transient (besides every 5xx)."""
CHUNK_BYTES = 1 << 20
HASHES = {"MD5": "md5", "SHA-1": "sha1", "SHA-256": "sha256", "SHA-384": "sha384", "SHA-512": "sha512"}
"""UMM-G ``Checksum.Algorithm`` -> ``hashlib`` name."""


class AccessRefused(CredentialsError):
    """The service refused the credentials (HTTP 401 or 403): fixing them is the only remedy."""


class InsecureURL(CredentialsError):
    """A credential would travel over plain ``http://``; nothing was sent."""


class HTTPFailure(RuntimeError):
    """A permanent HTTP error other than 401/403 (e.g. 404): not retried."""


class ServerError(OSError):
    """HTTP 5xx, 408 or 429: transient, retried."""


class IncompleteDownload(OSError):
    """The body was shorter than ``Content-Length`` or its checksum did not match: retried."""


def secret_values(environ: Mapping[str, str] | None = None) -> list[str]:
    """Every secret the services may use: the values of :data:`SECRET_VARIABLES`, the ``key:`` of the
    cdsapi rc file (``CDSAPI_RC`` or ``~/.cdsapirc``) and the Earthdata password of the netrc file
    (``NETRC`` or ``~/.netrc``); longest first, values under 4 characters left out."""
    env = os.environ if environ is None else environ
    found = {env.get(name, "") for name in SECRET_VARIABLES}
    rc = Path(env.get("CDSAPI_RC") or Path.home() / ".cdsapirc")
    if rc.is_file():
        for line in rc.read_text(errors="replace").splitlines():
            name, _, value = line.partition(":")
            if name.strip() == "key":
                found.add(value.strip())
    netrc_path = Path(env.get("NETRC") or Path.home() / ".netrc")
    try:
        entry = netrc.netrc(str(netrc_path)).authenticators("urs.earthdata.nasa.gov")
    except (OSError, netrc.NetrcParseError):
        entry = None
    if entry:
        found.add(entry[2] or "")
    # a CDS key "UID:KEY" (old CDS) may be printed in halves
    found |= {part for value in list(found) for part in value.split(":")}
    return sorted((v for v in found if len(v) >= 4), key=len, reverse=True)


def redact(text: str, secrets: Iterable[str] | None = None) -> str:
    """``text`` with every secret (default :func:`secret_values`) replaced by ``***``."""
    for secret in secret_values() if secrets is None else secrets:
        text = text.replace(secret, "***")
    return text


def require_https(url: str, service: str, what: str) -> None:
    """Raise :class:`InsecureURL` naming ``service`` and ``what`` (where the URL was configured) unless
    ``url`` is ``https://``: credentials never travel in clear text."""
    if urlsplit(url).scheme.lower() != "https":
        raise InsecureURL(
            f"{service}: refusing to send credentials to {redact(url)!r} ({what}): "
            "only https:// URLs are used; fix the URL"
        )


def _refuse_plain_redirect(service: str):
    def hook(response: requests.Response, *args: object, **kwargs: object) -> None:
        if response.is_redirect:
            require_https(urljoin(response.url, response.headers["location"]), service, "a redirect")

    return hook


def raise_for_status(response: requests.Response, service: str, how_to: str) -> None:
    """Turn an HTTP error status into :class:`AccessRefused`, :class:`ServerError` or :class:`HTTPFailure`
    (messages name ``service`` and the URL, secrets redacted)."""
    status = response.status_code
    if status < 400:
        return
    where = redact(response.url.split("?", 1)[0])
    if status in (401, 403):
        raise AccessRefused(
            f"{service} refused the credentials (HTTP {status} {response.reason} for {where}); {how_to}"
        )
    if status >= 500 or status in RETRIED_STATUS:
        raise ServerError(f"{service}: HTTP {status} {response.reason} for {where}")
    raise HTTPFailure(f"{service}: HTTP {status} {response.reason} for {where}")


def fetch_file(
    session: requests.Session,
    url: str,
    target: str | os.PathLike[str],
    *,
    service: str,
    how_to: str,
    checksum: tuple[str, str] | None = None,
    timeout_s: float = 60.0,
) -> Path:
    """Stream ``url`` into ``target`` (in a staging folder) and verify it; return ``target``.

    ``checksum`` is (``Algorithm`` as in UMM-G, e.g. ``"SHA-256"``, hex value) or ``None``. ``timeout_s``
    (seconds) bounds the connection and each read. On any failure ``target`` is removed.
    """
    require_https(url, service, "a data link")
    path = Path(target)
    digest = hashlib.new(HASHES[checksum[0]]) if checksum else None
    received = 0
    try:
        with session.get(
            url,
            stream=True,
            timeout=timeout_s,
            allow_redirects=True,
            hooks={"response": [_refuse_plain_redirect(service), *session.hooks.get("response", [])]},
        ) as response:
            raise_for_status(response, service, how_to)
            expected = response.headers.get("Content-Length")
            encoded = response.headers.get("Content-Encoding") not in (None, "identity")
            with open(path, "wb") as handle:
                for chunk in response.iter_content(chunk_size=CHUNK_BYTES):
                    handle.write(chunk)
                    received += len(chunk)
                    if digest is not None:
                        digest.update(chunk)
                handle.flush()
                os.fsync(handle.fileno())
        if expected is not None and not encoded and received != int(expected):
            raise IncompleteDownload(
                f"{service}: {path.name}: received {received} of {expected} bytes (Content-Length)"
            )
        if digest is not None and checksum and digest.hexdigest().lower() != checksum[1].lower():
            raise IncompleteDownload(
                f"{service}: {path.name}: {checksum[0]} {digest.hexdigest()} != published {checksum[1]}"
            )
    except requests.RequestException as error:
        path.unlink(missing_ok=True)
        raise type(error)(redact(f"{service}: {path.name}: {error}")) from None
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return path
