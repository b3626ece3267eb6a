"""WCAG AA on the result card: every text against what it is drawn on, from the colours in the card.

Contrast ratio (WCAG 2.x): (L1 + 0.05) / (L2 + 0.05), L the relative luminance of the lighter and the
darker colour, from sRGB channels linearised (c/12.92 up to 0.04045, else ((c+0.055)/1.055)^2.4) and
weighted 0.2126 R + 0.7152 G + 0.0722 B. A colour with alpha (#RRGGBBAA) is blended over its background
first. Small text needs 4.5:1; every text on the card is held to that.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from bot.line import render
from conversations.content import load_script
from conversations.outputs import ConsultAck

pytestmark = pytest.mark.fast  # unit tests: no Redis, no process, no server (tests/conftest.py)

AA = 4.5
WHITE = "#FFFFFF"
PRIMARY_BUTTON_TEXT = WHITE  # LINE draws a primary button's label in white on the button's colour


def rgb(colour: str, over: tuple[float, float, float] = (1.0, 1.0, 1.0)) -> tuple[float, float, float]:
    h = colour.lstrip("#")
    assert len(h) in (6, 8), colour
    channels = tuple(int(h[i:i + 2], 16) / 255 for i in (0, 2, 4))
    alpha = int(h[6:8], 16) / 255 if len(h) == 8 else 1.0
    r, g, b = (alpha * c + (1 - alpha) * o for c, o in zip(channels, over, strict=True))
    return r, g, b


def luminance(c: tuple[float, float, float]) -> float:
    lin = [x / 12.92 if x <= 0.04045 else ((x + 0.055) / 1.055) ** 2.4 for x in c]
    return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]


def contrast(fg: str, bg: str) -> float:
    back = rgb(bg)
    a, b = sorted((luminance(rgb(fg, back)), luminance(back)), reverse=True)
    return (a + 0.05) / (b + 0.05)


def drawn(node: Any, bg: str = WHITE) -> Iterator[tuple[str, str, str]]:
    """(text, its colour, the colour behind it) for every text and primary button in a Flex tree."""
    if isinstance(node, list):
        for x in node:
            yield from drawn(x, bg)
        return
    if not isinstance(node, dict):
        return
    bg = node.get("backgroundColor", bg)
    if node.get("type") == "text":
        assert "color" in node, f"text without an explicit colour: {node['text']!r}"
        yield node["text"], node["color"], bg
    elif node.get("type") == "button" and node.get("style") == "primary":
        assert "color" in node, f"primary button without an explicit colour: {node['action']['label']!r}"
        yield node["action"]["label"], PRIMARY_BUTTON_TEXT, node["color"]
    for key in ("header", "hero", "body", "footer", "contents"):
        if key in node:
            yield from drawn(node[key], bg)


@pytest.mark.parametrize(("fg", "bg", "ratio"), [("#FFFFFF", "#F9A825", 1.97), ("#FFFFFF", "#9E9E9E", 2.68),
                                                 ("#000000", "#FFFFFF", 21.0), ("#FFFFFF", "#FFFFFF", 1.0)])
def test_the_ratio_is_computed_as_wcag_defines_it(fg: str, bg: str, ratio: float) -> None:
    assert round(contrast(fg, bg), 2) == ratio


def test_alpha_is_blended_over_the_background() -> None:
    assert contrast("#FFFFFF00", "#1565C0") == pytest.approx(1.0)
    assert 1.0 < contrast("#FFFFFF80", "#1565C0") < contrast("#FFFFFF", "#1565C0")


@pytest.mark.parametrize("locale", ["ja", "en"])
@pytest.mark.parametrize(("answers", "prev"), [("AAAAAAAAAA", ""), ("ABCDABCDAB", "DDDDDDDDDD"),
                                               ("AAAAAAABCD", "AAAAAAAAAA"), ("BBBBBBBBBB", "")])
def test_every_text_on_the_result_card_meets_wcag_aa(locale: str, answers: str, prev: str) -> None:
    card = render.result_message(load_script(locale), answers, 3, prev).to_dict()["contents"]
    seen = list(drawn(card))
    assert {x for x in answers} <= {text for text, _, _ in seen}  # the letters' badges are among them
    low = [(text[:20], fg, bg, round(contrast(fg, bg), 2)) for text, fg, bg in seen if contrast(fg, bg) < AA]
    assert low == []


@pytest.mark.parametrize("letter", ["A", "B", "C", "D"])
def test_each_grade_colour_carries_white_text(letter: str) -> None:
    assert contrast(render.ON_COLOUR, render.GRADE_COLOURS[letter]) >= AA


def test_the_consultation_card_meets_wcag_aa() -> None:
    msg = render.consult_message(load_script("ja"), ConsultAck(sid=1, url="https://example.com/"))
    seen = list(drawn(msg.to_dict()["contents"]))
    assert seen and all(contrast(fg, bg) >= AA for _, fg, bg in seen)
