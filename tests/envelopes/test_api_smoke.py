from tests.conftest import draft


def test_create_send_get(tenant):
    env = draft(tenant)
    assert env["status"] == "DRAFT"
    token = env["recipients"][0]["accessToken"]
    sent = tenant.client.post(f"/envelopes/{env['id']}/send")
    assert sent.status_code == 200
    assert sent.json()["status"] == "SENT"
    assert sent.json()["recipients"][0]["accessToken"] == token
    got = tenant.client.get(f"/envelopes/{env['id']}").json()
    assert "accessToken" not in got["recipients"][0]
