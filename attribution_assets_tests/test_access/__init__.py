"""Tests of the live data access layer (fake clients; live tests skipped without credentials)."""
