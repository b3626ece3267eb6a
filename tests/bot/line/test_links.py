"""``crmbot line links --source NAME``: the link that opens the chat with 「診断 NAME」 typed in, and its QR
code. The basic ID is read from the fake LINE API (``GET /v2/bot/info``, checked against LINE's spec) unless
CRMBOT_LINE_BASIC_ID gives it. No pure-Python QR decoder is installed, so the PNG is read with Pillow and its
modules compared with the QR code of the expected link, module by module."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
import segno
from PIL import Image

from bot.cli import main
from bot.line import links
from conversations import inputs
from conversations.content import load_script
from tests.bot.line.helpers import TOKEN
from tests.fakes.line_api import BOT_INFO, FakeLineApi

LINK = "https://line.me/R/oaMessage/@123abcde/?%E8%A8%BA%E6%96%AD%20ads"  # the fake's basic ID, 「診断 ads」


@pytest.fixture
def line(fake_line: FakeLineApi, monkeypatch: pytest.MonkeyPatch) -> FakeLineApi:
    monkeypatch.setenv("LINE_CHANNEL_ACCESS_TOKEN", TOKEN)
    monkeypatch.setenv("LINE_API_HOST", fake_line.base_url)
    monkeypatch.setenv("LINE_API_DATA_HOST", fake_line.data_url)
    monkeypatch.delenv("CRMBOT_LINE_BASIC_ID", raising=False)
    return fake_line


def modules_of(path: Path) -> list[list[bool]]:
    """The dark modules of a QR code PNG drawn at links.QR_SCALE with a links.QR_BORDER quiet zone."""
    with Image.open(path) as img:
        assert img.format == "PNG"
        grey = img.convert("L")
        size = grey.width // links.QR_SCALE - 2 * links.QR_BORDER
        assert grey.width == grey.height == (size + 2 * links.QR_BORDER) * links.QR_SCALE
        half = links.QR_SCALE // 2
        return [[grey.getpixel(((x + links.QR_BORDER) * links.QR_SCALE + half,
                                (y + links.QR_BORDER) * links.QR_SCALE + half)) < 128 for x in range(size)]
                for y in range(size)]


def test_prints_the_link_and_writes_its_qr_code(line: FakeLineApi, tmp_path: Path, capsys) -> None:
    png = tmp_path / "ads.png"
    assert main(["line", "links", "--source", "ads", "--qr", str(png)]) == 0
    out = capsys.readouterr().out
    assert f"link: {LINK}\n" in out and "text: 診断 ads\n" in out and f"QR code: {png}\n" in out
    assert [r.path for r in line.recorded()] == [BOT_INFO]  # the basic ID asked of LINE, nothing changed
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    expected = [[bool(v) for v in row] for row in segno.make(LINK, error="m", micro=False).matrix]
    assert modules_of(png) == expected
    # the text the link puts in the message box starts the diagnosis with the source
    text = unquote(urlsplit(LINK).query)
    assert inputs.from_text(text, load_script("ja").keywords) == inputs.Input(inputs.START, source="ads")


def test_the_basic_id_from_the_environment_needs_no_call(line: FakeLineApi, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setenv("CRMBOT_LINE_BASIC_ID", "@shop-7")
    monkeypatch.chdir(tmp_path)
    assert main(["line", "links", "--source", "flyer_2027"]) == 0
    assert "link: https://line.me/R/oaMessage/@shop-7/?%E8%A8%BA%E6%96%AD%20flyer_2027\n" in capsys.readouterr().out
    assert line.recorded() == []
    assert (tmp_path / "line-flyer_2027.png").stat().st_size > 0


@pytest.mark.parametrize("source", ["広告", "a b", "ADS", "a" * 21, ""])
def test_a_bad_source_writes_nothing(line: FakeLineApi, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                     source: str, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["line", "links", "--source", source]) == 2
    assert "not a source name" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == [] and line.recorded() == []


def test_a_bad_basic_id_is_refused(line: FakeLineApi, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setenv("CRMBOT_LINE_BASIC_ID", "123abcde")
    assert main(["line", "links", "--source", "ads"]) == 2
    assert "CRMBOT_LINE_BASIC_ID" in capsys.readouterr().err


def test_a_refused_token_is_said(line: FakeLineApi, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys) -> None:
    monkeypatch.setenv("LINE_CHANNEL_ACCESS_TOKEN", "wrong-token")
    monkeypatch.chdir(tmp_path)
    assert main(["line", "links", "--source", "ads"]) == 1
    assert "LINE answered 401" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
