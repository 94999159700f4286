"""The Dockerfile cannot rot: its own install and start commands run in a fresh venv.

No Docker engine here, so the test interprets the Dockerfile: stages, WORKDIR, COPY, ENV, RUN
and CMD, with the image's absolute paths (/src, /opt/venv, /data) mapped under a temporary
root. One trick keeps it fast and offline: right after the venv is created, a ``.pth`` file
makes this project's already-installed dependencies visible to it (like
``--system-site-packages``), so the Dockerfile's ``pip install --require-hashes -r
requirements.lock`` finds the locked versions satisfied (``make`` installed the same lock) and
``pip install .`` builds and installs the project itself. Runtime-stage RUN lines (useradd, chown)
need root and are not run; the user switch is checked statically.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import site
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.service.server import free_port

ROOT = Path(__file__).resolve().parents[2]
MAPPED = ("/opt/venv", "/src", "/data")


def parse(path: Path) -> list[dict]:
    """Stages as ``{"base", "name", "steps": [(INSTRUCTION, args)]}``."""
    text = re.sub(r"\\\n", " ", path.read_text())
    stages: list[dict] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        instr, _, args = line.partition(" ")
        instr = instr.upper()
        if instr == "FROM":
            parts = args.split()
            stages.append(
                {"base": parts[0], "name": parts[2] if len(parts) > 2 else None, "steps": []}
            )
        else:
            stages[-1]["steps"].append((instr, args.strip()))
    return stages


def env_pairs(args: str) -> dict[str, str]:
    return dict(tok.split("=", 1) for tok in shlex.split(args))


def exec_form(args: str) -> list[str]:
    import json

    return json.loads(args)


def test_dockerfile_shape():
    stages = parse(ROOT / "Dockerfile")
    assert len(stages) >= 2
    bases = {s["base"] for s in stages}
    assert len(bases) == 1 and re.fullmatch(r"python:3\.11-slim@sha256:[0-9a-f]{64}", *bases)
    build_runs = [a for i, a in stages[0]["steps"] if i == "RUN"]
    assert any("--require-hashes -r requirements.lock" in a for a in build_runs)
    final = dict((i, a) for i, a in stages[-1]["steps"])  # last occurrence wins
    assert final["USER"] not in ("root", "0")
    assert final["EXPOSE"] == "8000"
    assert "service.healthcheck" in final["HEALTHCHECK"]
    env = {}
    for instr, args in stages[-1]["steps"]:
        if instr == "ENV":
            env.update(env_pairs(args))
    assert {"SPENDCAST_MODEL_URI", "SPENDCAST_DATABASE_URL"} <= set(env)
    assert any(i == "COPY" and "--from=" in a for i, a in stages[-1]["steps"])
    ignore = (ROOT / ".dockerignore").read_text()
    assert "!service/" in ignore and "!forecasting/" in ignore


@pytest.mark.slow
def test_install_and_start_commands_run(tmp_path):
    root = tmp_path / "img"
    stages = parse(ROOT / "Dockerfile")

    def mapped(s: str) -> str:
        for p in MAPPED:
            s = re.sub(rf"(?<![\w.-]){re.escape(p)}(?=/|\b|$)", str(root) + p, s)
        return s

    deps_site = next(p for p in site.getsitepackages() if p.endswith("site-packages"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SPENDCAST_", "PYTHON"))}
    env["PATH"] = f"{Path(sys.executable).parent}:{env['PATH']}"
    workdir = root
    for stage in stages:
        for instr, args in stage["steps"]:
            if instr == "WORKDIR":
                workdir = Path(mapped(args))
                workdir.mkdir(parents=True, exist_ok=True)
            elif instr == "ENV":
                for k, v in env_pairs(args).items():
                    env[k] = mapped(v).replace("$PATH", env["PATH"])
            elif instr == "COPY" and "--from=" not in args:
                *srcs, dest = args.split()
                for src in srcs:
                    target = workdir / dest
                    if (ROOT / src).is_dir():
                        shutil.copytree(
                            ROOT / src,
                            target / Path(src).name if dest.endswith("./") else target,
                            dirs_exist_ok=True,
                            ignore=shutil.ignore_patterns("__pycache__"),
                        )
                    else:
                        target.mkdir(parents=True, exist_ok=True)
                        shutil.copy(ROOT / src, target)
            elif instr == "RUN" and stage is stages[0]:
                r = subprocess.run(
                    mapped(args),
                    shell=True,
                    cwd=workdir,
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=600,
                )
                assert r.returncode == 0, f"RUN {args}\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}"
                venv_site = list((root / "opt/venv/lib").glob("python3*/site-packages"))
                if venv_site and not (venv_site[0] / "_deps.pth").exists():
                    (venv_site[0] / "_deps.pth").write_text(deps_site + "\n")
    final = dict(stages[-1]["steps"])
    (root / "data").mkdir(exist_ok=True)
    port = free_port()
    env["UVICORN_PORT"] = str(port)
    python = root / "opt/venv/bin/python"
    where = subprocess.run(
        [python, "-c", "import service; print(service.__file__)"],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert where.stdout.startswith(str(root / "opt/venv")), where.stdout  # the installed copy
    proc = subprocess.Popen(
        exec_form(final["CMD"]),
        cwd=workdir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.2)
        health = final["HEALTHCHECK"].split("CMD", 1)[1].strip()
        check = subprocess.run(exec_form(health), cwd=workdir, env=env, timeout=30)
        assert check.returncode == 0
        ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5)
        assert ready.status_code in (200, 503)
        assert ready.headers["content-type"] in ("application/json", "application/problem+json")
    finally:
        proc.terminate()
        proc.wait(timeout=15)
