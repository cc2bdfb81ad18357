"""The Web Push subscription API: the VAPID key, subscribing a browser, unsubscribing, a test push."""

from __future__ import annotations

from typing import Any

import pytest

from notifications.models import PushSubscription

pytestmark = pytest.mark.django_db

SUBSCRIPTIONS = "/api/v1/push/subscriptions/"


def test_the_vapid_key_is_the_configured_public_key(alice, client_for, vapid) -> None:
    response = client_for(alice).get("/api/v1/push/vapid-key/")
    assert response.status_code == 200
    assert response.json() == {"public_key": vapid[1]}


def test_without_configured_keys_a_development_pair_is_generated_once(alice, client_for, settings, tmp_path) -> None:
    settings.DEBUG = True
    settings.VAPID_PRIVATE_KEY = settings.VAPID_PUBLIC_KEY = ""
    settings.VAPID_KEY_FILE = tmp_path / "vapid.json"
    first = client_for(alice).get("/api/v1/push/vapid-key/").json()["public_key"]
    assert len(first) == 87  # 65 bytes, base64url without padding
    assert client_for(alice).get("/api/v1/push/vapid-key/").json()["public_key"] == first
    assert settings.VAPID_KEY_FILE.stat().st_mode & 0o077 == 0


def test_subscribing_twice_is_201_then_200_and_one_row(alice, client_for, receiver) -> None:
    browser = receiver.browser("a")
    client = client_for(alice)
    assert client.post(SUBSCRIPTIONS, browser.subscription(), format="json").status_code == 201
    assert client.post(SUBSCRIPTIONS, browser.subscription(), format="json").status_code == 200
    assert PushSubscription.objects.count() == 1


def test_a_browser_that_changes_hands_belongs_to_who_subscribed_last(alice, bob, client_for, receiver) -> None:
    browser = receiver.browser("shared")
    client_for(alice).post(SUBSCRIPTIONS, browser.subscription(), format="json")
    assert client_for(bob).post(SUBSCRIPTIONS, browser.subscription(), format="json").status_code == 200
    assert PushSubscription.objects.get().user == bob


def test_unsubscribing_removes_only_my_own(alice, bob, client_for, receiver) -> None:
    browser = receiver.browser("a")
    client_for(alice).post(SUBSCRIPTIONS, browser.subscription(), format="json")
    assert client_for(bob).delete(SUBSCRIPTIONS, {"endpoint": browser.endpoint}, format="json").status_code == 204
    assert PushSubscription.objects.count() == 1
    assert client_for(alice).delete(SUBSCRIPTIONS, {"endpoint": browser.endpoint}, format="json").status_code == 204
    assert not PushSubscription.objects.exists()


def _subscription(receiver: Any, **change: Any) -> dict[str, Any]:
    body = receiver.browser("x").subscription()
    keys = {**body["keys"], **change.pop("keys", {})}
    return {**body, "keys": keys, **change}


@pytest.mark.parametrize(
    "change",
    [
        {"keys": {"p256dh": "not-base64!!"}},
        {"keys": {"p256dh": "AAAA"}},
        {"keys": {"p256dh": "B" + "A" * 86}},  # 65 bytes, not a point on the curve
        {"keys": {"auth": "AAAA"}},
        {"endpoint": "ftp://push.example.com/x"},
        {"endpoint": "not a url"},
        {"keys": {"p256dh": 5}},
        {"extra": True},
    ],
)
def test_a_malformed_subscription_is_refused(alice, client_for, receiver, change) -> None:
    response = client_for(alice).post(SUBSCRIPTIONS, _subscription(receiver, **change), format="json")
    assert response.status_code == 400
    assert not PushSubscription.objects.exists()


def test_plain_http_endpoints_need_push_allow_http(alice, client_for, receiver, settings) -> None:
    settings.PUSH_ALLOW_HTTP = False
    response = client_for(alice).post(SUBSCRIPTIONS, receiver.browser("a").subscription(), format="json")
    assert response.status_code == 400
    assert "https://" in str(response.json())


def test_a_test_push_reaches_each_of_my_browsers(alice, client_for, subscribe, worker) -> None:
    phone, laptop = subscribe(alice, "phone"), subscribe(alice, "laptop")
    response = client_for(alice).post("/api/v1/push/test/")
    assert response.status_code == 202
    assert response.json() == {"subscriptions": 2}
    worker.drain()
    assert [push["type"] for push in phone.received + laptop.received] == ["test", "test"]


def test_without_keys_in_production_push_says_it_is_not_configured(alice, client_for, settings) -> None:
    settings.DEBUG = False
    settings.VAPID_PRIVATE_KEY = settings.VAPID_PUBLIC_KEY = ""
    response = client_for(alice).get("/api/v1/push/vapid-key/")
    assert response.status_code == 404
    assert "not configured" in response.json()["detail"]


def test_push_routes_need_a_signed_in_user(anon) -> None:
    assert anon.get("/api/v1/push/vapid-key/").status_code == 401
    assert anon.post(SUBSCRIPTIONS, {}, format="json").status_code == 401


def test_the_service_worker_is_served_from_the_root(client) -> None:
    response = client.get("/sw.js")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/javascript")
    assert response["Service-Worker-Allowed"] == "/"
    source = response.content.decode()
    for handled in ('addEventListener("push"', '"notificationclick"', '"dismiss"', "setAppBadge"):
        assert handled in source


def test_vapid_keys_prints_a_pair_that_signs_and_verifies(capsys) -> None:
    from django.core.management import call_command
    from py_vapid import Vapid02

    call_command("vapid_keys")
    lines = dict(line.split("=", 1) for line in capsys.readouterr().out.split())
    signer = Vapid02.from_raw(lines["VAPID_PRIVATE_KEY"].encode())
    header = signer.sign({"sub": "mailto:ops@example.com", "aud": "https://push.example.com"})["Authorization"]
    assert f"k={lines['VAPID_PUBLIC_KEY']}" in header
    assert Vapid02.verify(header)
