"""``spendcast detect``: judge observed months against the model (or a running service)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cli.common import ModelOption, exit_on_error, out
from forecasting.errors import SpendcastError

if TYPE_CHECKING:
    import polars as pl
    from rich.table import Table

__all__ = ["detect"]


def detect(
    observed: Annotated[Path, typer.Argument(help="Observations: unique_id, ds, y [, as_of].")],
    model: ModelOption = None,
    level: Annotated[int, typer.Option(min=1, max=99, help="Interval level in percent.")] = 99,
    out_path: Annotated[
        Path | None, typer.Option("--out", help="Write every judgement here (CSV).")
    ] = None,
    fail_on_anomaly: Annotated[
        bool, typer.Option("--fail-on-anomaly", help="Exit 3 when anything is flagged.")
    ] = False,
    url: Annotated[
        str | None, typer.Option(help="Judge through a running service at this base URL.")
    ] = None,
    api_key: Annotated[str | None, typer.Option(help="API key for --url.")] = None,
    shift_after: Annotated[
        int,
        typer.Option(
            min=0,
            max=24,
            help="Months in a row on one side, all but one of them anomalies (all of them "
            "below 3), that accept a lasting level shift (LEVEL_SHIFT; 0: never). With --url "
            "the service's SPENDCAST_SHIFT_AFTER applies.",
        ),
    ] = 3,
) -> None:
    """Judge observed months against the model (or a running service) and list the flags.

    Same judging as POST /v1/anomalies/detect: earlier months of a series in the file
    condition later ones (one step ahead); a lasting level shift is reported once
    (LEVEL_SHIFT) and then accepted. Exit codes: 0 done, 1 model or service unavailable,
    2 bad input, 3 flagged (with --fail-on-anomaly).
    """
    import polars as pl

    from forecasting.data.panel import atomic_path

    # other errors: network errors of --url, MLflow errors
    with exit_on_error((SpendcastError, OSError), others=1):
        judged = _judge(observed, model, level, url, api_key, shift_after)
    if out_path is not None:
        with atomic_path(out_path) as tmp:
            judged.write_csv(tmp)
    flagged = judged.filter(pl.col("is_anomaly"))
    out.print(_flag_table(flagged, judged.height, level))
    counts = judged.group_by("status").len().sort("status")
    out.print(", ".join(f"{s}: {n}" for s, n in counts.iter_rows()), highlight=False)
    if fail_on_anomaly and flagged.height:
        raise typer.Exit(3)


def _judge(
    observed: Path,
    model: str | None,
    level: int,
    url: str | None,
    api_key: str | None,
    shift_after: int,
) -> pl.DataFrame:
    """Every judgement of the observations, from the service at ``url`` or the model."""
    from forecasting.data.tidy import read_observations

    frame = read_observations(observed)
    if url:
        return _post_detect(frame, url, api_key, level)
    from forecasting.monitoring.judge import detect as detect_frame
    from forecasting.tracking import load_model
    from service.config import get_settings

    loaded = load_model(model or get_settings().model_uri)
    return detect_frame(frame, loaded.bundle, level=level, shift_after=shift_after)


def _post_detect(frame: pl.DataFrame, url: str, api_key: str | None, level: int) -> pl.DataFrame:
    """Judge through a running service, in batches of at most 10,000 observations."""
    import httpx
    import polars as pl

    from forecasting.monitoring.judge import DETECT_COLUMNS

    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    rows: list[dict[str, object]] = []
    with httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=120) as client:
        for batch in frame.iter_slices(10_000):
            obs = [
                {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in r.items()}
                for r in batch.to_dicts()
            ]
            resp = client.post("/v1/anomalies/detect", json={"observations": obs, "level": level})
            if resp.status_code != 200:
                raise RuntimeError(f"{url} answered {resp.status_code}: {resp.text[:500]}")
            for r in resp.json()["results"]:
                eb = r.get("explained_by")
                r["explained_by"] = json.dumps(eb) if eb is not None else None
                rows.append({c: r.get(c) for c in DETECT_COLUMNS})
    return pl.DataFrame(rows, infer_schema_length=None).with_columns(
        pl.col("ds").str.to_date(), pl.col("level_shift_since").cast(pl.String).str.to_date()
    )


def _flag_table(flagged: pl.DataFrame, judged: int, level: int) -> Table:
    """The 50 most significant flags (lowest score first)."""
    from rich.table import Table

    table = Table(title=f"{flagged.height} flagged of {judged} (level {level})")
    for col in ("series", "month", "observed", "expected", "bounds", "score", "explained by"):
        table.add_column(col, justify="left" if col in ("series", "explained by") else "right")
    for r in flagged.sort("score").head(50).iter_rows(named=True):
        kids = json.loads(r["explained_by"]) if r["explained_by"] else []
        table.add_row(
            r["unique_id"],
            str(r["ds"])[:7],
            f"{r['y']:,.0f}",
            f"{r['expected']:,.0f}",
            f"{r['lo']:,.0f} .. {r['hi']:,.0f}",
            f"{r['score']:.2g}",
            ", ".join(f"{k['unique_id']} ({k['deviation']:+,.0f})" for k in kids[:3]),
        )
    return table
