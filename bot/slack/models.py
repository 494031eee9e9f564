"""The bot's own tables: its requests, the webhook deliveries it has seen, its settings, and
the workspaces that installed it by OAuth.

The bot is a client of the signing service: nothing here points at the service's tables.
A request row is what the bot knows about one `/sign`: where it was asked, where its status
message is, who asked, which envelope it became, and its reminder state.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, Index, UniqueConstraint
from sqlalchemy import true as sa_true
from sqlmodel import Field, SQLModel

from bot.timeutil import utcnow


class SignRequest(SQLModel, table=True):
    __tablename__ = "slack_requests"
    __table_args__ = (
        UniqueConstraint("team_id", "number", name="uq_slack_requests_team_number"),
        Index("ix_slack_requests_envelope", "envelope_id"),
        Index("ix_slack_requests_requester", "team_id", "requester_id"),
        Index("ix_slack_requests_next_reminder", "next_reminder_at"),
    )

    id: str = Field(primary_key=True, max_length=40)
    team_id: str = Field(max_length=32)
    number: int
    """The short number shown in Slack (``#12``), per workspace."""
    channel_id: str = Field(max_length=32)
    message_ts: str | None = Field(default=None, max_length=32)
    """The status message in ``channel_id``; updated in place as the request moves."""
    requester_id: str = Field(max_length=32)
    subject: str = Field(max_length=255)
    template_id: str | None = Field(default=None, max_length=80)
    envelope_id: str | None = Field(default=None, max_length=64)
    status: str = Field(default="CREATING", max_length=24)
    """CREATING, AWAITING_APPROVAL, REJECTED, then the envelope's status (SENT … COMPLETED);
    FAILED when the provider refused and nothing was sent."""
    recipients: list[dict[str, Any]] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False)
    )
    """``[{name, email, slack_user_id, role, status}]`` as last heard from the provider."""
    approver_id: str | None = Field(default=None, max_length=32)
    decided_at: datetime | None = None
    decision_reason: str | None = Field(default=None, max_length=1000)
    reminder_interval_days: int = 0
    reminder_max_count: int = 0
    reminders_sent: int = 0
    next_reminder_at: datetime | None = None
    expires_at: datetime | None = None
    error: str | None = Field(default=None, max_length=1000)
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class SeenDelivery(SQLModel, table=True):
    """Webhook deliveries handled, or being handled, by event id: a redelivery of a handled
    one changes nothing; one being handled elsewhere waits; one whose handler died (its
    claim ran out) is handled again."""

    __tablename__ = "slack_seen_deliveries"

    event_id: str = Field(primary_key=True, max_length=64)
    seen_at: datetime = Field(default_factory=utcnow, index=True)
    done: bool = Field(default=False, sa_column_kwargs={"server_default": sa_true()})
    """The event was absorbed and its Slack posts queued (as tasks, in the same transaction)."""
    claim: str | None = Field(default=None, max_length=32)
    """While not done: the attempt handling it (only that attempt may finish or release it)."""
    claimed_until: datetime | None = None
    """While not done: until when that attempt holds it (renewed while it works)."""


class BotSetting(SQLModel, table=True):
    """Values every replica of the bot shares: the provider key and webhook secret (sealed)."""

    __tablename__ = "slack_settings"

    key: str = Field(primary_key=True, max_length=64)
    value: str = Field(max_length=4096)


class SlackInstallation(SQLModel, table=True):
    """A workspace that installed signbot by OAuth (many-workspace mode), one row per workspace:
    a reinstall replaces the row's token and clears ``revoked_at``."""

    __tablename__ = "slack_installations"

    team_id: str = Field(primary_key=True, max_length=32)
    enterprise_id: str | None = Field(default=None, max_length=32)
    """The Enterprise Grid organization of the workspace, when it belongs to one."""
    team_name: str | None = Field(default=None, max_length=255)
    app_id: str | None = Field(default=None, max_length=32)
    bot_token_sealed: str = Field(max_length=1024)
    """The ``xoxb-…`` token, sealed with the deployment's secret (never stored in clear)."""
    bot_user_id: str = Field(max_length=32)
    bot_id: str | None = Field(default=None, max_length=32)
    scopes: str = Field(default="", max_length=2000)
    """The bot scopes Slack granted, comma-separated as ``oauth.v2.access`` gives them."""
    installer_user_id: str | None = Field(default=None, max_length=32)
    installed_at: datetime = Field(default_factory=utcnow)
    """The last (re)install."""
    revoked_at: datetime | None = None
    """Set by ``app_uninstalled`` / ``tokens_revoked`` (bot): no token is handed out while set."""


class SlackOAuthState(SQLModel, table=True):
    """An OAuth ``state`` issued by ``/slack/install``, consumed once by the redirect."""

    __tablename__ = "slack_oauth_states"

    state: str = Field(primary_key=True, max_length=64)
    expires_at: datetime = Field(index=True)
