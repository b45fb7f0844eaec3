"""What the command groups share: the settings they run with, and the client for the engine's
JSON API (agent control, live views, reloads)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import click

from callcenter.config import Settings
from callcenter.web.auth import read_api_token


def command_settings(ctx: click.Context) -> Settings:
    """Run under the main group, its settings (with --config applied); run on its own, the defaults."""
    obj = ctx.find_root().obj
    return (obj.get("settings") if isinstance(obj, dict) else None) or Settings.load()


def api_call(ctx: click.Context, method: str, path: str, body: dict | None = None) -> Any:
    """One request to the running engine named by the command's settings; failures become a
    ClickException saying what the engine answered, or that it is not running."""
    s = command_settings(ctx)
    url = f"http://{s.web_host}:{s.web_port}{path}"
    data = json.dumps(body).encode() if body is not None else (b"" if method == "POST" else None)
    headers = {"content-type": "application/json"}
    token = read_api_token(s.data_dir)
    if token:
        headers["authorization"] = f"Bearer {token}"
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        detail = json.loads(exc.read() or b"{}").get("error", exc.reason)
        raise click.ClickException(f"{method} {path}: {exc.code} {detail}") from None
    except urllib.error.URLError as exc:
        raise click.ClickException(
            f"engine API not reachable at {url}: {exc.reason} (is `callcenter up` running?)") from None


def show(result: Any) -> None:
    click.echo(json.dumps(result, indent=2, default=str))
