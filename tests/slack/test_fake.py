"""The fake Slack Web API, driven by slack_sdk's real AsyncWebClient, and the signed request
builders, checked by slack_sdk's SignatureVerifier and by a real Bolt AsyncApp.

If these pass, a bot test failing against the fake fails for the bot's reasons.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from urllib.parse import parse_qs

import httpx
import pytest
from slack_bolt.async_app import AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient

from bot.slack import ids, views
from bot.slack.parsing import parse_submission
from tests.support import slack_requests as sr
from tests.support.slack_fake import SlackFake, slack_fake

NDA = views.TemplateChoice("tpl_nda", "NDA", roles=(views.TemplateRole("Signer"),), subject="NDA")
PDF = b"%PDF-1.7\n" + bytes(range(256)) * 64 + b"\n%%EOF\n"


@pytest.fixture
def fake() -> Iterator[SlackFake]:
    with slack_fake() as served:
        served.add_user("U0ANN", "ann", real_name="Ann Lee", email="ann@example.com")
        served.add_user("U0GONE", "gone", email="gone@example.com", deleted=True)
        yield served


@pytest.fixture
def client(fake: SlackFake) -> AsyncWebClient:
    return AsyncWebClient(token=fake.token, base_url=fake.base_url)


# --- Web API methods ------------------------------------------------------------------------
async def test_auth_test(fake: SlackFake, client: AsyncWebClient) -> None:
    answer = await client.auth_test()
    assert (answer["team_id"], answer["user_id"], answer["bot_id"]) == ("T0TEST", "U0BOT", "B0BOT")
    call = fake.last("auth.test")
    assert call.token == fake.token


@pytest.mark.parametrize(("token", "error"), [("xoxb-wrong", "invalid_auth"), ("", "not_authed")])
async def test_tokens_are_checked(fake: SlackFake, token: str, error: str) -> None:
    with pytest.raises(SlackApiError) as raised:
        await AsyncWebClient(token=token or None, base_url=fake.base_url).auth_test()
    assert raised.value.response["error"] == error


async def test_post_update_and_ephemeral(fake: SlackFake, client: AsyncWebClient) -> None:
    message = views.status_message(
        views.RequestView(id="r1", number=1, subject="NDA", requester_id="U0ANN", status="SENT")
    )
    posted = await client.chat_postMessage(channel="C0CHAN", **message)
    assert posted["channel"] == "C0CHAN" and posted["ts"]
    assert fake.last("chat.postMessage")["blocks"] == message["blocks"]
    updated = await client.chat_update(channel="C0CHAN", ts=posted["ts"], text="done", blocks=[])
    assert updated["ts"] == posted["ts"]
    assert fake.messages[("C0CHAN", posted["ts"])]["text"] == "done"
    reply = await client.chat_postMessage(channel="C0CHAN", thread_ts=posted["ts"], text="hi")
    assert fake.last("chat.postMessage")["thread_ts"] == posted["ts"] != reply["ts"]
    dm = await client.chat_postMessage(channel="U0ANN", text="to a user id")
    assert dm["channel"].startswith("D")
    with pytest.warns(UserWarning, match="text"), pytest.raises(SlackApiError, match="no_text"):
        await client.chat_postMessage(channel="C0CHAN")
    ephemeral = await client.chat_postEphemeral(channel="C0CHAN", user="U0ANN", text="psst")
    assert ephemeral["message_ts"]
    for call, error in [
        (client.chat_update(channel="C0CHAN", ts="1.2", text="x"), "message_not_found"),
        (client.chat_postMessage(channel="U0NOBODY", text="x"), "channel_not_found"),
    ]:
        with pytest.raises(SlackApiError) as raised:
            await call
        assert raised.value.response["error"] == error


async def test_users(fake: SlackFake, client: AsyncWebClient) -> None:
    found = await client.users_lookupByEmail(email="ANN@example.com")
    assert found["user"]["id"] == "U0ANN"
    assert found["user"]["profile"]["email"] == "ann@example.com"
    assert fake.last("users.lookupByEmail").http_method == "GET"
    for email in ("nobody@example.com", "gone@example.com"):
        with pytest.raises(SlackApiError) as raised:
            await client.users_lookupByEmail(email=email)
        assert raised.value.response["error"] == "users_not_found"
    info = await client.users_info(user="U0ANN")
    user = info["user"]
    assert (user["name"], user["real_name"], user["is_bot"], user["deleted"]) == (
        "ann",
        "Ann Lee",
        False,
        False,
    )
    with pytest.raises(SlackApiError, match="user_not_found"):
        await client.users_info(user="U0NOBODY")


async def test_conversations_open_is_stable(client: AsyncWebClient) -> None:
    first = await client.conversations_open(users="U0ANN")
    again = await client.conversations_open(users=["U0ANN"])
    assert first["channel"]["id"] == again["channel"]["id"]
    assert first["channel"]["id"].startswith("D")


async def test_views(fake: SlackFake, client: AsyncWebClient) -> None:
    modal = views.sign_modal(views.ModalForm(channel_id="C0CHAN"))
    opened = await client.views_open(trigger_id="123.456.abc", view=modal)
    view = opened["view"]
    assert view["id"].startswith("V") and view["hash"]
    assert view["private_metadata"] == modal["private_metadata"]
    assert fake.last("views.open")["view"] == modal
    updated = await client.views_update(view_id=view["id"], hash=view["hash"], view=modal)
    assert updated["view"]["id"] == view["id"]
    with pytest.raises(SlackApiError, match="hash_conflict"):
        await client.views_update(view_id=view["id"], hash=view["hash"], view=modal)
    with pytest.raises(SlackApiError, match="not_found"):
        await client.views_update(view_id="V0NOPE", view=modal)
    pushed = await client.views_push(trigger_id="1.2.3", view=views.reject_modal("r1"))
    assert pushed["view"]["callback_id"] == ids.REJECT_CALLBACK
    home = await client.views_publish(user_id="U0ANN", view=views.home_view([], []))
    assert home["view"]["type"] == "home" and fake.homes["U0ANN"]["type"] == "home"


async def test_a_view_slack_would_refuse_is_refused(client: AsyncWebClient) -> None:
    too_long = {**views.reject_modal("r1")}
    too_long["title"] = {"type": "plain_text", "text": "x" * 25}
    with pytest.raises(SlackApiError) as raised:
        await client.views_open(trigger_id="1.2.3", view=too_long)
    assert raised.value.response["error"] == "invalid_arguments"
    assert "title" in raised.value.response["response_metadata"]["messages"][0]
    with pytest.raises(SlackApiError, match="invalid_trigger_id"):
        await client.views_open(trigger_id="", view=views.reject_modal("r1"))


async def test_files_upload_v2_end_to_end(fake: SlackFake, client: AsyncWebClient) -> None:
    posted = await client.chat_postMessage(channel="C0CHAN", text="status")
    answer = await client.files_upload_v2(
        channel="C0CHAN",
        thread_ts=posted["ts"],
        content=PDF,
        filename="nda-signed.pdf",
        title="NDA (signed)",
        initial_comment="Completed",
    )
    file = answer["file"]
    assert (file["name"], file["title"], file["size"]) == (
        "nda-signed.pdf",
        "NDA (signed)",
        len(PDF),
    )
    assert fake.file_bytes[file["id"]] == PDF
    url_call = fake.last("files.getUploadURLExternal")
    assert (url_call["filename"], url_call["length"]) == ("nda-signed.pdf", str(len(PDF)))
    done = fake.last("files.completeUploadExternal")
    assert done["channel_id"] == "C0CHAN" and done["thread_ts"] == posted["ts"]
    assert done["files"] == [{"id": file["id"], "title": "NDA (signed)"}]
    assert done["initial_comment"] == "Completed"
    async with httpx.AsyncClient() as http:
        auth = {"Authorization": f"Bearer {fake.token}"}
        downloaded = await http.get(file["url_private_download"], headers=auth)
        assert downloaded.content == PDF
        assert downloaded.headers["content-type"] == "application/pdf"


async def test_complete_without_upload_fails(fake: SlackFake, client: AsyncWebClient) -> None:
    started = await client.files_getUploadURLExternal(filename="a.pdf", length=3)
    assert started["upload_url"].startswith(fake.root)
    with pytest.raises(SlackApiError, match="file_not_found"):
        await client.files_completeUploadExternal(files=[{"id": started["file_id"]}])


async def test_added_files_download_with_the_bot_token_only(
    fake: SlackFake, client: AsyncWebClient
) -> None:
    added = fake.add_file("contract.pdf", PDF)
    assert added["url_private_download"].startswith(fake.root)
    info = await client.files_info(file=added["id"])
    assert info["file"]["mimetype"] == "application/pdf" and info["file"]["size"] == len(PDF)
    with pytest.raises(SlackApiError, match="file_not_found"):
        await client.files_info(file="F0NOPE")
    async with httpx.AsyncClient() as http:
        url = added["url_private_download"]
        ok = await http.get(url, headers={"Authorization": f"Bearer {fake.token}"})
        assert ok.status_code == 200 and ok.content == PDF
        assert (await http.get(url)).status_code == 403
        wrong = await http.get(url, headers={"Authorization": "Bearer xoxb-other"})
        assert wrong.status_code == 403
        assert (await http.get(added["url_private"], headers=ok.request.headers)).content == PDF
    assert [c.token for c in fake.calls("download")][:2] == [fake.token, None]


async def test_failures_unknown_methods_and_rate_limits(
    fake: SlackFake, client: AsyncWebClient
) -> None:
    fake.fail_next("chat.postMessage", "channel_not_found")
    with pytest.raises(SlackApiError, match="channel_not_found"):
        await client.chat_postMessage(channel="C0CHAN", text="x")
    assert (await client.chat_postMessage(channel="C0CHAN", text="x"))["ok"]  # once only
    with pytest.raises(SlackApiError) as raised:
        await client.api_call("chat.nonsense")
    assert raised.value.response["error"] == "unknown_method"
    fake.rate_limit_next("chat.update", retry_after=7)
    with pytest.raises(SlackApiError) as raised:
        await client.chat_update(channel="C0CHAN", ts="1.2", text="x")
    assert raised.value.response.status_code == 429
    assert raised.value.response.headers["Retry-After"] in ("7", ["7"])
    patient = AsyncWebClient(token=fake.token, base_url=fake.base_url)
    patient.retry_handlers.append(AsyncRateLimitErrorRetryHandler(max_retry_count=1))
    fake.rate_limit_next("auth.test", retry_after=0)
    assert (await patient.auth_test())["ok"]
    assert len(fake.calls("auth.test")) == 2


async def test_form_and_json_bodies_read_alike(fake: SlackFake, client: AsyncWebClient) -> None:
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "x"}}]
    await client.api_call("chat.postMessage", data={"channel": "C1", "blocks": json.dumps(blocks)})
    form = fake.last("chat.postMessage")
    await client.api_call("chat.postMessage", json={"channel": "C1", "blocks": blocks})
    body = fake.last("chat.postMessage")
    assert form["blocks"] == body["blocks"] == blocks
    assert "form" in form.content_type and "json" in body.content_type


async def test_response_urls_are_recorded(fake: SlackFake) -> None:
    url = fake.response_url("cmd-1")
    async with httpx.AsyncClient() as http:
        await http.post(url, json={"response_type": "ephemeral", "text": "hi"})
    call = fake.last("response_url")
    assert (call["_name"], call["text"]) == ("cmd-1", "hi")


def test_wait_for_sees_calls_from_other_threads(fake: SlackFake) -> None:
    def later() -> None:
        time.sleep(0.1)
        httpx.post(
            fake.base_url + "chat.postMessage",
            data={"channel": "C9", "text": "late"},
            headers={"Authorization": f"Bearer {fake.token}"},
        )

    threading.Thread(target=later).start()
    call = fake.wait_for("chat.postMessage", lambda c: c["channel"] == "C9", timeout=5)
    assert call["text"] == "late"
    with pytest.raises(AssertionError, match="no matching"):
        fake.wait_for("views.open", timeout=0.05)
    with pytest.raises(AssertionError, match=r"no views\.open call"):
        fake.last("views.open")
    fake.reset()
    assert fake.calls() == []


# --- signed requests ------------------------------------------------------------------------
VERIFIER = SignatureVerifier(sr.SIGNING_SECRET)
BUILT = {
    "slash_command": lambda: sr.slash_command("status 12", user_id="U0ANN"),
    "block_actions": lambda: sr.block_actions(sr.button_click(ids.REMIND_ACTION, "r1")),
    "view_submission": lambda: sr.view_submission(views.reject_modal("r1"), "U0ANN", {}),
    "event_callback": lambda: sr.event_callback({"type": "app_home_opened", "user": "U0ANN"}),
    "url_verification": lambda: sr.url_verification("challenge-123"),
}


@pytest.mark.parametrize("build", BUILT.values(), ids=BUILT.keys())
def test_builders_sign_like_slack(build) -> None:
    body, headers = build()
    assert VERIFIER.is_valid_request(body, headers)
    for how in ("secret", "stale", "missing", "body"):
        forged_body, forged_headers = sr.forge((body, headers), how)
        assert not VERIFIER.is_valid_request(forged_body, forged_headers), how


def test_slash_command_body_is_slacks_form() -> None:
    body, headers = sr.slash_command("nda", user_id="U0ANN", channel_id="C0X", trigger_id="t.1")
    fields = {k: v[0] for k, v in parse_qs(body.decode(), keep_blank_values=True).items()}
    assert headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert fields["command"] == "/sign" and fields["text"] == "nda"
    assert (fields["user_id"], fields["channel_id"], fields["trigger_id"]) == (
        "U0ANN",
        "C0X",
        "t.1",
    )
    assert {"team_id", "response_url", "api_app_id", "user_name"} <= fields.keys()


def test_view_submission_carries_state_and_metadata() -> None:
    modal = views.sign_modal(views.ModalForm(channel_id="C0CHAN", response_url="https://r"))
    answers = {"subject": "Contract", "members": ["U0ANN"], "file": [{"id": "F1", "name": "a.pdf"}]}
    body, _ = sr.view_submission(modal, "U0REQ", answers)
    payload = json.loads(parse_qs(body.decode())["payload"][0])
    assert payload["type"] == "view_submission" and payload["user"]["id"] == "U0REQ"
    view = payload["view"]
    assert view["callback_id"] == ids.SIGN_CALLBACK
    submission, errors = parse_submission(
        view["state"]["values"], view["private_metadata"], "U0REQ"
    )
    assert errors == {} and submission is not None
    assert submission.members == ("U0ANN",) and submission.metadata.response_url == "https://r"


async def test_bolt_accepts_built_requests_and_refuses_forged_ones(fake: SlackFake) -> None:
    """A real AsyncApp on the fake: signatures verified, lazy auth.test answered, the modal
    opened, re-rendered when a template is chosen, its submission answered inline."""
    app = AsyncApp(
        signing_secret=sr.SIGNING_SECRET,
        client=AsyncWebClient(token=fake.token, base_url=fake.base_url),
    )

    @app.command("/sign")
    async def open_modal(ack, body, client) -> None:  # type: ignore[no-untyped-def]
        await ack()
        form = views.ModalForm(channel_id=body["channel_id"])
        await client.views_open(trigger_id=body["trigger_id"], view=views.sign_modal(form))

    @app.view(ids.SIGN_CALLBACK)
    async def submitted(ack, view, body) -> None:  # type: ignore[no-untyped-def]
        _, errors = parse_submission(view["state"]["values"], view["private_metadata"])
        await ack(response_action="errors", errors=errors) if errors else await ack()

    def bolt(request: sr.Request) -> AsyncBoltRequest:
        return AsyncBoltRequest(body=request[0].decode(), headers=request[1])

    command = sr.slash_command("", trigger_id="77.88.99")
    assert (await app.async_dispatch(bolt(sr.forge(command, "stale")))).status == 401
    assert (await app.async_dispatch(bolt(sr.forge(command, "secret")))).status == 401
    assert (await app.async_dispatch(bolt(command))).status == 200
    opened = await fake.async_wait_for("views.open")
    assert opened["trigger_id"] == "77.88.99"
    assert fake.calls("auth.test")
    opened_id = next(iter(fake.views))

    @app.action(ids.TEMPLATE)
    async def template_chosen(ack, body, client) -> None:  # type: ignore[no-untyped-def]
        await ack()
        chosen = body["actions"][0]["selected_option"]["value"]
        form = views.ModalForm(templates=(NDA,), template_id=chosen, channel_id="C0CHAN")
        await client.views_update(
            view_id=body["view"]["id"], hash=body["view"]["hash"], view=views.sign_modal(form)
        )

    first = views.sign_modal(views.ModalForm(templates=(NDA,), channel_id="C0CHAN"))
    shown = (await app.client.views_update(view_id=opened_id, view=first))["view"]
    select = sr.select_in_view(shown, ids.TEMPLATE, ids.TEMPLATE, "tpl_nda")
    assert (await app.async_dispatch(bolt(sr.block_actions(select)))).status == 200
    update = await fake.async_wait_for("views.update", lambda c: c.get("hash") is not None)
    assert "role_user.tpl_nda.0" in {b.get("block_id") for b in update["view"]["blocks"]}
    modal = fake.views[opened_id]
    answer = await app.async_dispatch(bolt(sr.view_submission(modal, "U0REQ", {})))
    assert answer.status == 200
    errors = json.loads(answer.body)["errors"]
    assert set(errors) == {"role_user.tpl_nda.0"}  # subject prefilled; the role is empty
