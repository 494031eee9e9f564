"""Every table, imported in one place so metadata (Alembic, tests) sees them all."""

from bot.accounts.models import Account, ApiKey, Workspace
from bot.deployment import DeploymentSetting
from bot.documents.models import Document
from bot.envelopes.models import Envelope, EnvelopeDocument, EnvelopeField, Recipient
from bot.jobs.models import OutboxEvent
from bot.web.idempotency import IdempotencyRecord
from bot.webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint

__all__ = [
    "Account",
    "ApiKey",
    "DeploymentSetting",
    "Document",
    "Envelope",
    "EnvelopeDocument",
    "EnvelopeField",
    "IdempotencyRecord",
    "OutboxEvent",
    "Recipient",
    "WebhookAttempt",
    "WebhookDelivery",
    "WebhookEndpoint",
    "Workspace",
]
