"""canary.yaml: its schema, where it is found, and what is resolved relative to it."""
from __future__ import annotations

import os
import re
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .errors import ConfigError
from .strict import Field, Strict, field_check, record_check
from .yamlfile import load

DEFAULT_API_KEY_ENV = {"anthropic": "ANTHROPIC_API_KEY", "openai": "OPENAI_API_KEY"}


def parse_duration(value: Any) -> timedelta:
    """`90s`, `2m`, `24h`, `7d` or a number of seconds."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            if value < 0:  # as "-5s" is refused
                raise ValueError
            return timedelta(seconds=value)
        except (OverflowError, ValueError):  # negative, .inf, .nan, or more than a billion days
            raise ValueError(f"'{value}' is not a duration (like 90s, 15m, 24h, 7d)") from None
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", str(value))
    if not m:
        raise ValueError(f"'{value}' is not a duration (like 90s, 15m, 24h, 7d)")
    unit = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]
    try:
        return timedelta(seconds=float(m.group(1)) * unit)
    except OverflowError:
        raise ValueError(f"'{value}' is longer than a duration can be") from None


_WEEKDAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]


def _weekdays(field: str) -> str:
    """A crontab weekday field (0 or 7 = Sunday; ranges, lists, steps, names) as APScheduler
    day names, expanded with cron's own semantics (APScheduler 3 counts from Monday = 0, so
    "1" would mean Tuesday and "*/2" other days than cron's)."""
    if field == "*":
        return "*"
    days: set[int] = set()
    for token in field.lower().split(","):
        body, _, step = token.partition("/")
        if body == "*":
            lo, hi = 0, 6
        elif "-" in body:
            lo, hi = (_weekday_number(x) for x in body.split("-", 1))
            hi = 7 if hi == 0 and lo > 0 else hi  # "5-0": Friday to Sunday
        else:
            lo = hi = _weekday_number(body)
            if step:
                hi = 6
        if lo > hi:
            raise ValueError(f"weekday range '{body}' runs backwards")
        days.update(d % 7 for d in range(lo, hi + 1, int(step) if step else 1))
    return ",".join(_WEEKDAYS[d] for d in sorted(days))


def _weekday_number(text: str) -> int:
    if text.isdigit() and int(text) <= 7:
        return int(text)
    if text[:3] in _WEEKDAYS:
        return _WEEKDAYS.index(text[:3])
    raise ValueError(f"'{text}' is not a weekday (0-7 or sun-sat)")


def cron_trigger(expr: str, timezone):
    """A standard 5-field crontab (weekday 0 or 7 = Sunday, 1 = Monday) as an APScheduler trigger."""
    from apscheduler.triggers.cron import CronTrigger
    fields = expr.split()
    if len(fields) != 5:
        raise ValueError(f"'{expr}' is not a cron expression (5 fields: minute hour day month weekday)")
    minute, hour, day, month, weekday = fields
    return CronTrigger(minute=minute, hour=hour, day=day, month=month, day_of_week=_weekdays(weekday),
                       timezone=timezone)


def _cron(value: str | None) -> str | None:
    if value is not None:
        try:
            trigger = cron_trigger(value, "UTC")
        except ValueError as exc:
            raise ValueError(f"'{value}' is not a cron expression (minute hour day month weekday): {exc}")
        from datetime import datetime, timezone
        if trigger.get_next_fire_time(None, datetime.now(timezone.utc)) is None:
            raise ValueError(f"'{value}' never fires (no such date, like 31 February): nothing would ever run")
    return value


def parse_address(value: str) -> tuple[str, int]:
    """`host:port` (IPv6 as `[::1]:8787`); a bare port means 127.0.0.1."""
    host, _, port = value.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    try:
        number = int(port)
    except ValueError:
        raise ValueError(f"daemon.http '{value}' is not host:port (like 127.0.0.1:8787)") from None
    if not 0 <= number <= 65535:
        raise ValueError(f"daemon.http '{value}': port out of range")
    return host, number


class Price(Strict):
    input: float = Field(ge=0)   # USD per million input tokens
    output: float = Field(ge=0)  # USD per million output tokens


class Fingerprint(Strict):
    """`fingerprint: {...}` of a model: the one-token probes that notice a swapped model."""

    inputs: int = Field(default=20, ge=1, le=200)  # border inputs kept at init
    samples: int | None = Field(default=None, ge=1, le=1000)  # calls per input per probe (None: per API)
    candidates: int = Field(default=2000, ge=1)  # single-word prompts tried at most at init (3 calls each)
    reference: int = Field(default=100, ge=10, le=10000)  # calls per kept input for its reference
    min_shift: float = Field(default=0.2, gt=0, le=1)  # the rule's absolute floor on the distance's move

    @field_check("candidates")
    def _within_the_word_list(value: int) -> int:
        from .fingerprint.words import candidate_words
        if value > (n := len(candidate_words())):
            raise ValueError(f"at most {n} candidates (the shipped word list has {n} words)")
        return value


class ModelConfig(Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/-]*$")
    provider: str
    model: str
    base_url: str | None = None
    api_key_env: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    price: Price | None = None
    suites: list[str] | None = None
    repeat: int | None = Field(default=None, ge=1, le=100)
    concurrency: int = Field(default=8, ge=1, le=512)
    timeout: float = Field(default=120.0, gt=0)   # seconds per API call
    max_retries: int = Field(default=2, ge=0, le=10)  # the SDK's own retries
    schedule: str | None = None
    daily_token_budget: int | None = Field(default=None, ge=1)
    daily_cost_budget: float | None = Field(default=None, gt=0)
    fingerprint: Fingerprint | None = None  # `true`: the defaults of Fingerprint; `false`: none

    @field_check("provider")
    def _known_provider(value: str) -> str:
        from .providers import PROVIDERS
        if value not in PROVIDERS:
            raise ValueError(f"unknown provider '{value}' (known: {', '.join(sorted(PROVIDERS))})")
        return value

    _cron = field_check("schedule")(_cron)

    @field_check("fingerprint", before=True)
    def _fingerprint_flag(value):
        return {} if value is True else None if value is False else value

    @property
    def key_env(self) -> str:
        return self.api_key_env or DEFAULT_API_KEY_ENV.get(self.provider, "API_KEY")

    def cost(self, input_tokens: int, output_tokens: int) -> float | None:
        if self.price is None:
            return None
        return (input_tokens * self.price.input + output_tokens * self.price.output) / 1e6


class Detection(Strict):
    method: Literal["sigma", "sigma_run", "cusum", "ewma", "binomial"] = "sigma"
    sigma: float = Field(default=2.0, gt=0)
    window: int = Field(default=14, ge=2)
    min_history: int = Field(default=5, ge=2)
    confirm: bool = True
    baseline: Literal["rolling", "frozen"] = "rolling"
    min_answered_share: float = Field(default=0.5, gt=0, le=1)
    cusum_k: float = 0.5
    cusum_h: float = 5.0
    ewma_lambda: float = Field(default=0.2, gt=0, le=1)
    ewma_L: float = 2.962
    alpha: float = Field(default=0.01, gt=0, lt=1)
    slide: bool = True  # the slow-slide guard: the recent level against the reference after the last ack
    slide_runs: int = Field(default=3, ge=1)
    slide_samples: int = Field(default=150, ge=0)
    drift_tokens: bool = True
    drift_latency: bool = False

    @record_check
    def _coherent(self) -> None:
        from .detect import DetectionParams  # raises ValueError, with every problem, if incoherent
        DetectionParams(**{k: v for k, v in self.fields().items() if not k.startswith(("confirm", "drift"))})


class Slack(Strict):
    webhook_url_env: str | None = None  # an incoming webhook's URL, read from this variable
    token_env: str | None = None        # or a bot token, read from this variable, and a channel
    channel: str | None = None
    api_url: str | None = None          # Web API base URL (default Slack's own)

    @record_check
    def _one_way(self) -> None:
        if bool(self.webhook_url_env) == bool(self.token_env):
            raise ValueError("slack needs either webhook_url_env or token_env (with channel)")
        if self.token_env and not self.channel:
            raise ValueError("slack.token_env needs a channel")


class Alerts(Strict):
    slack: Slack | None = None
    error_rate: float = Field(default=0.2, gt=0, le=1)
    report_url: str | None = None  # the public address of the report (the daemon's `/`): messages link into it

    @field_check("report_url")
    def _link(value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"https?://[^\s<>|]+", value):
            raise ValueError(f"'{value}' is not an http(s) URL a Slack link can hold (no spaces, <, > or |)")
        return value.split("#", 1)[0] if value else value


class Daemon(Strict):
    http: str | None = "127.0.0.1:8787"
    catch_up: timedelta = timedelta(hours=24)  # also how long a failed slot is retried
    lease: timedelta = timedelta(seconds=120)
    shutdown_grace: timedelta = timedelta(seconds=30)
    jitter: timedelta = timedelta(0)
    heartbeat_url: str | None = None  # GET after good ticks (healthchecks.io / Cronitor), at most once a minute
    failing_alert_after: timedelta = timedelta(hours=1)  # canary_failing alert: a model's slots failing this long
    late_after: timedelta = timedelta(hours=2)  # /healthz degraded: a slot not complete this long after its time

    @field_check("catch_up", "lease", "shutdown_grace", "jitter", "failing_alert_after", "late_after", before=True)
    def _duration(value):
        return parse_duration(value) if not isinstance(value, timedelta) else value

    @field_check("heartbeat_url")
    def _http_url(value: str | None) -> str | None:
        if value is not None and not re.match(r"https?://[^/\s]+", value):
            raise ValueError(f"'{value}' is not an http(s) URL")
        return value

    @field_check("http")
    def _address(value: str | None) -> str | None:
        if value is not None:
            parse_address(value)
        return value


class Config(Strict):
    database: str = "sqlite:///canary.db"
    prompts: str = "prompts"
    schedule: str = "0 6 * * *"
    timezone: str = "UTC"
    models: list[ModelConfig] = Field(default_factory=list)
    detection: Detection = Field(default_factory=Detection)
    alerts: Alerts = Field(default_factory=Alerts)
    daemon: Daemon = Field(default_factory=Daemon)
    _path: Path | None = None  # the file it was read from

    _cron = field_check("schedule")(_cron)

    @field_check("timezone")
    def _zone(value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone '{value}' (an IANA name like UTC or Europe/Paris)") from None
        return value

    @property
    def base_dir(self) -> Path:
        return self._path.parent if self._path else Path.cwd()

    @property
    def path(self) -> Path | None:
        return self._path

    @property
    def prompts_dir(self) -> Path:
        return (self.base_dir / self.prompts).resolve()

    @property
    def database_url(self) -> str:
        """$CANARY_DATABASE_URL, else `database`; a relative SQLite path is relative to the config."""
        url = os.environ.get("CANARY_DATABASE_URL") or self.database
        prefix = "sqlite:///"
        if url.startswith(prefix) and url != prefix and not url[len(prefix):].startswith(("/", ":memory:", "file:")):
            url = prefix + str(self.base_dir / url[len(prefix):])
        return url

    @property
    def sim_database_url(self) -> str:
        """Where runs against the simulated model go: beside the config, apart from real history."""
        return f"sqlite:///{self.base_dir / 'canary-sim.db'}"

    def model(self, name: str) -> ModelConfig:
        return next(m for m in self.models if m.name == name)


def find_config(explicit: str | os.PathLike | None = None) -> Path:
    """`--config`, then $CANARY_CONFIG, then ./canary.yaml."""
    path = Path(explicit or os.environ.get("CANARY_CONFIG") or "canary.yaml")
    if not path.exists():
        raise ConfigError([f"{path}:1: config file not found (create one with `canary init`, "
                           "or point --config / $CANARY_CONFIG at it)"])
    return path


def load_config(explicit: str | os.PathLike | None = None) -> Config:
    """Load and validate canary.yaml; raise ConfigError with every problem as `path:line: message`."""
    path = find_config(explicit)
    doc = load(path)
    if doc.data is None:
        raise ConfigError([f"{path}:1: the config file is empty (write one with `canary init`)"])
    config, problems = doc.validate(Config, doc.data)
    if config is not None:
        seen: set[str] = set()
        for i, m in enumerate(config.models):
            if m.name in seen:
                problems.append(doc.problem(("models", i, "name"), f"duplicate model name '{m.name}'"))
            seen.add(m.name)
    if problems:
        raise ConfigError(problems)
    config._path = path.resolve()
    return config
