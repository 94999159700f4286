"""`spendcast`: the command line. Thin: parses options, calls the library, prints.

This module assembles the typer app from one module per command group: :mod:`cli.data`
(synth, ingest), :mod:`cli.train` (train, experiment run|compare), :mod:`cli.serve`
(serve, demo), :mod:`cli.detect` and :mod:`cli.db` (db upgrade|status).
"""

from __future__ import annotations

import typer

from cli.data import ingest, synth
from cli.db import db_app
from cli.detect import detect
from cli.serve import demo, serve
from cli.train import experiment_app, train

__all__ = ["app"]

app = typer.Typer(
    name="spendcast",
    help="Forecast and monitor the Assurance Maladie's monthly reimbursements.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
for command in (synth, ingest, train, serve, demo, detect):
    app.command()(command)
app.add_typer(experiment_app, name="experiment")
app.add_typer(db_app, name="db")
