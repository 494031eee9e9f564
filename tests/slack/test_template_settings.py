"""A template's ``bot:`` block: read from the templates folder, names looked up in Slack
(the fake Web API), and proposed in the modal's role slots and approver."""

from __future__ import annotations

import asyncio
from pathlib import Path

from slack_sdk.web.async_client import AsyncWebClient

from bot.slack import template_settings, views
from tests.support.slack_fake import slack_fake


def test_bot_block_is_read_and_resolved(tmp_path: Path) -> None:
    (tmp_path / "nda.yaml").write_text(
        "name: NDA\nbot:\n  channel: C0LEGAL01\n  approver: jane@acme.example\n"
        "  members: [U0ADA0001, nobody@acme.example]\n",
        encoding="utf-8",
    )
    (tmp_path / "plain.yaml").write_text("name: Plain\n", encoding="utf-8")
    defaults = template_settings.read(tmp_path, "tpl_nda")
    assert defaults.channel == "C0LEGAL01" and defaults.approver == "jane@acme.example"
    assert template_settings.read(tmp_path, "tpl_plain") == template_settings.BotDefaults()
    assert template_settings.read(tmp_path, "tpl_../etc") == template_settings.BotDefaults()
    assert template_settings.read(None, "tpl_nda") == template_settings.BotDefaults()

    with slack_fake() as fake:
        fake.add_user("U0JANE001", "jane", email="jane@acme.example")

        async def run() -> template_settings.Resolved:
            client = AsyncWebClient(token="xoxb-test-token", base_url=fake.base_url)
            return await template_settings.resolve(client, defaults)

        found = asyncio.run(run())
    assert found.approver == "U0JANE001" and found.channel == "C0LEGAL01"
    assert found.members == ("U0ADA0001", None)  # the unknown address is left to the requester


def test_modal_proposes_the_defaults() -> None:
    nda = views.TemplateChoice(
        "tpl_nda", "NDA", roles=(views.TemplateRole("Company"), views.TemplateRole("Other"))
    )
    form = views.ModalForm(
        templates=(nda,),
        template_id="tpl_nda",
        members=("U0ADA0001", None),
        approver_id="U0JANE001",
    )
    blocks = {b.get("block_id"): b for b in views.sign_modal(form)["blocks"]}
    assert blocks["role_user.tpl_nda.0"]["element"]["initial_user"] == "U0ADA0001"
    assert "initial_user" not in blocks["role_user.tpl_nda.1"]["element"]
    assert blocks["approver"]["element"]["initial_user"] == "U0JANE001"
