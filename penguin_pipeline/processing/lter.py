"""The raw Palmer LTER layout and the rules a row must meet to enter the warehouse.

One declaration of the allowed values and plausible ranges, used by ingestion (row quarantine)
and by the clean table's checks alike.
"""

from __future__ import annotations

LTER_COLUMNS = (
    "studyName",
    "Sample Number",
    "Species",
    "Region",
    "Island",
    "Stage",
    "Individual ID",
    "Clutch Completion",
    "Date Egg",
    "Culmen Length (mm)",
    "Culmen Depth (mm)",
    "Flipper Length (mm)",
    "Body Mass (g)",
    "Sex",
    "Delta 15 N (o/oo)",
    "Delta 13 C (o/oo)",
    "Comments",
)

# A file may lack these (they load as NULL); lacking any other LTER column, it is not the LTER
# layout.
OPTIONAL_COLUMNS = (
    "Sample Number",
    "Region",
    "Stage",
    "Clutch Completion",
    "Delta 15 N (o/oo)",
    "Delta 13 C (o/oo)",
    "Comments",
)
REQUIRED_COLUMNS = tuple(c for c in LTER_COLUMNS if c not in OPTIONAL_COLUMNS)

SPECIES = ("Adelie", "Chinstrap", "Gentoo")
# How LTER exports spell each species.
LTER_SPECIES = {
    "Adelie": "Adelie Penguin (Pygoscelis adeliae)",
    "Chinstrap": "Chinstrap penguin (Pygoscelis antarctica)",
    "Gentoo": "Gentoo penguin (Pygoscelis papua)",
}
ISLANDS = ("Biscoe", "Dream", "Torgersen")
SEXES = ("female", "male")

# Raw measurement column -> (clean name, lowest plausible, highest plausible). The bounds are wide
# physical limits, well outside the observed ranges, so only impossible values are quarantined.
MEASUREMENTS = {
    "Culmen Length (mm)": ("bill_length_mm", 20.0, 80.0),
    "Culmen Depth (mm)": ("bill_depth_mm", 10.0, 30.0),
    "Flipper Length (mm)": ("flipper_length_mm", 150.0, 260.0),
    "Body Mass (g)": ("body_mass_g", 2000.0, 7500.0),
}

# Spellings of "no value" found in LTER exports.
MISSING_MARKERS = ("", "NA", "N/A", "NULL", ".")


def quote(column: str) -> str:
    return '"' + column.replace('"', '""') + '"'


def literal(value: str) -> str:
    """A SQL string literal (for what DuckDB takes no parameter for: paths, SET, ATTACH)."""
    return "'" + str(value).replace("'", "''") + "'"


def sql_list(values) -> str:
    return ", ".join(literal(v) for v in values)


def missing(expr: str) -> str:
    """SQL: the raw text expression holds no value (NULL, blank or a marker; "" is a marker)."""
    return f"coalesce(upper(trim({expr})) IN ({sql_list(MISSING_MARKERS)}), true)"


def raw_number(column: str) -> str:
    """SQL: a raw measurement column as DOUBLE, NULL when missing or not a number.

    No missing() test needed: every marker (any case) casts to NULL. This runs on every row at
    ingest and in the clean rebuild, so one cast per value matters at 10^8 rows.
    """
    return f"TRY_CAST(trim({quote(column)}) AS DOUBLE)"


def raw_species() -> str:
    """SQL: the species' common name, the first word of e.g. 'Adelie Penguin (Pygoscelis
    adeliae)'.

    The LTER's own spellings are looked up: splitting and re-casing the text costs ~1 µs a row,
    which at 10^8 rows is most of the validity check and of the clean rebuild.
    """
    word = "split_part(trim(\"Species\"), ' ', 1)"
    known = " ".join(
        f"WHEN {literal(name)} THEN {literal(short)}" for short, name in LTER_SPECIES.items()
    )
    return f'(CASE "Species" {known} ELSE upper(left({word}, 1)) || lower(substr({word}, 2)) END)'


def raw_sex() -> str:
    return f'(CASE WHEN {missing(quote("Sex"))} THEN NULL ELSE lower(trim("Sex")) END)'


def raw_date() -> str:
    """SQL: 'Date Egg' as DATE; LTER exports use ISO dates, older ones m/d/yy."""
    col = 'trim("Date Egg")'
    return (
        f"coalesce(TRY_CAST({col} AS DATE), TRY_CAST(try_strptime({col}, '%m/%d/%Y') AS DATE), "
        f"TRY_CAST(try_strptime({col}, '%m/%d/%y') AS DATE))"
    )


def row_problems() -> str:
    """SQL: a list of every reason a raw row cannot enter the clean table (empty when it can)."""
    cases = ", ".join(
        f"CASE WHEN {cond} THEN {reason} END"
        for cond, reason in zip(_problem_conditions(), _problem_reasons(), strict=False)
    )
    return f"list_filter([{cases}], lambda x: x IS NOT NULL)"


def _problem_reasons() -> list[str]:
    """SQL: the reason text for each of _problem_conditions(), in the same order."""
    reasons = [
        "'missing studyName'",
        "'missing Individual ID'",
        "'unknown Species ' || coalesce('''' || \"Species\" || '''', 'NULL') "
        f"|| ' (allowed: {', '.join(SPECIES)})'",
        "'unknown Island ' || coalesce('''' || \"Island\" || '''', 'NULL') "
        f"|| ' (allowed: {', '.join(ISLANDS)})'",
        "'unknown Sex ''' || \"Sex\" || ''' (allowed: MALE, FEMALE, NA)'",
        "'Date Egg ' || coalesce('''' || \"Date Egg\" || '''', 'NULL') || ' is not a date'",
    ]
    for column, (_, low, high) in MEASUREMENTS.items():
        col = quote(column)
        reasons.append(f"'{column} ''' || {col} || ''' is not a number'")
        reasons.append(f"'{column} ' || {col} || ' outside {low:g}..{high:g}'")
    return reasons


def row_is_valid() -> str:
    """SQL: true exactly when row_problems() is empty, without building the list of reasons.

    Ingestion evaluates this on every row and the reasons only on the few rows that fail it: each
    measurement is cast once, and only a value that is not a number is tested for a marker.
    """
    checks = [f"NOT coalesce({cond}, false)" for cond in _category_conditions()]
    for column, (_, low, high) in MEASUREMENTS.items():
        checks.append(
            f"coalesce({raw_number(column)} BETWEEN {low} AND {high}, {missing(quote(column))})"
        )
    return " AND ".join(checks)


def _category_conditions() -> list[str]:
    """SQL: each condition on the text columns under which a raw row cannot enter the clean
    table."""
    return [
        missing(quote("studyName")),
        missing(quote("Individual ID")),
        f'{raw_species()} NOT IN ({sql_list(SPECIES)}) OR "Species" IS NULL',
        f"coalesce(trim(\"Island\"), '') NOT IN ({sql_list(ISLANDS)})",
        f"{raw_sex()} IS NOT NULL AND {raw_sex()} NOT IN ({sql_list(SEXES)})",
        f"{raw_date()} IS NULL",
    ]


def _problem_conditions() -> list[str]:
    """SQL: each condition under which a raw row cannot enter the clean table (see
    _problem_reasons)."""
    conditions = _category_conditions()
    for column, (_, low, high) in MEASUREMENTS.items():
        col = quote(column)
        conditions.append(f"{raw_number(column)} IS NULL AND NOT {missing(col)}")
        conditions.append(f"{raw_number(column)} NOT BETWEEN {low} AND {high}")
    return conditions
