"""The starter ``conveyor.yaml`` that ``conveyor init`` writes: valid as is, commented for a first read."""

from __future__ import annotations

STARTER_CONFIG = """\
# conveyor.yaml: what conveyor deploys, where, and how it checks each deployment.
# Full reference: docs/configuration.md

# The environments a release flows through, in order.
environments: [integration, staging, production]

# Teams own apps. `notify` lists notifier names (used once notifications are configured).
teams:
  web-team:
    notify: []

# Conflict groups: apps in the same group never deploy to the same environment at the same time.
groups:
  frontend:
    description: apps served behind the shared front door

# Where conveyor keeps mirrors, checkouts and logs (relative to this file's folder).
state_dir: .conveyor
# The database defaults to SQLite beside this file; CONVEYOR_DATABASE_URL overrides it.
# database_url: postgresql+psycopg://conveyor:${CONVEYOR_DB_PASSWORD}@db.example.org/conveyor

# Every app inherits these; an app, or an app in one environment, can override any of them.
defaults:
  tier: auto                  # auto: releases flow on their own; manual: an operator promotes them
  deploy:
    driver: local             # run the app as a local process from a checkout of the release
    start: ["python3", "app.py"]
  checks:
    - name: health
      type: http
      url: "http://127.0.0.1:{port}/health"   # {port} is a var of the app in that environment
      expect_status: 200
      count: 3                # take three measurements...
      interval: 1s            # ...one second apart

apps:
  shop:
    repo: ./repos/shop        # a local path (relative to this file), file:// or https URL
    branch: main
    team: web-team
    groups: [frontend]
    environments:
      integration: {vars: {port: 8101}}
      staging: {vars: {port: 8102}}
      production: {vars: {port: 8103}}

  search:
    repo: ./repos/search
    team: web-team
    groups: [frontend]
    tier: manual
    reason: production index rebuilds are watched by an operator
    environments:
      integration: {vars: {port: 8201}}
      staging: {vars: {port: 8202}}
      production: {vars: {port: 8203}}
"""
