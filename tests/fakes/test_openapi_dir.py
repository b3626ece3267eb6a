"""Where the LINE specs are found: beside this checkout, else beside the local repository it was cloned
from (CI clones the repository into /tmp, away from ``../shared``)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.fakes import openapi


def _git(*args: str) -> None:
    subprocess.run(["git", *args], check=True, capture_output=True)


def test_a_clone_made_elsewhere_finds_the_specs_beside_its_origin(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    origin = tmp_path / "work" / "main"
    specs = tmp_path / "work" / "shared" / "line-openapi"
    specs.mkdir(parents=True)
    _git("init", "-q", str(origin))
    clone = tmp_path / "elsewhere" / "fresh"
    _git("clone", "-q", str(origin), str(clone))
    monkeypatch.delenv(openapi.SPEC_DIR_ENV, raising=False)
    monkeypatch.setattr(openapi, "REPO_ROOT", clone)
    openapi._origin_checkout.cache_clear()
    try:
        assert openapi.spec_dir() == specs.resolve()
        (clone.parent / "shared" / "line-openapi").mkdir(parents=True)  # beside the checkout wins
        assert openapi.spec_dir() == clone.parent / "shared" / "line-openapi"
    finally:
        openapi._origin_checkout.cache_clear()
