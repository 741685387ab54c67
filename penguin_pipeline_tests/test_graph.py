"""The whole asset graph through Dagster, on tmp paths and an ephemeral instance."""

from __future__ import annotations

import re
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.definitions.data_version import extract_data_version_from_entry

from penguin_pipeline import cli
from penguin_pipeline.definitions import defs
from penguin_pipeline.processing import modeling
from penguin_pipeline.storage import boards

from .conftest import (
    LTER_FILE,
    PIPELINE_ASSETS,
    fail_staging,
    lter_lines,
    pinned_report,
    query,
    write_lines,
)

ASSETS = PIPELINE_ASSETS
SOURCES = [
    "lter_adelie",
    "lter_chinstrap",
    "lter_gentoo",
    "palmer_lter",
]  # external: the source registry


def materialized(result) -> list[str]:
    return sorted({e.asset_key.to_user_string() for e in result.get_asset_materialization_events()})


def failed_checks(result) -> list[str]:
    return [
        e.event_specific_data.asset_check_key.name
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION" and not e.event_specific_data.passed
    ]


def latest_version(settings):
    return boards.latest_model_facts(boards.board_from_url(settings.board_url))["version"]


def test_definitions_load_with_the_public_asset_graph(data_dir, instance):
    definitions = defs()
    graph = definitions.resolve_asset_graph()
    assert sorted(k.to_user_string() for k in graph.materializable_asset_keys) == sorted(ASSETS)
    assert sorted(k.to_user_string() for k in graph.external_asset_keys) == SOURCES
    parents = {
        k.to_user_string(): sorted(p.to_user_string() for p in graph.get(k).parent_keys)
        for k in graph.materializable_asset_keys
    }
    assert parents == {
        "raw_penguins": SOURCES,
        "penguins": ["raw_penguins"],
        "penguin_summary": ["penguins"],
        "model_monitoring": ["penguins"],
        "penguin_model": ["model_monitoring", "penguins"],
        "penguin_champion": ["model_monitoring", "penguin_model"],
        "penguin_report": ["penguin_champion", "penguin_summary"],
    }
    assert definitions.resolve_job_def("penguin_job")


def test_first_run_seeds_landing_and_builds_everything(settings, instance):
    result = cli.run_pipeline(instance)
    assert result.success
    assert materialized(result) == sorted(ASSETS)
    assert (Path(settings.landing_url) / "penguins-raw.csv").read_bytes() == LTER_FILE.read_bytes()
    assert query(settings, "SELECT count(*) FROM penguins") == [(344,)]
    assert query(settings, "SELECT sum(n_penguins) FROM penguin_summary") == [(344,)]
    facts = boards.latest_model_facts(boards.board_from_url(settings.board_url))
    # 333 complete rows: all but a fifth of the newest season's (2009: 117) are trained on
    assert facts["rows_used"] + facts["rows"]["held_out"] == 333
    assert 333 - 117 < facts["rows_used"] < 333 and facts["rows"]["missing_values"] == 11
    assert facts["seasons"] == [2007, 2008, 2009] and facts["holdout"]["season"] == 2009
    assert abs(facts["r2"] - 0.8555) < 0.01
    html = Path(settings.report_url).read_text(encoding="utf-8")
    assert facts["version"] in html and facts["data_snapshot"] in html
    assert 'src="data:image/png;base64,' in html and 'src="http' not in html
    board = boards.board_from_url(settings.board_url)
    assert pinned_report(board).decode("utf-8") == html  # versioned beside the model
    # The lookup table's species x sex grain, pinned for the API (the model explorer draws it):
    # every penguin of recorded sex (344 less 11 without one), and not pinned again unchanged.
    version, rows = boards.read_summary(board)
    assert len(rows) == 6 and sum(r["n_penguins"] for r in rows) == 333
    assert cli.run_pipeline(instance).success
    assert boards.read_summary(board)[0] == version


def test_seed_command_fills_an_empty_landing_zone_once(settings, instance, capsys):
    assert cli.main(["seed"]) == 0 and "seeded" in capsys.readouterr().out
    assert cli.main(["seed"]) == 0 and "not empty" in capsys.readouterr().out
    assert [p.name for p in Path(settings.landing_url).iterdir()] == ["penguins-raw.csv"]


def test_seed_registers_every_landing_file_as_a_partition(
    settings, seeded_landing, instance, capsys
):
    """`make dev` seeds before the UI starts: "Materialize all" offers every file at once."""
    (seeded_landing / "adelie").mkdir()
    write_lines(seeded_landing / "adelie" / "2010.csv", lter_lines()[:5])
    write_lines(seeded_landing / "season-2010.csv", lter_lines()[:5])
    assert cli.main(["seed"]) == 0
    assert "raw_penguins partitions: 3 new, 3 in all" in capsys.readouterr().out
    assert instance.get_dynamic_partitions("landing_files") == [
        "adelie/2010.csv",
        "penguins-raw.csv",
        "season-2010.csv",
    ]
    write_lines(seeded_landing / "season-2011.csv", lter_lines()[:5])
    assert cli.main(["seed"]) == 0
    assert "raw_penguins partitions: 1 new, 4 in all" in capsys.readouterr().out


def test_second_run_adds_no_rows_and_no_model_version(settings, instance):
    first_run = cli.run_pipeline(instance)
    assert first_run.success, cli.failure_messages(first_run)
    first = boards.latest_model_facts(boards.board_from_url(settings.board_url))
    second_run = cli.run_pipeline(instance)
    assert second_run.success, cli.failure_messages(second_run)
    assert query(settings, "SELECT count(*) FROM raw_penguins") == [(344,)]
    # Rarely failed inside the full suite (not alone): the messages say which part moved.
    second = boards.latest_model_facts(boards.board_from_url(settings.board_url))
    assert second["version"] == first["version"], (first, second)
    versions = boards.board_from_url(settings.board_url).pin_versions("penguin_model")
    assert len(versions) == 1, versions
    # Dagster's data versions say the same: the model's is its training data snapshot, unchanged.
    record = instance.get_latest_data_version_record(dg.AssetKey("penguin_model"))
    assert extract_data_version_from_entry(record.event_log_entry).value == first["data_snapshot"]


def test_a_run_whose_data_another_run_pinned_meanwhile_pins_no_duplicate(
    settings, instance, monkeypatch
):
    """Two runs fitting the same new data at once (the lake: no pool serialises them): the other
    run pins its version while this one is still fitting."""
    fit = modeling.fit_model

    def fit_while_another_run_pins(frame):
        board = boards.board_from_url(settings.board_url)
        other = boards.write_vetiver_pin(board, modeling.to_vetiver(fit(frame), boards.MODEL_PIN))
        fits_meanwhile.append(other)
        return fit(frame)

    fits_meanwhile = []
    monkeypatch.setattr(modeling, "fit_model", fit_while_another_run_pins)
    assert cli.run_pipeline(instance).success
    [other] = fits_meanwhile
    versions = boards.board_from_url(settings.board_url).pin_versions("penguin_model", as_df=False)
    assert [v.version for v in versions] == [other]
    assert latest_version(settings) == other


def test_new_file_adds_rows_and_a_model_version(settings, seeded_landing, instance):
    assert cli.run_pipeline(instance).success
    first = latest_version(settings)
    season = lter_lines()[1:21]
    extra = [
        re.sub(r",N(\d+A\d),", r",X\1,", line.replace("PAL0708", "PAL1011")) for line in season
    ]
    write_lines(seeded_landing / "season-2010.csv", [lter_lines()[0]] + extra)
    assert cli.run_pipeline(instance).success
    assert query(settings, "SELECT count(*) FROM penguins") == [(364,)]
    assert latest_version(settings) > first


def next_seasons(landing, *names):
    """Good files with new individuals: the shipped rows with another study name per file."""
    lines = lter_lines()
    for number, name in enumerate(names):
        study = f"PAL{11 + number:02d}{12 + number:02d}"
        write_lines(
            landing / name, [lines[0]] + [line.replace("PAL0708", study) for line in lines[1:41]]
        )


def test_each_partition_carries_its_own_files_account(settings, seeded_landing, instance):
    """One run of three files: each file's partition records that file's account, and every one
    the run's totals (not the whole list of files, which cost 41 s over 1000 partitions)."""
    next_seasons(seeded_landing, "season-a.csv", "season-b.csv")
    assert cli.run_pipeline(instance).success
    for name, rows in [("penguins-raw.csv", 344), ("season-a.csv", 40), ("season-b.csv", 40)]:
        [record] = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey("raw_penguins"), asset_partitions=[name]),
            limit=1,
        ).records
        metadata = record.asset_materialization.metadata
        account = metadata["file"].value
        assert (account["source_file"], account["rows_loaded"]) == (name, rows)
        assert metadata["files_in_run"].value == 3 and metadata["rows_loaded"].value == 424


def test_one_run_loads_every_good_file_and_quarantines_every_bad_one(
    settings, seeded_landing, instance, capsys
):
    """A bad delivery beside good files: one run handles all of it, and the command exits
    non-zero."""
    assert cli.run_pipeline(instance).success
    (seeded_landing / "binary.csv").write_bytes(b"\x7fELF\x02\x01\x01\x00" + bytes(range(256)) * 20)
    (seeded_landing / "notes.csv").write_text("this is,not\nthe lter,layout\n")
    next_seasons(seeded_landing, "season-a.csv", "season-b.csv")
    (seeded_landing / "empty.csv").write_bytes(b"")
    write_lines(seeded_landing / "header-only.csv", lter_lines()[:1])

    assert cli.main(["run"]) == 2
    summary = capsys.readouterr().err
    assert "2 landing file(s) could not be read" in summary
    assert "binary.csv: cannot be read as CSV or Parquet" in summary
    assert "notes.csv: not the Palmer LTER layout: missing column(s)" in summary
    assert query(
        settings, "SELECT source_file, count(*) FROM raw_penguins GROUP BY 1 ORDER BY 1"
    ) == [("penguins-raw.csv", 344), ("season-a.csv", 40), ("season-b.csv", 40)]
    assert query(settings, "SELECT count(*) FROM penguins") == [
        (424,)
    ]  # downstream refreshed from the good files
    assert "season-b.csv" in Path(settings.report_url).read_text(encoding="utf-8")
    reasons = sorted(p.name for p in Path(settings.quarantine_url).glob("*.reason.txt"))
    assert [r.split("-", 1)[1] for r in reasons] == [
        "binary.csv.reason.txt",
        "notes.csv.reason.txt",
    ]
    assert (
        not (seeded_landing / "binary.csv").exists() and not (seeded_landing / "notes.csv").exists()
    )
    assert cli.main(["run"]) == 0  # the bad files are gone from landing: the next run is clean


def test_failing_clean_check_blocks_everything_downstream(settings, seeded_landing, instance):
    assert cli.run_pipeline(instance).success
    report_before = Path(settings.report_url).stat().st_mtime_ns
    # The same individual in a second file: ingestion accepts each file, the clean check does not.
    write_lines(seeded_landing / "resubmitted.csv", lter_lines()[:3])
    result = cli.run_pipeline(instance)
    assert not result.success
    assert failed_checks(result) == ["penguins_one_row_per_individual"]
    assert "penguins" not in materialized(result) and "penguin_report" not in materialized(result)
    assert query(settings, "SELECT count(*) FROM penguins") == [(344,)]
    assert Path(settings.report_url).stat().st_mtime_ns == report_before


def test_failing_model_check_keeps_the_last_model_and_report(settings, instance):
    assert cli.run_pipeline(instance).success
    version = latest_version(settings)
    job = defs().resolve_job_def("penguin_job")
    result = job.execute_in_process(
        instance=instance,
        raise_on_error=False,
        asset_selection=[
            dg.AssetKey(key) for key in ("penguin_model", "penguin_champion", "penguin_report")
        ],
        run_config={
            "ops": {"penguin_model": {"config": {"r2_floor": 0.99, "retrain_unchanged": True}}}
        },
    )
    assert not result.success
    assert failed_checks(result) == ["r2_floor"]
    [check] = [
        e.event_specific_data
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION"
        and e.event_specific_data.asset_check_key.name == "r2_floor"
    ]
    r2 = check.metadata["r2"].value
    assert check.metadata["floor"].value == 0.99 and r2 == round(r2, 6) and 0.8 < r2 < 0.99
    assert latest_version(settings) == version
    assert materialized(result) == []  # no decision on a version never pinned, no new report


@pytest.mark.parametrize("files_per_connection", [100, 1])
def test_a_file_failing_after_preflight_keeps_earlier_files_and_fails_by_name(
    settings, seeded_landing, instance, monkeypatch, files_per_connection
):
    """Also when the raw step reconnects between files (FILES_PER_CONNECTION): the failure still
    names the files committed on an earlier connection."""
    from penguin_pipeline.processing import ingest

    monkeypatch.setattr(ingest, "FILES_PER_CONNECTION", files_per_connection)

    lines = lter_lines()
    for name, start in (
        ("season-a.csv", 1),
        ("season-b.csv", 11),
    ):  # loaded after penguins-raw.csv, in name order
        rows = [
            re.sub(r",N(\d+A\d),", rf",{name[-5].upper()}\1,", line)
            for line in lines[start : start + 10]
        ]
        write_lines(seeded_landing / name, [lines[0]] + rows)
    real_stage = fail_staging(monkeypatch, "season-a.csv")
    result = cli.run_pipeline(instance)
    assert not result.success
    [failure] = cli.failure_messages(result)
    assert "season-a.csv: load failed (disk full while staging)" in failure
    assert "stay loaded: penguins-raw.csv" in failure
    assert query(settings, "SELECT source_file, count(*) FROM raw_penguins GROUP BY 1") == [
        ("penguins-raw.csv", 344)
    ]
    assert (seeded_landing / "season-a.csv").exists()  # not the file's fault: not quarantined
    monkeypatch.setattr(ingest, "stage_file", real_stage)
    assert cli.run_pipeline(instance).success
    assert query(
        settings, "SELECT source_file, count(*) FROM raw_penguins GROUP BY 1 ORDER BY 1"
    ) == [("penguins-raw.csv", 344), ("season-a.csv", 10), ("season-b.csv", 10)]
