"""Tests for conversations.content: the real scripts load; every malformed file is refused by name."""

import copy
import json
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from conversations.content import (
    ADVICE_MAX,
    BUTTON_KEYS,
    CHOICE_LABEL_MAX,
    OPTIONAL_TEXT_KEYS,
    QUESTION_COUNT,
    TEXT_KEYS,
    load_script,
    script_path,
)
from conversations.errors import ConfigError, ContentError
from conversations.inputs import from_text

pytestmark = pytest.mark.fast  # unit tests: no Redis, no process, no server (tests/conftest.py)

REAL_JA = script_path("ja")


def real_data(locale: str = "ja") -> dict[str, Any]:
    return tomllib.loads(script_path(locale).read_text(encoding="utf-8"))


# --- a tiny TOML writer: every top-level key on one line, nested values as inline tables ----------


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)  # JSON string escapes are valid TOML basic strings
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {_toml_value(x)}" for k, x in v.items()) + "}"
    raise TypeError(type(v))


def toml_dumps(data: dict[str, Any]) -> str:
    return "".join(f"{json.dumps(k)} = {_toml_value(v)}\n" for k, v in data.items())


def write(tmp_path: Path, data: dict[str, Any], locale: str = "ja") -> Path:
    path = tmp_path / f"diagnosis.{locale}.toml"
    path.write_text(toml_dumps(data), encoding="utf-8")
    return path


def load(tmp_path: Path, locale: str = "ja") -> Any:
    return load_script.__wrapped__(locale, str(tmp_path))


def refused(tmp_path: Path, field: str, locale: str = "ja") -> ContentError:
    """Load from tmp_path, expecting a ContentError naming the file and exactly this field."""
    with pytest.raises(ContentError) as info:
        load(tmp_path, locale)
    e = info.value
    path = str(tmp_path / f"diagnosis.{locale}.toml")
    assert e.path == path
    assert e.field == field
    assert str(e).startswith(f"{path}: {field}: ")
    assert e.problem
    return e


# --- the real scripts ---------------------------------------------------------------------------


@pytest.mark.parametrize("locale", ["ja", "en"])
def test_real_scripts_load(locale: str) -> None:
    s = load_script(locale)
    assert s.locale == locale
    assert s.path == str(script_path(locale))
    assert len(s.questions) == QUESTION_COUNT == 10
    for q in s.questions:
        assert list(q.choices) == ["A", "B", "C", "D"]
        for c in q.choices.values():
            assert c.text.strip()
            assert 0 < len(c.label) <= CHOICE_LABEL_MAX
        assert q.topic and q.text and q.advice_b and q.advice_cd
        assert q.advice_b != q.advice_cd
    assert set(s.texts) - set(OPTIONAL_TEXT_KEYS) == set(TEXT_KEYS)
    assert set(s.tiers) == {"A", "B", "C"}
    assert set(s.keywords) == {"start", "back", "restart", "continue", "stop", "consult", "result", "erase", "book"}
    assert s.keywords["book"]  # 「予約」 / "book": the free consultation slots


def test_real_script_texts_format() -> None:
    s = load_script("ja")
    assert s.text("question", number=1, total=10, text="Q") == "Q1/10\nQ"
    assert "Q3" in s.text("stale", number=3)
    assert s.text("offer") == s.texts["offer"]


def test_locales_differ() -> None:
    assert load_script("ja").title != load_script("en").title


def test_load_is_cached() -> None:
    assert load_script("ja") is load_script("ja")
    assert load_script("en") is load_script("en")


def test_load_from_a_directory_is_cached_per_directory(tmp_path: Path) -> None:
    write(tmp_path, real_data())
    first = load_script("ja", str(tmp_path))
    assert first.path == str(tmp_path / "diagnosis.ja.toml")
    assert load_script("ja", str(tmp_path)) is first
    assert first is not load_script("ja")


def test_writer_round_trips_the_real_file(tmp_path: Path) -> None:
    data = real_data()
    write(tmp_path, data)
    assert tomllib.loads((tmp_path / "diagnosis.ja.toml").read_text(encoding="utf-8")) == data
    s = load(tmp_path)
    assert s.questions == load_script("ja").questions
    assert s.texts == load_script("ja").texts


def test_content_error_is_a_config_error() -> None:
    assert issubclass(ContentError, ConfigError)


# --- malformed files ----------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    e = refused(tmp_path, "(file)")
    assert "not found" in e.problem


def test_invalid_toml(tmp_path: Path) -> None:
    text = REAL_JA.read_text(encoding="utf-8").replace('title = "CRM診断"', 'title = "CRM診断')
    (tmp_path / "diagnosis.ja.toml").write_text(text, encoding="utf-8")
    e = refused(tmp_path, "(file)")
    assert "TOML" in e.problem


def test_not_utf8(tmp_path: Path) -> None:
    (tmp_path / "diagnosis.ja.toml").write_bytes(REAL_JA.read_text(encoding="utf-8").encode("shift_jis"))
    refused(tmp_path, "(file)")


def test_wrong_locale(tmp_path: Path) -> None:
    (tmp_path / "diagnosis.ja.toml").write_text(
        REAL_JA.read_text(encoding="utf-8").replace('locale = "ja"', 'locale = "en"'), encoding="utf-8"
    )
    refused(tmp_path, "locale")


def test_english_file_under_the_japanese_name(tmp_path: Path) -> None:
    write(tmp_path, real_data("en"), "ja")
    refused(tmp_path, "locale")


def test_unknown_locale(tmp_path: Path) -> None:
    write(tmp_path, real_data(), "fr")
    e = refused(tmp_path, "locale", "fr")
    assert "'fr'" in e.problem


def test_unknown_locale_without_directory() -> None:
    with pytest.raises(ContentError) as info:
        load_script.__wrapped__("de")
    assert info.value.field == "locale"
    assert info.value.path == str(script_path("de"))


Edit = Callable[[dict[str, Any]], None]


def _drop_last_question(d: dict[str, Any]) -> None:
    d["questions"].pop()


def _add_question(d: dict[str, Any]) -> None:
    d["questions"].append(copy.deepcopy(d["questions"][0]))


def _drop_choice_d(d: dict[str, Any]) -> None:
    del d["questions"][0]["choices"]["D"]


def _extra_choice_e(d: dict[str, Any]) -> None:
    d["questions"][3]["choices"]["E"] = {"text": "t", "label": "l"}


def _long_label(d: dict[str, Any]) -> None:
    d["questions"][0]["choices"]["A"]["label"] = "x" * (CHOICE_LABEL_MAX + 1)


def _long_button(d: dict[str, Any]) -> None:
    d["texts"]["start_button"] = "あ" * 21


def _unknown_placeholder(d: dict[str, Any]) -> None:
    d["texts"]["stale"] = "いまはQ{number}/{total}です。"


def _positional_placeholder(d: dict[str, Any]) -> None:
    d["texts"]["stale"] = "いまはQ{}です。"


def _broken_placeholder(d: dict[str, Any]) -> None:
    d["texts"]["stale"] = "いまはQ{number"


def _missing_hint(d: dict[str, Any]) -> None:
    del d["texts"]["hint"]


def _empty_hint(d: dict[str, Any]) -> None:
    d["texts"]["hint"] = "  "


def _unknown_text(d: dict[str, Any]) -> None:
    d["texts"]["farewell"] = "さようなら"


def _duplicate_keyword(d: dict[str, Any]) -> None:
    d["keywords"]["back"].append("診断")


def _duplicate_keyword_case(d: dict[str, Any]) -> None:
    d["keywords"]["restart"].append("START")


def _letter_keyword(d: dict[str, Any]) -> None:
    d["keywords"]["start"].append("a")


def _letter_keyword_upper(d: dict[str, Any]) -> None:
    d["keywords"]["continue"].append(" D ")


def _empty_keywords(d: dict[str, Any]) -> None:
    d["keywords"]["back"] = []


def _unknown_keywords(d: dict[str, Any]) -> None:
    d["keywords"]["help"] = ["ヘルプ"]


def _missing_texts(d: dict[str, Any]) -> None:
    del d["texts"]


def _missing_tier(d: dict[str, Any]) -> None:
    del d["tiers"]["B"]


def _long_tier_label(d: dict[str, Any]) -> None:
    d["tiers"]["C"]["label"] = "x" * 21


def _question_not_table(d: dict[str, Any]) -> None:
    d["questions"][4] = "Q5"


def _choice_not_table(d: dict[str, Any]) -> None:
    d["questions"][9]["choices"]["B"] = "B"


def _missing_advice_b(d: dict[str, Any]) -> None:
    del d["questions"][1]["advice_b"]


def _missing_advice_cd(d: dict[str, Any]) -> None:
    del d["questions"][9]["advice_cd"]


def _empty_advice_b(d: dict[str, Any]) -> None:
    d["questions"][4]["advice_b"] = " \n "


def _long_advice_cd(d: dict[str, Any]) -> None:
    d["questions"][2]["advice_cd"] = "あ" * (ADVICE_MAX + 1)


def _advice_b_copies_advice_cd(d: dict[str, Any]) -> None:
    d["questions"][6]["advice_b"] = d["questions"][6]["advice_cd"] + " "


def _old_single_advice(d: dict[str, Any]) -> None:
    q = d["questions"][0]
    q["advice"] = q.pop("advice_cd")


def _missing_framing(d: dict[str, Any]) -> None:
    del d["texts"]["framing"]


def _long_title(d: dict[str, Any]) -> None:
    d["title"] = "x" * 41


def _missing_consult_ack(d: dict[str, Any]) -> None:
    del d["texts"]["consult_ack"]


def _missing_consult_button(d: dict[str, Any]) -> None:
    del d["texts"]["consult_button"]


def _long_consult_button(d: dict[str, Any]) -> None:
    d["texts"]["consult_button"] = "専門家に無料で相談してみる（予約不要・オンライン可）"  # 26 > LINE's 20


def _long_book_button(d: dict[str, Any]) -> None:
    d["texts"]["consult_book_button"] = "ご都合のよい日時を予約ページから選ぶ（無料です）"


def _missing_consult_keywords(d: dict[str, Any]) -> None:
    del d["keywords"]["consult"]


def _consult_keyword_shadows_start(d: dict[str, Any]) -> None:
    d["keywords"]["consult"].append("診断")


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        (_drop_last_question, "questions"),
        (_add_question, "questions"),
        (_drop_choice_d, "questions[1].choices"),
        (_extra_choice_e, "questions[4].choices"),
        (_long_label, "questions[1].choices.A.label"),
        (_long_button, "texts.start_button"),
        (_unknown_placeholder, "texts.stale"),
        (_positional_placeholder, "texts.stale"),
        (_broken_placeholder, "texts.stale"),
        (_missing_hint, "texts.hint"),
        (_empty_hint, "texts.hint"),
        (_unknown_text, "texts.farewell"),
        (_duplicate_keyword, "keywords.back"),
        (_duplicate_keyword_case, "keywords.restart"),
        (_letter_keyword, "keywords.start"),
        (_letter_keyword_upper, "keywords.continue"),
        (_empty_keywords, "keywords.back"),
        (_unknown_keywords, "keywords.help"),
        (_missing_texts, "texts"),
        (_missing_tier, "tiers.B"),
        (_long_tier_label, "tiers.C.label"),
        (_question_not_table, "questions[5]"),
        (_choice_not_table, "questions[10].choices.B"),
        (_missing_advice_b, "questions[2].advice_b"),
        (_missing_advice_cd, "questions[10].advice_cd"),
        (_empty_advice_b, "questions[5].advice_b"),
        (_long_advice_cd, "questions[3].advice_cd"),
        (_advice_b_copies_advice_cd, "questions[7].advice_b"),
        (_old_single_advice, "questions[1].advice"),
        (_missing_framing, "texts.framing"),
        (_long_title, "title"),
        (_missing_consult_ack, "texts.consult_ack"),
        (_missing_consult_button, "texts.consult_button"),
        (_long_consult_button, "texts.consult_button"),
        (_long_book_button, "texts.consult_book_button"),
        (_missing_consult_keywords, "keywords.consult"),
        (_consult_keyword_shadows_start, "keywords.consult"),
    ],
    ids=lambda v: v.__name__.strip("_") if callable(v) else v,
)
def test_malformed_content_is_refused(tmp_path: Path, edit: Edit, field: str) -> None:
    data = real_data()
    edit(data)
    write(tmp_path, data)
    refused(tmp_path, field)


def test_unknown_placeholder_message_lists_the_allowed_ones(tmp_path: Path) -> None:
    data = real_data()
    _unknown_placeholder(data)
    write(tmp_path, data)
    e = refused(tmp_path, "texts.stale")
    assert "total" in e.problem
    assert "{number}" in e.problem


def test_duplicate_keyword_names_the_other_list(tmp_path: Path) -> None:
    data = real_data()
    _duplicate_keyword(data)
    write(tmp_path, data)
    e = refused(tmp_path, "keywords.back")
    assert "keywords.start" in e.problem


def test_lengths_at_the_limit_are_accepted(tmp_path: Path) -> None:
    data = real_data()
    data["questions"][0]["choices"]["A"]["label"] = "x" * CHOICE_LABEL_MAX
    assert CHOICE_LABEL_MAX == 17
    for key in BUTTON_KEYS:
        data["texts"][key] = "あ" * 20
    write(tmp_path, data)
    s = load(tmp_path)
    assert s.questions[0].choices["A"].label == "x" * 17
    assert s.texts["retake_button"] == "あ" * 20


def test_a_file_without_book_keywords_loads_with_none(tmp_path: Path) -> None:
    """``keywords.book`` came later: an operator's file written before it still loads (nobody types it)."""
    data = real_data()
    del data["keywords"]["book"]
    write(tmp_path, data)
    assert load(tmp_path).keywords["book"] == ()


def test_a_book_keyword_listed_under_consult_too_is_refused(tmp_path: Path) -> None:
    data = real_data()
    data["keywords"]["book"].append("相談")
    write(tmp_path, data)
    assert "keywords.consult" in refused(tmp_path, "keywords.book").problem


# Keywords are matched after NFKC normalisation (see inputs.from_text and the comment in the script
# files), so the checks must normalise the same way: a full-width keyword is the same word.


def test_full_width_letter_keyword_is_refused(tmp_path: Path) -> None:
    data = real_data()
    data["keywords"]["start"].append("Ａ")  # full-width A: matches the typed answer "a"
    write(tmp_path, data)
    refused(tmp_path, "keywords.start")


def test_full_width_duplicate_keyword_is_refused(tmp_path: Path) -> None:
    data = real_data()
    data["keywords"]["restart"].append("ｓｔａｒｔ")  # the same word as "start" in keywords.start
    write(tmp_path, data)
    refused(tmp_path, "keywords.restart")


@pytest.mark.parametrize("word", ["b.", "Ｃ：", "d!"])
def test_keyword_read_as_a_typed_answer_is_refused(tmp_path: Path, word: str) -> None:
    data = real_data()
    data["keywords"]["back"].append(word)  # from_text would take it for the keyword, not the answer
    write(tmp_path, data)
    e = refused(tmp_path, "keywords.back")
    assert "shadow" in e.problem


@pytest.mark.parametrize("locale", ["ja", "en"])
def test_no_real_keyword_shadows_an_answer_or_another_keyword(locale: str) -> None:
    kw = load_script(locale).keywords
    expected = {"stop": "opt_out"}  # a stop word opts out of the reminder
    for kind, words in kw.items():
        for w in words:
            assert from_text(w, kw).kind == expected.get(kind, kind), w


@pytest.mark.parametrize("key", ["consult_button", "consult_ack", "consult_again", "consult_booking",
                                 "consult_book_button", "consult_first", "booking_slots", "booking_full",
                                 "booking_when", "booking_details", "booking_booked", "booking_cancelled_op",
                                 "booking_remind_day", "booking_change_button", "booking_cancel_button"])
def test_a_file_without_a_consultation_text_is_refused(tmp_path: Path, key: str) -> None:
    data = real_data()
    del data["texts"][key]
    write(tmp_path, data)
    assert refused(tmp_path, f"texts.{key}").problem == "missing or empty text"


# --- advice by level: B gets its own advice, C and D the first step -----------------------------------


@pytest.mark.parametrize("locale", ["ja", "en"])
def test_advice_for_picks_the_answer_level(locale: str) -> None:
    for q in load_script(locale).questions:
        assert q.advice_for("B") == q.advice_b
        assert q.advice_for("C") == q.advice_cd == q.advice_for("D")
        assert q.advice == q.advice_cd  # the name older callers read


def test_an_a_answer_has_no_advice() -> None:
    with pytest.raises(ValueError):
        load_script("ja").questions[0].advice_for("A")


def test_a_file_lacking_either_level_names_the_file_and_the_field(tmp_path: Path) -> None:
    for i, key in enumerate(["advice_b", "advice_cd"] * 5):
        data = real_data("en")
        del data["questions"][i][key]
        write(tmp_path, data, "en")
        assert refused(tmp_path, f"questions[{i + 1}].{key}", "en").problem == "missing or empty text"


def test_the_old_single_advice_field_is_refused_with_a_hint(tmp_path: Path) -> None:
    data = real_data()
    _old_single_advice(data)
    write(tmp_path, data)
    e = refused(tmp_path, "questions[1].advice")
    assert "advice_b" in e.problem and "advice_cd" in e.problem


def test_advice_at_the_length_limit_is_accepted(tmp_path: Path) -> None:
    data = real_data()
    data["questions"][0]["advice_b"] = "い" * ADVICE_MAX
    data["questions"][0]["advice_cd"] = "う" * ADVICE_MAX
    write(tmp_path, data)
    q = load(tmp_path).questions[0]
    assert (q.advice_b, q.advice_cd) == ("い" * ADVICE_MAX, "う" * ADVICE_MAX)


# --- the wording itself: faithful to the domain brief, distinguishable on a phone ------------------


def _labels(locale: str, q: int, *letters: str) -> list[str]:
    return [load_script(locale).questions[q - 1].choices[x].label for x in letters]


@pytest.mark.parametrize("locale", ["ja", "en"])
@pytest.mark.parametrize(("q", "pair"), [(7, "AB"), (8, "CD"), (8, "AB")])
def test_neighbouring_labels_read_differently_at_a_glance(locale: str, q: int, pair: str) -> None:
    a, b = _labels(locale, q, *pair)
    # neither the first nor the last two characters are shared, so the buttons don't look alike
    assert a[:2] != b[:2] and a[-2:] != b[-2:], (a, b)


@pytest.mark.parametrize("locale", ["ja", "en"])
def test_every_question_has_distinct_labels(locale: str) -> None:
    for q in load_script(locale).questions:
        labels = [c.label for c in q.choices.values()]
        assert len(set(labels)) == 4, labels


def test_japanese_lines_that_drifted_keep_the_meaning() -> None:
    ja = load_script("ja")
    q1, q3, q4, q6, q9 = (ja.questions[i - 1] for i in (1, 3, 4, 6, 9))
    assert "一人あたり" not in q1.text and "お客さま一人ひとり" in q1.text  # each customer's, not an average
    assert "お届け" not in q4.text and "連絡" in q4.text  # contact after a purchase, not shipping
    assert "時期" not in q6.text and q6.text.index("最後に買った日") < q6.text.index("回数")  # RFM: recency first
    assert "見ている" in q3.choices["B"].text and "弱い" in q3.choices["B"].text  # watched, weak measures
    assert "検討" not in q9.choices["C"].text and "考えたことはある" in q9.choices["C"].text
    assert all("一人あたり" not in t.summary for t in ja.tiers.values())


def test_lines_too_close_to_the_source_are_gone() -> None:
    ja = load_script("ja")
    texts = [ja.questions[9].text, *(c.text for c in ja.questions[9].choices.values()),
             ja.questions[2].choices["A"].text, ja.questions[6].choices["B"].text, ja.tiers["C"].summary,
             ja.tiers["C"].next_theme]
    for phrase in ["設計図", "経営そのもの", "しくみの一つ", "ツールの一種", "最重要", "なんとなく", "能力や努力",
                   "順番の問題"]:
        assert not any(phrase in t for t in texts), phrase


@pytest.mark.parametrize("locale", ["ja", "en"])
def test_jargon_is_glossed_where_it_first_appears(locale: str) -> None:
    s = load_script(locale)
    opening = "（" if locale == "ja" else " ("
    assert "LTV" + opening in s.questions[0].text  # Q1 explains LTV
    assert "RFM" + opening in s.questions[5].text  # Q6 explains RFM
    for q in s.questions:
        for advice in (q.advice_b, q.advice_cd):
            if "F2" in advice:
                after = advice[advice.index("F2"):]
                assert "90" in after[:80], advice  # F2 comes with its meaning: again within 90 days


def test_the_english_interface_has_no_japanese_and_no_purchase_order() -> None:
    en = load_script("en")
    shown = [en.title, *en.texts.values(), *(t for tier in en.tiers.values()
                                             for t in (tier.label, tier.summary, tier.next_theme))]
    for q in en.questions:
        shown += [q.topic, q.text, q.advice_b, q.advice_cd, *(x for c in q.choices.values() for x in (c.text, c.label))]
    for t in shown:
        assert not any("\u3040" <= ch <= "\u30ff" or "\u4e00" <= ch <= "\u9fff" for ch in t), t
        assert " order" not in t.lower(), t


@pytest.mark.parametrize("locale", ["ja", "en"])
def test_every_tier_has_its_next_theme_and_the_framing_is_there(locale: str) -> None:
    s = load_script(locale)
    themes = [s.tiers[t].next_theme for t in "ABC"]
    assert all(themes) and len(set(themes)) == 3
    assert s.texts["framing"].strip() and "\n" not in s.texts["framing"]  # one line


def test_a_booking_date_with_an_unknown_placeholder_is_refused(tmp_path: Path) -> None:
    data = real_data()
    data["texts"]["booking_date"] = "{month}月{day}日（{weekday}）{year}"
    write(tmp_path, data)
    assert refused(tmp_path, "texts.booking_date").problem.startswith("unknown placeholder")


@pytest.mark.parametrize("locale", ["ja", "en"])
def test_the_booking_weekdays_are_seven_names(locale: str) -> None:
    assert len(load_script(locale).text("booking_weekdays").split()) == 7


# --- follow-ups on the point to fix ([[questions.followups]]) ------------------------------------------


@pytest.mark.parametrize("locale", ["ja", "en"])
def test_every_question_has_one_to_three_follow_ups_within_two_weeks(locale: str) -> None:
    script = load_script(locale)
    for question in script.questions:
        days = [f.day for f in question.followups]
        assert 1 <= len(days) <= 3 and days == sorted(set(days)) and days[-1] <= 14
        assert all(f.tip and "//" not in f.link and not f.link.startswith("/") for f in question.followups)


def _followups(d: dict[str, Any], steps: Any) -> None:
    d["questions"][2]["followups"] = steps


@pytest.mark.parametrize(
    ("steps", "field"),
    [
        (None, "questions[3].followups"),
        ([], "questions[3].followups"),
        ([{"day": d, "tip": "t"} for d in (1, 2, 3, 4)], "questions[3].followups"),
        ([{"day": 15, "tip": "t"}], "questions[3].followups[1].day"),
        ([{"day": "2", "tip": "t"}], "questions[3].followups[1].day"),
        ([{"day": 5, "tip": "t"}, {"day": 5, "tip": "u"}], "questions[3].followups[2].day"),
        ([{"day": 2}], "questions[3].followups[1].tip"),
        ([{"day": 2, "tip": "x" * 201}], "questions[3].followups[1].tip"),
        ([{"day": 2, "tip": "t", "link": "https://evil.example.com"}], "questions[3].followups[1].link"),
        ([{"day": 2, "tip": "t", "when": 3}], "questions[3].followups[1].when"),
    ],
)
def test_a_bad_follow_up_is_refused_naming_its_field(tmp_path: Path, steps: Any, field: str) -> None:
    data = real_data()
    if steps is None:
        del data["questions"][2]["followups"]
    else:
        _followups(data, steps)
    write(tmp_path, data)
    refused(tmp_path, field)
