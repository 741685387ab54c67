"""The source registry: each input's location, format and update cadence, declared once.

Everything time-related is derived from `cadence_cron`: the schedule that sweeps the landing zone,
the FreshnessPolicy of every asset the source feeds, the report's "next expected update" line and
README's data-flow chart (`make chart`). Change a cadence here and all of them follow.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from croniter import croniter


@dataclass(frozen=True)
class Source:
    name: str
    description: str
    owner: str
    formats: tuple[str, ...]
    location_setting: str  # the Settings field (and so the env var) that says where it lands
    feeds: str  # the asset that ingests it; everything downstream follows its cadence
    cadence_cron: str  # when new data is expected (UTC)
    grace: timedelta = timedelta(hours=1)  # how late a refresh may be before it counts as stale

    def next_expected(self, after: datetime | None = None) -> datetime:
        start = after or datetime.now(timezone.utc)
        return croniter(self.cadence_cron, start).get_next(datetime)

    def period(self) -> timedelta:
        return cron_period(self.cadence_cron)

    def cadence_text(self) -> str:
        return f"cron `{self.cadence_cron}` (UTC), next {self.next_expected():%Y-%m-%d %H:%M} UTC"


@functools.cache
def cron_period(cron: str) -> timedelta:
    """The longest gap between two ticks over a year (cron periods can vary); cached: it walks ~400 ticks."""
    ticks = croniter(cron, datetime(2026, 1, 1, tzinfo=timezone.utc))
    times = [ticks.get_next(datetime) for _ in range(2)]
    gaps = [times[1] - times[0]]
    while times[-1] < datetime(2027, 1, 1, tzinfo=timezone.utc) and len(gaps) < 400:
        times.append(ticks.get_next(datetime))
        gaps.append(times[-1] - times[-2])
    return max(gaps)


PALMER_LTER = Source(
    name="palmer_lter",
    description=(
        "Palmer Station LTER penguin field data (Gorman et al.), one CSV or Parquet file per "
        "field season and island, in the raw LTER column layout."
    ),
    owner="team:field-data",
    formats=("csv", "parquet"),
    location_setting="landing_url",
    feeds="raw_penguins",
    cadence_cron="0 6 * * *",
)

SOURCES = (PALMER_LTER,)
