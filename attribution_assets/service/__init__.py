"""The HTTP alert service (``attribution serve``): one warm process that answers an operator alert with
the fast posterior of its event and launches the event's full Dagster run.

- :mod:`~attribution_assets.service.app`: the FastAPI application (:func:`create_app`) and its routes;
- :mod:`~attribution_assets.service.runtime`: the instance, workspace, warm-up and inversion lock;
- :mod:`~attribution_assets.service.answers`: posterior rows as answers and as instance observations;
- :mod:`~attribution_assets.service.schemas`: the request and response bodies;
- :mod:`~attribution_assets.service.problems`: errors as ``application/problem+json``.
"""

from attribution_assets.service.app import TOKEN_ENV, create_app
from attribution_assets.service.runtime import ServiceConfig

__all__ = ["TOKEN_ENV", "ServiceConfig", "create_app"]
