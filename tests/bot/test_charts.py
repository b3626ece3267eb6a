"""The charts module draws PNG for Slack (radar and lines) with the bundled Japanese font."""

from __future__ import annotations

import struct
import warnings

import pytest

from bot import charts

pytestmark = pytest.mark.fast  # unit tests: no Redis, no process, no server (tests/conftest.py)

AREAS = ["ユーザー参加度", "データ品質", "顧客満足度", "投資収益率（ROI）", "プロセス効率"]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def png_size(data: bytes) -> tuple[int, int]:
    assert data.startswith(PNG_MAGIC)
    width, height = struct.unpack(">II", data[16:24])  # the IHDR chunk comes first
    return width, height


def drawn_without_missing_glyphs(draw) -> bytes:  # type: ignore[no-untyped-def]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data = draw()
    missing = [str(w.message) for w in caught if "missing from" in str(w.message)]
    assert missing == [], missing  # every Japanese label found its glyphs in IPAexGothic
    return data


def test_radar_png_of_two_quarters() -> None:
    series = {"2026年1〜3月": [7.5, 8.0, 10.0, 5.0, 5.0], "2025年10〜12月": [6.0, 8.0, None, 4.0, 7.0]}
    data = drawn_without_missing_glyphs(lambda: charts.radar(AREAS, series, title="本店CRMチーム", fmt="png"))
    w, h = png_size(data)
    assert (w, h) == (round(charts.RADAR_SIZE[0] * charts.PNG_DPI), round(charts.RADAR_SIZE[1] * charts.PNG_DPI))
    assert charts.radar(AREAS, series, title="本店CRMチーム", fmt="png") == data  # deterministic bytes
    other = charts.radar(AREAS, {"2026年1〜3月": [1.0, 8.0, 10.0, 5.0, 5.0]}, title="本店CRMチーム", fmt="png")
    assert other != data


def test_radar_with_nothing_reported_says_so() -> None:
    data = charts.radar(AREAS, {"2026年1〜3月": [None] * 5}, empty="未報告", fmt="png")
    assert data.startswith(PNG_MAGIC)
    assert data != charts.radar(AREAS, {"2026年1〜3月": [5.0] * 5}, fmt="png")


def test_lines_png_per_area_across_quarters() -> None:
    quarters = ["2025年7〜9月", "2025年10〜12月", "2026年1〜3月"]
    series = {area: [5.0, None, 7.5] for area in AREAS}
    data = drawn_without_missing_glyphs(lambda: charts.lines(quarters, series, y_range=(0, 10.5), fmt="png"))
    assert png_size(data) == (round(charts.WIDTH * charts.PNG_DPI), round(charts.HEIGHT * charts.PNG_DPI))


def test_radar_svg_for_the_console_too() -> None:
    data = charts.radar(AREAS, {"a": [1.0, 2.0, 3.0, 4.0, 5.0]})
    assert data.startswith(b"<?xml") and b"<svg" in data
