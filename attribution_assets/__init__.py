"""Satellite greenhouse-gas source attribution as an event-partitioned Dagster asset graph.

Importing the package has no side effects. Entry points set JAX up explicitly with
:func:`attribution_assets.compilation.configure_jax` before the first JAX computation.
"""
