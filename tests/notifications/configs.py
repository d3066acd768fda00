"""Configs for the notification tests, written as a user writes them."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from conveyor.config import Config, load_config

ROUTING = """\
notifiers:
  chat-publishing: {type: fake}
  chat-search: {type: fake, events: [deployment.failed]}
  audit: {type: log, global: true}
  pager: {type: fake, global: true, events: [deployment.failed, hold.created]}
  steps: {type: fake, global: true, events: [step.finished]}
teams:
  publishing: {notify: [chat-publishing, audit]}
  search: {notify: [chat-search]}
  quiet: {}
defaults:
  deploy: {driver: fake}
apps:
  web: {repo: ./repos/web, team: publishing}
  search: {repo: ./repos/search, team: search}
  tool: {repo: ./repos/tool, team: quiet}
"""


def load_text(folder: Path, text: str, environ: Mapping[str, str] | None = None) -> Config:
    """Write ``conveyor.yaml`` into ``folder`` (relative paths keep problem messages short) and load it."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "conveyor.yaml"
    path.write_text(text, encoding="utf-8")
    return load_config(path, dict(environ or {}))
