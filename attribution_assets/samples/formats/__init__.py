"""Writers that turn carrier datasets (docs/carriers.md) into files in the products' native formats.

One module per product: ``emit``, ``tropomi``, ``ghgsat``, ``oco2``, ``era5``, ``wrf``. Every writer writes to
a temporary file next to the target and renames it into place (``attribution_assets.atomic``), so a failed
write leaves nothing behind.
"""
