def test_smoke(world, clients):
    c = clients["alice"]
    for path in ("/", "/review", "/cases", "/sources", "/account", f"/matches/{world.matches['a']}",
                 f"/cases/{world.cases['a']}", "/docs", "/openapi.json"):
        r = c.get(path)
        assert r.status_code == 200, (path, r.text[:2000])
    r = c.get(f"/matches/{world.matches['a']}/preview")
    assert r.status_code == 200, r.text
    assert clients["admin"].get("/users").status_code == 200
