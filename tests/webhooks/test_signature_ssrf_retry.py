"""Pure webhook modules: signatures, the SSRF guard and the retry schedule.

Signatures are recomputed here with ``hmac`` from the specification's words (never through
``bot.webhooks.signature``) and checked with the ``standardwebhooks`` reference library.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import random
import time
from datetime import timedelta

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from bot.errors import ValidationFailed
from bot.webhooks import retry, signature, ssrf

BODY = json.dumps(
    {"id": "evt_01HZZZZZZZZZZZZZZZZZZZZZZZ", "event": "envelope.sent", "data": {"x": "é"}},
    separators=(",", ":"),
    ensure_ascii=False,
).encode()
MSG_ID = "evt_01HZZZZZZZZZZZZZZZZZZZZZZZ"


# ---------------------------------------------------------------- signatures


def test_generated_secret_is_whsec_and_32_random_bytes():
    secrets_seen = {signature.generate_secret() for _ in range(50)}
    assert len(secrets_seen) == 50
    for secret in secrets_seen:
        assert secret.startswith("whsec_")
        assert len(base64.b64decode(secret.removeprefix("whsec_"), validate=True)) == 32


def test_certyneo_signature_is_hex_hmac_of_raw_body_keyed_with_whole_secret():
    secret = signature.generate_secret()
    headers = signature.headers(secret, MSG_ID, int(time.time()), BODY)
    expected = hmac.new(secret.encode("utf-8"), BODY, hashlib.sha256).hexdigest()
    assert headers["X-Certyneo-Signature"] == expected
    assert len(expected) == 64 and expected == expected.lower()
    # Keyed with the whole string, prefix included: not with the decoded key.
    decoded = base64.b64decode(secret.removeprefix("whsec_"))
    assert headers["X-Certyneo-Signature"] != hmac.new(decoded, BODY, hashlib.sha256).hexdigest()
    assert signature.verify_certyneo(secret, BODY, expected.upper())
    assert not signature.verify_certyneo(secret, BODY + b" ", expected)


def test_standard_webhooks_signature_recomputed_independently():
    secret = signature.generate_secret()
    ts = int(time.time())
    headers = signature.headers(secret, MSG_ID, ts, BODY)
    assert headers["webhook-id"] == MSG_ID
    assert headers["webhook-timestamp"] == str(ts)
    key = base64.b64decode(secret[len("whsec_") :])
    mac = hmac.new(key, f"{MSG_ID}.{ts}.".encode() + BODY, hashlib.sha256).digest()
    assert headers["webhook-signature"] == "v1," + base64.b64encode(mac).decode()


def test_standardwebhooks_library_verifies_our_headers():
    secret = signature.generate_secret()
    headers = signature.headers(secret, MSG_ID, int(time.time()), BODY)
    assert Webhook(secret).verify(BODY, headers) == json.loads(BODY)
    # Header names are case-insensitive for receivers.
    upper = {k.upper(): v for k, v in headers.items()}
    assert Webhook(secret).verify(BODY, upper) == json.loads(BODY)


def test_standardwebhooks_refuses_tampered_body_wrong_secret_and_swapped_id():
    secret = signature.generate_secret()
    headers = signature.headers(secret, MSG_ID, int(time.time()), BODY)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(BODY.replace(b"envelope.sent", b"envelope.void"), headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(signature.generate_secret()).verify(BODY, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(BODY, {**headers, "webhook-id": "evt_other"})


def test_standardwebhooks_refuses_old_and_future_timestamps():
    secret = signature.generate_secret()
    for ts in (int(time.time()) - 600, int(time.time()) + 600):
        headers = signature.headers(secret, MSG_ID, ts, BODY)
        with pytest.raises(WebhookVerificationError, match=r"too (old|new)"):
            Webhook(secret).verify(BODY, headers)
    # Replaying an old signature under a fresh timestamp does not verify either.
    old = signature.headers(secret, MSG_ID, int(time.time()) - 600, BODY)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(BODY, {**old, "webhook-timestamp": str(int(time.time()))})


# ---------------------------------------------------------------- SSRF

OWN = "https://sign.example.org"
STRICT = ssrf.Policy(allow_private=False, own_public_url=OWN, require_https=False)
LIVE = ssrf.Policy(allow_private=False, own_public_url=OWN, require_https=True)
OPEN = ssrf.Policy(allow_private=True, own_public_url=OWN, require_https=False)

BLOCKED_HOSTS = [
    "127.0.0.1",
    "127.8.9.10",
    "[::1]",
    "10.1.2.3",
    "172.16.0.1",
    "172.31.255.254",
    "192.168.1.10",
    "169.254.169.254",
    "[::ffff:127.0.0.1]",
    "[::ffff:169.254.169.254]",
    "100.64.0.1",
    "0.0.0.0",
    "[::]",
    "[fe80::1]",
    "[fd00:ec2::254]",
    "[fc00::1]",
    "198.18.0.1",
    "224.0.0.1",
    # names and odd spellings that resolve (locally, without outside DNS) to loopback
    "localhost",
    "127.1",
    "2130706433",
    "0x7f000001",
]


@pytest.mark.parametrize("host", BLOCKED_HOSTS)
async def test_private_targets_refused_at_registration(host):
    url = f"http://{host}:8080/hook"
    with pytest.raises(ValidationFailed) as info:
        await ssrf.check_registration(url, STRICT)
    assert info.value.message == "URL rejected: private or loopback address"
    assert [(e.field, e.message) for e in info.value.errors] == [
        ("url", "URL rejected: private or loopback address")
    ]


@pytest.mark.parametrize("host", BLOCKED_HOSTS)
async def test_private_targets_refused_at_delivery(host):
    assert await ssrf.check_delivery(f"http://{host}:8080/hook", STRICT) == ssrf.REJECTED


@pytest.mark.parametrize("host", BLOCKED_HOSTS)
async def test_allow_private_lifts_the_guard(host):
    url = f"http://{host}:8080/hook"
    await ssrf.check_registration(url, OPEN)
    assert await ssrf.check_delivery(url, OPEN) is None


@pytest.mark.parametrize("url", ["http://93.184.216.34/hook", "https://93.184.216.34:8443/x"])
async def test_public_address_allowed(url):
    await ssrf.check_registration(url, STRICT)
    assert await ssrf.check_delivery(url, STRICT) is None


async def test_live_keys_need_https_for_public_targets():
    await ssrf.check_registration("https://93.184.216.34/hook", LIVE)
    with pytest.raises(ValidationFailed, match="https"):
        await ssrf.check_registration("http://93.184.216.34/hook", LIVE)
    # a name that does not resolve: accepted, but still https only in live mode
    await ssrf.check_registration("https://hooks.example.com/x", LIVE)
    with pytest.raises(ValidationFailed, match="https"):
        await ssrf.check_registration("http://hooks.example.com/x", LIVE)


async def test_unresolvable_name_accepted_at_registration_but_not_delivered():
    await ssrf.check_registration("https://hooks.example.com/x", STRICT)
    reason = await ssrf.check_delivery("https://hooks.example.com/x", STRICT)
    assert reason is not None and "hooks.example.com" in reason


@pytest.mark.parametrize(
    "url",
    [
        "ftp://93.184.216.34/x",
        "file:///etc/passwd",
        "gopher://127.0.0.1/",
        "http://user:pw@93.184.216.34/x",
        "http:///nohost",
        "http://93.184.216.34:99999/x",
        "not a url",
        "https://93.184.216.34/" + "a" * 2100,
    ],
)
async def test_malformed_urls_refused(url):
    with pytest.raises(ValidationFailed):
        await ssrf.check_registration(url, OPEN)
    assert await ssrf.check_delivery(url, STRICT) is not None


async def test_own_hooks_path_always_allowed():
    for policy in (STRICT, LIVE, OPEN):
        await ssrf.check_registration(f"{OWN}/hooks/certyneo", policy)
        assert await ssrf.check_delivery(f"{OWN}/hooks/certyneo", policy) is None
    loopback_own = ssrf.Policy(False, "http://127.0.0.1:8000", False)
    await ssrf.check_registration("http://127.0.0.1:8000/hooks/x", loopback_own)
    assert await ssrf.check_delivery("http://127.0.0.1:8000/hooks/x", loopback_own) is None


@pytest.mark.parametrize(
    "path", ["/api/v1/envelopes", "/", "/hooks", "/hooksx/a", "/readyz", "/admin/hooks/x"]
)
async def test_other_own_paths_refused(path):
    for policy in (STRICT, LIVE, OPEN):
        with pytest.raises(ValidationFailed, match="URL rejected"):
            await ssrf.check_registration(f"{OWN}{path}", policy)


async def test_own_hooks_prefix_cannot_be_escaped_with_dot_segments():
    """``/hooks/../api/…`` is normalised by the HTTP client to ``/api/…``: another own path."""
    url = f"{OWN}/hooks/../api/v1/envelopes"
    loopback_own = ssrf.Policy(False, "http://127.0.0.1:8000", False)
    with pytest.raises(ValidationFailed, match="URL rejected"):
        await ssrf.check_registration(url, STRICT)
    with pytest.raises(ValidationFailed, match="URL rejected"):
        await ssrf.check_registration(
            "http://127.0.0.1:8000/hooks/../api/v1/envelopes", loopback_own
        )
    assert (
        await ssrf.check_delivery("http://127.0.0.1:8000/hooks/../api/v1/envelopes", loopback_own)
        is not None
    )


# ---------------------------------------------------------------- retry schedule

NOMINAL = [10, 60, 360, 2160, 12960, 77760, 86400, 86400]


@pytest.mark.parametrize(("failed", "nominal"), list(enumerate(NOMINAL, start=1)))
def test_retry_delays_with_default_base(failed, nominal):
    seen = []
    for seed in range(200):
        d = retry.delay(failed, 10, random.Random(seed)).total_seconds()
        assert nominal * 0.8 - 1e-6 <= d <= nominal * 1.2 + 1e-6
        seen.append(d)
    # jitter really spreads both ways
    assert min(seen) < nominal * 0.9 and max(seen) > nominal * 1.1


def test_retry_delays_never_exceed_cap_plus_jitter():
    for failed in range(7, 30):
        assert retry.delay(failed, 10).total_seconds() <= 86400 * 1.2 + 1e-6


def test_retry_base_scales_the_schedule():
    rng = random.Random(1)
    assert 0.16 <= retry.delay(1, 0.2, rng).total_seconds() <= 0.24
    assert 0.96 <= retry.delay(2, 0.2, rng).total_seconds() <= 1.44


def test_nine_attempts_over_about_three_days():
    assert sum(NOMINAL) / 86400 == pytest.approx(3.08, abs=0.01)
    for failed in range(1, 9):
        assert not retry.should_give_up(failed, timedelta(hours=1))
    assert retry.should_give_up(9, timedelta(hours=1))
    assert retry.should_give_up(12, timedelta(0))


def test_give_up_after_three_days_whatever_the_count():
    assert not retry.should_give_up(1, timedelta(days=3) - timedelta(seconds=1))
    assert retry.should_give_up(1, timedelta(days=3))
    assert retry.should_give_up(3, timedelta(days=4))
    assert timedelta(days=3) == retry.ENDPOINT_DISABLE_AFTER
