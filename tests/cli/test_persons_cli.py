"""`rta persons list|show` and `--where person.<key>=...` against a real daemon."""

from __future__ import annotations

import json

import httpx

from tests.cli.conftest import rta
from tests.support import ServeProcess


def test_list_show_and_person_filters(daemon: ServeProcess) -> None:
    url = daemon.url
    events = [{"type": "cli_land", "userId": "cli-a", "properties": {"$set": {"plan": "pro"}}},
              {"type": "cli_land", "userId": "cli-b", "properties": {"$set": {"plan": "free"}}},
              {"type": "cli_land", "userId": "cli-a"}]
    assert httpx.post(f"{url}/events/batch", json=events).status_code == 202
    out = rta("persons", "list", "--search", "cli-", "--limit", "1", "--json", "-s", url)
    assert out.returncode == 0, out.stderr
    page = json.loads(out.stdout)
    assert [p["personId"] for p in page["persons"]] == ["cli-a"] and page["nextCursor"]
    out = rta("persons", "list", "--search", "cli-", "--cursor", page["nextCursor"], "-s", url)
    assert out.returncode == 0 and "cli-b" in out.stdout and "plan=free" in out.stdout
    out = rta("persons", "show", "cli-a", "-s", url)
    assert out.returncode == 0 and "person.plan" in out.stdout and "cli_land" in out.stdout
    out = rta("query", "count", "--type", "cli_land", "--where", "person.plan=pro",
              "--json", "-s", url)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["count"] == 2
