"""Partitions: every per-event asset is keyed by a detection event (see :mod:`attribution_assets.events`);
the weekly roll-ups by ISO week (:data:`weekly_partitions`, key = the week's Monday ``YYYY-MM-DD``,
stored as ``week=YYYY-Www`` folders of the output dataset).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import date

from dagster import DagsterInstance, DynamicPartitionsDefinition, WeeklyPartitionsDefinition

from attribution_assets.events import (
    AlertFormatError,
    DetectionEvent,
    event_key,
    is_event_key,
    iso_week,
    parse_event_key,
    parse_iso_week,
)

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


def week_of_partition(partition_key: str) -> str:
    """The ISO week ``YYYY-Www`` of a :data:`weekly_partitions` key (the Monday, ``YYYY-MM-DD``)."""
    try:
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", partition_key):
            raise ValueError("not YYYY-MM-DD")
        monday = date.fromisoformat(partition_key)
    except ValueError as error:
        expected = "expected the Monday as YYYY-MM-DD"
        raise AlertFormatError(f"{partition_key!r} is not a week partition key; {expected}") from error
    if monday.isoweekday() != 1:
        raise AlertFormatError(f"week partition key {partition_key} is not a Monday")
    return iso_week(monday)


def partition_of_week(week: str) -> str:
    """The :data:`weekly_partitions` key (the Monday, ``YYYY-MM-DD``) of ISO week ``YYYY-Www``."""
    start, _ = parse_iso_week(week)
    return start.strftime("%Y-%m-%d")


def events_of_week(instance: DagsterInstance, week: str) -> list[str]:
    """The registered event partition keys whose event time falls in ISO week ``week``, sorted."""
    start, end = parse_iso_week(week)
    keys = [k for k in instance.get_dynamic_partitions(detection_events.name) if is_event_key(k)]
    return sorted(k for k in keys if start <= parse_event_key(k).time < end)
