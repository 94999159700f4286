"""Open DAMIR reader: blocks, header checks, months, scopes, exact block aggregation."""

from __future__ import annotations

import gzip
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from forecasting.data import open_damir, synth
from forecasting.data.aggregate import aggregate_frame
from forecasting.errors import InputError

COLS = synth.OPEN_DAMIR_COLUMNS


def _file(path: Path, rows: list[dict[str, str]]) -> Path:
    lines = [";".join(COLS) + ";"]
    for over in rows:
        r = dict.fromkeys(COLS, "0") | {
            "FLX_ANN_MOI": "202401",
            "SOI_ANN": "2024",
            "SOI_MOI": "01",
            "PRS_NAT": "1111",
            "FLT_REM_MNT": "1.00",
        }
        r.update(over)
        lines.append(";".join(r[c] for c in COLS) + ";")
    path.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    return path


@pytest.mark.parametrize("block_bytes", [64, 1000, 1 << 20])
def test_blocks_are_line_aligned_and_numbered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, block_bytes: int
) -> None:
    monkeypatch.setattr(open_damir, "BLOCK_BYTES", block_bytes)
    f = _file(tmp_path / "A202401.csv.gz", [{"FLT_REM_MNT": f"{i}.00"} for i in range(300)])
    seen: list[tuple[int, str]] = []
    for block, first in open_damir._blocks(f, None):
        assert block.endswith(b"\n")
        lines = block.decode().splitlines()
        seen.extend(
            (first + k, line.split(";")[COLS.index("FLT_REM_MNT")]) for k, line in enumerate(lines)
        )
    assert seen == [(i + 2, f"{i}.00") for i in range(300)]


@pytest.mark.parametrize(
    ("soi", "ok"),
    [
        (("2024", "01"), True),
        (("0000", "00"), True),
        (("2024", "13"), False),
        (("2024", "00"), False),
        (("0000", "05"), False),
        (("x", "1"), False),
    ],
)
def test_care_month_validity(soi: tuple[str, str], ok: bool) -> None:
    _, valid, _ = open_damir.month_exprs("care")
    df = pl.DataFrame({"SOI_ANN": [soi[0]], "SOI_MOI": [soi[1]]})
    assert df.select(valid.fill_null(False)).item() is ok


@pytest.mark.parametrize(
    ("scope", "want"), [("all", 6.0), ("monthly-statistic", 3.0), ("ondam", 3.0)]
)
def test_scopes(tmp_path: Path, scope: str, want: float) -> None:
    rows = [
        {"TOP_PS5_TRG": "1", "CPT_ENV_TYP": "9", "FLT_REM_MNT": "1"},
        {"TOP_PS5_TRG": "1", "CPT_ENV_TYP": "1", "FLT_REM_MNT": "2"},
        {"TOP_PS5_TRG": "9", "CPT_ENV_TYP": "2", "FLT_REM_MNT": "1"},
        {"TOP_PS5_TRG": "0", "CPT_ENV_TYP": "3", "FLT_REM_MNT": "2"},
    ]
    part, stats = open_damir.aggregate_file(_file(tmp_path / "A202401.csv.gz", rows), scope=scope)
    assert part["y"].sum() == want
    assert stats.excluded.get("out of scope", 0.0) == 6.0 - want


def test_unknown_hierarchy_and_measure(tmp_path: Path) -> None:
    f = _file(tmp_path / "A202401.csv.gz", [{}])
    with pytest.raises(InputError, match="prescriber"):
        open_damir.aggregate_file(f, hierarchy="region")
    with pytest.raises(InputError, match="measure"):
        open_damir.aggregate_file(f, measure="paid")


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    cents=st.lists(st.integers(-(10**8), 10**10), min_size=1, max_size=60),
    prs=st.lists(st.sampled_from(["1111", "3317", "1", "7777"]), min_size=60, max_size=60),
)
def test_block_sum_is_exact(cents: list[int], prs: list[str]) -> None:
    df = pl.DataFrame(
        {
            "FLX_ANN_MOI": ["202401"] * len(cents),
            "FLT_REM_MNT": [f"{c / 100:.2f}" for c in cents],
            "PRS_NAT": prs[: len(cents)],
            "PSE_SPE_SNDS": ["1"] * len(cents),
            "PSE_ACT_SNDS": ["1"] * len(cents),
        }
    )
    month, valid, cols = open_damir.month_exprs("flux")
    part, stats = aggregate_frame(
        df,
        file=Path("x"),
        first_line=2,
        value_col="FLT_REM_MNT",
        month=month,
        month_valid=valid,
        month_cols=cols,
        in_scope=pl.lit(True),
        level_exprs=open_damir._level_exprs(("famille", "executant")),
        levels=("famille", "executant"),
        on_bad_rows="error",
    )
    assert round(float(part["y"].sum()) * 100) == sum(cents)
    assert int(part["n"].sum()) == stats.rows == len(cents)
