"""The rich menu's table in the script files ([richmenu]): labels drawn on the image, words sent by a tap."""

from pathlib import Path

import pytest

from conversations.content import BUTTON_MAX, RICHMENU_AREAS, RICHMENU_CHAT_BAR_MAX, load_script
from conversations.inputs import from_text
from tests.conversations.test_content import load, real_data, refused, write

pytestmark = pytest.mark.fast  # unit tests: no Redis, no process, no server (tests/conftest.py)


@pytest.mark.parametrize("locale", ["ja", "en"])
def test_real_scripts_have_the_three_areas(locale: str) -> None:
    menu = load_script(locale).richmenu
    assert [a.kind for a in menu.areas] == list(RICHMENU_AREAS) == ["start", "result", "consult"]
    assert 0 < len(menu.chat_bar) <= RICHMENU_CHAT_BAR_MAX
    for area in menu.areas:
        assert 0 < len(area.label) <= BUTTON_MAX
        assert area.text.strip()


def test_japanese_labels_are_the_menu_the_issue_names() -> None:
    assert [a.label for a in load_script("ja").richmenu.areas] == ["診断する", "結果を見る", "相談する"]


@pytest.mark.parametrize("locale", ["ja", "en"])
def test_the_start_area_sends_a_start_word(locale: str) -> None:
    script = load_script(locale)
    start = script.richmenu.areas[0]
    assert from_text(start.text, script.keywords).kind == "start"


@pytest.mark.parametrize("locale", ["ja", "en"])
def test_each_area_sends_a_keyword_of_its_kind_where_the_script_has_that_list(locale: str) -> None:
    script = load_script(locale)
    checked = 0
    for area in script.richmenu.areas:
        if area.kind in script.keywords:
            assert area.text in script.keywords[area.kind]
            checked += 1
    assert checked >= 1  # at least "start"; "result" and "consult" once the scripts list those words


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        (lambda d: d.pop("richmenu"), "richmenu"),
        (lambda d: d["richmenu"].pop("result"), "richmenu.result"),
        (lambda d: d["richmenu"]["consult"].pop("label"), "richmenu.consult.label"),
        (lambda d: d["richmenu"]["start"].update(label="  "), "richmenu.start.label"),
        (lambda d: d["richmenu"]["start"].update(label="あ" * (BUTTON_MAX + 1)), "richmenu.start.label"),
        (lambda d: d["richmenu"]["result"].pop("text"), "richmenu.result.text"),
        (lambda d: d["richmenu"].update(chat_bar="あ" * (RICHMENU_CHAT_BAR_MAX + 1)), "richmenu.chat_bar"),
        (lambda d: d["richmenu"].update(help={"label": "ヘルプ", "text": "help"}), "richmenu.help"),
        (lambda d: d["richmenu"]["start"].update(text="はじめよう"), "richmenu.start.text"),
        (lambda d: d["richmenu"]["start"].update(text="戻る"), "richmenu.start.text"),  # a back word
    ],
    ids=["missing", "missing-area", "missing-label", "blank-label", "long-label", "missing-text", "long-chat-bar",
         "unknown-area", "not-a-keyword", "keyword-of-another-kind"],
)
def test_malformed_richmenu_is_refused(tmp_path: Path, edit, field: str) -> None:
    data = real_data()
    edit(data)
    write(tmp_path, data)
    e = refused(tmp_path, field)
    if field == "richmenu.start.text":
        assert "keywords.start" in e.problem


def test_a_start_word_typed_differently_is_accepted(tmp_path: Path) -> None:
    data = real_data()
    data["richmenu"]["start"]["text"] = "ＳＴＡＲＴ"  # full-width: the same word as "start" once normalised
    write(tmp_path, data)
    assert load(tmp_path).richmenu.areas[0].text == "ＳＴＡＲＴ"


def test_labels_at_the_limit_are_accepted(tmp_path: Path) -> None:
    data = real_data()
    data["richmenu"]["consult"]["label"] = "あ" * BUTTON_MAX
    data["richmenu"]["chat_bar"] = "あ" * RICHMENU_CHAT_BAR_MAX
    write(tmp_path, data)
    menu = load(tmp_path).richmenu
    assert menu.areas[2].label == "あ" * 20 and menu.chat_bar == "あ" * 14
