"""Bodies are capped per route: only the file-carrying routes take large ones."""

from __future__ import annotations

import json

from tests.conftest import Tenant, draft


def _chunks(data: bytes, size: int = 65536):  # type: ignore[no-untyped-def]
    for i in range(0, len(data), size):
        yield data[i : i + size]


def test_json_routes_refuse_bodies_over_one_mib(tenant: Tenant) -> None:
    env = draft(tenant)
    big = json.dumps({"message": "x" * (2 << 20)}).encode()
    headers = {"Content-Type": "application/json"}
    declared = tenant.client.patch(f"/envelopes/{env['id']}", content=big, headers=headers)
    chunked = tenant.client.patch(f"/envelopes/{env['id']}", content=_chunks(big), headers=headers)
    for response in (declared, chunked):
        assert response.status_code == 413, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["code"] == "PAYLOAD_TOO_LARGE"
    assert tenant.client.get(f"/envelopes/{env['id']}").json().get("message") != "x"


def test_file_routes_still_take_large_bodies(tenant: Tenant) -> None:
    from tests.conftest import make_pdf

    pdf = make_pdf(1) + b"%" + b"0" * (3 << 20)  # a valid PDF padded past 3 MiB
    response = tenant.client.post("/documents", files={"file": ("big.pdf", pdf, "application/pdf")})
    assert response.status_code == 201, response.text
    assert response.json()["size"] == len(pdf)
