"""The diagnosis script as data: questions, choices, tier texts and advice, one TOML file per locale.

Each question carries two levels of advice: ``advice_b`` for a B answer and ``advice_cd`` for a C or D
answer (:meth:`Question.advice_for`), and a short step at each level for a result's 90-day plan (``step_b``,
``step_cd``); a file lacking any is refused. Each tier's summary and next theme are sentences, each naming
the questions it speaks about (:class:`Sentence`), so a result leaves out any that an owner's answers
contradict (:mod:`conversations.results`); a tier text without that is refused.

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
import re
import string
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path
from typing import Any

from conversations import keys
from conversations.errors import ContentError
from conversations.inputs import QUALIFY_CHOICES_MAX, QUALIFY_MAX, normalise, typed_choice
from conversations.segments import parse_variants
from scoring import CHOICES, QUESTION_COUNT, TIERS

SCRIPTS_DIR = Path(__file__).with_name("scripts")
LOCALES = ("ja", "en")
KEYWORD_KINDS = ("start", "back", "restart", "continue", "stop", "consult", "result", "erase", "book")
OPTIONAL_KEYWORD_KINDS = frozenset({"book"})  # a file written before it was added loads without it
BUTTON_MAX = 20  # LINE action label limit
# The rich menu's areas, left to right (``[richmenu]``; drawn and registered by ``crmbot line setup``).
RICHMENU_AREAS = ("start", "result", "consult")
RICHMENU_CHAT_BAR_MAX = 14  # LINE's limit for a rich menu's chat bar text
CHOICE_LABEL_MAX = BUTTON_MAX - 3  # "A: " + label
# What the confirmation of a consultation request tells the owner, in this order, each part only where the
# operator has set it (``[consult]``; the text ``consult_<part>`` says it, with the value as {value}).
CONSULT_PARTS = ("firm", "timeframe", "format", "length", "price")
CONSULT_PART_MAX = 80
ADVICE_MAX = 400  # each level of a question's advice (advice_b, advice_cd)
STEP_MAX = 120  # each level of a question's step in a result's 90-day plan (step_b, step_cd)
FOLLOWUPS_MAX = 3  # follow-ups on a point to fix: at most this many steps a question ...
FOLLOWUP_DAYS = 14  # ... within this many days of the opt-in
TIP_MAX = 200  # each follow-up's tip
LINK_MAX = 100  # each follow-up's link path (under CRMBOT_RESOURCES_URL)
_LINK_CHARS = frozenset(string.ascii_letters + string.digits + "/_.-")

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
        "result_alt": "label count total number topic",
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
        "compare_same": "",
        "compare_point_fixed": "number topic",
        "compare_point_open": "number topic letter",
        "resent_note": "",
        "compare_moved_up": "items",
        "compare_moved_down": "items",
        "all_a_text": "",
        "result_alt_all_a": "label count total",
        "plan_heading": "",
        "plan_month": "",
        "plan_next_month": "",
        "plan_quarter": "",
        "peer_share": "share",
        "peer_share_few": "",
        "heard": "",
        "stopped_midway": "",
        "no_result_midway": "",
        "nudge": "number",
        **{f"consult_{part}": "value" for part in CONSULT_PARTS},
        "booking_slots": "",
        "booking_moving": "",
        "booking_full": "",
        "booking_not_offered": "",
        "booking_none": "",
        "booking_more_button": "",
        "booking_weekdays": "",
        "booking_date": "month day weekday",
        "booking_when": "date start end",
        "booking_slot_button": "month day weekday start",
        "booking_details": "when format",
        "booking_booked": "",
        "booking_changed": "",
        "booking_same": "",
        "booking_cancelled": "",
        "booking_cancelled_op": "",
        "booking_op_message": "message",
        "booking_gone": "",
        "booking_remind_day": "",
        "booking_remind_soon": "",
        "follow_offer": "",
        "follow_yes_button": "",
        "follow_no_button": "",
        "follow_on": "",
        "follow_off": "",
        "follow_stale": "",
        "follow_restart": "",
        "follow_step": "topic number total tip",
        "follow_link": "url",
        "booking_change_note": "",
        "booking_change_button": "",
        "booking_cancel_button": "",
        "booking_book_button": "",
    }.items()
}
# Text keys a file may leave out: ``closeness_one`` is ``closeness`` for exactly one more A (English needs
# the singular; Japanese has none).
OPTIONAL_TEXT_KEYS: dict[str, frozenset[str]] = {"closeness_one": frozenset({"label"})}
BUTTON_KEYS = (
    "start_button", "back_button", "restart_button", "continue_button", "retake_button", "optin_yes_button",
    "optin_no_button", "consult_button", "consult_book_button", "advice_button", "restart_ask_button",
    "restart_yes_button", "restart_no_button", "moved_yes_button", "moved_no_button", "booking_more_button",
    "booking_change_button", "booking_cancel_button", "booking_book_button",
    "follow_yes_button", "follow_no_button",
)


@dataclass(frozen=True)
class Choice:
    text: str
    label: str


@dataclass(frozen=True)
class Followup:
    """One follow-up on a point to fix: sent ``day`` days after the opt-in (bot/followups.py)."""

    day: int
    tip: str
    link: str = ""  # a path under CRMBOT_RESOURCES_URL ("" none)


@dataclass(frozen=True)
class Question:
    topic: str
    text: str
    advice_b: str  # for a B answer ("partly, sometimes"): make it a routine, measured
    advice_cd: str  # for a C or D answer: the first concrete step, small enough for this month
    choices: Mapping[str, Choice]
    step_b: str = ""  # the 90-day plan's one short step for a B answer (from advice_b)
    step_cd: str = ""  # and for a C or D answer (from advice_cd)
    followups: tuple[Followup, ...] = ()  # the follow-ups when this question is the point to fix


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

    def step_for(self, answer: str) -> str:
        """The plan's short step for this answer's level (B: ``step_b``; C, D: ``step_cd``)."""
        if answer == "B":
            return self.step_b
        if answer in ("C", "D"):
            return self.step_cd
        raise ValueError(f"no step for the answer {answer!r}")


@dataclass(frozen=True)
class Sentence:
    """One sentence of a tier's text, with the questions it speaks about (1-based numbers, as shown).

    ``about``: the practices it says are not yet in place; it is shown only when none of these questions
    was answered A. ``assumes``: the practices it says are in place; it is shown only when every one of
    these was answered A. A sentence with neither is true of every owner at that tier and always shown."""

    text: str
    about: frozenset[int] = frozenset()
    assumes: frozenset[int] = frozenset()

    def holds_for(self, answers: str) -> bool:
        """Whether nothing in ``answers`` (ten letters) contradicts this sentence."""
        return (all(answers[n - 1] != "A" for n in self.about)
                and all(answers[n - 1] == "A" for n in self.assumes))


@dataclass(frozen=True)
class Tier:
    label: str
    summary_sentences: tuple[Sentence, ...]
    theme_sentences: tuple[Sentence, ...]

    @property
    def summary(self) -> str:
        """Every sentence of the summary, whoever reads it (the operator's view); an owner's result
        shows only those that hold for their answers (conversations.results)."""
        return "\n".join(s.text for s in self.summary_sentences)

    @property
    def next_theme(self) -> str:
        """Every sentence of the next theme (see :attr:`summary`)."""
        return "\n".join(s.text for s in self.theme_sentences)


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
class Term:
    name: str  # as shown, and as a question's term list names it
    text: str  # the definition: one or two plain sentences
    aliases: tuple[str, ...] = ()  # other ways an owner may type it ("F2" for "F2転換率")


# The trailing marks an owner's question may end with (「LTVとは？」, "LTV?"), after NFKC.
_ASK_MARKS = "?!.。、 "


@dataclass(frozen=True)
class Glossary:
    """``[glossary]``: the terms the questions and their advice use, each defined in plain words, and for each
    question the terms it uses (its 「用語」 button lists them). An owner who types 「LTVとは」 (a term with one
    of ``suffixes`` or ``prefixes``, or the term alone) gets its definition (:meth:`lookup`)."""

    button: str = ""  # the question's button that lists its terms ("" : no button)
    heading: str = ""  # above that list: "{number}" is the question's number
    terms: Mapping[str, Term] = field(default_factory=dict)
    questions: tuple[tuple[str, ...], ...] = ()  # per question (0-based), the names of the terms it uses
    prefixes: tuple[str, ...] = ()  # "what is", normalised
    suffixes: tuple[str, ...] = ()  # "とは", "って何", normalised
    index: Mapping[str, str] = field(default_factory=dict)  # a normalised name or alias -> the term's name

    def lookup(self, typed: str) -> str | None:
        """The term an owner asks about (「LTVとは」「F2って何？」"what is LTV" "LTV?"), or None."""
        t = normalise(typed).rstrip(_ASK_MARKS)
        candidates = [t]
        for p in self.prefixes:
            if t.startswith(p):
                candidates.append(t[len(p):].strip())
        for c in list(candidates):
            for s in self.suffixes:
                if c.endswith(s):
                    candidates.append(c[: -len(s)].strip())
        for c in candidates:
            if c and (name := self.index.get(c.strip(_ASK_MARKS + "「」\"'"))):
                return name
        return None

    def of_question(self, q: int) -> tuple[Term, ...]:
        """The terms question ``q`` (0-based) uses, as defined."""
        names = self.questions[q] if 0 <= q < len(self.questions) else ()
        return tuple(self.terms[n] for n in names if n in self.terms)


@dataclass(frozen=True)
class Privacy:
    """``[privacy]``: what is kept and why, and the deletion's confirmation and answers (all required)."""

    note: str = ""  # what is kept, every use, how to delete it (after the welcome)
    policy: str = ""  # "{url}": the consultancy's privacy policy (CRMBOT_PRIVACY_URL)
    no_policy: str = ""  # said instead when there is no policy page yet
    erase_confirm: str = ""
    erase_yes_button: str = ""
    erase_no_button: str = ""
    erased: str = ""
    erase_kept: str = ""


@dataclass(frozen=True)
class QualifyQuestion:
    label: str  # a short name for the operator (the brief, the lead page, leads.csv): 商材
    text: str  # the question as the owner reads it
    choices: tuple[str, ...]  # the buttons (a skip button is added)


@dataclass(frozen=True)
class Qualification:
    """``[qualify]`` (optional): up to QUALIFY_MAX questions asked after a result, each skippable."""

    questions: tuple[QualifyQuestion, ...] = ()
    skip_button: str = ""
    thanks: str = ""  # said after the last one is answered or skipped

    @property
    def counts(self) -> tuple[int, ...]:
        """Each question's number of choices (what the machine checks a tap against: Settings.qualify)."""
        return tuple(len(q.choices) for q in self.questions)

    def answered(self, qual: str) -> list[tuple[str, str]]:
        """The answers kept (``Conv.qual``, one digit per question: the choice, 1-based; 0 skipped) as
        (label, choice): "" for a skip; a digit this script no longer has is left out."""
        out = []
        for question, digit in zip(self.questions, qual, strict=False):
            n = int(digit) if digit.isdigit() else -1
            if 0 <= n <= len(question.choices):
                out.append((question.label, question.choices[n - 1] if n else ""))
        return out


# [[experiments]]: a text with variants. ``text`` names it: "texts.<key>" (any text: the call to action
# ``texts.consult_button``, a result's ``texts.framing``...) or "questions[N].<field>" (N 1-10).
EXPERIMENT_QUESTION_FIELDS = {"text": 400, "advice_b": ADVICE_MAX, "advice_cd": ADVICE_MAX, "step_b": STEP_MAX,
                              "step_cd": STEP_MAX}
EXPERIMENT_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,29}")  # never ":" "," "|" (a segment tag holds it)
EXPERIMENT_WEIGHT_MAX = 1000
EXPERIMENT_VARIANTS_MAX = 5


@dataclass(frozen=True)
class Variant:
    name: str
    text: str  # what is shown (the file's own text where the variant gives none)
    weight: int = 1  # its share of new diagnoses: weight / the experiment's total


@dataclass(frozen=True)
class Experiment:
    name: str
    path: str  # the text it varies: "texts.<key>" or "questions[N].<field>"
    variants: tuple[Variant, ...]

    def variant(self, name: str) -> Variant | None:
        return next((v for v in self.variants if v.name == name), None)


QUALIFY_TEXT_MAX = 300
QUALIFY_FIELDS = ("skip_button", "thanks", "questions")

PRIVACY_FIELDS = ("note", "policy", "no_policy", "erase_confirm", "erase_yes_button", "erase_no_button", "erased",
                  "erase_kept")


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
    consult: Mapping[str, str] = field(default_factory=dict)  # [consult]: the parts set (CONSULT_PARTS)
    source: str = ""  # the file's text, as loaded (what stored() keeps in Redis)
    version: str = ""  # a hash of the locale and the text: the content version jobs record
    glossary: Glossary = field(default_factory=Glossary)
    privacy: Privacy = field(default_factory=Privacy)
    qualify: Qualification = field(default_factory=Qualification)
    experiments: tuple[Experiment, ...] = ()  # [[experiments]]: texts with variants (conversations.experiments)

    def text(self, key: str, **params: object) -> str:
        return self.texts[key].format(**params) if params else self.texts[key]

    def experiment(self, name: str) -> Experiment | None:
        return next((e for e in self.experiments if e.name == name), None)

    def varied(self, var: str) -> Script:
        """This script as a diagnosis with these variants (``Conv.var``, "exp:variant" pairs) reads it: each
        experiment's text is its variant's. A variant or experiment this script does not have is left as is."""
        chosen = parse_variants(var)
        texts, questions = dict(self.texts), list(self.questions)
        changed = False
        for exp in self.experiments:
            variant = exp.variant(chosen.get(exp.name, ""))
            if variant is None:
                continue
            changed = True
            if exp.path.startswith("texts."):
                texts[exp.path[len("texts."):]] = variant.text
            else:
                q, name = _question_path(exp.path)
                changes: dict[str, Any] = {name: variant.text}
                questions[q] = replace(questions[q], **changes)
        return replace(self, texts=texts, questions=tuple(questions)) if changed else self


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
            summary_sentences=_parse_sentences(r, tt, "summary", f"tiers.{t}.summary"),
            theme_sentences=_parse_sentences(r, tt, "next_theme", f"tiers.{t}.next_theme"),
        )
    raw_questions = data.get("questions")
    if not isinstance(raw_questions, list) or len(raw_questions) != QUESTION_COUNT:
        raise r.fail("questions", f"must list exactly {QUESTION_COUNT} questions")
    questions = tuple(_parse_question(r, f"questions[{i}]", rq) for i, rq in enumerate(raw_questions, start=1))
    experiments = _parse_experiments(r, data, texts, questions)
    return Script(
        path=where,
        locale=locale,
        title=title,
        keywords=keywords,
        texts=texts,
        tiers=tiers,
        questions=questions,
        richmenu=_parse_richmenu(r, data, keywords),
        glossary=_parse_glossary(r, data, keywords),
        privacy=_parse_privacy(r, data),
        consult=_parse_consult(r, data),
        qualify=_parse_qualify(r, data),
        experiments=experiments,
    )


def _question_numbers(r: _Reader, s: Mapping[str, Any], key: str, field: str) -> frozenset[int]:
    value = s.get(key, [])
    if not isinstance(value, list) or not all(type(n) is int and 1 <= n <= QUESTION_COUNT for n in value):
        raise r.fail(field, f"must be a list of question numbers 1-{QUESTION_COUNT} (use [] for none)")
    if len(set(value)) != len(value):
        raise r.fail(field, "lists a question twice")
    return frozenset(value)


def _parse_sentences(r: _Reader, tier: Mapping[str, Any], key: str, field: str) -> tuple[Sentence, ...]:
    """``[[tiers.X.summary]]`` / ``[[tiers.X.next_theme]]``: sentences, each saying which questions it
    speaks about, so a result never shows one that the owner's answers contradict (conversations.results)."""
    raw = tier.get(key)
    if isinstance(raw, str):
        raise r.fail(field, "one text can contradict an owner's answers; write it as sentences instead: "
                     f"[[{field}]] entries, each with text and about = [the questions it says are not in "
                     "place] (and assumes = [those it says are in place], if any)")
    if not isinstance(raw, list) or not raw:
        raise r.fail(field, f"missing: write [[{field}]] entries, each with text and about")
    sentences = []
    for i, s in enumerate(raw, start=1):
        sf = f"{field}[{i}]"
        if not isinstance(s, dict):
            raise r.fail(sf, "must be a table with text and about")
        if "about" not in s:
            raise r.fail(f"{sf}.about", "missing: list the questions this sentence says are not yet in place "
                         "(about = [] when it speaks of none)")
        for extra in set(s) - {"text", "about", "assumes"}:
            raise r.fail(f"{sf}.{extra}", "unknown key (a sentence has text, about and assumes)")
        about = _question_numbers(r, s, "about", f"{sf}.about")
        assumes = _question_numbers(r, s, "assumes", f"{sf}.assumes")
        if both := sorted(about & assumes):
            raise r.fail(sf, f"questions {both} are both in about and in assumes: the sentence could never show")
        sentences.append(Sentence(r.text_at(s, "text", f"{sf}.text", 200), about, assumes))
    if not any(not s.about and not s.assumes for s in sentences):
        raise r.fail(field, "needs at least one sentence that holds for every answer (about = [] and no "
                     "assumes), so no result is left without it")
    return tuple(sentences)


def _parse_keywords(r: _Reader, kw_table: Mapping[str, Any]) -> dict[str, tuple[str, ...]]:
    """``[keywords]``: each kind's words, none shadowing an answer letter or listed under two kinds."""
    keywords: dict[str, tuple[str, ...]] = {}
    seen_words: dict[str, str] = {}
    for kind in KEYWORD_KINDS:
        words = kw_table.get(kind)
        if words is None and kind in OPTIONAL_KEYWORD_KINDS:
            keywords[kind] = ()
            continue
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
        texts[key] = _text_value(r, key, texts_table, f"texts.{key}", allowed)
    for extra in set(texts_table) - set(TEXT_KEYS) - set(OPTIONAL_TEXT_KEYS):
        raise r.fail(f"texts.{extra}", "unknown text key")
    return texts


def _text_value(r: _Reader, key: str, table: Mapping[str, Any], field: str, allowed: frozenset[str]) -> str:
    """Text ``key`` of ``table`` (reported as ``field``): present, within its length, only allowed placeholders."""
    value = r.text_at(table, key, field, BUTTON_MAX if key in BUTTON_KEYS else 1000)
    try:
        names = {f for _, f, _, _ in string.Formatter().parse(value) if f is not None}
    except ValueError as e:
        raise r.fail(field, f"bad placeholder: {e}") from None
    if names - allowed:
        allowed_s = ", ".join(sorted(f"{{{a}}}" for a in allowed)) or "none"
        raise r.fail(field, f"unknown placeholder {sorted(names - allowed)}; allowed: {allowed_s}")
    return value


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
        step_b=r.text_at(rq, "step_b", f"{field}.step_b", STEP_MAX),
        step_cd=r.text_at(rq, "step_cd", f"{field}.step_cd", STEP_MAX),
        followups=_parse_followups(r, rq, f"{field}.followups"),
    )
    if normalise(question.advice_b) == normalise(question.advice_cd):
        raise r.fail(f"{field}.advice_b", "the same as advice_cd; a B answer needs its own advice "
                     "(make the practice a routine, measured)")
    return question


def _parse_followups(r: _Reader, rq: Mapping[str, Any], field: str) -> tuple[Followup, ...]:
    """``[[questions.followups]]``: one to three steps, each a day (0-14, later than the one before), a tip and
    an optional link path (letters, digits, / _ . -; no scheme: it goes under CRMBOT_RESOURCES_URL)."""
    raw = rq.get("followups")
    if not isinstance(raw, list) or not 1 <= len(raw) <= FOLLOWUPS_MAX:
        raise r.fail(field, f"must list 1 to {FOLLOWUPS_MAX} steps ([[questions.followups]])")
    steps: list[Followup] = []
    for i, rs in enumerate(raw, start=1):
        sf = f"{field}[{i}]"
        if not isinstance(rs, dict):
            raise r.fail(sf, "must be a table with day, tip and an optional link")
        day = rs.get("day")
        if isinstance(day, bool) or not isinstance(day, int) or not 0 <= day <= FOLLOWUP_DAYS:
            raise r.fail(f"{sf}.day", f"must be a whole number of days from 0 to {FOLLOWUP_DAYS}")
        if steps and day <= steps[-1].day:
            raise r.fail(f"{sf}.day", "must come after the step before")
        link = rs.get("link", "")
        if not isinstance(link, str) or len(link) > LINK_MAX or set(link) - _LINK_CHARS or "//" in link:
            raise r.fail(f"{sf}.link", f"must be a path under CRMBOT_RESOURCES_URL (letters, digits, / _ . -; "
                         f"at most {LINK_MAX})")
        for extra in set(rs) - {"day", "tip", "link"}:
            raise r.fail(f"{sf}.{extra}", "unknown field")
        steps.append(Followup(day, r.text_at(rs, "tip", f"{sf}.tip", TIP_MAX), link.strip("/")))
    return tuple(steps)


def _parse_consult(r: _Reader, data: Mapping[str, Any]) -> dict[str, str]:
    """``[consult]`` (optional): who will answer a consultation request, when, in what form, how long and
    at what price, as the operator sets them; an empty value (or none) leaves that part unsaid."""
    table = data.get("consult", {})
    if not isinstance(table, dict):
        raise r.fail("consult", "must be a table")
    parts: dict[str, str] = {}
    for part in CONSULT_PARTS:
        value = table.get(part, "")
        if not isinstance(value, str):
            raise r.fail(f"consult.{part}", "must be a text (\"\" leaves it unsaid)")
        if len(value) > CONSULT_PART_MAX:
            raise r.fail(f"consult.{part}", f"{len(value)} characters; at most {CONSULT_PART_MAX} allowed")
        if value.strip():
            parts[part] = value.strip()
    for extra in set(table) - set(CONSULT_PARTS):
        raise r.fail(f"consult.{extra}", f"unknown entry; the parts are {', '.join(CONSULT_PARTS)}")
    return parts


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


GLOSSARY_TEXT_MAX = 200  # a definition: one or two plain sentences


def _words(r: _Reader, value: Any, field: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(w, str) and w.strip() for w in value):
        raise r.fail(field, "must be a list of words")
    return tuple(value)


def _parse_glossary(r: _Reader, data: Mapping[str, Any], keywords: Mapping[str, tuple[str, ...]]) -> Glossary:
    """``[glossary]`` (optional: a file without it has no glossary): the terms, each with its definition and
    the other ways to type it, and for each question the terms it uses, every one of them defined."""
    if "glossary" not in data:
        return Glossary()
    table = r.table_at(data, "glossary", "glossary")
    button = r.text_at(table, "button", "glossary.button", BUTTON_MAX)
    heading = r.text_at(table, "heading", "glossary.heading", 100)
    if {f for _, f, _, _ in string.Formatter().parse(heading) if f is not None} - {"number"}:
        raise r.fail("glossary.heading", "unknown placeholder; allowed: {number}")
    taken = {normalise(w): kind for kind, words in keywords.items() for w in words}
    raw_terms = table.get("terms")
    if not isinstance(raw_terms, list) or not raw_terms:
        raise r.fail("glossary.terms", "must list the terms ([[glossary.terms]] with name and text)")
    terms: dict[str, Term] = {}
    index: dict[str, str] = {}
    for i, rt in enumerate(raw_terms, start=1):
        field = f"glossary.terms[{i}]"
        if not isinstance(rt, dict):
            raise r.fail(field, "must be a table with name and text")
        term = Term(r.text_at(rt, "name", f"{field}.name", 40),
                    r.text_at(rt, "text", f"{field}.text", GLOSSARY_TEXT_MAX),
                    _words(r, rt.get("aliases"), f"{field}.aliases"))
        for word in (term.name, *term.aliases):
            norm = normalise(word)
            if norm in index:
                raise r.fail(field, f"{word!r} is also a name or alias of {index[norm]!r}")
            if norm in taken:
                raise r.fail(field, f"{word!r} is also listed under keywords.{taken[norm]}")
            if letter := typed_choice(word):
                raise r.fail(field, f"{word!r} would shadow the answer {letter}")
            index[norm] = term.name
        terms[term.name] = term
    raw_q = table.get("questions")
    if not isinstance(raw_q, list) or len(raw_q) != QUESTION_COUNT:
        raise r.fail("glossary.questions", f"must list the terms of each of the {QUESTION_COUNT} questions")
    questions = []
    for q, names in enumerate(raw_q, start=1):
        field = f"glossary.questions[{q}]"
        listed = _words(r, names, field)
        for name in listed:
            if name not in terms:
                raise r.fail(field, f"{name!r} is not a term defined in [[glossary.terms]]")
        questions.append(listed)
    return Glossary(button, heading, terms, tuple(questions),
                    tuple(normalise(p) for p in _words(r, table.get("prefixes"), "glossary.prefixes")),
                    tuple(normalise(s) for s in _words(r, table.get("suffixes"), "glossary.suffixes")), index)


def _parse_privacy(r: _Reader, data: Mapping[str, Any]) -> Privacy:
    """``[privacy]``: every text required; ``policy`` has the placeholder {url}, the others none."""
    table = r.table_at(data, "privacy", "privacy")
    values: dict[str, str] = {}
    for key in PRIVACY_FIELDS:
        button = key.endswith("_button")
        value = r.text_at(table, key, f"privacy.{key}", BUTTON_MAX if button else 1000)
        try:
            names = {f for _, f, _, _ in string.Formatter().parse(value) if f is not None}
        except ValueError as e:
            raise r.fail(f"privacy.{key}", f"bad placeholder: {e}") from None
        if names != ({"url"} if key == "policy" else set()):
            raise r.fail(f"privacy.{key}", "policy must use {url} and nothing else; the other texts no placeholder")
        values[key] = value
    for extra in set(table) - set(PRIVACY_FIELDS):
        raise r.fail(f"privacy.{extra}", "unknown privacy text")
    return Privacy(**values)


def _parse_qualify(r: _Reader, data: Mapping[str, Any]) -> Qualification:
    """``[qualify]`` (optional): ``skip_button``, ``thanks`` and up to QUALIFY_MAX ``[[qualify.questions]]``,
    each a ``label`` for the operator, a ``text`` and 2 to QUALIFY_CHOICES_MAX ``choices`` (button labels)."""
    if "qualify" not in data:
        return Qualification()
    table = r.table_at(data, "qualify", "qualify")
    for extra in set(table) - set(QUALIFY_FIELDS):
        raise r.fail(f"qualify.{extra}", f"unknown entry; the entries are {', '.join(QUALIFY_FIELDS)}")
    raw = table.get("questions")
    if not isinstance(raw, list) or not 1 <= len(raw) <= QUALIFY_MAX:
        raise r.fail("qualify.questions", f"must list 1 to {QUALIFY_MAX} questions ([[qualify.questions]])")
    questions = []
    for i, rq in enumerate(raw, start=1):
        field = f"qualify.questions[{i}]"
        if not isinstance(rq, dict):
            raise r.fail(field, "must be a table with label, text and choices")
        for extra in set(rq) - {"label", "text", "choices"}:
            raise r.fail(f"{field}.{extra}", "unknown entry; the entries are label, text, choices")
        choices = rq.get("choices")
        if (not isinstance(choices, list) or not 2 <= len(choices) <= QUALIFY_CHOICES_MAX
                or not all(isinstance(c, str) and c.strip() for c in choices)):
            raise r.fail(f"{field}.choices", f"must list 2 to {QUALIFY_CHOICES_MAX} texts")
        for c in choices:
            if len(c) > BUTTON_MAX:
                raise r.fail(f"{field}.choices", f"{c!r}: {len(c)} characters; at most {BUTTON_MAX} allowed")
        if len({normalise(c) for c in choices}) != len(choices):
            raise r.fail(f"{field}.choices", "lists a choice twice")
        questions.append(QualifyQuestion(label=r.text_at(rq, "label", f"{field}.label", BUTTON_MAX),
                                         text=r.text_at(rq, "text", f"{field}.text", QUALIFY_TEXT_MAX),
                                         choices=tuple(c.strip() for c in choices)))
    return Qualification(tuple(questions), r.text_at(table, "skip_button", "qualify.skip_button", BUTTON_MAX),
                         r.text_at(table, "thanks", "qualify.thanks", QUALIFY_TEXT_MAX))


_QUESTION_PATH = re.compile(r"questions\[(\d+)\]\.(\w+)")


def _question_path(path: str) -> tuple[int, str]:
    """"questions[N].<field>" as (0-based question, field); ValueError when it is not one this file may vary."""
    m = _QUESTION_PATH.fullmatch(path)
    if m is None or not 1 <= int(m[1]) <= QUESTION_COUNT or m[2] not in EXPERIMENT_QUESTION_FIELDS:
        raise ValueError(path)
    return int(m[1]) - 1, m[2]


def _original(r: _Reader, path: Any, field: str, texts: Mapping[str, str], questions: tuple[Question, ...]) -> str:
    """The file's own text at an experiment's ``text`` path (the variants replace it)."""
    if isinstance(path, str) and path.startswith("texts.") and path[len("texts."):] in texts:
        return texts[path[len("texts."):]]
    try:
        q, name = _question_path(path if isinstance(path, str) else "")
    except ValueError:
        raise r.fail(field, f"{str(path)[:60]!r} is not a text of this file; write texts.<key> or "
                     f"questions[N].<{'|'.join(EXPERIMENT_QUESTION_FIELDS)}> (N 1-{QUESTION_COUNT})") from None
    return str(getattr(questions[q], name))


def _variant_text(r: _Reader, path: str, raw: Mapping[str, Any], field: str) -> str:
    """A variant's text, checked as the text it replaces is (its length, its placeholders)."""
    if path.startswith("texts."):
        key = path[len("texts."):]
        return _text_value(r, key, {key: raw.get("text")}, field, {**OPTIONAL_TEXT_KEYS, **TEXT_KEYS}[key])
    return r.text_at(raw, "text", field, EXPERIMENT_QUESTION_FIELDS[_question_path(path)[1]])


def _unique_name(r: _Reader, name: Any, field: str, taken: list[str]) -> str:
    """An experiment's or a variant's name: its form (it goes into segment tags), and not one already used."""
    if not isinstance(name, str) or not EXPERIMENT_NAME.fullmatch(name):
        raise r.fail(field, "must be 1-30 of a-z, 0-9, _ and -, starting with a letter or digit")
    if name in taken:
        raise r.fail(field, f"{name!r} is listed twice")
    return name


def _parse_variants(r: _Reader, path: str, own: str, raw: Any, field: str) -> tuple[Variant, ...]:
    if not isinstance(raw, list) or not 2 <= len(raw) <= EXPERIMENT_VARIANTS_MAX:
        raise r.fail(field, f"must list 2 to {EXPERIMENT_VARIANTS_MAX} variants ([[{field}]] with name and text)")
    variants: list[Variant] = []
    for i, rv in enumerate(raw, start=1):
        vf = f"{field}[{i}]"
        if not isinstance(rv, dict):
            raise r.fail(vf, "must be a table with name, text (leave it out for the file's own) and weight")
        for extra in set(rv) - {"name", "text", "weight"}:
            raise r.fail(f"{vf}.{extra}", "unknown entry; a variant has name, text and weight")
        name = _unique_name(r, rv.get("name"), f"{vf}.name", [v.name for v in variants])
        text = _variant_text(r, path, rv, f"{vf}.text") if "text" in rv else own
        if any(v.text == text for v in variants):
            raise r.fail(f"{vf}.text", "the same text as another variant: nothing would be compared")
        weight = rv.get("weight", 1)
        if type(weight) is not int or not 1 <= weight <= EXPERIMENT_WEIGHT_MAX:
            raise r.fail(f"{vf}.weight", f"must be a whole number 1-{EXPERIMENT_WEIGHT_MAX}")
        variants.append(Variant(name, text, weight))
    return tuple(variants)


def _parse_experiments(r: _Reader, data: Mapping[str, Any], texts: Mapping[str, str],
                       questions: tuple[Question, ...]) -> tuple[Experiment, ...]:
    """``[[experiments]]`` (optional): each a ``name``, the ``text`` it varies (a path) and its ``variants``
    (``[[experiments.variants]]``: ``name``, ``text``, optional ``weight``; a variant without ``text`` shows the
    file's own). One experiment per text; names unique."""
    raw = data.get("experiments", [])
    if not isinstance(raw, list):
        raise r.fail("experiments", "must be [[experiments]] entries")
    found: list[Experiment] = []
    for i, re_ in enumerate(raw, start=1):
        field = f"experiments[{i}]"
        if not isinstance(re_, dict):
            raise r.fail(field, "must be a table with name, text and variants")
        for extra in set(re_) - {"name", "text", "variants"}:
            raise r.fail(f"{field}.{extra}", "unknown entry; an experiment has name, text and variants")
        name = _unique_name(r, re_.get("name"), f"{field}.name", [e.name for e in found])
        own = _original(r, re_.get("text"), f"{field}.text", texts, questions)
        path = str(re_["text"])
        if other := next((e.name for e in found if e.path == path), None):
            raise r.fail(f"{field}.text", f"{path} is already varied by the experiment {other!r}")
        found.append(Experiment(name, path, _parse_variants(r, path, own, re_.get("variants"), f"{field}.variants")))
    return tuple(found)
