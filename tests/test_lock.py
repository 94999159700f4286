"""The lock files cover pyproject.toml, carry hashes, and are what every install reads."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s;\\]+)", re.MULTILINE)


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _pins(lock: str) -> dict[str, set[str]]:
    """Package -> pinned versions (several when markers split them) of a lock file."""
    out: dict[str, set[str]] = {}
    for name, version in _PIN.findall((ROOT / lock).read_text()):
        out.setdefault(_norm(name), set()).add(version)
    return out


def _names(requirements: list[str]) -> set[str]:
    return {_norm(re.split(r"[\s<>=!~;\[]", r, maxsplit=1)[0]) for r in requirements}


PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
EXTRAS = PROJECT.get("optional-dependencies", {})


@pytest.mark.parametrize(
    ("lock", "wanted"),
    [
        ("requirements.lock", _names(PROJECT["dependencies"])),
        (  # an extra may pull another of the project's own ("spendcast[bench]"): not a pin
            "requirements-dev.lock",
            _names(PROJECT["dependencies"] + [r for reqs in EXTRAS.values() for r in reqs])
            - {PROJECT["name"]},
        ),
    ],
)
def test_lock_covers_pyproject(lock: str, wanted: set[str]) -> None:
    pins = _pins(lock)
    missing = sorted(wanted - set(pins))
    assert not missing, f"{lock} lacks {missing}: run `make lock`"
    assert {"setuptools", "wheel"} <= set(pins)  # the build backend is locked too


def test_every_pin_has_a_hash_and_both_locks_agree() -> None:
    for lock in ("requirements.lock", "requirements-dev.lock"):
        blocks = re.split(r"\n(?=[A-Za-z0-9])", (ROOT / lock).read_text())
        pinned = [b for b in blocks if _PIN.match(b)]
        assert pinned and all("--hash=sha256:" in b for b in pinned), lock
    runtime, dev = _pins("requirements.lock"), _pins("requirements-dev.lock")
    assert all(dev.get(name) == versions for name, versions in runtime.items())


def test_installs_read_the_lock() -> None:
    make = (ROOT / "Makefile").read_text()
    assert re.search(r"pip install .*--require-hashes -r \$\(DEV_LOCK\)", make)
    assert re.search(r"^lock:", make, re.MULTILINE)
    assert "make test" in (ROOT / ".ci/run").read_text()
