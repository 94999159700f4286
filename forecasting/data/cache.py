"""Per-file aggregate cache of ``spendcast ingest``: a re-run reads only new or changed files.

An entry is a file's partial aggregate (``<key>.parquet``), its stats (``<key>.json``,
written last: its presence marks a complete entry) and its quarantined rows, if any
(``<key>.quarantine.parquet``); the key hashes the file's content and the options.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from forecasting.data.aggregate import FileStats
from forecasting.data.panel import atomic_path

__all__ = ["CACHE_VERSION", "CACHE_DIR", "AggregateCache", "file_sha256"]

CACHE_VERSION = "3"  # 2: Open DAMIR parts keep the other month (triangle); 3: acts (count)
CACHE_DIR = ".spendcast-cache"
"""The cache folder's name beside the panel, by default."""


def file_sha256(path: Path) -> str:
    """The sha256 of a file's content, read in 8 MiB chunks."""
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(8 * 1024 * 1024):
            h.update(chunk)
    return h.hexdigest()


@dataclass(frozen=True)
class AggregateCache:
    """Cached partial aggregates in ``directory`` for one set of options.

    Attributes:
        directory: the cache folder (created on the first save).
        options: the options that change an aggregate, as JSON (part of every key).
    """

    directory: Path
    options: str

    @classmethod
    def for_options(cls, directory: Path, *options: object) -> AggregateCache:
        """The cache of ``directory`` for these options (JSON-serialisable values)."""
        return cls(directory, json.dumps([CACHE_VERSION, *options], sort_keys=True))

    def key(self, path: Path) -> str:
        """The entry key of a file: its content hash and the options, hashed (32 hex digits)."""
        return hashlib.sha256((file_sha256(path) + self.options).encode()).hexdigest()[:32]

    def load(self, key: str) -> tuple[pl.DataFrame, FileStats] | None:
        """The cached aggregate and stats of ``key`` (None when there is no complete entry)."""
        part_path, stats_path = self._paths(key)
        if not (part_path.exists() and stats_path.exists()):
            return None
        saved = json.loads(stats_path.read_text())
        stats = FileStats(
            rows=saved["rows"], rejected=saved["rejected"], excluded=saved["excluded"]
        )
        quarantine = self._quarantine_path(key)
        if quarantine.exists():
            stats.quarantine.append(pl.read_parquet(quarantine))
        return pl.read_parquet(part_path), stats

    def save(self, key: str, part: pl.DataFrame, stats: FileStats) -> None:
        """Store an entry, the stats last."""
        part_path, stats_path = self._paths(key)
        self.directory.mkdir(parents=True, exist_ok=True)
        with atomic_path(part_path) as tmp:
            part.write_parquet(tmp)
        if stats.quarantine:
            with atomic_path(self._quarantine_path(key)) as tmp:
                pl.concat(stats.quarantine, how="diagonal").write_parquet(tmp)
        with atomic_path(stats_path) as tmp:
            tmp.write_text(json.dumps(stats.to_json()))

    def _paths(self, key: str) -> tuple[Path, Path]:
        return self.directory / f"{key}.parquet", self.directory / f"{key}.json"

    def _quarantine_path(self, key: str) -> Path:
        return self.directory / f"{key}.quarantine.parquet"
