"""Meteorology: wind at the source per overpass, stability, and the choice of met source."""
