"""`rta token create | list | revoke`: API tokens (stored hashed; a secret is shown once)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import typer

from rta.cli.choices import TOKEN_SCOPES, one_of
from rta.cli.output import (
    EXIT_BAD_INPUT,
    EXIT_ERROR,
    JsonOption,
    ServerOption,
    call,
    console,
    emit,
    fail,
    get_client,
    message,
)

token_app = typer.Typer(help="Manage API tokens (read, write or admin scope).",
                        no_args_is_help=True)
LocalOption = typer.Option(None, "--data-dir", "-d",
                           help="Manage tokens directly in this data dir (works while the daemon "
                                "runs; use it to create the first admin token).")


def _with_tokens(data_dir: str | None, server: str | None,
                 local: Callable[[Any], Any], remote: Callable[[Any], Any],
                 creates: bool = False) -> Any:
    """Run against the data dir's token table (`-d`), else through the daemon. Only
    `create` may start a new data dir: listing or revoking in one with no rta data is an
    error, not an empty answer (and leaves nothing behind)."""
    if data_dir:
        import os
        import sqlite3

        from rta.core.auth import TokenStore
        from rta.core.metadata import MetadataStore

        if not creates and not os.path.exists(MetadataStore.path(data_dir)):
            fail(f"no rta data in {data_dir} ({MetadataStore.path(data_dir)} does not exist)",
                 EXIT_BAD_INPUT)
        try:
            if creates:
                os.makedirs(data_dir, exist_ok=True)
            metadata = MetadataStore(data_dir)
        except (OSError, sqlite3.Error) as exc:
            fail(f"cannot open the data dir {data_dir}: {exc}", EXIT_ERROR)
        try:
            return call(lambda: _local(local, TokenStore(metadata)))
        finally:
            metadata.close()
    with get_client(server) as client:
        return call(lambda: remote(client))


def _local(fn: Callable[[Any], Any], store: Any) -> Any:
    from rta.client.client import ApiError
    from rta.core.errors import RtaError

    try:
        return fn(store)
    except RtaError as exc:
        raise ApiError(exc.status, exc.to_dict()) from None


@token_app.command("create")
def create(scope: str = typer.Option("read", "--scope", help="read, write or admin.",
                                     callback=one_of(TOKEN_SCOPES)),
           name: str = typer.Option(None, "--name", help="A label to recognise it by."),
           data_dir: str = LocalOption, server: str = ServerOption,
           as_json: bool = JsonOption) -> None:
    """Create a token and print its secret (shown only this once)."""
    def local(store: Any) -> dict[str, Any]:
        secret, record = store.create(scope, name)
        return {**record, "token": secret}

    data = _with_tokens(data_dir, server, local,
                        lambda c: c.post("/tokens", {"scope": scope, "name": name}),
                        creates=True)
    if as_json:
        emit(data, True, print)
        return
    message(f"created {data['scope']} token {data['name']!r} (id {data['id']}); "
            "store it now, it is not shown again:")
    typer.echo(data["token"])


@token_app.command("list")
def list_tokens(data_dir: str = LocalOption, server: str = ServerOption,
                as_json: bool = JsonOption) -> None:
    """Tokens with their scope and creation time (never the secrets)."""
    data = _with_tokens(data_dir, server, lambda s: {"tokens": s.list_tokens()},
                        lambda c: c.get("/tokens"))
    emit(data, as_json, _render)


def _render(data: dict[str, Any]) -> None:
    from rich.table import Table

    from rta.core.queries.timeparse import iso

    table = Table()
    for col in ("id", "name", "scope", "hint", "created"):
        table.add_column(col)
    for t in data["tokens"]:
        table.add_row(t["id"], t.get("name") or "", t["scope"], t.get("hint", ""),
                      iso(t["createdAt"]))
    console().print(table)


@token_app.command("revoke")
def revoke(ref: str = typer.Argument(..., help="Token id or name."),
           data_dir: str = LocalOption, server: str = ServerOption,
           as_json: bool = JsonOption) -> None:
    """Revoke a token at once."""
    data = _with_tokens(data_dir, server, lambda s: {"revoked": s.revoke(ref)},
                        lambda c: c.request("DELETE", f"/tokens/{ref}"))
    emit(data, as_json, lambda d: message(f"revoked {d['revoked']['name']!r}"))


def register(app: typer.Typer) -> None:
    app.add_typer(token_app, name="token")
