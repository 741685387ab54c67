"""The generator at small N: the real data's distributions, faults, file layout and
reproducibility.
"""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd
import pytest

from penguin_pipeline import synth

N = 40_000


@pytest.fixture(scope="module")
def profile():
    return synth.shipped_profile()


@pytest.fixture(scope="module")
def landed(profile, tmp_path_factory):
    folder = tmp_path_factory.mktemp("synth")
    files = synth.write_landing_files(profile, N, folder, seasons=2, seed=7)
    return folder, files


def frame(folder) -> pd.DataFrame:
    return duckdb.sql(f"SELECT * FROM read_parquet('{folder}/*.parquet', filename = true)").df()


def test_files_by_season_and_island_add_up_to_n(landed):
    folder, files = landed
    assert sorted(f.name for f in files) == sorted(
        f"season-{y}-{i}.parquet" for y in (2007, 2008) for i in ("Biscoe", "Dream", "Torgersen")
    )
    assert len(frame(folder)) == N
    assert not list(folder.glob(".*"))  # no partial files left behind


def test_measurements_follow_the_fitted_means_spreads_and_correlations(landed, profile):
    rows = frame(landed[0])
    rows = rows[rows["Body Mass (g)"] != "NA"]
    rows = rows[rows["Sex"].isin(["MALE", "FEMALE"])]
    species = rows["Species"].str.split(" ").str[0]
    values = rows[synth.RAW_MEASURES].astype(float).to_numpy()
    for (kind, sex), mean in profile.means.items():
        mask = ((species == kind) & (rows["Sex"] == sex.upper())).to_numpy()
        assert mask.sum() > 1000
        ours = values[mask]
        spread = np.sqrt(np.diag(profile.covariances[(kind, sex)]))
        assert np.abs(ours.mean(axis=0) - mean).max() < 0.1 * spread.max()
        assert np.allclose(ours.std(axis=0), spread, rtol=0.1)
        theirs = profile.covariances[(kind, sex)]
        expected = theirs[0, 3] / np.sqrt(theirs[0, 0] * theirs[3, 3])  # bill length vs body mass
        assert np.corrcoef(ours[:, 0], ours[:, 3])[0, 1] == pytest.approx(expected, abs=0.08)


def test_islands_species_mix_and_faults_match_the_real_files(landed, profile):
    rows = frame(landed[0])
    species = rows["Species"].str.split(" ").str[0]
    mix = pd.crosstab(rows["Island"], species, normalize="index")
    assert set(species[rows["Island"] == "Torgersen"]) == {"Adelie"}
    assert mix.loc["Biscoe", "Gentoo"] == pytest.approx(
        profile.species_by_island["Biscoe"]["Gentoo"], abs=0.02
    )
    shares = rows["Island"].value_counts(normalize=True)
    assert shares["Biscoe"] == pytest.approx(profile.island_share["Biscoe"], abs=0.01)
    assert (rows["Sex"] == ".").sum() > 0
    no_sex = rows["Sex"].isin([".", "NA"]).mean()
    assert no_sex == pytest.approx(synth.MISSING_SEX_SHARE + synth.MISSING_MEASURE_SHARE, abs=0.006)
    assert (rows["Body Mass (g)"] == "NA").mean() == pytest.approx(
        synth.MISSING_MEASURE_SHARE, abs=0.003
    )


def test_individuals_are_unique_per_season_and_rows_reproducible(landed, profile, tmp_path):
    rows = frame(landed[0])
    assert not rows.duplicated(["studyName", "Individual ID"]).any()
    again = synth.write_landing_files(profile, N, tmp_path, seasons=2, seed=7)
    other = synth.write_landing_files(profile, N, tmp_path / "other", seasons=2, seed=8)
    pd.testing.assert_frame_equal(
        frame(tmp_path).drop(columns="filename"), rows.drop(columns="filename")
    )
    assert not frame(tmp_path / "other")["Body Mass (g)"].equals(rows["Body Mass (g)"])
    assert len(again) == len(other) == 6


def test_study_names_never_repeat_across_the_seasons_of_10_9_rows():
    """10^9 rows are 334 seasons from 2007: a two-digit year alone came round again in 2107."""
    seasons = len({f.year for f in synth.plan_files(synth.shipped_profile(), 10**9)})
    names = [synth.study_name(2007 + k) for k in range(seasons)]
    assert seasons == 334 and len(set(names)) == seasons
    assert names[0] == "PAL0708" and names[100] == "PAL0708-21"


def test_csv_landing_files_too(profile, tmp_path):
    [path, *_] = synth.write_landing_files(profile, 300, tmp_path, fmt="csv", seasons=1)
    assert path.read_text().splitlines()[0].split(",")[:3] == [
        "studyName",
        "Sample Number",
        "Species",
    ]
    with pytest.raises(ValueError, match="format must be one of"):
        synth.write_landing_files(profile, 10, tmp_path, fmt="xlsx")
