"""Webhook delivery over real HTTP on 127.0.0.1: retries, no retry on 4xx, idempotency keys, the
ledger (no duplicate, updates on material change, withdrawals, failures retried next time), URL policy
and redaction."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from attribution_assets.alerting.delivery import (
    DeliveryFailed,
    DeliveryLedger,
    InsecureWebhookURL,
    LedgerError,
    RetryPolicy,
    WebhookClient,
    check_webhook_url,
    deliver_alerts,
    display_url,
    retry_after_s,
    summarise,
    url_id,
)
from attribution_assets.alerting.payload import alert_payload, idempotency_key, json_body, material_state
from attribution_assets_tests.test_alerting.helpers import (
    BELCHATOW,
    WEEK,
    WEEK_PARTITION,
    belchatow_row,
    closed_port,
    permian_row,
    webhook_server,
)

FAST = RetryPolicy(attempts=3, backoff_s=0.01, max_backoff_s=0.05, max_retry_after_s=5.0, timeout_s=5.0)


def _payload(**row_args):
    return alert_payload(permian_row(**row_args).to_dict("records")[0], "run-1")


def _client(messages=None):
    return WebhookClient(FAST, log=None if messages is None else messages.append)


def _deliver(alerts, urls, ledger, retired=None, messages=None, run_id="run-1"):
    return deliver_alerts(alerts, retired or {}, urls, ledger, _client(messages), run_id, WEEK)


def test_retry_on_500_sends_the_same_idempotency_key():
    with webhook_server() as hook:
        hook.script = [(500, {}), (200, {})]
        body = json_body(_payload())
        assert _client().post(hook.url, body, "key-1") == 2
    assert hook.keys() == ["key-1", "key-1"]
    assert [r.body for r in hook.requests] == [json.loads(body)] * 2
    assert hook.requests[0].headers["Content-Type"] == "application/json"


def test_400_is_not_retried():
    with webhook_server() as hook:
        hook.script = [(400, {})]
        with pytest.raises(DeliveryFailed) as failure:
            _client().post(hook.url, b"{}", "key-1")
    assert len(hook.requests) == 1
    assert failure.value.http_status == 400 and not failure.value.retryable and failure.value.attempts == 1


def test_retries_end_after_the_last_attempt():
    with webhook_server() as hook:
        hook.default = 503
        with pytest.raises(DeliveryFailed) as failure:
            _client().post(hook.url, b"{}", "key-1")
    assert len(hook.requests) == FAST.attempts and failure.value.retryable


def test_429_honours_retry_after():
    with webhook_server() as hook:
        hook.script = [(429, {"Retry-After": "1"}), (200, {})]
        start = time.monotonic()
        assert _client().post(hook.url, b"{}", "key-1") == 2
        assert time.monotonic() - start >= 1.0  # the backoff alone would wait at most 0.05 s
    assert hook.keys() == ["key-1", "key-1"]


def test_retry_after_longer_than_allowed_ends_this_delivery():
    with webhook_server() as hook:
        hook.script = [(429, {"Retry-After": "3600"})]
        with pytest.raises(DeliveryFailed, match="retry after 3600 s") as failure:
            _client().post(hook.url, b"{}", "key-1")
    assert len(hook.requests) == 1 and failure.value.retryable


def test_retry_after_forms():
    now = datetime(2025, 8, 14, tzinfo=UTC)
    assert retry_after_s("7") == 7.0
    assert retry_after_s(format_datetime(now + timedelta(seconds=30), usegmt=True), now) == 30.0
    assert retry_after_s(format_datetime(now - timedelta(seconds=30), usegmt=True), now) == 0.0
    assert retry_after_s("soon") is None and retry_after_s(None) is None


def test_connection_errors_are_retried_and_the_url_secret_is_redacted():
    url = f"http://127.0.0.1:{closed_port()}/hook/s3cr3t-token-value?sig=abcdef123456"
    messages: list[str] = []
    with pytest.raises(DeliveryFailed) as failure:
        _client(messages).post(url, b"{}", "key-1")
    assert failure.value.attempts == FAST.attempts and failure.value.retryable
    assert failure.value.http_status is None
    assert len(messages) == FAST.attempts - 1  # one warning per retry
    for text in [str(failure.value), *messages]:
        assert "s3cr3t-token-value" not in text and "abcdef123456" not in text
        assert f"127.0.0.1:{url.split(':')[2].split('/')[0]}/***" in text


def test_url_policy():
    for url in ("https://hooks.example.org/x", "http://127.0.0.1:8080/x", "http://localhost/x", "http://[::1]/x"):
        check_webhook_url(url)
    for url in ("http://hooks.example.org/x", "ftp://127.0.0.1/x", "https:///x", "hooks.example.org"):
        with pytest.raises(InsecureWebhookURL):
            check_webhook_url(url)
    assert display_url("https://user:pw@hooks.example.org:8443/T0/B1/XYZ?k=v") == "https://hooks.example.org:8443/***"
    assert url_id("https://hooks.example.org/secret") != url_id("https://hooks.example.org/other")


def test_insecure_url_refused_before_anything_is_sent(tmp_path):
    with webhook_server() as hook, pytest.raises(InsecureWebhookURL):
        _deliver([_payload()], [hook.url, "http://hooks.example.org/x"], tmp_path / "ledger.json")
    assert hook.requests == [] and not (tmp_path / "ledger.json").exists()


def test_second_delivery_sends_nothing(tmp_path):
    ledger = tmp_path / "deliveries.json"
    with webhook_server() as hook:
        first = _deliver([_payload()], [hook.url], ledger)
        second = _deliver([_payload()], [hook.url], ledger, run_id="run-2")
    assert summarise(first) == {"sent": 1, "skipped": 0, "failed": 0}
    assert summarise(second) == {"sent": 0, "skipped": 1, "failed": 0}
    assert len(hook.requests) == 1
    body = hook.requests[0].body
    assert body["status"] == "new" and body["supersedes"] is None
    expected = idempotency_key(body["event_key"], material_state(body))
    assert hook.keys() == [body["idempotency_key"]] == [expected]
    assert "s3cr3t" not in ledger.read_text()  # the ledger names webhooks by hash


def test_update_only_on_material_change(tmp_path):
    ledger = tmp_path / "deliveries.json"
    with webhook_server() as hook:
        _deliver([_payload(rate_kg_h=6000.0)], [hook.url], ledger)
        within = _deliver([_payload(rate_kg_h=6020.0)], [hook.url], ledger)  # 0.3 %: rounding
        changed = _deliver([_payload(rate_kg_h=7000.0)], [hook.url], ledger)
        attribution = _deliver([_payload(rate_kg_h=7000.0, p_facility=0.3)], [hook.url], ledger)
    assert summarise(within)["skipped"] == 1
    assert changed[0].outcome == "sent" and "ch4_fluxrate" in changed[0].changes
    assert attribution[0].outcome == "sent" and attribution[0].changes == ["facility_id"]
    first, update, second_update = (r.body for r in hook.requests)
    assert update["status"] == "update" and update["supersedes"] == first["idempotency_key"]
    assert update["ch4_fluxrate"] == 7000.0 and update["idempotency_key"] != first["idempotency_key"]
    assert second_update["facility_id"] == "unlisted"
    assert second_update["supersedes"] == update["idempotency_key"]


def test_failed_delivery_is_recorded_retried_next_time_and_never_blocks_others(tmp_path):
    ledger = tmp_path / "deliveries.json"
    permian = _payload()
    belchatow = alert_payload(belchatow_row().to_dict("records")[0], "run-1")
    keys = sorted([permian["event_key"], belchatow["event_key"]])
    assert keys[0] == permian["event_key"]  # delivered in key order: CH4 first
    with webhook_server() as hook:
        hook.script = [(400, {})]  # the first alert is refused, the second accepted
        first = _deliver([permian, belchatow], [hook.url], ledger)
        assert [d.outcome for d in first] == ["failed", "sent"]
        assert first[0].http_status == 400 and "HTTP 400" in first[0].error
        entry = DeliveryLedger.load(ledger).entry(url_id(hook.url), permian["event_key"])
        assert DeliveryLedger.load(ledger).entry(url_id(hook.url), BELCHATOW.key)["sent"] is not None
        assert entry["sent"] is None and entry["pending"]["http_status"] == 400
        failed_key = hook.keys()[0]
        second = _deliver([permian, belchatow], [hook.url], ledger, run_id="run-2")
    assert [d.outcome for d in second] == ["sent", "skipped"]
    assert hook.keys()[2] == failed_key  # the retry of the failed revision sends its key again
    assert hook.requests[2].body["run_id"] == "run-1" and hook.requests[2].body["status"] == "new"
    assert len(hook.requests) == 3


def test_each_webhook_has_its_own_record(tmp_path):
    ledger = tmp_path / "deliveries.json"
    with webhook_server() as good, webhook_server() as flaky:
        flaky.default = 500
        first = _deliver([_payload()], [good.url, flaky.url], ledger)
        flaky.default = 200
        second = _deliver([_payload()], [good.url, flaky.url], ledger)
    assert [d.outcome for d in first] == ["sent", "failed"]
    assert [d.outcome for d in second] == ["skipped", "sent"]
    assert len(good.requests) == 1 and len(flaky.requests) == FAST.attempts + 1
    assert len(set(flaky.keys())) == 1 and flaky.keys()[0] == good.keys()[0]


def test_withdrawal_when_an_alert_no_longer_qualifies(tmp_path):
    ledger = tmp_path / "deliveries.json"
    payload = _payload()
    with webhook_server() as hook:
        _deliver([payload], [hook.url], ledger)
        retired = {payload["event_key"]: "alert score 0.120 < 0.5"}
        withdrawn = _deliver([], [hook.url], ledger, retired=retired)
        again = _deliver([], [hook.url], ledger, retired=retired)
        back = _deliver([payload], [hook.url], ledger)
    assert withdrawn[0].status == "withdrawn" and again == []  # withdrawn once
    body = hook.requests[1].body
    assert body["status"] == "withdrawn" and body["reason"] == "alert score 0.120 < 0.5"
    assert body["supersedes"] == hook.requests[0].body["idempotency_key"]
    assert back[0].status == "update" and len(hook.requests) == 3


def test_no_webhook_configured_sends_nothing(tmp_path):
    assert _deliver([_payload()], [], tmp_path / "deliveries.json") == []
    assert not (tmp_path / "deliveries.json").exists()


def test_unreadable_ledger_names_the_file(tmp_path):
    ledger = tmp_path / "deliveries.json"
    ledger.write_text("{not json")
    with pytest.raises(LedgerError, match="deliveries.json"):
        DeliveryLedger.load(ledger)


def test_bearer_token_is_sent_and_redacted(tmp_path):
    token = "tok-0123456789abcdef"
    messages: list[str] = []
    with webhook_server() as hook:
        hook.script = [(500, {"X-Echo": token})]
        client = WebhookClient(FAST, {"Authorization": f"Bearer {token}"}, log=messages.append)
        client.post(hook.url, b"{}", "k")
    assert hook.requests[0].headers["Authorization"] == f"Bearer {token}"
    assert messages and all(token not in m for m in messages)


def test_the_command_reports_a_delivery_left_pending_and_how_it_is_resent(tmp_path):
    """A webhook that stays down: the command names the alert, the failure and the materialisation
    that resends it (the run itself succeeds, so this is the only place a headless user sees it)."""
    from attribution_assets import cli
    from attribution_assets.assets.alerts import ledger_path
    from attribution_assets.resources import OutputStore

    store = OutputStore(root=str(tmp_path))
    permian = _payload()
    port = closed_port()
    deliveries = _deliver([permian], [f"http://127.0.0.1:{port}/hook"], ledger_path(store, WEEK))
    assert [d.outcome for d in deliveries] == ["failed"]
    lines: list[str] = []
    assert cli.report_pending_deliveries(store, WEEK, lines.append) == 1
    assert f"new alert {permian['event_key']} NOT DELIVERED (failed in 1 materialisation(s))" in lines[0]
    assert f"127.0.0.1:{port}/***" in lines[0]
    assert f"--select alerts --partition {WEEK_PARTITION}" in lines[1] and "alert_delivery_sensor" in lines[1]
    quiet: list[str] = []
    assert cli.report_pending_deliveries(store, "2025-W34", quiet.append) == 0 and quiet == []
