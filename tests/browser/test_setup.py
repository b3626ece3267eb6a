"""Where Chromium is missing, the browser tests skip and say which package to install."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.browser.conftest import chromium_paths


def test_without_chromium_the_reason_names_the_packages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # nothing on it
    reason = chromium_paths()
    assert isinstance(reason, str)
    assert "chromium and chromium-driver" in reason and "scripts/test" in reason


def test_with_only_the_browser_the_driver_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "chromium"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    reason = chromium_paths()
    assert isinstance(reason, str) and "chromium-driver package" in reason and "chromium and" not in reason
