"""``signbot templates``: check a templates folder the way the server would load it.

``check`` prints one ``path:line: message`` line per problem on stdout (the form editors and
CI annotate), a one-line summary on stderr, and exits 1 when anything is wrong — the same
code as the server's loading, so a folder that passes is a folder the server serves whole.
"""

from __future__ import annotations

from pathlib import Path

import click

from bot.templates.registry import Registry, check, template_files


def _folder(given: Path | None) -> Path:
    """The folder given, else ``SIGNBOT_TEMPLATES_DIR`` (default ``./templates``)."""
    if given is not None:
        return given
    from bot.config import Settings

    try:
        return Settings().templates_dir
    except Exception as exc:  # pydantic's ValidationError: a bad SIGNBOT_* variable
        raise click.ClickException(f"invalid configuration: {exc}") from None


@click.group()
def templates() -> None:
    """Document templates: templates/NAME.pdf + templates/NAME.yaml."""


@templates.command("check")
@click.argument("folder", required=False, type=click.Path(path_type=Path))
def check_command(folder: Path | None) -> None:
    """Validate every *.yaml of FOLDER (default: SIGNBOT_TEMPLATES_DIR or ./templates).

    Exit code 0 when all are valid, 1 otherwise."""
    folder = _folder(folder)
    errors = check(folder)
    for error in errors:
        click.echo(str(error))
    count = len(template_files(folder)) if folder.is_dir() else 0
    if errors:
        broken = len({e.path for e in errors})
        click.echo(
            f"{len(errors)} error{'s' if len(errors) != 1 else ''} in {broken} of "
            f"{count} template{'s' if count != 1 else ''}",
            err=True,
        )
        raise SystemExit(1)
    click.echo(f"{count} template{'s' if count != 1 else ''} valid in {folder}", err=True)


@templates.command("list")
@click.argument("folder", required=False, type=click.Path(path_type=Path))
def list_command(folder: Path | None) -> None:
    """The valid templates of FOLDER: id, name and roles (refused ones are left out)."""
    registry = Registry.load(_folder(folder))
    for template in registry.all():
        roles = ", ".join(f"{r.name} ({r.role})" for r in template.roles)
        click.echo(f"{template.id}\t{template.name}\t{roles}")
    if registry.errors:
        click.echo(
            f"{len({e.path for e in registry.errors})} refused: run 'signbot templates check'",
            err=True,
        )
