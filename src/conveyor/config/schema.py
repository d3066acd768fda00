"""The shape of ``conveyor.yaml``, as pydantic models (every model forbids unknown keys).

These models check types and names only. References between parts (an app's team, groups and
environments), inheritance (defaults < app < app.environments.<env>) and the plugin options inside
``deploy`` blocks and check entries are handled by the loader, which keeps them as raw mappings here.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)

from conveyor.config.durations import HINT, Duration, at_least, parse_duration
from conveyor.config.resolved import API_MAX_BODY_BYTES, DEFAULT_PUBLIC_URL, ErrorRateLimit, ErrorsConfig
from conveyor.config.retry import RetryPolicy
from conveyor.config.urls import base_url
from conveyor.domain.error_spikes import SpikeRule
from conveyor.domain.model import OnFailure, Tier

DEFAULT_ENVIRONMENTS = ("integration", "staging", "production")
NAME_PATTERN = r"^[a-z0-9][a-z0-9_.-]*$"  # app, environment and group names become lock and file names
VAR_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"  # vars become placeholders and environment variables
RESERVED_VARS = ("app", "env")
GITHUB_REPO_PATTERN = r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$"  # "owner/name"

Name = Annotated[str, StringConstraints(pattern=NAME_PATTERN)]
VarName = Annotated[str, StringConstraints(pattern=VAR_NAME_PATTERN)]
Count = Annotated[int, Field(strict=True, ge=1)]
Limit = Annotated[int, Field(strict=True, ge=0)]
PositiveDuration = Annotated[Duration, Field(gt=0)]
Block = dict[str, Any]  # a deploy block or a check entry: validated later against the plugin's Options


def _var_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    raise ValueError("a var must be a string, number or boolean")


VarValue = Annotated[str, PlainValidator(_var_value)]

POLL_MINIMUM = 5.0  # seconds: each turn runs `git ls-remote` against someone's git server
POLL_OFF = "none"  # `poll: none` in an app switches off a `poll` it would inherit from `defaults`


def _poll_interval(value: object) -> float | str:
    if value == POLL_OFF:
        return POLL_OFF
    try:
        seconds = parse_duration(value)
    except ValueError:
        raise ValueError(f"expected a duration of at least {POLL_MINIMUM:g}s or none ({HINT})") from None
    if seconds < POLL_MINIMUM:
        raise ValueError(f"must be at least {POLL_MINIMUM:g}s (each poll asks the git server), got {seconds:g}s")
    return seconds


PollInterval = Annotated[float | str, PlainValidator(_poll_interval)]  # seconds, or POLL_OFF


class Section(BaseModel):
    """A mapping in the file: unknown keys are errors, and an empty entry (``key:``) is as if left out."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _empty_is_default(cls, value: Any) -> Any:
        if value is None:
            return {}
        if isinstance(value, dict):
            return {key: item for key, item in value.items() if item is not None}
        return value


class TeamSection(Section):
    notify: list[str] = Field(default_factory=list)


DEFAULT_RETRY = RetryPolicy()


class RetrySection(Section):
    """A notifier's ``retry``: its backoff and when it gives up; a key left out keeps the default."""

    first_delay: PositiveDuration = DEFAULT_RETRY.first_delay
    # Checked even when left out, so that ``first_delay: 10m`` alone is refused (the default cap is 5m).
    max_delay: PositiveDuration = Field(default=DEFAULT_RETRY.max_delay, validate_default=True)
    max_attempts: Count = DEFAULT_RETRY.max_attempts
    max_age: PositiveDuration = DEFAULT_RETRY.max_age

    @field_validator("max_delay")
    @classmethod
    def _not_below_first_delay(cls, max_delay: float, info: ValidationInfo) -> float:
        first_delay = info.data.get("first_delay")  # absent when invalid: reported on its own
        if first_delay is not None and max_delay < first_delay:
            raise ValueError(f"must be at least first_delay ({first_delay:g}s), got {max_delay:g}s")
        return max_delay

    def policy(self) -> RetryPolicy:
        """The policy the sender applies; jitter is not the user's to set."""
        return RetryPolicy(**self.model_dump())


class NotifierEntry(Section):
    """The keys of a ``notifiers`` entry that conveyor itself reads; every other key belongs to the type."""

    type: str
    global_: bool = Field(default=False, alias="global", strict=True)
    events: list[str] | None = None
    retry: RetrySection = Field(default_factory=RetrySection)


class GroupSection(Section):
    description: str = ""


class Layer(Section):
    """What every level of inheritance may set: defaults, an app, an app in one environment."""

    vars: dict[VarName, VarValue] = Field(default_factory=dict)
    deploy: Block | None = None
    checks: list[Block] | None = None
    on_failure: OnFailure | None = None
    bake: Annotated[Duration, Field(ge=0)] | None = None
    bake_interval: PositiveDuration | None = None


class CiSection(Section):
    """``ci: {required: [...], timeout: 2h}``: what a pushed commit must pass on GitHub before it is released."""

    required: Annotated[list[Annotated[str, Field(min_length=1)]], Field(min_length=1)]
    timeout: PositiveDuration = 7200.0


class DefaultsSection(Layer):
    tier: Tier | None = None
    branch: str | None = None
    poll: PollInterval | None = None
    ci: Any = None  # `none` or a CiSection: checked by conveyor.config.github


class EnvironmentSection(Layer):
    pass


class AppSection(Layer):
    repo: Annotated[str, Field(min_length=1)]
    team: str
    branch: str | None = None
    tier: Tier | None = None
    reason: str | None = None
    groups: list[str] = Field(default_factory=list)
    environments: dict[str, EnvironmentSection] = Field(default_factory=dict)
    poll: PollInterval | None = None
    github: Annotated[str, StringConstraints(pattern=GITHUB_REPO_PATTERN)] | None = None
    paths: list[Annotated[str, Field(min_length=1)]] | None = None
    ci: Any = None  # `none` or a CiSection: checked by conveyor.config.github


API_TOKEN_MIN_LENGTH = 16


def _long_enough(token: str) -> str:
    if len(token) < API_TOKEN_MIN_LENGTH:
        raise ValueError(f"an API token must be at least {API_TOKEN_MIN_LENGTH} characters")
    return token


class ApiTokenSection(Section):
    """One bearer token for the HTTP API; ``name`` is recorded as the actor ``api:<name>``."""

    name: Annotated[str, StringConstraints(pattern=NAME_PATTERN)]
    token: Annotated[str, AfterValidator(_long_enough)]


class ApiSection(Section):
    tokens: list[ApiTokenSection] = Field(default_factory=list)
    max_body_bytes: Annotated[int, Field(strict=True, ge=1)] = API_MAX_BODY_BYTES


def _long_secret(secret: str) -> str:
    if len(secret) < API_TOKEN_MIN_LENGTH:
        raise ValueError(f"must be at least {API_TOKEN_MIN_LENGTH} characters")
    return secret


class BasicAuthSection(Section):
    username: Annotated[str, Field(min_length=1)]
    password: Annotated[str, AfterValidator(_long_secret)]


class AlertmanagerSection(Section):
    """``POST /hooks/alertmanager``: the credentials Alertmanager's ``http_config`` sends (a bearer token,
    basic auth, or either), and ``stop_on``: per environment, the matchers a firing alert must all meet to
    stop the line there (a list of ``name="value"`` matchers, or a mapping of labels to exact values)."""

    token: Annotated[str, AfterValidator(_long_secret)] | None = None
    basic_auth: BasicAuthSection | None = None
    stop_on: dict[Name, list[str] | dict[str, str]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _credentials(self) -> AlertmanagerSection:
        if self.token is None and self.basic_auth is None:
            raise ValueError("give token or basic_auth: the credentials Alertmanager's http_config sends")
        return self


DEFAULT_ERRORS, DEFAULT_RATE_LIMIT, DEFAULT_SPIKE = ErrorsConfig(), ErrorRateLimit(), SpikeRule()
Bytes = Annotated[int, Field(strict=True, ge=1)]


class ErrorRateLimitSection(Section):
    envelopes: Count = DEFAULT_RATE_LIMIT.envelopes
    per: PositiveDuration = DEFAULT_RATE_LIMIT.per


class SpikeSection(Section):
    min_events: Count = DEFAULT_SPIKE.min_events
    factor: Annotated[float, Field(gt=0)] = DEFAULT_SPIKE.factor
    baseline: Annotated[Duration, at_least(60)] = DEFAULT_SPIKE.baseline
    cooldown: PositiveDuration = DEFAULT_SPIKE.cooldown


class ErrorsSection(Section):
    """``errors:``, the error intake; a key left out keeps its default."""

    retention: Annotated[Duration, at_least(60)] = DEFAULT_ERRORS.retention
    counts_retention: Annotated[Duration, at_least(60)] = DEFAULT_ERRORS.counts_retention
    rate_limit: ErrorRateLimitSection = Field(default_factory=ErrorRateLimitSection)
    max_body_bytes: Bytes = DEFAULT_ERRORS.max_body_bytes
    max_decompressed_bytes: Bytes = DEFAULT_ERRORS.max_decompressed_bytes
    spike: SpikeSection = Field(default_factory=SpikeSection)

    def resolved(self) -> ErrorsConfig:
        return ErrorsConfig(
            retention=self.retention,
            counts_retention=max(self.counts_retention, self.retention),
            rate_limit=ErrorRateLimit(**self.rate_limit.model_dump()),
            max_body_bytes=self.max_body_bytes,
            max_decompressed_bytes=max(self.max_decompressed_bytes, self.max_body_bytes),
            spike=SpikeRule(**self.spike.model_dump()),
        )


def _public_url(url: str) -> str:
    parts = urlsplit(base_url(url))
    if parts.query or parts.fragment:
        raise ValueError(f"must not have a query or fragment, got {url!r}")
    return url.rstrip("/")


class GitHubAppSection(Section):
    id: Annotated[int, Field(strict=True, ge=1)]
    private_key_file: Annotated[str, Field(min_length=1)]


class GitHubSection(Section):
    """The top-level ``github:`` section; ``app`` and ``token`` exclude each other."""

    api_url: Annotated[str, AfterValidator(_public_url)] = "https://api.github.com"
    webhook_secret: Annotated[str, Field(min_length=1)]
    app: GitHubAppSection | None = None
    token: Annotated[str, Field(min_length=1)] | None = None
    reconcile_interval: PositiveDuration = 300.0
    retention: Annotated[Duration, at_least(3600)] = 14 * 86400.0

    @model_validator(mode="after")
    def _one_way_to_authenticate(self) -> GitHubSection:
        if self.app is not None and self.token is not None:
            raise ValueError("give either app or token, not both")
        return self


class FileSection(Section):
    """The top level. ``apps`` are validated one by one (:class:`AppSection`) so one bad app hides nothing."""

    environments: list[Name] = Field(default_factory=lambda: list(DEFAULT_ENVIRONMENTS))
    teams: dict[str, TeamSection] = Field(default_factory=dict)
    groups: dict[Name, GroupSection] = Field(default_factory=dict)
    state_dir: str | None = None
    database_url: str | None = None
    notifiers: dict[Name, Block] = Field(default_factory=dict)
    defaults: DefaultsSection = Field(default_factory=DefaultsSection)
    apps: dict[Name, Any] = Field(default_factory=dict)
    api: ApiSection = Field(default_factory=ApiSection)
    windows: dict[str, Any] = Field(default_factory=dict)  # checked by conveyor.config.windows
    public_url: Annotated[str, AfterValidator(_public_url)] = DEFAULT_PUBLIC_URL
    alertmanager: AlertmanagerSection | None = None
    github: GitHubSection | None = None
    errors: ErrorsSection = Field(default_factory=ErrorsSection)


DEFAULT_DEPLOY_TIMEOUT = 3600.0  # seconds a deploy step may run before the engine fails it
DEFAULT_CHECK_TIMEOUT = 3600.0  # the same for a check step, beyond its own waits (initial_delay, intervals)


class DeployEntry(Section):
    """The keys of a deploy block that conveyor itself reads; every other key belongs to the driver."""

    driver: str | None = None
    step_timeout: PositiveDuration = DEFAULT_DEPLOY_TIMEOUT


class CheckEntry(Section):
    """The keys of a check entry that conveyor itself reads; every other key belongs to the check type."""

    name: Annotated[str, Field(min_length=1)]
    type: str
    step_timeout: PositiveDuration | None = None
    count: Count = 1
    interval: Duration = 0.0
    initial_delay: Duration = 0.0
    failure_limit: Limit = 0
    consecutive_error_limit: Limit = 4
    inconclusive_limit: Limit = 0


def keys_of(model: type[BaseModel]) -> list[str]:
    return [field.alias or name for name, field in model.model_fields.items()]
