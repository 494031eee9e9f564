"""``templateId`` on create, end to end: the shipped templates bring their documents, roles,
fields and defaults; recipients fill the roles in order; the result signs and seals."""

from __future__ import annotations

import time

import httpx

from tests.conftest import Tenant


def _sign(url: str, name: str, **values: str) -> httpx.Response:
    form = {"name": name, "mode": "typed", "typed": name, "consent": "yes", **values}
    return httpx.post(f"{url}/sign", data=form)


def test_mutual_nda_from_its_template(tenant: Tenant) -> None:
    created = tenant.client.post(
        "/envelopes",
        json={
            "templateId": "tpl_mutual-nda",
            "recipients": [
                {"email": "ceo@acme.example", "name": "Alice Martin"},
                {"email": "cto@globex.example", "name": "Bruno Keller"},
            ],
        },
    )
    assert created.status_code == 201, created.text
    envelope = created.json()
    assert envelope["templateId"] == "tpl_mutual-nda"
    assert envelope["subject"] and envelope["expiresAt"]
    assert envelope["reminders"]["intervalDays"] == 3
    assert len(envelope["documentIds"]) == 1
    assert envelope["fields"] and all(f.get("anchorFound") for f in envelope["fields"])
    assert "warnings" not in envelope
    emails = {f["recipientEmail"] for f in envelope["fields"]}
    assert emails == {"ceo@acme.example", "cto@globex.example"}

    again = tenant.client.post(
        "/envelopes",
        json={
            "templateId": "tpl_mutual-nda",
            "recipients": [
                {"email": "a@example.com", "name": "A"},
                {"email": "b@example.com", "name": "B"},
            ],
        },
    ).json()
    assert again["documentIds"] == envelope["documentIds"]  # stored once per tenant

    assert tenant.client.post(f"/envelopes/{envelope['id']}/send").status_code == 200
    for recipient in envelope["recipients"]:
        url = recipient["signUrl"]
        page = httpx.get(url).text
        own = [f for f in envelope["fields"] if f["recipientEmail"] == recipient["email"]]
        values = {}
        for field in own:
            name = f"field_{field['id']}"
            if field["fieldType"] == "TEXT":
                values[name] = f"{recipient['name']} value"
            elif field["fieldType"] == "CHECKBOX":
                values[name] = "yes"
            elif field["fieldType"] in ("DROPDOWN", "RADIO_GROUP"):
                values[name] = field["options"][0]
        assert 'class="field field-signature' in page
        initials = "".join(part[0] for part in recipient["name"].split())
        response = _sign(url, recipient["name"], initials=initials, **values)
        assert response.status_code == 303, response.text[:2000]
    deadline = time.monotonic() + 30
    while True:
        sealed = tenant.client.get(f"/envelopes/{envelope['id']}/signed-document")
        if sealed.status_code == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert sealed.status_code == 200


def test_template_errors_are_400(tenant: Tenant) -> None:
    unknown = tenant.client.post(
        "/envelopes",
        json={"templateId": "tpl_nope", "recipients": [{"email": "a@example.com"}]},
    )
    assert unknown.status_code == 400 and "tpl_nope" in unknown.text
    short = tenant.client.post(
        "/envelopes",
        json={"templateId": "tpl_mutual-nda", "recipients": [{"email": "a@example.com"}]},
    )
    assert short.status_code == 400 and "2 role(s)" in short.json()["error"]
    both = tenant.client.post(
        "/envelopes",
        json={
            "templateId": "tpl_mutual-nda",
            "documentIds": ["doc_01HG0000000000000000000000"],
            "recipients": [{"email": "a@example.com"}, {"email": "b@example.com"}],
        },
    )
    assert both.status_code == 400 and "templateId" in both.text
