"""The diagnosis script as data: questions, choices, tier texts and advice, one TOML file per locale.

Each question carries two levels of advice: ``advice_b`` for a B answer and ``advice_cd`` for a C or D
answer (:meth:`Question.advice_for`); a file lacking either is refused.

Files live in ``conversations/scripts/diagnosis.<locale>.toml`` (or in ``CRMBOT_CONTENT_DIR``).
Operators edit wording there; :func:`load_script` checks the structure and raises
:class:`ContentError` naming the file and the field for anything malformed, so a bad edit stops
start-up instead of reaching a user.

**Content versions.** A script's version is a hash of its locale and text (:attr:`Script.version`). Each job
of machine outputs records the version it was committed with, and every process that commits such jobs
stores the text it loaded in Redis under that version (:func:`stored`: ``crmbot:{content}:<version>``, set
only if absent, by its first such job's commit: bot.outbox); the worker renders a job with that script
(:func:`from_stored`, read back and kept by ``bot.scripts.Scripts``). So a reply already committed keeps its
wording when the file is edited and the processes restarted: only what is committed afterwards speaks the
new text.
"""

from __future__ import annotations

import hashlib
import json
import string
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path
from typing import Any

from conversations import keys
from conversations.errors import ContentError
from conversations.inputs import normalise, typed_choice
from scoring import CHOICES, QUESTION_COUNT, TIERS

SCRIPTS_DIR = Path(__file__).with_name("scripts")
LOCALES = ("ja", "en")
KEYWORD_KINDS = ("start", "back", "restart", "continue", "stop", "consult", "result")
BUTTON_MAX = 20  # LINE action label limit
# The rich menu's areas, left to right (``[richmenu]``; drawn and registered by ``crmbot line setup``).
RICHMENU_AREAS = ("start", "result", "consult")
RICHMENU_CHAT_BAR_MAX = 14  # LINE's limit for a rich menu's chat bar text
CHOICE_LABEL_MAX = BUTTON_MAX - 3  # "A: " + label
ADVICE_MAX = 400  # each level of a question's advice (advice_b, advice_cd)

# text key -> placeholders it may use
TEXT_KEYS: dict[str, frozenset[str]] = {
    k: frozenset(v.split())
    for k, v in {
        "greeting": "",
        "offer": "",
        "start_button": "",
        "back_button": "",
        "restart_button": "",
        "continue_button": "",
        "retake_button": "",
        "question": "number total text",
        "choice_line": "letter text",
        "hint": "",
        "stale": "number",
        "resume_prompt": "number total",
        "restarted": "",
        "expired": "",
        "result_heading": "",
        "result_count": "count total",
        "framing": "",
        "next_point_heading": "",
        "result_alt": "label count total",
        "done_help": "",
        "non_text": "",
        "optin_offer": "",
        "optin_yes_button": "",
        "optin_no_button": "",
        "optin_on": "",
        "optin_off": "",
        "reminder": "label",
        "reminder_point": "number topic",
        "reminder_next": "label theme",
        "moved_yes_button": "",
        "moved_no_button": "",
        "moved_yes": "",
        "moved_no": "",
        "consult_button": "",
        "consult_ack": "",
        "consult_again": "",
        "consult_booking": "",
        "consult_book_button": "",
        "consult_first": "",
        "privacy_note": "",
        "next_theme_heading": "",
        "closeness": "label count",
        "all_a_heading": "",
        "answers_heading": "",
        "advice_hint": "",
        "advice_title": "number topic letter",
        "advice_button": "number",
        "restart_ask_button": "",
        "restart_confirm": "count",
        "restart_yes_button": "",
        "restart_no_button": "",
        "no_result": "",
        "compare_heading": "",
        "compare_line": "before_label before_count after_label after_count total",
        "compare_moved": "items",
        "compare_same": "",
        "compare_point_fixed": "number topic",
        "compare_point_open": "number topic letter",
        "resent_note": "",
    }.items()
}
# Text keys a file may leave out (none at present: the framing line is required).
OPTIONAL_TEXT_KEYS: dict[str, frozenset[str]] = {}
BUTTON_KEYS = (
    "start_button", "back_button", "restart_button", "continue_button", "retake_button", "optin_yes_button",
    "optin_no_button", "consult_button", "consult_book_button", "advice_button", "restart_ask_button",
    "restart_yes_button", "restart_no_button", "moved_yes_button", "moved_no_button",
)


@dataclass(frozen=True)
class Choice:
    text: str
    label: str


@dataclass(frozen=True)
class Question:
    topic: str
    text: str
    advice_b: str  # for a B answer ("partly, sometimes"): make it a routine, measured
    advice_cd: str  # for a C or D answer: the first concrete step, small enough for this month
    choices: Mapping[str, Choice]

    @property
    def advice(self) -> str:
        """The advice for a C or D answer (the level every weakest answer had before B got its own)."""
        return self.advice_cd

    def advice_for(self, answer: str) -> str:
        """The advice for this answer's level: B gets ``advice_b``, C and D get ``advice_cd``.

        An A answer needs no advice; asking for it is a programming error."""
        if answer == "B":
            return self.advice_b
        if answer in ("C", "D"):
            return self.advice_cd
        raise ValueError(f"no advice for the answer {answer!r}")


@dataclass(frozen=True)
class Tier:
    label: str
    summary: str
    next_theme: str


@dataclass(frozen=True)
class MenuArea:
    kind: str  # one of RICHMENU_AREAS
    label: str  # drawn on the menu's image
    text: str  # sent as the user's message when the area is tapped: a keyword of its kind


@dataclass(frozen=True)
class RichMenu:
    chat_bar: str
    areas: tuple[MenuArea, ...]


@dataclass(frozen=True)
class Script:
    path: str
    locale: str
    title: str
    keywords: Mapping[str, tuple[str, ...]]
    texts: Mapping[str, str]
    tiers: Mapping[str, Tier]
    questions: tuple[Question, ...]
    richmenu: RichMenu
    source: str = ""  # the file's text, as loaded (what stored() keeps in Redis)
    version: str = ""  # a hash of the locale and the text: the content version jobs record

    def text(self, key: str, **params: object) -> str:
        return self.texts[key].format(**params) if params else self.texts[key]


def advice_for(question: Question, letter: str) -> str:
    """The question's advice for an answer at this level (see :meth:`Question.advice_for`)."""
    return question.advice_for(letter)


def script_path(locale: str, directory: str | Path | None = None) -> Path:
    return Path(directory or SCRIPTS_DIR) / f"diagnosis.{locale}.toml"


@cache
def load_script(locale: str = "ja", directory: str | None = None) -> Script:
    """Load and check the script for a locale. Cached: files are read once per process."""
    path = script_path(locale, directory)
    where = str(path)
    if locale not in LOCALES:
        raise ContentError(where, "locale", f"unknown locale {locale!r}; choose one of {', '.join(LOCALES)}")
    try:
        source = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ContentError(where, "(file)", "file not found") from None
    except UnicodeDecodeError as e:
        raise ContentError(where, "(file)", f"not valid TOML: {e}") from None
    return parse_script(source, locale, where)


def version_of(locale: str, source: str) -> str:
    """The content version of a script's text: what a job records, and the key it is stored under."""
    return hashlib.sha256(f"{locale}\n{source}".encode()).hexdigest()[:20]


def parse_script(source: str, locale: str, where: str) -> Script:
    """A script from its TOML text (checked as :func:`load_script` checks a file)."""
    if locale not in LOCALES:
        raise ContentError(where, "locale", f"unknown locale {locale!r}; choose one of {', '.join(LOCALES)}")
    try:
        data = tomllib.loads(source)
    except tomllib.TOMLDecodeError as e:
        raise ContentError(where, "(file)", f"not valid TOML: {e}") from None
    return replace(_parse(where, locale, data), source=source, version=version_of(locale, source))


def stored(script: Script) -> str:
    """What is stored of a script under its version (by the first commit of a job rendered with it, see
    :meth:`bot.outbox.Outbox.content_for`): its locale, where it was loaded from, and its text."""
    return json.dumps({"locale": script.locale, "path": script.path, "text": script.source}, ensure_ascii=False,
                      separators=(",", ":"))


def from_stored(version: str, raw: str | bytes) -> Script:
    """The script stored under ``version`` (:func:`stored`; checked again); ContentError if it is not one."""
    where = f"{keys.content(version)}"
    try:
        d = json.loads(raw)
        locale, path, source = str(d["locale"]), str(d["path"]), str(d["text"])
    except (ValueError, KeyError, TypeError):
        raise ContentError(where, "(stored)", "not a stored script") from None
    script = parse_script(source, locale, f"{path} (version {version})")
    if script.version != version:
        raise ContentError(where, "(stored)", f"its text is version {script.version}, not {version}")
    return script


@dataclass(frozen=True)
class _Reader:
    """Reads one script file's tables; every problem is a :class:`ContentError` naming the file and field."""

    where: str

    def fail(self, field: str, problem: str) -> ContentError:
        return ContentError(self.where, field, problem)

    def text_at(self, obj: Mapping[str, Any], key: str, field: str, max_len: int | None = None) -> str:
        value = obj.get(key)
        if not isinstance(value, str) or not value.strip():
            raise self.fail(field, "missing or empty text")
        if max_len is not None and len(value) > max_len:
            raise self.fail(field, f"{len(value)} characters; at most {max_len} allowed")
        return value

    def table_at(self, obj: Mapping[str, Any], key: str, field: str) -> Mapping[str, Any]:
        value = obj.get(key)
        if not isinstance(value, dict):
            raise self.fail(field, "missing table")
        return value


def _parse(where: str, locale: str, data: dict[str, Any]) -> Script:
    r = _Reader(where)
    if data.get("locale") != locale:
        raise r.fail("locale", f"must be {locale!r} for this file")
    title = r.text_at(data, "title", "title", 40)
    keywords = _parse_keywords(r, r.table_at(data, "keywords", "keywords"))
    texts = _parse_texts(r, r.table_at(data, "texts", "texts"))
    tiers_table = r.table_at(data, "tiers", "tiers")
    tiers: dict[str, Tier] = {}
    for t in TIERS:
        tt = r.table_at(tiers_table, t, f"tiers.{t}")
        tiers[t] = Tier(
            label=r.text_at(tt, "label", f"tiers.{t}.label", 20),
            summary=r.text_at(tt, "summary", f"tiers.{t}.summary", 400),
            next_theme=r.text_at(tt, "next_theme", f"tiers.{t}.next_theme", 400),
        )
    raw_questions = data.get("questions")
    if not isinstance(raw_questions, list) or len(raw_questions) != QUESTION_COUNT:
        raise r.fail("questions", f"must list exactly {QUESTION_COUNT} questions")
    questions = tuple(_parse_question(r, f"questions[{i}]", rq) for i, rq in enumerate(raw_questions, start=1))
    return Script(
        path=where,
        locale=locale,
        title=title,
        keywords=keywords,
        texts=texts,
        tiers=tiers,
        questions=questions,
        richmenu=_parse_richmenu(r, data, keywords),
    )


def _parse_keywords(r: _Reader, kw_table: Mapping[str, Any]) -> dict[str, tuple[str, ...]]:
    """``[keywords]``: each kind's words, none shadowing an answer letter or listed under two kinds."""
    keywords: dict[str, tuple[str, ...]] = {}
    seen_words: dict[str, str] = {}
    for kind in KEYWORD_KINDS:
        words = kw_table.get(kind)
        if not isinstance(words, list) or not words or not all(isinstance(w, str) and w.strip() for w in words):
            raise r.fail(f"keywords.{kind}", "must be a non-empty list of words")
        for w in words:
            # normalised exactly as inputs.from_text matches typed text (NFKC, trimmed, lower-case)
            norm = normalise(w)
            if letter := typed_choice(w):
                raise r.fail(f"keywords.{kind}", f"{w!r} would shadow the answer {letter}")
            if norm in seen_words:
                raise r.fail(f"keywords.{kind}", f"{w!r} is also listed under keywords.{seen_words[norm]}")
            seen_words[norm] = kind
        keywords[kind] = tuple(words)
    for extra in set(kw_table) - set(KEYWORD_KINDS):
        raise r.fail(f"keywords.{extra}", "unknown keyword list")
    return keywords


def _parse_texts(r: _Reader, texts_table: Mapping[str, Any]) -> dict[str, str]:
    """``[texts]``: every required text (and the optional ones given), each with only the placeholders it allows."""
    texts: dict[str, str] = {}
    for key, allowed in {**OPTIONAL_TEXT_KEYS, **TEXT_KEYS}.items():
        if key not in TEXT_KEYS and key not in texts_table:
            continue
        value = r.text_at(texts_table, key, f"texts.{key}", BUTTON_MAX if key in BUTTON_KEYS else 1000)
        try:
            names = {f for _, f, _, _ in string.Formatter().parse(value) if f is not None}
        except ValueError as e:
            raise r.fail(f"texts.{key}", f"bad placeholder: {e}") from None
        if names - allowed:
            allowed_s = ", ".join(sorted(f"{{{a}}}" for a in allowed)) or "none"
            raise r.fail(f"texts.{key}", f"unknown placeholder {sorted(names - allowed)}; allowed: {allowed_s}")
        texts[key] = value
    for extra in set(texts_table) - set(TEXT_KEYS) - set(OPTIONAL_TEXT_KEYS):
        raise r.fail(f"texts.{extra}", "unknown text key")
    return texts


def _parse_question(r: _Reader, field: str, rq: Any) -> Question:
    """One ``[[questions]]`` entry: topic, text, the choices A-D, two levels of advice."""
    if not isinstance(rq, dict):
        raise r.fail(field, "must be a table")
    rc = r.table_at(rq, "choices", f"{field}.choices")
    if set(rc) != set(CHOICES):
        raise r.fail(f"{field}.choices", "must have exactly the choices A, B, C and D")
    choices = {}
    for letter in CHOICES:
        c = rc[letter]
        cf = f"{field}.choices.{letter}"
        if not isinstance(c, dict):
            raise r.fail(cf, "must be a table with text and label")
        choices[letter] = Choice(
            text=r.text_at(c, "text", f"{cf}.text", 120),
            label=r.text_at(c, "label", f"{cf}.label", CHOICE_LABEL_MAX),
        )
    if "advice" in rq:
        raise r.fail(f"{field}.advice", "the advice now has two levels: write advice_b (for a B answer) "
                     "and advice_cd (for a C or D answer) instead")
    question = Question(
        topic=r.text_at(rq, "topic", f"{field}.topic", 20),
        text=r.text_at(rq, "text", f"{field}.text", 400),
        advice_b=r.text_at(rq, "advice_b", f"{field}.advice_b", ADVICE_MAX),
        advice_cd=r.text_at(rq, "advice_cd", f"{field}.advice_cd", ADVICE_MAX),
        choices=choices,
    )
    if normalise(question.advice_b) == normalise(question.advice_cd):
        raise r.fail(f"{field}.advice_b", "the same as advice_cd; a B answer needs its own advice "
                     "(make the practice a routine, measured)")
    return question


def _parse_richmenu(r: _Reader, data: Mapping[str, Any], keywords: Mapping[str, tuple[str, ...]]) -> RichMenu:
    """``[richmenu]``: the chat bar text and, per area, the label drawn and the word its tap sends.

    The word must be one of the keywords of the area's kind, where the script has that keyword list, so a
    tap means exactly what typing it would (a message action survives any change of button data)."""
    table = r.table_at(data, "richmenu", "richmenu")
    chat_bar = r.text_at(table, "chat_bar", "richmenu.chat_bar", RICHMENU_CHAT_BAR_MAX)
    areas = []
    for kind in RICHMENU_AREAS:
        field = f"richmenu.{kind}"
        area = r.table_at(table, kind, field)
        label = r.text_at(area, "label", f"{field}.label", BUTTON_MAX)
        text = r.text_at(area, "text", f"{field}.text", 300)
        words = keywords.get(kind)
        if words is not None and normalise(text) not in {normalise(w) for w in words}:
            raise r.fail(f"{field}.text", f"{text!r} is not one of keywords.{kind}, so a tap would not be understood")
        areas.append(MenuArea(kind, label, text))
    for extra in set(table) - {"chat_bar", *RICHMENU_AREAS}:
        raise r.fail(f"richmenu.{extra}", "unknown rich menu entry")
    return RichMenu(chat_bar, tuple(areas))
