"""Writing a run's files: chunked monthly CSVs and the ground truth, atomically, mode 0644."""

from __future__ import annotations

import gzip
import io
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import numpy as np
import polars as pl

from forecasting.calendar import month_of
from forecasting.data.panel import atomic_path
from forecasting.data.synth.truth import LAG_SHARES, Truth

__all__ = ["CsvWriter", "public_path", "write_truth", "write_lags", "anomaly_frame"]


class CsvWriter:
    """Chunked CSV writer: ``;`` separator, optional trailing ``;``, optional gzip.

    Compression runs in one background thread (zlib releases the GIL) while the next chunk
    is generated; at most two chunks wait, so memory stays bounded.
    """

    def __init__(self, raw: IO[bytes], columns: tuple[str, ...], *, gz: bool, trailing: bool):
        self._raw = raw
        self._out: IO[bytes] | gzip.GzipFile = (
            gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=1, mtime=0)
            if gz
            else raw
        )
        self._trailing = trailing
        self._pool = ThreadPoolExecutor(max_workers=1)
        self._pending: list[Future[int]] = []
        header = ";".join(columns) + (";" if trailing else "") + "\n"
        self._submit(header.encode())

    def _submit(self, data: bytes) -> None:
        while len(self._pending) >= 2:
            self._pending.pop(0).result()
        self._pending.append(self._pool.submit(self._out.write, data))

    def write(self, frame: pl.DataFrame) -> None:
        """Queue the rows of ``frame`` (two decimals for floats)."""
        if self._trailing:  # an empty last column gives every line its trailing ";"
            frame = frame.with_columns(pl.lit(None, dtype=pl.String).alias(""))
        buf = io.BytesIO()
        frame.write_csv(
            buf, separator=";", include_header=False, float_precision=2, line_terminator="\n"
        )
        self._submit(buf.getvalue())

    def close(self) -> None:
        """Wait for the queued chunks and close the gzip stream (not the raw file)."""
        try:
            for fut in self._pending:
                fut.result()
        finally:
            self._pool.shutdown(wait=True)
        if self._out is not self._raw:
            self._out.close()


@contextmanager
def public_path(path: Path) -> Iterator[Path]:
    """:func:`~forecasting.data.panel.atomic_path`, readable by all (mode 0644)."""
    with atomic_path(path) as tmp:
        tmp.chmod(0o644)
        yield tmp


def write_truth(path: Path, truth: Truth, level: str) -> Path:
    """``truth.parquet``: complete amounts by care month per bottom category."""
    n_month = len(truth.care_months)
    ds = [month_of(int(m)) for m in truth.care_months]
    amounts = truth.amounts
    frame = pl.DataFrame(
        {
            "famille": np.repeat([c.famille for c in truth.cats], n_month),
            level: np.repeat([c.member for c in truth.cats], n_month),
            "ds": ds * len(truth.cats),
            "y_reimbursed": amounts.rem.reshape(-1) / 100.0,
            "y_presented": amounts.pai.reshape(-1) / 100.0,
            "y_acts": amounts.acts.reshape(-1).astype(float),
        },
        schema={
            "famille": pl.String,
            level: pl.String,
            "ds": pl.Date,
            "y_reimbursed": pl.Float64,
            "y_presented": pl.Float64,
            "y_acts": pl.Float64,
        },
    )
    with public_path(path) as tmp:
        frame.write_parquet(tmp)
    return path


def write_lags(path: Path) -> Path:
    """``lags.csv``: lag in months and paid share."""
    lags = pl.DataFrame(
        {"lag": list(range(len(LAG_SHARES))), "paid_share": list(LAG_SHARES)},
        schema={"lag": pl.Int64, "paid_share": pl.Float64},
    )
    with public_path(path) as tmp:
        lags.write_csv(tmp, float_precision=6)
    return path


def anomaly_frame(truth: Truth) -> pl.DataFrame:
    """The injected anomalies: ``unique_id``, ``ds`` (text), ``basis``, ``factor``."""
    cats, anomalies = truth.cats, truth.anomalies
    return pl.DataFrame(
        {
            "unique_id": [cats[k].unique_id for k, _, _ in anomalies],
            "ds": [month_of(m).isoformat() for _, m, _ in anomalies],
            "basis": ["care"] * len(anomalies),
            "factor": [f for _, _, f in anomalies],
        },
        schema={"unique_id": pl.String, "ds": pl.String, "basis": pl.String, "factor": pl.Float64},
    )
