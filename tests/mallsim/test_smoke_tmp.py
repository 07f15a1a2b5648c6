import httpx
async def test_smoke(sim):
    a = sim.addresses
    print(a)
    async with httpx.AsyncClient() as c:
        r = await c.get(a.http_url + "/_admin/state")
        assert r.status_code == 200
        print(list(r.json()["shops"]))
