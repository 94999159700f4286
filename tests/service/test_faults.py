"""The real app under uvicorn on a throwaway PostgreSQL that is stopped and restarted twice
under a mixed load of 32 clients, with one reload of a broken champion: nothing
acknowledged is lost or duplicated, every answer is 2xx, 4xx or 503, and the service is
back within 5 s of the database (``benchmarks/faults.py`` runs the longer version).
"""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from service.config import Settings
from service.main import create_app
from service.serving import default_loader
from service.store import upgrade
from tests.service.conftest import AUTH, KEY, registered_with_broken_next
from tests.service.faults import fault_run
from tests.service.pg_instance import Postgres, postgres_binaries
from tests.service.server import running

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

STEPS = [
    (3.0, "db-down"),
    (6.0, "db-up"),
    (8.0, "broken-reload"),
    (10.0, "db-down"),
    (13.0, "db-up"),
    (19.0, "end"),
]


def test_postgres_restarts_and_a_broken_reload_under_load(real_model, tmp_path):
    if postgres_binaries() is None:
        pytest.skip("PostgreSQL server binaries (/usr/lib/postgresql/*/bin) are not installed")
    promote_broken = registered_with_broken_next(real_model["uri"], "spendcast-faults", tmp_path)
    bundle = real_model["bundle"]
    months = sorted({str(d) for d in bundle.forecasts["ds"].unique().to_list()})[:3]
    with Postgres() as pg:
        upgrade(pg.url)
        settings = Settings(
            database_url=pg.url,
            api_keys=SecretStr(KEY),
            cache_dir=tmp_path / "cache",
            model_uri="models:/spendcast-faults@champion",
            log_level="ERROR",
            db_connect_timeout=2,
        )
        app = create_app(settings, loader=default_loader, retry_seconds=0.5)
        with running(app, ready_timeout=60) as base:
            fig = fault_run(
                base, pg, promote_broken, auth=AUTH, ids=bundle.ids[:4], months=months, steps=STEPS
            )
    print("\n".join(fig.lines()))
    assert fig.acknowledged > 100 and fig.by_status.get("503", 0) > 0  # outages were felt
    assert (fig.lost, fig.duplicated, fig.not_dense, fig.bad) == (0, 0, 0, 0)
    assert len(fig.recovery_s) == 2 and max(fig.recovery_s) <= 5
    assert fig.reload_status == 503 and fig.model_kept
