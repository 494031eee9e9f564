from tests.ceremony.test_fields import _create
def test_explore(tenant) -> None:
    env = _create(tenant)
    for f in env["fields"]: print(f["fieldType"], f.get("anchorText"), f["placement"])
