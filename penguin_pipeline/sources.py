"""The source registry: each input's landing prefix, formats, owner and cadence, declared once.

Each entry becomes, through `defs/sources.py`'s factory, the source's own asset in the lineage graph
(an external asset with a cron FreshnessPolicy), the sensor that turns its new files into runs, and
the schedule that sweeps the landing zone at its cadence; the report's "next expected update" lines
and README's data-flow chart (`make chart`) read it too. A new source is one entry here; its files
land under its prefix and feed raw_penguins like every other source's.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from croniter import croniter


@dataclass(frozen=True)
class Source:
    name: str
    description: str
    owner: str
    prefix: str  # its folder (or key prefix) in the landing zone; "" = files at the landing root
    cadence_cron: str  # when new data is expected (UTC)
    formats: tuple[str, ...] = ("csv", "parquet")

    def owns(self, landing_name: str) -> bool:
        """Whether a landing file (its name relative to the landing root) belongs to this source."""
        folder, _, _ = landing_name.rpartition("/")
        return folder == self.prefix

    def next_expected(self, after: datetime | None = None) -> datetime:
        return croniter(self.cadence_cron, after or datetime.now(UTC)).get_next(datetime)

    def cadence_text(self) -> str:
        """In words, for people: "daily at 06:00 UTC, next 2026-12-01 06:00 UTC"."""
        words = cron_in_words(self.cadence_cron)
        return f"{words}, next {self.next_expected():%Y-%m-%d %H:%M} UTC"


DAYS = ("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")


def cron_in_words(cron: str) -> str:
    """A cadence cron in words: daily, weekly on a day, monthly on a date, at a UTC time; any
    other cron is named as such (the report is read by people, not by croniter)."""
    fields = cron.split()
    if len(fields) == 5 and fields[0].isdigit() and fields[1].isdigit():
        minute, hour, day, month, weekday = fields
        at = f"at {int(hour):02d}:{int(minute):02d} UTC"
        if (day, month, weekday) == ("*", "*", "*"):
            return f"daily {at}"
        if (day, month) == ("*", "*") and weekday.isdigit() and int(weekday) <= 7:
            return f"weekly on {DAYS[int(weekday) % 7]} {at}"
        if day.isdigit() and (month, weekday) == ("*", "*"):
            return f"monthly on day {int(day)} {at}"
    return f"on the cron schedule {cron} (UTC)"


_EDI = "Palmer Station Antarctica LTER, Environmental Data Initiative data package"

SOURCES = (
    Source(
        name="palmer_lter",
        description="The three species' LTER tables in one file, as the palmerpenguins package "
        "ships them (penguins-raw.csv); the first run seeds it.",
        owner="team:field-data",
        prefix="",
        cadence_cron="0 6 * * *",
    ),
    Source(
        name="lter_adelie",
        description=f"Adelie penguins (Pygoscelis adeliae): {_EDI} knb-lter-pal.219.",
        owner="team:field-data",
        prefix="adelie",
        cadence_cron="0 6 * * *",
    ),
    Source(
        name="lter_gentoo",
        description=f"Gentoo penguins (Pygoscelis papua): {_EDI} knb-lter-pal.220.",
        owner="team:field-data",
        prefix="gentoo",
        cadence_cron="0 7 * * 1",
    ),
    Source(
        name="lter_chinstrap",
        description=f"Chinstrap penguins (Pygoscelis antarcticus): {_EDI} knb-lter-pal.221.",
        owner="team:field-data",
        prefix="chinstrap",
        cadence_cron="0 8 1 * *",
    ),
)

SUPPORTED_FORMATS = tuple(sorted({fmt for source in SOURCES for fmt in source.formats}))


def source_of(landing_name: str) -> Source | None:
    return next((s for s in SOURCES if s.owns(landing_name)), None)
