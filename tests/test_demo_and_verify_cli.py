"""``signbot demo`` on a fresh data dir, and ``signbot verify``'s answers for bad input."""

from __future__ import annotations

import re
from pathlib import Path

from tests.support.servers import cli, free_port


def test_demo_sends_a_sample_and_prints_working_links(data_dir: Path) -> None:
    result = cli(data_dir, "demo", "--no-serve", "--port", str(free_port()))
    assert result.returncode == 0, result.stderr
    links = re.findall(r"http://127\.0\.0\.1:\d+/sign/[A-Za-z0-9_-]+", result.stdout)
    assert len(links) == 2, result.stdout
    written = re.search(r"invitation email: (\S+\.eml)", result.stdout)
    assert written, result.stdout
    invitation = Path(written.group(1)).read_text(errors="replace")
    assert "Mutual NDA" in invitation and "ada@example.com" in invitation
    assert "sk_test_" in result.stdout  # the sandbox key to fetch the results with
    assert (data_dir / "seal" / "root.pem").exists()


def test_verify_refuses_missing_and_garbage_files(data_dir: Path, tmp_path: Path) -> None:
    missing = cli(data_dir, "verify", str(tmp_path / "nope.pdf"))
    assert missing.returncode == 2 and "cannot read" in missing.stderr
    garbage = tmp_path / "garbage.pdf"
    garbage.write_bytes(b"%PDF-1.7\nthis is not a pdf")
    result = cli(data_dir, "verify", str(garbage))
    assert result.returncode == 1
    assert "Traceback" not in result.stdout + result.stderr


def test_slack_socket_says_what_is_missing(data_dir: Path) -> None:
    result = cli(data_dir, "slack", "socket", env={"SLACK_APP_TOKEN": ""})
    assert result.returncode != 0 and "SLACK_APP_TOKEN" in result.stderr
    result = cli(data_dir, "slack", "socket", env={"SLACK_APP_TOKEN": "xapp-1-test"})
    assert result.returncode != 0 and "SLACK_BOT_TOKEN" in result.stderr
