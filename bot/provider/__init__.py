"""Async client for any Certyneo-compatible API: the only way the bot reaches the service.

It imports only the standard library, httpx, pydantic and ``bot.errors``, so it works the same
against signbot's embedded service, another signbot deployment or the hosted Certyneo.

* :class:`ProviderClient` (``client.py``): templates, documents, envelopes, webhooks, with
  retries and errors a Slack user can read; :meth:`ProviderClient.capabilities` says which
  signbot extensions (void, remind, template detail, secret rotation) the provider has.
* ``models.py``: tolerant pydantic models of the answers, and :class:`CreateEnvelope`.
* ``errors.py``: the error tree (documented there).
* ``webhooks.py``: :func:`verify` for the bot's webhook receiver.
"""

from bot.provider.capabilities import Capabilities
from bot.provider.client import ProviderClient
from bot.provider.errors import (
    NotSupported,
    ProviderAuthError,
    ProviderConflict,
    ProviderError,
    ProviderNotFound,
    ProviderRejected,
    ProviderUnavailable,
    RateLimited,
)
from bot.provider.models import (
    CreateEnvelope,
    Document,
    Envelope,
    NewField,
    NewRecipient,
    Page,
    Recipient,
    Reminded,
    Template,
    WebhookSubscription,
)
from bot.provider.webhooks import WebhookSignatureError, verify

__all__ = [
    "Capabilities",
    "CreateEnvelope",
    "Document",
    "Envelope",
    "NewField",
    "NewRecipient",
    "NotSupported",
    "Page",
    "ProviderAuthError",
    "ProviderClient",
    "ProviderConflict",
    "ProviderError",
    "ProviderNotFound",
    "ProviderRejected",
    "ProviderUnavailable",
    "RateLimited",
    "Recipient",
    "Reminded",
    "Template",
    "WebhookSignatureError",
    "WebhookSubscription",
    "verify",
]
