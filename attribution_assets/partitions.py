"""Partitions: every per-event asset is keyed by a detection event (see :mod:`attribution_assets.events`).

Weekly roll-ups are stored as ``week=YYYY-Www`` partitions of the output dataset and rebuilt by the
unpartitioned roll-up assets, so one ``--select '*' --partition <event>`` run covers the whole graph.
"""

from __future__ import annotations

from collections.abc import Iterable

from dagster import DagsterInstance, DynamicPartitionsDefinition, WeeklyPartitionsDefinition

from attribution_assets.events import DetectionEvent, event_key

detection_events = DynamicPartitionsDefinition(name="detection_events")
weekly_partitions = WeeklyPartitionsDefinition(start_date="2024-01-01", day_offset=1, end_offset=1)
"""ISO weeks (Monday start; key = the Monday, ``YYYY-MM-DD``), the current week included."""


def register_events(instance: DagsterInstance, events: Iterable[DetectionEvent]) -> list[str]:
    """Add the events as dynamic partitions; returns their keys in order (registering twice is harmless)."""
    keys = [event_key(event) for event in events]
    new_keys = [
        k for k in dict.fromkeys(keys) if not instance.has_dynamic_partition(detection_events.name, k)
    ]
    if new_keys:
        instance.add_dynamic_partitions(detection_events.name, new_keys)
    return keys
