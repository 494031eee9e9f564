"""Every table, imported in one place so metadata (Alembic, tests) sees them all."""

from bot.accounts.models import Account, ApiKey, Workspace
from bot.deployment import DeploymentSetting
from bot.documents.models import Document
from bot.envelopes.models import (
    AuditEvent,
    Envelope,
    EnvelopeDocument,
    EnvelopeField,
    FieldValue,
    Recipient,
    Signature,
)
from bot.jobs.models import OutboxEvent, Task
from bot.slack.models import (
    BotSetting,
    SeenDelivery,
    SignRequest,
    SlackInstallation,
    SlackOAuthState,
)
from bot.web.idempotency import IdempotencyRecord
from bot.webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint

__all__ = [
    "Account",
    "ApiKey",
    "AuditEvent",
    "BotSetting",
    "DeploymentSetting",
    "Document",
    "Envelope",
    "EnvelopeDocument",
    "EnvelopeField",
    "FieldValue",
    "IdempotencyRecord",
    "OutboxEvent",
    "Recipient",
    "SeenDelivery",
    "SignRequest",
    "Signature",
    "SlackInstallation",
    "SlackOAuthState",
    "Task",
    "WebhookAttempt",
    "WebhookDelivery",
    "WebhookEndpoint",
    "Workspace",
]
