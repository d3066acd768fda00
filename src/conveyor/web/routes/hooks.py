"""``POST /hooks/github``: GitHub's webhook deliveries, verified and recorded, never worked on here.

Its own authentication (the HMAC signature), so no bearer token: the signature is checked on the raw
body in constant time before anything is parsed or stored (:mod:`conveyor.github.signature`). Then the
delivery is recorded by its ``X-GitHub-Delivery`` (:mod:`conveyor.github.deliveries`) and the answer goes
back at once; the conductor's intake chore does the work. Answers:

- 202: recorded: to be worked on, or ignored (an event conveyor does not use; the reason is recorded);
- 200: ``ping``, or a redelivery of a delivery already recorded (nothing happens twice);
- 401: the signature is missing, malformed, SHA-1 only or wrong; nothing is stored;
- 422: a signed delivery without ``X-GitHub-Event`` or ``X-GitHub-Delivery``; 404: no ``github`` section.
"""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, Header, Request, Response
from starlette.concurrency import run_in_threadpool

from conveyor.clock import utc_now
from conveyor.github.chores import INTAKE_CHORE
from conveyor.github.deliveries import PENDING, first_state, record_delivery
from conveyor.github.signature import signature_problem
from conveyor.web.errors import ApiError, error_responses
from conveyor.web.gate import body_cap
from conveyor.web.models import HookAnswer
from conveyor.web.state import State

GITHUB_MAX_BODY = 25 * 1024 * 1024  # GitHub caps its payloads at 25 MB
_TOKEN = re.compile(r"^[A-Za-z0-9_.:-]{1,100}$")

router = APIRouter(tags=["hooks"])


@router.post(
    "/hooks/github",
    status_code=202,
    response_model=HookAnswer,
    responses={
        200: {"model": HookAnswer, "description": "ping, or a redelivery: nothing happens twice"},
        **error_responses(401, 404, 413, 422, 503),
    },
)
@body_cap(GITHUB_MAX_BODY)
async def github_hook(
    request: Request,
    state: State,
    response: Response,
    x_hub_signature_256: Annotated[str | None, Header()] = None,
    x_github_event: Annotated[str | None, Header()] = None,
    x_github_delivery: Annotated[str | None, Header()] = None,
) -> HookAnswer:
    """A GitHub webhook delivery, signed with ``github.webhook_secret`` (see docs/github.md)."""
    if state.config.github is None:
        raise ApiError(404, "not_found", "GitHub webhooks are not configured (no github section)")
    body = await request.body()
    problem = signature_problem(state.config.github.webhook_secret, body, x_hub_signature_256)
    if problem is not None:
        raise ApiError(401, "unauthorized", problem, field="X-Hub-Signature-256")
    for name, value in (("X-GitHub-Event", x_github_event), ("X-GitHub-Delivery", x_github_delivery)):
        if value is None or not _TOKEN.match(value):
            raise ApiError(422, "invalid", f"missing or malformed {name}", field=name)
    assert x_github_event is not None and x_github_delivery is not None
    new = await run_in_threadpool(record_delivery, state.db, x_github_delivery, x_github_event, body, utc_now())
    status, note = first_state(x_github_event)
    if not new:
        response.status_code = 200
        return HookAnswer(
            delivery=x_github_delivery, event=x_github_event, outcome="redelivery", note="already recorded"
        )
    if x_github_event == "ping":
        response.status_code = 200
    if status == PENDING:
        state.run_chore(INTAKE_CHORE)
    return HookAnswer(delivery=x_github_delivery, event=x_github_event, outcome=status, note=note)
