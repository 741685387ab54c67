"""Synthetic penguin-shaped landing files for benchmarks, tests and demos (`penguin-pipeline synth`,
`penguin-pipeline new-data`). A tool beside the pipeline, not part of its processing.

The profile is fitted from the real penguins palmerpenguins ships: per species and sex the means,
spreads and correlations of the four measurements (a multivariate normal fitted on the complete
rows); the islands and species mix per island; the sex ratio; clutch completion and the blood
isotopes; and the share of faults real files have (missing measurements, "." or NA for sex).

Rows are generated inside DuckDB and streamed by COPY to Parquet or CSV: numpy + pandas would hold
whole files of Python strings, COPY writes row groups straight to disk, so 10^8 rows cost the same
memory as 10^4. Randomness is a hash of (seed, season, island, row, draw): every row is
reproducible on its own, whatever the thread count or chunking.
"""

from __future__ import annotations

import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from .processing.lter import LTER_SPECIES, MEASUREMENTS

MEASURES = [name for name, _, _ in MEASUREMENTS.values()]
RAW_MEASURES = list(MEASUREMENTS)
ISOTOPES = ["Delta 15 N (o/oo)", "Delta 13 C (o/oo)"]
MISSING_MEASURE_SHARE = 0.006  # real files: 2 of 344 rows have no measurements
MISSING_SEX_SHARE = 0.03  # real files: 11 of 344 rows have no sex ("NA" or ".")


@dataclass
class Profile:
    """What the generator reproduces, fitted from palmerpenguins' clean and raw files."""

    species_by_island: dict[str, dict[str, float]]  # island -> species -> share
    island_share: dict[str, float]
    male_share: dict[str, float]  # species -> share of males among sexed birds
    means: dict[tuple[str, str], np.ndarray]  # (species, sex) -> 4 means
    covariances: dict[tuple[str, str], np.ndarray]  # (species, sex) -> 4x4
    isotopes: dict[str, tuple[float, float]]  # raw isotope column -> (mean, standard deviation)
    clutch_complete_share: float


def fit_profile(clean: pd.DataFrame, raw: pd.DataFrame) -> Profile:
    complete = clean.dropna(subset=MEASURES + ["sex"])
    counts = clean.groupby(["island", "species"]).size()
    species_by_island = {
        island: {species: share for (_, species), share in (rows / rows.sum()).items()}
        for island, rows in counts.groupby(level=0)
    }
    island_share = (clean["island"].value_counts(normalize=True)).to_dict()
    male_share = (
        complete.groupby("species")["sex"].apply(lambda s: float((s == "male").mean())).to_dict()
    )
    means, covariances = {}, {}
    for key, rows in complete.groupby(["species", "sex"]):
        values = rows[MEASURES].to_numpy(dtype=float)
        means[key] = values.mean(axis=0)
        covariances[key] = np.cov(values, rowvar=False)
    isotopes = {name: (float(raw[name].mean()), float(raw[name].std())) for name in ISOTOPES}
    clutch = float((raw["Clutch Completion"] == "Yes").mean())
    return Profile(
        species_by_island, island_share, male_share, means, covariances, isotopes, clutch
    )


def shipped_profile() -> Profile:
    """The profile fitted from the penguins.csv and penguins_raw.csv the palmerpenguins package
    ships."""
    from .storage.landing import packaged_lter_file

    raw_file = packaged_lter_file()
    return fit_profile(pd.read_csv(raw_file.with_name("penguins.csv")), pd.read_csv(raw_file))


def study_name(year: int) -> str:
    """LTER studies span a season: the 2007 season is PAL0708. From 2100 on the century is added
    (PAL0708-21), so that 10^9 rows (334 seasons) never repeat a study's individuals."""
    name = f"PAL{year % 100:02d}{(year + 1) % 100:02d}"
    return name if year < 2100 else f"{name}-{year // 100}"


LANDING_FORMATS = ("parquet", "csv")
ROWS_PER_SEASON = 3_000_000  # default season size: at 10^8 rows, 34 seasons x 3 islands = 102 files


def _uniform(draw: int) -> str:
    """SQL: a uniform in (0, 1), fixed by (seed, file key, row i, draw number).

    One integer is hashed, not several: DuckDB combines multi-argument hashes cheaply, which left
    draws of the same row correlated. `salt` puts (seed, file) in the bits above i * 64 + draw.
    """
    return f"(((hash(salt + i * 64 + {draw}) >> 11)::DOUBLE + 0.5) / 9007199254740992.0)"


def _normal(draw: int) -> str:
    """SQL: a standard normal by Box-Muller from two independent uniforms."""
    return f"(sqrt(-2 * ln({_uniform(draw)})) * cos(2 * pi() * {_uniform(draw + 1)}))"


def _profile_table_sql(profile: Profile) -> str:
    """VALUES of (species, sex, mean_k, chol_kj): the per-group multivariate normal, as a tiny join
    table."""
    rows = []
    for (species, sex), mean in sorted(profile.means.items()):
        chol = np.linalg.cholesky(profile.covariances[(species, sex)])
        values = [f"'{species}'", f"'{sex}'"] + [repr(float(m)) for m in mean]
        values += [repr(float(chol[r, c])) for r in range(4) for c in range(r + 1)]
        rows.append("(" + ", ".join(values) + ")")
    names = (
        ["species", "sex"]
        + [f"m{k}" for k in range(4)]
        + [f"l{r}{c}" for r in range(4) for c in range(r + 1)]
    )
    return f"(VALUES {', '.join(rows)}) AS p({', '.join(names)})"


def _pick(u: str, shares: dict[str, float]) -> str:
    """SQL: the category whose cumulative share first exceeds u."""
    total, cumulative, cases = sum(shares.values()), 0.0, []
    items = sorted(shares.items())
    if len(items) == 1:
        return f"'{items[0][0]}'"
    for name, share in items[:-1]:
        cumulative += share / total
        cases.append(f"WHEN {u} < {cumulative!r} THEN '{name}'")
    return f"(CASE {' '.join(cases)} ELSE '{items[-1][0]}' END)"


def landing_file_sql(
    profile: Profile, rows: int, year: int, island: str, first_row: int, seed: int
) -> str:
    """SELECT producing `rows` birds of one season on one island in the raw LTER layout (all text).

    first_row numbers the birds across the season's islands, so Individual IDs are unique per
    season.
    """
    file_key = year * 10 + sorted(profile.island_share).index(island)
    salt = ((file_key * 1_000_003 + seed) % (1 << 22)) << 40  # i * 64 + draw stays below 2^40
    male = " ".join(f"WHEN '{s}' THEN {share!r}" for s, share in sorted(profile.male_share.items()))
    z = [_normal(10 + 2 * k) for k in range(4)]
    measure = [
        f"(m{r} + " + " + ".join(f"l{r}{c} * z{c}" for c in range(r + 1)) + ")" for r in range(4)
    ]
    full = " ".join(f"WHEN '{s}' THEN '{name}'" for s, name in LTER_SPECIES.items())
    no_measures = f"{_uniform(5)} < {MISSING_MEASURE_SHARE}"
    no_sex = f"{_uniform(6)} < {MISSING_SEX_SHARE}"
    (n15_mean, n15_sd), (c13_mean, c13_sd) = (profile.isotopes[name] for name in ISOTOPES)
    return f"""
    WITH drawn AS (
        SELECT i, {_pick(_uniform(1), profile.species_by_island[island])} AS species,
               {_uniform(2)} AS u_sex, {_uniform(3)} AS u_clutch, {_uniform(4)} AS u_date,
               {no_measures} AS no_measures, {no_sex} AS no_sex, {_uniform(7)} < 0.1 AS dot_sex,
               {", ".join(f"{z[k]} AS z{k}" for k in range(4))},
               {_normal(20)} AS z_n15, {_normal(22)} AS z_c13
        FROM (SELECT {salt} AS salt, range AS i FROM range({first_row}, {first_row + rows}))
    ), sexed AS (
        SELECT *, CASE WHEN u_sex < (CASE species {male} END) THEN 'male' ELSE 'female' END AS sex
        FROM drawn
    ), measured AS (
        SELECT sexed.*, {", ".join(f"{measure[r]} AS x{r}" for r in range(4))}
        FROM sexed JOIN {_profile_table_sql(profile)} USING (species, sex)
    )
    SELECT '{study_name(year)}' AS "studyName",
           CAST(i + 1 AS VARCHAR) AS "Sample Number",
           CASE species {full} END AS "Species",
           'Anvers' AS "Region",
           '{island}' AS "Island",
           'Adult, 1 Egg Stage' AS "Stage",
           'N' || CAST(i // 2 + 1 AS VARCHAR) || 'A' || CAST(i % 2 + 1 AS VARCHAR)
               AS "Individual ID",
           CASE WHEN u_clutch < {profile.clutch_complete_share!r} THEN 'Yes' ELSE 'No' END
               AS "Clutch Completion",
           CAST(DATE '{year}-11-05' + CAST(floor(u_date * 30) AS INTEGER) AS VARCHAR) AS "Date Egg",
           CASE WHEN no_measures THEN 'NA'
                ELSE CAST(round(x0, 1) AS VARCHAR) END AS "Culmen Length (mm)",
           CASE WHEN no_measures THEN 'NA'
                ELSE CAST(round(x1, 1) AS VARCHAR) END AS "Culmen Depth (mm)",
           CASE WHEN no_measures THEN 'NA'
                ELSE CAST(CAST(round(x2) AS INTEGER) AS VARCHAR) END AS "Flipper Length (mm)",
           CASE WHEN no_measures THEN 'NA'
                ELSE CAST(CAST(round(x3 / 25) * 25 AS INTEGER) AS VARCHAR) END AS "Body Mass (g)",
           CASE WHEN no_measures THEN 'NA' WHEN no_sex AND dot_sex THEN '.' WHEN no_sex THEN 'NA'
                ELSE upper(sex) END AS "Sex",
           CAST(round({n15_mean!r} + {n15_sd!r} * z_n15, 5) AS VARCHAR) AS "Delta 15 N (o/oo)",
           CAST(round({c13_mean!r} + {c13_sd!r} * z_c13, 5) AS VARCHAR) AS "Delta 13 C (o/oo)",
           'NA' AS "Comments"
    FROM measured
    """


def split_rows(total: int, shares: list[float]) -> list[int]:
    """Whole numbers in proportion to shares that add up to exactly total (largest remainder)."""
    exact = [total * s / sum(shares) for s in shares]
    counts = [int(x) for x in exact]
    for k in sorted(range(len(shares)), key=lambda k: exact[k] - counts[k], reverse=True)[
        : total - sum(counts)
    ]:
        counts[k] += 1
    return counts


@dataclass
class SynthFile:
    name: str
    rows: int
    year: int
    island: str


def plan_files(
    profile: Profile, rows: int, seasons: int | None = None, first_year: int = 2007
) -> list[SynthFile]:
    """One landing file per season and island; seasons default to one per ROWS_PER_SEASON rows (at
    least 3)."""
    seasons = seasons or max(3, -(-rows // ROWS_PER_SEASON))
    islands = sorted(profile.island_share)
    plan = []
    for season, season_rows in enumerate(split_rows(rows, [1.0] * seasons)):
        year = first_year + season
        for island, n in zip(
            islands,
            split_rows(season_rows, [profile.island_share[i] for i in islands]),
            strict=True,
        ):
            if n:
                plan.append(SynthFile(f"season-{year}-{island}", n, year, island))
    return plan


def write_landing_files(
    profile: Profile,
    rows: int,
    directory,
    fmt: str = "parquet",
    seasons: int | None = None,
    seed: int = 42,
    first_year: int = 2007,
    memory_limit: str = "1GB",
    threads: int = 2,
    progress=None,
) -> list:
    """Write `rows` synthetic birds as landing files (season x island) in `directory`; returns
    their paths.

    Files are written under a hidden name and renamed when complete, so a watching sensor never
    picks up half a file.
    """
    if fmt not in LANDING_FORMATS:
        raise ValueError(f"format must be one of {', '.join(LANDING_FORMATS)}, not {fmt!r}")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    options = (
        "FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 122880"
        if fmt == "parquet"
        else "FORMAT csv, HEADER true"
    )
    todo, season_start = [], {}
    for planned in plan_files(profile, rows, seasons, first_year):
        first = season_start.get(planned.year, 0)
        season_start[planned.year] = first + planned.rows
        todo.append((planned, first))

    def write(con: duckdb.DuckDBPyConnection, planned: SynthFile, first: int) -> Path:
        final = directory / f"{planned.name}.{fmt}"
        partial = directory / f".{planned.name}.{fmt}.partial"
        sql = landing_file_sql(profile, planned.rows, planned.year, planned.island, first, seed)
        with con.cursor() as cursor:  # one per thread; all share the database's memory limit
            cursor.execute(f"COPY ({sql}) TO '{partial}' ({options})")
        partial.replace(final)
        if progress:
            progress(final, planned.rows)
        return final

    # DuckDB generates one file's rows on one core (its range() source is not split), so `threads`
    # files are written at once.
    with (
        duckdb.connect(config={"memory_limit": memory_limit, "threads": threads}) as con,
        ThreadPoolExecutor(threads) as pool,
    ):
        return list(pool.map(lambda item: write(con, *item), todo))


def season_csv(profile: Profile, rows: int, year: int, seed: int) -> bytes:
    """One field season across the islands (island shares as observed) as one LTER CSV file's bytes.

    The same rows as `write_landing_files` would write for that season, in one file ordered by
    sample number (`penguin-pipeline new-data`).
    """
    parts, first = [], 0
    for planned in plan_files(profile, rows, seasons=1, first_year=year):
        parts.append(
            f"({landing_file_sql(profile, planned.rows, year, planned.island, first, seed)})"
        )
        first += planned.rows
    season = " UNION ALL ".join(parts)
    with tempfile.TemporaryDirectory() as tmp, duckdb.connect() as con:
        path = Path(tmp) / "season.csv"
        con.execute(f"""COPY (SELECT * FROM ({season}) ORDER BY CAST("Sample Number" AS INTEGER))
                        TO '{path}' (FORMAT csv, HEADER true)""")
        return path.read_bytes()
