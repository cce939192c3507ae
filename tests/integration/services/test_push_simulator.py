"""The push gateway simulator's contract: 202 into an outbox per device token, the service
token enforced, faults like every simulator."""

from __future__ import annotations

import httpx

from tests.integration.services.conftest import TokenFactory
from tests.integration.services.test_simulator_contracts import Simulators, call


async def test_push_and_outbox(http: httpx.AsyncClient, simulators: Simulators, make_token: TokenFactory) -> None:
    token = make_token("push", "onecity")
    device = "contract-device-0001"
    body = {
        "device_token": device,
        "title": "办件进度更新",
        "body": "打开 OneCity 查看详情",
        "data": {"message_id": "7"},
    }
    sent = await call(http, simulators, "push", "POST", "/v1/push", token, body)
    assert sent.status_code == 202 and sent.json()["id"]
    await call(http, simulators, "push", "POST", "/v1/push", token, {**body, "device_token": "someone-else"})
    outbox = await call(http, simulators, "push", "GET", "/v1/push", token, params={"device_token": device})
    assert outbox.status_code == 200
    [message] = outbox.json()["messages"]
    assert message["title"] == "办件进度更新" and message["data"] == {"message_id": "7"}
    bad = await call(http, simulators, "push", "POST", "/v1/push", token, {"device_token": device})
    assert bad.status_code == 400

    for wrong in (None, make_token("sms", "onecity"), "abc.def.ghi"):
        refused = await call(http, simulators, "push", "POST", "/v1/push", wrong, body)
        assert refused.status_code == 401
        assert (await call(http, simulators, "push", "GET", "/v1/push", wrong)).status_code == 401

    base = simulators["push"].base_url
    assert (await http.post(f"{base}/_sim/faults", json={"error_rate": 1.0})).status_code == 200
    try:
        assert (await call(http, simulators, "push", "POST", "/v1/push", token, body)).status_code == 503
    finally:
        await http.delete(f"{base}/_sim/faults")
    assert (await http.get(f"{base}/_sim/stats")).status_code == 200
