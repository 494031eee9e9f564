"""Settings: the only reader of the environment.

One ``Settings`` object is built at the edge (CLI, tests) and passed explicitly into factories;
nothing else reads ``os.environ``. Variables carry the ``SIGNBOT_`` prefix; Slack's own names
(``SLACK_*``) are kept as Slack documents them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Deployment configuration, with embedded defaults that need no setup at all."""

    model_config = SettingsConfigDict(env_prefix="SIGNBOT_", extra="ignore")

    data_dir: Path = Path("./signbot-data")
    """Everything the embedded defaults keep: SQLite database, files, certificates, mail."""
    database_url: str | None = None
    """SQLAlchemy URL; default ``sqlite:///{data_dir}/signbot.db``."""
    public_url: str | None = None
    """Base URL that signers and webhooks see; default follows ``--host``/``--port``."""
    max_upload_mb: int = Field(default=50, ge=1, le=1024)
    """Largest accepted document, in MiB of the decoded file."""
    redis_url: str | None = None
    """When set, rate limits are shared by every replica through Redis."""
    rate_limit_enabled: bool = True
    secret_key: str | None = None
    """Deployment secret for derived signing tokens; generated and kept in the database if unset."""
    storage_url: str | None = None
    """Where documents live; default ``file://{data_dir}/files``; ``s3://bucket/prefix`` for
    S3-compatible object storage (the ``s3_*`` settings below say how to reach it)."""
    s3_endpoint_url: str | None = None
    """An S3-compatible service (MinIO, Ceph, moto…), e.g. ``http://minio:9000``; unset: AWS."""
    s3_region: str = "us-east-1"
    s3_access_key_id: str | None = None
    """With ``s3_secret_access_key``; both unset: boto3's own credential chain (``AWS_*``
    variables, shared config files, instance or task role)."""
    s3_secret_access_key: str | None = Field(default=None, repr=False)
    s3_path_style: bool | None = None
    """Path-style addressing (``host/bucket/key``); unset: path-style when
    ``s3_endpoint_url`` is set, virtual-hosted (``bucket.host/key``) otherwise."""
    templates_dir: Path = Path("./templates")
    jobs_interval_seconds: float = Field(default=1.0, gt=0)
    """How often background work looks for due outbox rows."""
    jobs_lease_seconds: float = Field(default=30.0, ge=1)
    """How long claimed background work (an email, a seal, a webhook pass) stays reserved
    without a sign of life. Running work renews its claim; work of a replica that died is
    taken over by another once this has passed."""
    webhook_retry_base_seconds: float = Field(default=10.0, gt=0)
    """First retry step; attempt n waits base * 6**(n-1), capped at 24 h, with +-20 % jitter."""
    webhook_allow_private: bool = False
    """Lift the SSRF guard (webhooks to loopback/private addresses), for development and tests."""
    webhook_timeout_seconds: float = Field(default=10.0, gt=0)
    seal_p12: Path | None = None
    """PKCS#12 file with the deployment's sealing key and certificate (chain included).
    Unset: a self-signed root and seal certificate are generated under ``{data_dir}/seal``."""
    seal_p12_password: str | None = None
    tsa_url: str | None = None
    """RFC 3161 timestamp authority: seals become PAdES B-T, with validation data (B-LT)."""
    tsa_roots: Path | None = None
    """PEM file of roots the TSA's certificate chains to, when not a public CA's (B-LT checks
    the TSA's chain before embedding its validation data)."""
    smtp_url: str | None = None
    """``smtp://user:pass@host:port`` (STARTTLS when offered; ``?starttls=require``),
    ``smtps://…`` for implicit TLS. Unset: mail is written as ``.eml`` under
    ``{data_dir}/mail``. Sandbox (``sk_test_``) envelopes never use it."""
    smtp_from: str = "signbot@localhost"
    """Envelope sender address; the display name is the account's name."""
    smtp_timeout_seconds: float = Field(default=20.0, gt=0)
    sms_url: str | None = None
    """Twilio-compatible Messages endpoint, credentials in the URL
    (``https://SID:TOKEN@api.twilio.com/2010-04-01/Accounts/SID/Messages.json``).
    Unset: SMS are written under ``{data_dir}/sms``."""
    sms_from: str | None = None
    role: Literal["all", "api", "worker"] = "all"
    host: str = "127.0.0.1"
    port: int = 8000
    log_level: str = "info"
    log_format: Literal["auto", "json", "text"] = "auto"
    """``auto``: one JSON object per line unless stderr is a terminal (then plain text)."""
    metrics_enabled: bool = True
    """``GET /metrics`` (Prometheus, no authentication: keep it off the public internet)."""

    slack_signing_secret: str | None = Field(
        default=None, validation_alias=AliasChoices("SLACK_SIGNING_SECRET")
    )
    slack_bot_token: str | None = Field(
        default=None, validation_alias=AliasChoices("SLACK_BOT_TOKEN")
    )
    """``xoxb-…``: one workspace by token. When set, it wins over the OAuth settings below."""
    slack_client_id: str | None = Field(
        default=None, validation_alias=AliasChoices("SLACK_CLIENT_ID")
    )
    """With ``SLACK_CLIENT_SECRET`` (and no bot token): many workspaces, installed by OAuth at
    ``{PUBLIC_URL}/slack/install``; their tokens are kept sealed in the database."""
    slack_client_secret: str | None = Field(
        default=None, validation_alias=AliasChoices("SLACK_CLIENT_SECRET")
    )
    slack_scopes: str = Field(
        default=(
            "chat:write,chat:write.public,commands,files:read,files:write,im:write,"
            "users:read,users:read.email,channels:read,groups:read"
        ),
        validation_alias=AliasChoices("SLACK_SCOPES"),
    )
    """Bot scopes an OAuth install asks for, comma-separated (``slack-manifest.yml``'s)."""
    provider_url: str | None = None
    """The Certyneo-compatible API the bot uses; default: this deployment's own."""
    provider_key: str | None = None
    """Its API key; default: a live key of the default account, made at first start."""
    slack_app_token: str | None = Field(
        default=None, validation_alias=AliasChoices("SLACK_APP_TOKEN")
    )
    """``xapp-…``: Socket Mode for local development (``signbot slack socket``)."""
    slack_api_url: str = Field(
        default="https://slack.com/api/", validation_alias=AliasChoices("SLACK_API_URL")
    )

    @field_validator("public_url")
    @classmethod
    def _strip_slash(cls, value: str | None) -> str | None:
        return value.rstrip("/") if value else value

    @property
    def effective_public_url(self) -> str:
        """``SIGNBOT_PUBLIC_URL``, or the address ``serve`` listens on."""
        if self.public_url:
            return self.public_url
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host  # noqa: S104
        return f"http://{host}:{self.port}"

    @property
    def slack_scope_list(self) -> list[str]:
        return [s.strip() for s in self.slack_scopes.split(",") if s.strip()]

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'signbot.db').resolve()}"

    @property
    def max_upload_bytes(self) -> int:
        """The limit in bytes: 50 MB means 50 * 2**20 bytes."""
        return self.max_upload_mb * 1024 * 1024

    @property
    def storage_root(self) -> Path:
        return (self.data_dir / "files").resolve()
