import httpx


async def test_ingest_and_list(http: httpx.AsyncClient) -> None:
    r = await http.post("/events", json={"type": "pageview", "userId": "u1",
                                         "properties": {"page": "/x"}})
    assert r.status_code == 202
    event_id = r.json()["id"]
    r = await http.get("/events")
    assert r.status_code == 200
    body = r.json()
    assert [e["id"] for e in body["events"]] == [event_id]
    assert body["events"][0]["properties"] == {"page": "/x"}
