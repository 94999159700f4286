"""Tests of the synthetic data generator (Open DAMIR and legacy layouts, ground truth)."""

from __future__ import annotations

import gzip
import re
import tracemalloc
from datetime import date
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from cli.main import app
from forecasting.calendar import working_days
from forecasting.data import codes, synth
from forecasting.data.synth import cells as synth_cells
from forecasting.errors import InputError


def _cents(col: str) -> pl.Expr:
    """An amount column written with two decimals, as exact integer cents."""
    return pl.col(col).str.replace(".", "", literal=True).cast(pl.Int64)


def _read_open_damir(path: Path) -> pl.DataFrame:
    df = pl.read_csv(path, separator=";", infer_schema=False)
    return df.drop("")  # the trailing ';' makes an empty last column


@pytest.fixture(scope="module")
def small_run(tmp_path_factory: pytest.TempPathFactory) -> synth.SynthReport:
    out = tmp_path_factory.mktemp("synth")
    return synth.generate(out, start="2019-11", end="2020-01", seed=3, rows_per_month=20_000)


@pytest.fixture(scope="module")
def truth_cents(small_run: synth.SynthReport) -> pl.DataFrame:
    assert small_run.truth_path is not None
    t = pl.read_parquet(small_run.truth_path)
    return t.with_columns(
        (pl.col(c) * 100).round().cast(pl.Int64).alias(c + "_c")
        for c in ("y_reimbursed", "y_presented")
    ).with_columns(pl.col("y_acts").cast(pl.Int64).alias("y_acts_c"))


# --------------------------------------------------------------------------- layout


def test_files_and_ground_truth_present(small_run: synth.SynthReport) -> None:
    names = sorted(p.name for p in small_run.out_dir.iterdir())
    assert names == [
        "A201911.csv.gz",
        "A201912.csv.gz",
        "A202001.csv.gz",
        "anomalies.csv",
        "lags.csv",
        "truth.parquet",
    ]
    assert small_run.rows == 60_000
    assert small_run.months == ["2019-11", "2019-12", "2020-01"]
    truth = pl.read_parquet(small_run.out_dir / "truth.parquet")
    assert truth.columns == [
        "famille",
        "executant",
        "ds",
        "y_reimbursed",
        "y_presented",
        "y_acts",
    ]
    assert truth.schema["ds"] == pl.Date
    # complete series: every category has every care month from start - 24 to end
    per_cat = truth.group_by("famille", "executant").agg(pl.len())
    assert per_cat["len"].unique().to_list() == [3 + synth.MAX_LAG]
    lags = pl.read_csv(small_run.out_dir / "lags.csv")
    assert lags.columns == ["lag", "paid_share"]
    assert lags["paid_share"].sum() == pytest.approx(1.0, abs=1e-5)


def test_open_damir_layout(small_run: synth.SynthReport) -> None:
    path = small_run.files[0]
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        lines = fh.read().splitlines()
    assert len(lines) == 20_001
    assert lines[0] == ";".join(synth.OPEN_DAMIR_COLUMNS) + ";"
    assert len(synth.OPEN_DAMIR_COLUMNS) == 56
    assert all(line.endswith(";") for line in lines)
    assert all(line.count(";") == 56 for line in lines[:2000])
    df = _read_open_damir(path)
    assert df.columns == list(synth.OPEN_DAMIR_COLUMNS)
    assert set(df["FLX_ANN_MOI"]) == {"201911"}
    assert df["SOI_ANN"].str.len_chars().unique().to_list() == [4]
    assert df["SOI_MOI"].str.len_chars().unique().to_list() == [2]
    assert "09" in set(df["SOI_MOI"])  # leading zeros kept
    assert ("0000", "00") in set(df.select("SOI_ANN", "SOI_MOI").iter_rows())
    money = re.compile(r"^-?\d+\.\d{2}$")
    for col in ("FLT_REM_MNT", "FLT_PAI_MNT", "FLT_DEP_MNT", "PRS_REM_MNT"):
        assert df[col].str.contains(money.pattern).all(), col
    assert df["FLT_ACT_QTE"].str.contains(r"^-?\d+$").all()


def test_scope_flags_vary(small_run: synth.SynthReport) -> None:
    df = _read_open_damir(small_run.files[1]).with_columns(rem=_cents("FLT_REM_MNT"))
    assert set(df["TOP_PS5_TRG"]) == {"0", "1", "9"}
    assert df["CPT_ENV_TYP"].n_unique() >= 4
    total = df["rem"].sum()
    in_stat = df.filter(pl.col("TOP_PS5_TRG") == "1")["rem"].sum() / total
    ondam = df.filter(pl.col("CPT_ENV_TYP").is_in(["1", "2"]))["rem"].sum() / total
    assert 0.85 < in_stat < 0.99
    assert 0.5 < ondam < in_stat
    # rows out of the monthly statistic carry the "unknown" codes of Jan 2024
    out = df.filter(pl.col("TOP_PS5_TRG") == "9")
    assert set(out["CPT_ENV_TYP"]) == {"9"}


# --------------------------------------------------------------------------- amounts


def test_file_sums_equal_truth_times_lag_shares(
    small_run: synth.SynthReport, truth_cents: pl.DataFrame
) -> None:
    """Per (famille, executant, care month), each file sums to the allocated truth cents."""
    cats = [(c.famille, c.member) for c in synth.categories("open-damir")]
    first_care = truth_cents["ds"].min()
    assert first_care is not None
    checked = 0
    for path, month in zip(small_run.files, small_run.months, strict=True):
        year, mon = (int(x) for x in month.split("-"))
        got = (
            _read_open_damir(path)
            .lazy()
            .filter(pl.col("SOI_ANN") != "0000")
            .with_columns(codes.famille_expr(), codes.executant_expr())
            .group_by("famille", "executant", "SOI_ANN", "SOI_MOI")
            .agg(
                _cents("FLT_REM_MNT").sum().alias("rem"),
                _cents("FLT_PAI_MNT").sum().alias("pai"),
                pl.col("FLT_ACT_QTE").cast(pl.Int64).sum().alias("acts"),
            )
            .collect()
        )
        assert set(got.select("famille", "executant").iter_rows()) == set(cats)
        for measure, col in (
            ("rem", "y_reimbursed_c"),
            ("pai", "y_presented_c"),
            ("acts", "y_acts_c"),
        ):
            wide = truth_cents.pivot(on="ds", index=["famille", "executant"], values=col)
            wide = pl.DataFrame(
                {"famille": [f for f, _ in cats], "executant": [e for _, e in cats]}
            ).join(wide, on=["famille", "executant"], how="left", maintain_order="left")
            values = wide.drop("famille", "executant").to_numpy().astype(np.int64)
            alloc = synth.lag_allocation(values)
            for row in got.iter_rows(named=True):
                care = int(row["SOI_ANN"]) * 12 + int(row["SOI_MOI"]) - 1
                lag = year * 12 + mon - 1 - care
                j = care - (first_care.year * 12 + first_care.month - 1)
                k = cats.index((row["famille"], row["executant"]))
                assert row[measure] == alloc[k, j, lag], (path.name, row, measure)
                checked += 1
    assert checked == 3 * 3 * len(cats) * (synth.MAX_LAG + 1)


def test_unknown_care_share_and_negative_rows(small_run: synth.SynthReport) -> None:
    for path in small_run.files:
        df = _read_open_damir(path).with_columns(rem=_cents("FLT_REM_MNT"))
        unknown = df.filter(pl.col("SOI_ANN") == "0000")["rem"].sum() / df["rem"].sum()
        assert unknown == pytest.approx(synth.UNKNOWN_CARE_SHARE, abs=0.005)
        negative = df.filter(pl.col("rem") < 0)
        assert 0.10 < negative.height / df.height < 0.20
        # regularisations are small next to the positive rows
        assert -negative["rem"].sum() < 0.05 * df.filter(pl.col("rem") > 0)["rem"].sum()
    totals = small_run.totals
    assert (totals["reimbursed"] > 10e9).all() and (totals["reimbursed"] < 16e9).all()
    ratio = totals["presented"].sum() / totals["reimbursed"].sum()
    assert 1.03 < ratio < 1.08


@pytest.mark.slow
def test_complete_care_month_equals_truth(tmp_path: Path) -> None:
    """Once all 25 processing months are in, a care month sums to its truth exactly."""
    report = synth.generate(tmp_path, start="2015-01", end="2017-01", rows_per_month=1_000)
    got = (
        pl.scan_csv(tmp_path / "A*.csv.gz", separator=";", infer_schema=False)
        .filter((pl.col("SOI_ANN") == "2015") & (pl.col("SOI_MOI") == "01"))
        .with_columns(codes.famille_expr(), codes.executant_expr())
        .group_by("famille", "executant")
        .agg(_cents("FLT_REM_MNT").sum().alias("got"))
        .collect()
    )
    assert report.truth_path is not None
    truth = pl.read_parquet(report.truth_path).filter(pl.col("ds") == pl.date(2015, 1, 1))
    joined = truth.join(got, on=["famille", "executant"], how="full")
    assert joined.height == len(synth.categories())
    assert (joined["got"] == (joined["y_reimbursed"] * 100).round().cast(pl.Int64)).all()


# --------------------------------------------------------------------------- determinism


def _bytes(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.suffix != ".parquet"}


@pytest.mark.slow
@pytest.mark.parametrize("fmt", synth.FORMATS)
def test_deterministic_for_a_seed(tmp_path: Path, fmt: str) -> None:
    kw = {"start": "2016-07", "end": "2016-08", "rows_per_month": 3_000, "fmt": fmt}
    a = synth.generate(tmp_path / "a", seed=5, **kw)
    b = synth.generate(tmp_path / "b", seed=5, **kw)
    c = synth.generate(tmp_path / "c", seed=6, **kw)
    assert _bytes(a.out_dir) == _bytes(b.out_dir)
    assert a.truth_path is not None and b.truth_path is not None and c.truth_path is not None
    assert pl.read_parquet(a.truth_path).equals(pl.read_parquet(b.truth_path))
    monthly = [p.name for p in a.files]
    for name in monthly:
        assert (a.out_dir / name).read_bytes() != (c.out_dir / name).read_bytes()
    assert not pl.read_parquet(a.truth_path).equals(pl.read_parquet(c.truth_path))


# --------------------------------------------------------------------------- legacy


def test_legacy_layout_and_sums(tmp_path: Path) -> None:
    report = synth.generate(
        tmp_path, start="2013-05", end="2013-06", rows_per_month=2_000, fmt="legacy"
    )
    assert [p.name for p in report.files] == ["N201305.CSV", "N201306.CSV"]
    text = report.files[0].read_text(encoding="utf-8").splitlines()
    assert text[0] == ";".join(synth.LEGACY_COLUMNS)
    df = pl.read_csv(report.files[0], separator=";", infer_schema=False)
    assert df.columns == list(synth.LEGACY_COLUMNS)
    assert df["sns_date"].str.contains(r"^\d{6}$").all()
    assert df["sns_date"].max() == "201305"
    assert df["serie"].is_in(codes.famille_of_serie()["serie"].to_list()).all()
    assert report.truth_path is not None
    truth = pl.read_parquet(report.truth_path)
    assert truth.columns[:3] == ["famille", "serie", "ds"]
    # the complete amounts of the file's own month: lag-0 share of the truth, to the cent
    got = (
        df.filter(pl.col("sns_date") == "201305")
        .with_columns(codes.serie_famille_expr(), slug=codes.serie_slug_expr())
        .group_by("famille", "slug")
        .agg(_cents("rem_mon").sum().alias("got"))
    )
    t = truth.filter(pl.col("ds") == pl.date(2013, 5, 1))
    cents = (t["y_reimbursed"] * 100).round().cast(pl.Int64).to_numpy()
    t = t.with_columns(want=pl.Series(synth.lag_allocation(cents)[:, 0]))
    joined = t.join(got, left_on=["famille", "serie"], right_on=["famille", "slug"], how="full")
    assert joined.height == len(synth.categories("legacy"))
    assert (joined["got"] == joined["want"]).all()


# --------------------------------------------------------------------------- anomalies


def test_anomalies_file(small_run: synth.SynthReport) -> None:
    anomalies = pl.read_csv(small_run.out_dir / "anomalies.csv", infer_schema=False)
    assert anomalies.columns == ["unique_id", "ds", "basis", "factor"]
    assert anomalies.height >= 2
    ids = {c.unique_id for c in synth.categories()}
    assert set(anomalies["unique_id"]) <= ids
    assert (anomalies["basis"] == "care").all()
    assert anomalies["ds"].str.contains(r"^\d{4}-\d{2}-01$").all()
    assert (anomalies["factor"].cast(pl.Float64) != 1.0).all()


@pytest.mark.slow
def test_anomaly_changes_truth(tmp_path: Path) -> None:
    """The anomaly multiplies one category's care month: compare with a neighbour."""
    report = synth.generate(tmp_path, start="2018-01", end="2019-12", rows_per_month=1_000)
    assert report.truth_path is not None
    truth = pl.read_parquet(report.truth_path).with_columns(
        unique_id=pl.concat_str([pl.lit("total"), "famille", "executant"], separator="/")
    )
    for row in report.anomalies.iter_rows(named=True):
        series = truth.filter(pl.col("unique_id") == row["unique_id"]).sort("ds")
        y = series["y_reimbursed"].to_numpy()
        ds = [d.isoformat() for d in series["ds"]]
        i = ds.index(row["ds"])
        # same month a year before (no anomaly there unless also injected)
        ratio = y[i] / y[i - 12]
        assert ratio == pytest.approx(row["factor"], rel=0.15)


# --------------------------------------------------------------------------- memory


@pytest.mark.slow
def test_memory_does_not_grow_with_rows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(synth_cells, "_CHUNK_ROWS", 20_000)
    monkeypatch.setattr(synth_cells, "_BLOCK_ROWS", 10_000)
    peaks = []
    for rows in (20_000, 200_000):
        tracemalloc.start()
        synth.generate(tmp_path / str(rows), start="2020-03", end="2020-03", rows_per_month=rows)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    assert peaks[1] < 3 * peaks[0], peaks


# --------------------------------------------------------------------------- truth shape


def test_truth_has_seasonality_and_fee_shocks(tmp_path: Path) -> None:
    report = synth.generate(tmp_path, start="2017-06", end="2017-06", rows_per_month=1_000)
    assert report.truth_path is not None
    t = pl.read_parquet(report.truth_path).with_columns(month=pl.col("ds").dt.month())
    # August is a low for most categories
    by_month = t.group_by("month").agg(pl.col("y_reimbursed").sum()).sort("month")
    y = dict(by_month.iter_rows())
    assert y[8] < 0.92 * y[7] and y[8] < 0.92 * y[9]

    # the May-2017 GP fee rise shows on generalistes, not on specialists
    def growth(famille: str) -> float:
        s = t.filter(pl.col("famille") == famille).group_by("ds").agg(pl.col("y_reimbursed").sum())
        v = dict(s.iter_rows())
        return float(v[date(2017, 6, 1)] / v[date(2016, 6, 1)])

    assert growth("generalistes") > growth("specialistes") + 0.03


@pytest.mark.parametrize(
    ("year", "month", "expected"),
    [(2024, 1, 22), (2024, 5, 19), (2024, 8, 21), (2020, 12, 22), (2015, 2, 20)],
)
def test_working_days(year: int, month: int, expected: int) -> None:
    assert working_days(year, month) == expected


# --------------------------------------------------------------------------- invariants


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.integers(min_value=0, max_value=10**13), min_size=1, max_size=20),
)
def test_lag_allocation_is_exact(totals: list[int]) -> None:
    arr = np.asarray(totals, dtype=np.int64)
    alloc = synth.lag_allocation(arr)
    assert alloc.shape == (len(totals), synth.MAX_LAG + 1)
    assert (alloc.sum(axis=1) == arr).all()
    assert (alloc >= 0).all()
    expected = arr[:, None] * np.asarray(synth.LAG_SHARES)
    assert (np.abs(alloc - expected) <= 1.0 + 1e-6 * expected).all()


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(min_value=1, max_value=10**11),
            st.integers(min_value=0, max_value=10**9),
        ),
        min_size=1,
        max_size=40,
    ),
    st.integers(min_value=1, max_value=3_000),
    st.integers(min_value=0, max_value=2**32 - 1),
)
def test_rows_split_cells_exactly(cells: list[tuple[int, int]], n_rows: int, seed: int) -> None:
    """Every cell gets rows, row amounts add up to the cell to the cent, no row is lost."""
    n = len(cells)
    rem = np.asarray([c[0] for c in cells], dtype=np.int64)
    acts = np.asarray([c[1] for c in cells], dtype=np.int64)
    blocks = synth_cells.split_cells(
        np.arange(n), np.zeros(n, dtype=np.int64), rem, rem * 2, acts, n_rows
    )
    assert int(blocks.rows.sum()) == max(n_rows, n)
    assert (blocks.rows >= 1).all()
    rng = np.random.default_rng(seed)
    got = {
        "rem": np.zeros(n, np.int64),
        "pai": np.zeros(n, np.int64),
        "acts": np.zeros(n, np.int64),
    }
    rows = 0
    for idx in synth_cells.chunks(blocks):
        amounts, block_of_row, _ = synth_cells.chunk_rows(blocks, idx, rng, with_scope=True)
        rows += len(block_of_row)
        for key, values in amounts.items():
            np.add.at(got[key], blocks.cat[idx][block_of_row], values)
        neg = blocks.negative[idx][block_of_row]
        assert (amounts["rem"][neg] <= 0).all() and (amounts["rem"][~neg] >= 0).all()
    assert rows == max(n_rows, n)
    assert (got["rem"] == rem).all() and (got["pai"] == rem * 2).all()
    assert (got["acts"] == acts).all()


def test_lag_shares_follow_domain() -> None:
    cum = np.cumsum(synth.LAG_SHARES)
    for lag, share in {0: 0.583, 1: 0.870, 2: 0.936, 3: 0.961, 4: 0.972, 12: 0.995}.items():
        assert cum[lag] == pytest.approx(share, abs=1e-9)
    assert cum[-1] == pytest.approx(1.0)


# --------------------------------------------------------------------------- errors, CLI


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"start": "2015-13"}, "start '2015-13' is not a month"),
        ({"start": "15-01"}, "is not a month"),
        ({"end": "2014-12"}, "is before start"),
        ({"rows_per_month": 999}, "out of range"),
        ({"rows_per_month": 40_000_001}, "out of range"),
        ({"fmt": "xml"}, "unknown format 'xml'"),
    ],
)
def test_bad_arguments(tmp_path: Path, kwargs: dict[str, object], message: str) -> None:
    out = tmp_path / "out"
    with pytest.raises(InputError, match=re.escape(message)):
        synth.generate(out, **kwargs)  # type: ignore[arg-type]
    assert not out.exists() or not any(out.iterdir())


def test_cli_synth(tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "cli"
    result = runner.invoke(
        app,
        ["synth", str(out), "--start", "2016-01", "--end", "2016-02", "--rows-per-month", "1000"],
    )
    assert result.exit_code == 0, result.output
    assert (out / "A201601.csv.gz").exists() and (out / "A201602.csv.gz").exists()
    assert "2016-01" in result.output
    bad = runner.invoke(app, ["synth", str(tmp_path / "bad"), "--start", "2016-13"])
    assert bad.exit_code == 2
    assert "is not a month" in bad.output
    assert not (tmp_path / "bad").exists()
