"""The ``signbot`` command: serve, demo, verify, accounts, keys, workspaces, db.

Every command works on the same data dir and database as the server (one ``Settings``). Errors
are one readable line on stderr and a non-zero exit code, never a traceback.
"""

from __future__ import annotations

import gc
import logging
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from sqlmodel import Session

from bot.config import Settings
from bot.db import Database, check_reachable
from bot.errors import SignbotError

T = TypeVar("T")

#: How ``serve`` runs uvicorn (bench/ serves its baselines the same way). The plain asyncio
#: loop, not uvloop: under saturation uvloop kept accepting new connections ahead of the ones
#: being served, and p99 latency grew to ~0.5 s for a 1.5 ms handler (bench/api.py); asyncio's
#: loop held it near 70 ms for ~5 % less peak throughput.
SERVE_OPTIONS: dict[str, Any] = {
    "log_config": None,
    "proxy_headers": True,
    "timeout_graceful_shutdown": 20,
    "loop": "asyncio",
    # bot.web.requestid writes the access line (request id, route, token redacted)
    "access_log": False,
}


def _settings(**overrides: Any) -> Settings:
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except Exception as exc:  # pydantic's ValidationError: a bad SIGNBOT_* variable
        raise click.ClickException(f"invalid configuration: {exc}") from None


def _database(settings: Settings) -> Database:
    """The migrated database, or a clear error when it cannot be reached."""
    from bot import migrations

    try:
        db = Database(settings.effective_database_url)
    except Exception as exc:
        raise click.ClickException(f"invalid database URL: {exc}") from None
    problem = check_reachable(db)
    if problem is not None:
        url = db.url.render_as_string(hide_password=True)
        raise click.ClickException(f"cannot reach the database at {url}: {problem}")
    migrations.upgrade(db)
    return db


def _run(db: Database, fn: Callable[[Session], T]) -> T:
    try:
        return db.run_sync(fn)
    except SignbotError as exc:
        raise click.ClickException(exc.message) from None


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="signbot")
def main() -> None:
    """signbot: e-signature for teams that live in Slack (Certyneo-compatible API)."""


@main.command()
@click.option("--host", default=None, help="Interface to listen on (default 127.0.0.1).")
@click.option("--port", default=None, type=click.IntRange(1, 65535), help="Default 8000.")
@click.option(
    "--role",
    type=click.Choice(["all", "api", "worker"]),
    default=None,
    help="all: API and background work; api: web only; worker: background work only.",
)
def serve(host: str | None, port: int | None, role: str | None) -> None:
    """Migrate the database, then serve the API, signer pages and the Slack bot."""
    import uvicorn

    from bot import logs
    from bot.app import create_app
    from bot.signing.certs import SealIdentityError
    from bot.signing.shared_identity import load_shared_identity

    settings = _settings(host=host, port=port, role=role)
    logs.configure(settings.log_level, settings.log_format)  # before migrations log anything
    db = _database(settings)
    if settings.role != "api":  # the worker seals: a broken certificate stops it here, clearly
        try:
            load_shared_identity(
                db, settings.data_dir, settings.seal_p12, settings.seal_p12_password
            )
        except SealIdentityError as exc:
            raise click.ClickException(str(exc)) from None
    app = create_app(settings, db)
    # Everything built so far (framework, models, compiled statements) lives as long as the
    # process: move it out of the collector's sight, so collections scan only request garbage.
    gc.collect()
    gc.freeze()
    logging.getLogger("signbot").info(
        "signbot serving on %s (data in %s, role %s)",
        settings.effective_public_url,
        settings.data_dir.resolve(),
        settings.role,
    )
    # uvicorn handles SIGTERM/SIGINT (stop taking connections, finish those in flight, run the
    # shutdown that hands unfinished background work back), then re-raises the signal with the
    # handlers it found. Finding these, the process ends normally: a graceful stop exits 0.
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: None)
    uvicorn.run(app, host=settings.host, port=settings.port, **SERVE_OPTIONS)


@main.command()
@click.option("--port", default=None, type=click.IntRange(1, 65535), help="Default 8000.")
@click.option("--no-serve", is_flag=True, help="Print the links and exit instead of serving.")
def demo(port: int | None, no_serve: bool) -> None:
    """Send a sample envelope to two made-up people and print their sign links.

    Works on a fresh data dir with nothing configured: it serves the app, provisions a
    sandbox key, sends through the API, and keeps serving so the links open in a browser."""
    import threading

    import uvicorn

    from bot import demo as sample
    from bot import logs
    from bot.app import create_app
    from bot.signing.certs import SealIdentityError
    from bot.signing.shared_identity import load_shared_identity

    settings = _settings(port=port)
    db = _database(settings)
    logs.configure("warning", settings.log_format)
    try:
        load_shared_identity(db, settings.data_dir, settings.seal_p12, settings.seal_p12_password)
    except SealIdentityError as exc:
        raise click.ClickException(str(exc)) from None
    app = create_app(settings, db)
    config = uvicorn.Config(
        app, host=settings.host, port=settings.port, log_level="warning", lifespan="on"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = settings.effective_public_url
    try:
        _wait_started(server, thread)
        secret = sample.provision_key(db)
        mail_dir = (settings.data_dir / "mail").resolve()
        envelope_id, invitees = sample.run(base, secret, mail_dir)
    except Exception as exc:
        server.should_exit = True
        raise click.ClickException(f"the demo could not run: {exc}") from None
    click.echo(f"Sample envelope {envelope_id} sent (sandbox: no real email leaves this machine).")
    click.echo(f"Sandbox API key for it: {secret}\n")
    for number, person in enumerate(invitees, start=1):
        click.echo(f"{number}. {person.name} <{person.email}> signs at:\n   {person.sign_url}")
        if person.email_file is not None:
            click.echo(f"   invitation email: {person.email_file}")
        else:
            click.echo("   (invited by email once the previous signer has signed)")
    click.echo(f"\nEmails are written to {mail_dir}")
    click.echo(
        f"When both have signed: GET {base}/api/v1/envelopes/{envelope_id}/signed-document "
        "and /audit-trail with the key above."
    )
    if no_serve:
        server.should_exit = True
        thread.join(timeout=30)
        return
    click.echo(f"\nServing on {base}; press Ctrl-C to stop.")
    try:
        thread.join()
    except KeyboardInterrupt:
        server.should_exit = True
        thread.join(timeout=30)


def _wait_started(server: Any, thread: Any, timeout: float = 30.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("the server stopped while starting (is the port in use?)")
        if time.monotonic() > deadline:
            raise RuntimeError("the server did not start in time")
        time.sleep(0.05)


@main.command()
@click.argument("file", type=click.Path(path_type=Path))
@click.option(
    "--root",
    "roots",
    multiple=True,
    type=click.Path(path_type=Path),
    help="PEM certificate to trust (repeatable). Default: this deployment's root.",
)
def verify(file: Path, roots: tuple[Path, ...]) -> None:
    """Check a sealed PDF (signed document or audit trail): each signature's signer, time,
    integrity and trust, and an audit trail's hash chain. Exit code 0 only if all is valid."""
    from bot.signing import verify as checker

    trusted = list(roots)
    if not trusted:
        settings = _settings()
        trusted = [settings.data_dir / "seal" / "root.pem"]
    sys.exit(checker.main(file, trusted))


# ------------------------------------------------------------------ accounts


@main.group()
def accounts() -> None:
    """Tenants."""


@accounts.command("create")
@click.argument("name")
@click.option("--email", default=None, help="Contact address shown by GET /account/me.")
def accounts_create(name: str, email: str | None) -> None:
    """Create an account and print its id."""
    from bot.accounts import service

    db = _database(_settings())
    account = _run(db, lambda s: service.create_account(s, name, email))
    click.echo(account.id)


@accounts.command("list")
def accounts_list() -> None:
    """Accounts, oldest first."""
    from bot.accounts import service

    db = _database(_settings())
    for account in _run(db, service.list_accounts):
        click.echo(f"{account.id}\t{account.name}\t{account.email or ''}")


# ------------------------------------------------------------------ keys


@main.group()
def keys() -> None:
    """API keys."""


@keys.command("create")
@click.option(
    "--account", "account_ref", default=None, help="Account id or name (default: default)."
)
@click.option("--env", "environment", type=click.Choice(["test", "live"]), default="test")
@click.option("--name", default="", help="A label to recognise the key by.")
@click.option(
    "--scopes",
    default=None,
    help="Comma-separated: envelopes:read,envelopes:write,webhooks:write,keys:write (default all).",
)
def keys_create(account_ref: str | None, environment: str, name: str, scopes: str | None) -> None:
    """Create a key; its secret is printed alone on the last line (shown only once)."""
    from bot.accounts import service

    db = _database(_settings())

    def work(session: Session) -> service.NewKey:
        account = (
            service.find_account(session, account_ref)
            if account_ref
            else service.default_account(session)
        )
        return service.create_key(
            session, account.id, environment, name, service.parse_scopes(scopes)
        )

    new = _run(db, work)
    click.echo(f"Created {environment} key {new.key.id} ({' '.join(new.key.scopes.split())}).")
    click.echo("The secret below is shown only once:")
    click.echo(new.secret)


@keys.command("list")
@click.option("--account", "account_ref", default=None, help="Account id or name (default: all).")
def keys_list(account_ref: str | None) -> None:
    """Keys (never their secrets)."""
    from bot.accounts import service
    from bot.timeutil import iso

    db = _database(_settings())

    def work(session: Session) -> list[Any]:
        account_id = service.find_account(session, account_ref).id if account_ref else None
        return service.list_keys(session, account_id)[0]

    for key in _run(db, work):
        state = f"revoked {iso(key.revoked_at)}" if key.revoked_at else "active"
        click.echo(f"{key.id}\t{key.environment}\t{key.prefix}…{key.last4}\t{key.name}\t{state}")


@keys.command("revoke")
@click.argument("key_id")
def keys_revoke(key_id: str) -> None:
    """Revoke a key: refused from the next request on (within 1 s on running servers)."""
    from bot.accounts import service

    db = _database(_settings())
    _run(db, lambda s: service.revoke_key(s, key_id))
    click.echo(f"Revoked {key_id}")


# ------------------------------------------------------------------ workspaces


@main.group()
def workspaces() -> None:
    """Workspaces inside an account."""


@workspaces.command("create")
@click.argument("name")
@click.option(
    "--account", "account_ref", default=None, help="Account id or name (default: default)."
)
def workspaces_create(name: str, account_ref: str | None) -> None:
    """Create a workspace and print its id."""
    from bot.accounts import service

    db = _database(_settings())

    def work(session: Session) -> Any:
        account = (
            service.find_account(session, account_ref)
            if account_ref
            else service.default_account(session)
        )
        return service.create_workspace(session, account.id, name)

    click.echo(_run(db, work).id)


@workspaces.command("list")
@click.option(
    "--account", "account_ref", default=None, help="Account id or name (default: default)."
)
def workspaces_list(account_ref: str | None) -> None:
    from bot.accounts import service

    db = _database(_settings())

    def work(session: Session) -> list[Any]:
        account = (
            service.find_account(session, account_ref)
            if account_ref
            else service.default_account(session)
        )
        return service.list_workspaces(session, account.id)

    for ws in _run(db, work):
        click.echo(f"{ws.id}\t{ws.slug}\t{ws.name}")


# ------------------------------------------------------------------ db


@main.group("db")
def db_group() -> None:
    """Schema migrations (serve and every command upgrade on their own)."""


def _migrate(step: Callable[[Database], None], revision: str) -> None:
    settings = _settings()
    db = Database(settings.effective_database_url)
    problem = check_reachable(db)
    if problem:
        raise click.ClickException(f"cannot reach the database: {problem}")
    step(db)
    click.echo(f"database at {revision}")


@db_group.command("upgrade")
@click.argument("revision", default="head")
def db_upgrade(revision: str) -> None:
    """Upgrade the schema (to the newest revision by default)."""
    from bot import migrations

    _migrate(lambda db: migrations.upgrade(db, revision), revision)


@db_group.command("downgrade")
@click.argument("revision")
def db_downgrade(revision: str) -> None:
    """Downgrade the schema to REVISION (``base`` empties the database)."""
    from bot import migrations

    _migrate(lambda db: migrations.downgrade(db, revision), revision)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())


@main.group()
def slack() -> None:
    """The Slack bot."""


@slack.command("socket")
@click.option("--port", default=None, type=click.IntRange(1, 65535), help="Default 8000.")
def slack_socket(port: int | None) -> None:
    """Run everything with Slack over Socket Mode (local development: no public URL needed
    for Slack; signer pages and the webhook route are still served on --port)."""
    import asyncio

    import uvicorn

    from bot import logs
    from bot.app import create_app

    settings = _settings(port=port)
    if not settings.slack_app_token:
        raise click.ClickException(
            "Socket Mode needs SLACK_APP_TOKEN (an xapp-… app-level token with "
            "connections:write), besides SLACK_SIGNING_SECRET and SLACK_BOT_TOKEN"
        )
    db = _database(settings)
    logs.configure(settings.log_level, settings.log_format)
    app = create_app(settings, db)
    bot = app.state.slack
    if bot is None:
        raise click.ClickException("set SLACK_SIGNING_SECRET and SLACK_BOT_TOKEN as well")

    async def run() -> None:
        from slack_bolt.adapter.socket_mode.websockets import AsyncSocketModeHandler

        handler = AsyncSocketModeHandler(bot.app, settings.slack_app_token)
        options = {k: v for k, v in SERVE_OPTIONS.items() if k != "loop"}
        server = uvicorn.Server(
            uvicorn.Config(app, host=settings.host, port=settings.port, **options)
        )
        await asyncio.gather(server.serve(), handler.start_async())

    click.echo(f"signbot with Slack over Socket Mode; pages on {settings.effective_public_url}")
    asyncio.run(run())


def _attach_templates() -> None:
    from bot.templates.cli import templates

    main.add_command(templates)


_attach_templates()
