"""spendcast ingest: exact totals, cache, bad input (message + no output + exit code 2)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from cli.main import app
from forecasting.data import codes, synth
from forecasting.data.ingest import detect_format, ingest
from forecasting.data.panel import read_panel
from forecasting.errors import InputError
from tests.panels import shared_file

PBS = shared_file("datasets/pbs/pbs.csv")
COLS = synth.OPEN_DAMIR_COLUMNS


def od_row(**over: str) -> dict[str, str]:
    base = dict.fromkeys(COLS, "0")
    base.update(
        FLX_ANN_MOI="202401",
        SOI_ANN="2024",
        SOI_MOI="01",
        PRS_NAT="1111",
        PSE_SPE_SNDS="1",
        PSE_ACT_SNDS="1",
        FLT_REM_MNT="10.00",
        FLT_PAI_MNT="12.00",
        FLT_ACT_QTE="1",
        TOP_PS5_TRG="1",
        CPT_ENV_TYP="1",
    )
    base.update(over)
    return base


def write_od(path: Path, rows: list[dict[str, str]], cols: tuple[str, ...] = COLS) -> Path:
    lines = [";".join(cols) + ";"] + [";".join(r[c] for c in cols) + ";" for r in rows]
    data = ("\n".join(lines) + "\n").encode()
    path.write_bytes(gzip.compress(data) if path.name.endswith(".gz") else data)
    return path


@pytest.fixture(scope="module")
def od_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("od")
    synth.generate(d, start="2024-01", end="2024-02", rows_per_month=1500, seed=3)
    return d


@pytest.fixture(scope="module")
def legacy_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("lg")
    synth.generate(d, start="2024-01", end="2024-02", rows_per_month=1500, seed=4, fmt="legacy")
    return d


def _raw_od(d: Path) -> pl.DataFrame:
    frames = [
        pl.read_csv(f, separator=";", infer_schema=False).drop("")
        for f in sorted(d.glob("A*.csv.gz"))
    ]
    return pl.concat(frames)


@pytest.mark.parametrize("basis", ["flux", "care"])
@pytest.mark.parametrize(
    ("measure", "col"),
    [("reimbursed", "FLT_REM_MNT"), ("presented", "FLT_PAI_MNT"), ("acts", "FLT_ACT_QTE")],
)
@pytest.mark.parametrize("scope", ["all", "monthly-statistic", "ondam"])
def test_open_damir_totals_exact(
    od_dir: Path, tmp_path: Path, basis: str, measure: str, col: str, scope: str
) -> None:
    out = tmp_path / "p.parquet"
    report = ingest([od_dir], out, basis=basis, measure=measure, scope=scope, min_cell=0)
    panel, meta = read_panel(out)
    assert meta.hierarchy == ("famille", "executant") and meta.basis == basis
    raw = _raw_od(od_dir).with_columns(pl.col(col).cast(pl.Float64).alias("v"))
    if scope == "monthly-statistic":
        raw = raw.filter(pl.col("TOP_PS5_TRG").cast(pl.Int32) == 1)
    elif scope == "ondam":
        raw = raw.filter(pl.col("CPT_ENV_TYP").cast(pl.Int32).is_in([1, 2]))
    if basis == "flux":
        raw = raw.with_columns(pl.col("FLX_ANN_MOI").alias("m"))
    else:
        unknown = raw.filter(pl.col("SOI_ANN") == "0000")["v"].sum()
        assert report.excluded.get("unknown care month", 0.0) == pytest.approx(unknown, abs=0.01)
        raw = raw.filter(pl.col("SOI_ANN") != "0000").with_columns(
            (pl.col("SOI_ANN") + pl.col("SOI_MOI")).alias("m")
        )
    raw = raw.with_columns(
        pl.col("m").str.strptime(pl.Date, "%Y%m").alias("ds"),
        codes.famille_expr(),
        codes.executant_expr(),
    )
    for keys in (["ds"], ["famille", "ds"], ["famille", "executant", "ds"]):
        want = raw.group_by(keys).agg(pl.col("v").sum())
        got = panel.group_by(keys).agg(pl.col("y").sum())
        both = want.join(got, on=keys, how="full", coalesce=True).fill_null(0.0)
        assert both.height == got.height
        assert float((both["v"] - both["y"]).abs().max()) < 0.005, keys  # type: ignore[arg-type]
    assert report.totals == {
        d.strftime("%Y-%m"): pytest.approx(v, abs=0.01)
        for d, v in panel.group_by("ds").agg(pl.col("y").sum()).iter_rows()
    }


@pytest.mark.parametrize("basis", ["flux", "care"])
@pytest.mark.parametrize(("measure", "col"), [("reimbursed", "rem_mon"), ("acts", "act_dnb")])
def test_legacy_totals_exact(
    legacy_dir: Path, tmp_path: Path, basis: str, measure: str, col: str
) -> None:
    out = tmp_path / "l.parquet"
    ingest([legacy_dir], out, basis=basis, measure=measure)
    panel, meta = read_panel(out)
    assert meta.hierarchy == ("famille", "serie")
    frames = []
    for f in sorted(legacy_dir.glob("N*.CSV")):
        month = f.stem[1:]
        frames.append(
            pl.read_csv(f, separator=";", infer_schema=False).with_columns(
                pl.lit(month if basis == "flux" else None).alias("fm")
            )
        )
    raw = pl.concat(frames).with_columns(
        pl.col(col).cast(pl.Float64).alias("v"),
        pl.coalesce("fm", "sns_date").str.strptime(pl.Date, "%Y%m").alias("ds"),
        codes.serie_famille_expr(),
    )
    for keys in (["ds"], ["famille", "ds"]):
        want = raw.group_by(keys).agg(pl.col("v").sum()).sort(keys)
        got = panel.group_by(keys).agg(pl.col("y").sum()).sort(keys)
        both = want.join(got, on=keys, how="full", coalesce=True).fill_null(0.0)
        assert float((both["v"] - both["y"]).abs().max()) < 0.005  # type: ignore[arg-type]


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    rows=st.lists(
        st.tuples(
            st.integers(-(10**7), 10**9),
            st.sampled_from([("2024", "01"), ("2023", "12"), ("0000", "00")]),
            st.sampled_from(["0", "1", "9"]),
            st.sampled_from(["1111", "3317", "9999", "1"]),
        ),
        min_size=1,
        max_size=40,
    ),
    basis=st.sampled_from(["flux", "care"]),
    scope=st.sampled_from(["all", "monthly-statistic"]),
)
def test_no_row_lost(
    tmp_path_factory: pytest.TempPathFactory,
    rows: list[tuple[int, tuple[str, str], str, str]],
    basis: str,
    scope: str,
) -> None:
    d = tmp_path_factory.mktemp("h")
    recs = [
        od_row(FLT_REM_MNT=f"{c / 100:.2f}", SOI_ANN=y, SOI_MOI=m, TOP_PS5_TRG=t, PRS_NAT=p)
        for c, (y, m), t, p in rows
    ]
    write_od(d / "A202401.csv.gz", recs)
    file_sum = sum(c for c, *_ in rows) / 100
    try:
        report = ingest([d], d / "out" / "p.parquet", basis=basis, scope=scope, min_cell=0)
    except InputError as exc:  # everything excluded: no panel, clear message
        assert "no rows" in str(exc)
        return
    panel, _ = read_panel(d / "out" / "p.parquet")
    assert float(panel["y"].sum()) + sum(report.excluded.values()) == pytest.approx(
        file_sum, abs=0.01
    )


def test_cache_reads_only_new_file(tmp_path: Path) -> None:
    d = tmp_path / "in"
    d.mkdir()
    write_od(d / "A202401.csv.gz", [od_row()])
    first = ingest([d], tmp_path / "p.parquet", min_cell=0)
    assert [f["cached"] for f in first.files] == [False]
    write_od(d / "A202402.csv.gz", [od_row(FLX_ANN_MOI="202402", FLT_REM_MNT="5.5")])
    second = ingest([d], tmp_path / "p.parquet", min_cell=0)
    assert [f["cached"] for f in second.files] == [True, False]
    assert second.totals == {"2024-01": 10.0, "2024-02": 5.5}
    saved = json.loads((tmp_path / "p.report.json").read_text())
    assert saved["files"][0]["cached"] is True
    # changed content with the same name is read again; other options are another key
    write_od(d / "A202401.csv.gz", [od_row(FLT_REM_MNT="7")])
    third = ingest([d], tmp_path / "p.parquet", min_cell=0)
    assert [f["cached"] for f in third.files] == [False, True]
    assert third.totals["2024-01"] == 7.0
    fourth = ingest([d], tmp_path / "p.parquet", measure="presented", min_cell=0)
    assert [f["cached"] for f in fourth.files] == [False, False]


def test_prescriber_hierarchy_and_55_columns(tmp_path: Path) -> None:
    cols = COLS[:-1]
    write_od(tmp_path / "A202401.csv", [od_row(PSP_SPE_SNDS="1")], cols)
    report = ingest(
        [tmp_path / "A202401.csv"], tmp_path / "o" / "p.parquet", hierarchy="prescriber", min_cell=0
    )
    panel, meta = read_panel(tmp_path / "o" / "p.parquet")
    assert meta.hierarchy == ("famille", "prescripteur")
    assert report.fmt == "open-damir" and panel["y"].sum() == 10.0


def _truncated(p: Path) -> Path:
    write_od(p / "A202401.csv.gz", [od_row()] * 2000)
    data = (p / "A202401.csv.gz").read_bytes()
    (p / "A202401.csv.gz").write_bytes(data[: len(data) // 2])
    return p / "A202401.csv.gz"


def _comma(p: Path) -> Path:
    f = p / "A202401.csv"
    f.write_text(",".join(COLS) + "\n" + ",".join(od_row().values()) + "\n")
    return f


def _renamed(p: Path) -> Path:
    cols = tuple("FLT_REM_MT" if c == "FLT_REM_MNT" else c for c in COLS)
    rows = [{("FLT_REM_MT" if k == "FLT_REM_MNT" else k): v for k, v in od_row().items()}]
    return write_od(p / "A202401.csv.gz", rows, cols)


def _empty(p: Path) -> Path:
    (p / "A202401.csv").write_bytes(b"")
    return p / "A202401.csv"


def _tidy(p: Path, text: str) -> Path:
    f = p / "t.csv"
    f.write_text(text)
    return f


BAD = [
    ("truncated", _truncated, [], ["truncated", "A202401.csv.gz", "re-download"]),
    ("separator", _comma, [], ["';'-separated", "','", "line 1"]),
    ("renamed", _renamed, [], ["missing column", "FLT_REM_MNT", "line 1"]),
    (
        "non-numeric",
        lambda p: write_od(p / "A202401.csv.gz", [od_row(), od_row(FLT_REM_MNT="12,5x")]),
        [],
        ["non-numeric amount", "'12,5x'", "line 3", "column FLT_REM_MNT", "--on-bad-rows skip"],
    ),
    (
        "month13",
        lambda p: write_od(p / "A202401.csv.gz", [od_row(SOI_MOI="13")]),
        ["--basis", "care"],
        ["impossible month 2024/13", "line 2", "SOI_ANN,SOI_MOI"],
    ),
    ("empty", _empty, [], ["the file is empty", "A202401.csv", "line 1"]),
    (
        "header-only",
        lambda p: write_od(p / "A202401.csv.gz", []),
        [],
        ["header but no rows"],
    ),
    (
        "same-month",
        lambda p: (
            write_od(p / "A202401.csv.gz", [od_row()]),
            write_od(p / "A202401.csv", [od_row()]),
        ),
        [],
        ["two files for month 2024-01"],
    ),
    (
        "tidy-dupes",
        lambda p: _tidy(p, "m,s,v\n2024-01,a,1\n2024-01,a,2\n"),
        ["--date-col", "m", "--value-col", "v", "--hierarchy", "s"],
        ["share a (series, month)", "line 2", "a 2024-01-01"],
    ),
    (
        "tidy-gap",
        lambda p: _tidy(p, "m,s,v\n2024-01,a,1\n2024-03,a,2\n"),
        ["--date-col", "m", "--value-col", "v", "--hierarchy", "s"],
        ["1 missing month", "--fill-missing zero"],
    ),
    (
        "tidy-value",
        lambda p: _tidy(p, "m,s,v\n2024-01,a,1\n2024-02,a,x\n"),
        ["--date-col", "m", "--value-col", "v", "--hierarchy", "s"],
        ["'x'", "line 3", "column v"],
    ),
]


@pytest.mark.parametrize(("name", "make", "args", "expect"), BAD, ids=[b[0] for b in BAD])
def test_bad_input(tmp_path: Path, name: str, make, args: list[str], expect: list[str]) -> None:  # type: ignore[no-untyped-def]
    src = tmp_path / "in"
    src.mkdir()
    made = make(src)
    target = made if isinstance(made, Path) and name.startswith("tidy") else src
    out = tmp_path / "out" / "p.parquet"
    result = CliRunner().invoke(app, ["ingest", str(target), "--out", str(out), *args])
    assert result.exit_code == 2, result.output
    text = " ".join(result.output.split())
    for piece in expect:
        assert piece in text, (piece, text)
    assert not out.exists() and not out.with_name("p.report.json").exists()


def test_skip_bad_rows_quarantine(tmp_path: Path) -> None:
    d = tmp_path / "in"
    d.mkdir()
    write_od(
        d / "A202401.csv.gz",
        [od_row(), od_row(FLT_REM_MNT="abc"), od_row(SOI_MOI="13"), od_row(FLT_REM_MNT="2.5")],
    )
    out = tmp_path / "p.parquet"
    report = ingest([d], out, basis="care", on_bad_rows="skip", min_cell=0)
    assert report.rows_rejected == {"non-numeric amount": 1, "impossible month": 1}
    q = pl.read_csv(tmp_path / "p.quarantine.csv", infer_schema=False)
    assert sorted(q["line"].to_list()) == ["3", "4"]
    assert read_panel(out)[0]["y"].sum() == 12.5


def test_tidy_fill_missing_and_formats(tmp_path: Path) -> None:
    f = _tidy(tmp_path, "m,s,v\n1991 Jul,a,1\n1991 Sep,a,2\n1991-08-15,b,4\n")
    report = ingest(
        [f], tmp_path / "p.parquet", date_col="m", value_col="v", hierarchy="s", fill_missing="zero"
    )
    assert report.fmt == "tidy" and report.filled_missing == 1
    assert report.totals == {"1991-07": 1.0, "1991-08": 4.0, "1991-09": 2.0}


@pytest.mark.skipif(not PBS.exists(), reason=f"{PBS} is not on this machine")
def test_pbs_monthly_totals(tmp_path: Path) -> None:
    out = tmp_path / "pbs.parquet"
    report = ingest(
        [PBS], out, date_col="Month", value_col="Cost", hierarchy="Concession,Type,ATC1,ATC2"
    )
    raw = pl.read_csv(PBS).group_by("Month").agg(pl.col("Cost").sum())
    want = {m: v for m, v in raw.iter_rows()}
    assert report.totals.keys() == want.keys()
    for m, v in want.items():
        assert report.totals[m] == pytest.approx(v, abs=0.01)
    assert read_panel(out)[1].hierarchy == ("Concession", "Type", "ATC1", "ATC2")


@pytest.mark.parametrize(
    ("name", "text", "want"),
    [
        ("A202401.csv.gz", None, "open-damir"),
        ("extract.csv", ";".join(COLS) + ";\n", "open-damir"),
        ("N202401.CSV", None, "legacy"),
        ("old.csv", "serie;prs_nat;rem_mon;rec_mon\n", "legacy"),
        ("pbs.csv", "Month,Cost\n", "tidy"),
    ],
)
def test_detect_format(tmp_path: Path, name: str, text: str | None, want: str) -> None:
    f = tmp_path / name
    if text is None:
        write_od(f, [od_row()])
    else:
        f.write_text(text)
    assert detect_format([f])[0] == want


def test_mixed_formats_refused(tmp_path: Path) -> None:
    a = write_od(tmp_path / "A202401.csv.gz", [od_row()])
    b = tmp_path / "N202401.CSV"
    b.write_text("serie;rem_mon\n")
    with pytest.raises(InputError, match="mix formats"):
        detect_format([a, b])
