from tests.integration.bff.screens.conftest import Sim

async def test_home(make_app, citizen, sim: Sim) -> None:
    async with make_app() as (app, client):
        headers = await citizen(client)
        r = await client.get("/v1/me/home", headers=headers)
        print(r.status_code, r.text)
        for p in ["/v1/me/health/records", "/v1/me/transport/card", "/v1/me/transport/trips?days=3", "/v1/me/socsec/card", "/v1/me/socsec/contributions?year=2024", "/v1/me/data-access"]:
            r = await client.get(p, headers=headers)
            print(p, r.status_code, r.text[:600])
        import asyncio; await asyncio.sleep(0.5)
        r = await client.get("/v1/me/data-access?limit=3", headers=headers)
        print(r.status_code, r.text)
        r = await client.get("/metrics")
        print("\n".join(l for l in r.text.splitlines() if "department" in l and not l.startswith("#"))[:3000])
