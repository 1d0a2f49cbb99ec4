"""The account schema CS ops declare: traits, windowed metrics, the health score, contact roles."""

from __future__ import annotations

from functools import cached_property
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from engine.core.durations import DurationField

TraitType = Literal[
    "string", "integer", "number", "boolean", "date", "datetime", "email", "timezone"
]


class Authored(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TraitSpec(Authored):
    """A declared account trait (from ``group`` calls or ``set_trait``)."""

    type: TraitType
    description: str = ""
    enum: tuple[str, ...] = ()
    #: Value used to render templates against sample data at load.
    sample: Any = None


class MetricSpec(Authored):
    """A windowed metric: count or sum of an event over a sliding window, or when last seen."""

    kind: Literal["count", "sum", "last_seen"]
    event: str = Field(min_length=1)
    property: str | None = None
    window: DurationField | None = None
    description: str = ""

    @model_validator(mode="after")
    def _shape(self) -> MetricSpec:
        if self.kind == "sum" and not self.property:
            raise ValueError("a 'sum' metric needs 'property' (the event property to add up)")
        if self.kind in ("count", "sum"):
            if self.window is None:
                raise ValueError(f"a '{self.kind}' metric needs 'window' (e.g. 7d)")
            if self.window.business_days:
                raise ValueError("window: business days are not supported for metric windows")
        elif self.window is not None:
            raise ValueError("a 'last_seen' metric has no window")
        return self


class HealthComponent(Authored):
    """One weighted input of the health score, scaled linearly from ``bad`` (0) to ``good`` (100).

    ``metric`` and ``trait`` components read a number; a ``flag`` component scores 0 while the
    flag is set and 100 otherwise.
    """

    name: str
    weight: float = Field(gt=0)
    metric: str | None = None
    trait: str | None = None
    flag: str | None = None
    good: float = 100.0
    bad: float = 0.0

    @model_validator(mode="after")
    def _one_source(self) -> HealthComponent:
        sources = [s for s in (self.metric, self.trait, self.flag) if s]
        if len(sources) != 1:
            raise ValueError("a health component reads exactly one of: metric, trait, flag")
        if self.flag is None and self.good == self.bad:
            raise ValueError("good and bad must differ")
        return self


class HealthBands(Authored):
    """Lower bounds of the bands: score >= green is green, >= yellow is yellow, else red."""

    green: float = Field(default=70, ge=0, le=100)
    yellow: float = Field(default=40, ge=0, le=100)

    @model_validator(mode="after")
    def _ordered(self) -> HealthBands:
        if self.yellow > self.green:
            raise ValueError("yellow must not be above green")
        return self

    def band(self, score: float) -> str:
        if score >= self.green:
            return "green"
        if score >= self.yellow:
            return "yellow"
        return "red"


class HealthSpec(Authored):
    components: tuple[HealthComponent, ...] = ()
    bands: HealthBands = HealthBands()


class AccountSchema(Authored):
    """What an account carries: declared traits, metrics, health and contact roles."""

    kind: Literal["account"]
    traits: dict[str, TraitSpec] = {}
    metrics: dict[str, MetricSpec] = {}
    health: HealthSpec = HealthSpec()
    contact_roles: tuple[str, ...] = ("champion", "decision_maker", "admin", "billing", "user")
    #: The trait that holds the account's IANA time zone (for date triggers and business days).
    timezone_trait: str | None = None

    @cached_property
    def typed_traits(self) -> dict[str, TraitType]:
        """The declared traits whose values are converted when read (all but strings), with
        their type: read once, not on every account view."""
        return {name: spec.type for name, spec in self.traits.items() if spec.type != "string"}

    @field_validator("traits", mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        """``plan: string`` is short for ``plan: {type: string}``."""
        if isinstance(value, dict):
            return {k: {"type": v} if isinstance(v, str) else v for k, v in value.items()}
        return value

    @model_validator(mode="after")
    def _references(self) -> AccountSchema:
        problems: list[str] = []
        for i, c in enumerate(self.health.components):
            if c.metric and c.metric not in self.metrics:
                problems.append(f"health.components[{i}].metric: unknown metric '{c.metric}'")
            if c.trait:
                spec = self.traits.get(c.trait)
                if spec is None:
                    problems.append(f"health.components[{i}].trait: unknown trait '{c.trait}'")
                elif spec.type not in ("integer", "number"):
                    problems.append(
                        f"health.components[{i}].trait: '{c.trait}' is {spec.type}, not a number"
                    )
        tz = self.timezone_trait
        if tz is not None and (tz not in self.traits or self.traits[tz].type != "timezone"):
            problems.append(f"timezone_trait: '{tz}' must be a declared trait of type timezone")
        if problems:
            raise ValueError("; ".join(problems))
        return self


DEFAULT_SCHEMA = AccountSchema(kind="account")
