"""When a failed delivery is resent: ledgers written by real deliveries over HTTP on
127.0.0.1 (a receiver that answers 503, one that refuses with 404), read at chosen times."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from attribution_assets.alerting.delivery import (
    DeliveryLedger,
    RetryPolicy,
    WebhookClient,
    deliver_alerts,
    url_id,
)
from attribution_assets.alerting.payload import alert_payload
from attribution_assets.alerting.retries import (
    RESEND_AFTER_ENV,
    RESEND_MAX_ENV,
    RetryBackoff,
    is_retryable,
    pending_resends,
)
from attribution_assets.times import parse_time
from attribution_assets_tests.test_alerting.helpers import PERMIAN, WEEK, permian_row, webhook_server

ONE_ATTEMPT = RetryPolicy(attempts=1, timeout_s=5.0)
BACKOFF = RetryBackoff(first_s=300.0, max_s=3600.0)


def _fail_once(ledger_dir, status: int) -> tuple[str, str]:
    """Deliver the Permian alert to a receiver answering ``status``; returns (url, failure time)."""
    payload = alert_payload(permian_row().to_dict("records")[0], "run-1")
    with webhook_server() as hook:
        hook.default = status
        deliver_alerts([payload], {}, [hook.url], ledger_dir / f"week={WEEK}.json",
                       WebhookClient(ONE_ATTEMPT), "run-1", WEEK)
    [(_, _, record)] = DeliveryLedger.load(ledger_dir / f"week={WEEK}.json").pending()
    return hook.url, record["at"]


def test_backoff_doubles_up_to_its_cap():
    assert [BACKOFF.wait_s(n) for n in (1, 2, 3, 4, 5, 500)] == [300.0, 600.0, 1200.0, 2400.0, 3600.0, 3600.0]
    assert BACKOFF.wait_s(0) == 300.0


def test_a_503_is_due_once_its_wait_has_passed(tmp_path):
    url, at = _fail_once(tmp_path, 503)
    failed = parse_time(at)
    resends, problems = pending_resends(tmp_path, {url_id(url)}, BACKOFF)
    assert problems == []
    [resend] = resends
    assert (resend.week, resend.event_key, resend.failures) == (WEEK, PERMIAN.key, 1)
    assert resend.webhook == url_id(url) and resend.failed_at == failed
    assert resend.due_at == failed + timedelta(seconds=300)


def test_the_wait_grows_with_the_failed_rounds(tmp_path):
    url, _ = _fail_once(tmp_path, 503)
    ledger = DeliveryLedger.load(tmp_path / f"week={WEEK}.json")
    [(_, _, record)] = ledger.pending()
    record["failures"] = 3  # the same revision failed in three materialisations
    ledger.save()
    [resend] = pending_resends(tmp_path, {url_id(url)}, BACKOFF)[0]
    assert resend.due_at - parse_time(record["at"]) == timedelta(seconds=1200)


def test_a_refusal_waits_for_a_person(tmp_path):
    url, _ = _fail_once(tmp_path, 404)
    [(_, _, record)] = DeliveryLedger.load(tmp_path / f"week={WEEK}.json").pending()
    assert record["http_status"] == 404 and not is_retryable(record)
    assert pending_resends(tmp_path, {url_id(url)}, BACKOFF) == ([], [])


def test_a_webhook_no_longer_configured_is_not_retried(tmp_path):
    _fail_once(tmp_path, 503)
    assert pending_resends(tmp_path, {url_id("https://hooks.example.org/new")}, BACKOFF) == ([], [])


@pytest.mark.parametrize("status, retryable", [(None, True), (500, True), (503, True), (429, True),
                                               (400, False), (401, False), (404, False)])
def test_ledgers_without_the_retryable_flag_are_read_from_the_status(status, retryable):
    assert is_retryable({"http_status": status}) is retryable


def test_bad_ledgers_are_named_and_the_others_still_read(tmp_path):
    url, _ = _fail_once(tmp_path, 503)
    (tmp_path / "week=2025-W34.json").write_text("{not json")
    (tmp_path / "week=last.json").write_text(json.dumps({"version": 1, "deliveries": {}}))
    broken = DeliveryLedger.load(tmp_path / f"week={WEEK}.json")
    broken.path = tmp_path / "week=2025-W35.json"
    [(_, _, record)] = broken.pending()
    record["at"] = "yesterday"
    broken.save()
    resends, problems = pending_resends(tmp_path, {url_id(url)}, BACKOFF)
    assert [r.week for r in resends] == [WEEK]
    assert len(problems) == 3
    assert "week=2025-W34.json" in problems[0] and "unreadable" in problems[0]
    assert "week=2025-W35.json" in problems[1] and PERMIAN.key in problems[1] and "'yesterday'" in problems[1]
    assert "week=last.json" in problems[2] and "not an ISO week" in problems[2]


def test_the_waits_come_from_the_resource_then_the_environment(monkeypatch):
    from attribution_assets.alerting.resource import NotifierResource

    assert RetryBackoff.from_env({}) == RetryBackoff(300.0, 21600.0)
    unset_max = {RESEND_AFTER_ENV: " 60 ", RESEND_MAX_ENV: ""}
    assert RetryBackoff.from_env(unset_max) == RetryBackoff(60.0, 21600.0)
    with pytest.raises(ValueError, match=f"{RESEND_MAX_ENV}='soon' is not a number"):
        RetryBackoff.from_env({RESEND_MAX_ENV: "soon"})
    with pytest.raises(ValueError, match="first .600.0 s. <= longest .60.0 s."):
        RetryBackoff.from_env({RESEND_AFTER_ENV: "600", RESEND_MAX_ENV: "60"})
    monkeypatch.setenv(RESEND_AFTER_ENV, "30")
    monkeypatch.setenv(RESEND_MAX_ENV, "90")
    assert NotifierResource(urls=[]).resend_backoff() == RetryBackoff(30.0, 90.0)
    assert NotifierResource(urls=[], resend_after_s=5.0).resend_backoff() == RetryBackoff(5.0, 90.0)
