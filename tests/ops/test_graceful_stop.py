"""SIGTERM, as an orchestrator stops a container: requests in flight are answered, background
work that cannot finish in time is handed back at once (not after its lease), exit code 0."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import make_pdf
from tests.support.cluster import Replica, SmtpSink, api, create_key, until


@pytest.fixture
def smtp() -> Iterator[SmtpSink]:
    sink = SmtpSink()
    yield sink
    sink.close()


def _env(smtp: SmtpSink) -> dict[str, str]:
    return {
        "SIGNBOT_SMTP_URL": smtp.url,
        "SIGNBOT_JOBS_INTERVAL_SECONDS": "0.2",
        # long: work handed back must not wait for it to run out
        "SIGNBOT_JOBS_LEASE_SECONDS": "120",
        "SIGNBOT_RATE_LIMIT_ENABLED": "false",
    }


def test_a_request_in_flight_is_answered_before_the_process_exits(
    tmp_path: Path, smtp: SmtpSink
) -> None:
    env = _env(smtp)
    replica = Replica("a", tmp_path / "a", env).start()
    key = create_key(replica.data_dir, env)
    pdf = make_pdf(3)

    def slow_body() -> Iterator[bytes]:
        """A multipart upload trickling in over ~2 s."""
        boundary = b"--sigterm"
        yield boundary + b'\r\nContent-Disposition: form-data; name="file"; filename="a.pdf"\r\n'
        yield b"Content-Type: application/pdf\r\n\r\n"
        for i in range(0, len(pdf), max(1, len(pdf) // 8)):
            time.sleep(0.25)
            yield pdf[i : i + max(1, len(pdf) // 8)]
        yield b"\r\n" + boundary + b"--\r\n"

    answers: list[httpx.Response] = []
    upload = threading.Thread(
        target=lambda: answers.append(
            httpx.post(
                f"{replica.url}/api/v1/documents",
                content=slow_body(),
                headers={
                    "Authorization": f"Bearer {key}",
                    "Content-Type": "multipart/form-data; boundary=sigterm",
                },
                timeout=30,
            )
        )
    )
    upload.start()
    time.sleep(0.6)  # the upload is under way
    assert replica.terminate(timeout=40) == 0
    upload.join(timeout=30)
    assert answers and answers[0].status_code == 201, answers and answers[0].text
    assert answers[0].json()["pageCount"] == 3
    with pytest.raises(httpx.TransportError):  # and nothing new is taken in
        httpx.get(f"{replica.url}/healthz", timeout=2)


def test_work_cut_short_is_handed_back_for_the_next_replica(tmp_path: Path, smtp: SmtpSink) -> None:
    env = _env(smtp)
    first = Replica("a", tmp_path / "a", env).start()
    key = create_key(first.data_dir, env, "live")
    with api(first.url, key) as client:
        doc = client.post("/documents", files={"file": ("a.pdf", make_pdf(1), "application/pdf")})
        created = client.post(
            "/envelopes",
            json={
                "subject": "Handover",
                "documentIds": [doc.json()["id"]],
                "recipients": [{"email": "handover@example.com", "name": "Hana"}],
            },
        )
        smtp.hold()
        assert client.post(f"/envelopes/{created.json()['id']}/send").status_code == 200
    until(lambda: smtp.held, what="the invitation held in SMTP's DATA")

    stopping = time.monotonic()
    assert first.terminate(timeout=60) == 0
    took = time.monotonic() - stopping
    assert took < 30, took
    assert "handed back" in first.log()
    smtp.release()  # the cut-short attempt is refused: it was never sent

    # same data: the second process is the same deployment (SQLite file), as after a redeploy
    second = Replica("b", first.data_dir, env).start()
    try:
        # well within the 120 s lease: the task was given back, not left to expire
        until(lambda: smtp.to("handover@example.com", "invitation"), timeout=20)
        time.sleep(2)
        assert len(smtp.to("handover@example.com", "invitation")) == 1
    finally:
        second.terminate()
