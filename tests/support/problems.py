"""Checks of problem+json answers shared by the API tests."""

from __future__ import annotations

import time
from typing import Any

import httpx

PROBLEM = "application/problem+json"


def settle_after_server_error(response: httpx.Response) -> None:
    """After a 5xx, let the server thread finish logging its traceback before pytest formats
    ours: on CPython 3.11 both parse source with ``ast`` and can race (an INTERNALERROR)."""
    if response.status_code >= 500:
        time.sleep(0.5)


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    settle_after_server_error(response)
    assert response.status_code == status, (response.status_code, response.text[:500])
    assert response.headers["content-type"].startswith(PROBLEM)
    body = response.json()
    assert body["code"] == code and body["status"] == status, body
    assert isinstance(body["error"], str) and body["error"]
    return body
