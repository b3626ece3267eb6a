"""Content experiments (conversations/experiments.py, the [[experiments]] of conversations/content.py): the format
and its checks, the deterministic weighted assignment, a variant's text in the script, and the comparison."""

from __future__ import annotations

import pytest

from conversations import experiments
from conversations.content import Experiment, Variant, parse_script, script_path
from conversations.errors import ContentError
from conversations.segments import format_variants, parse_variants
from tests.conversations.experiment_content import CTA_B, Q1_SHORT, example, source

pytestmark = pytest.mark.fast  # no Redis: the counts are tested in tests/bot/line/test_experiments.py


@pytest.mark.parametrize("locale", ["ja", "en"])
def test_the_files_example_loads_and_a_variant_changes_only_its_text(locale: str) -> None:
    script = parse_script(source(locale), locale, "x.toml")
    cta, q1 = script.experiments
    assert (q1.name, q1.path, q1.variants[1].text) == ("q1", "questions[1].text", Q1_SHORT[locale])
    assert (cta.name, cta.path, [v.name for v in cta.variants]) == ("consult-cta", "texts.consult_button", ["a", "b"])
    assert cta.variants[0].text == script.texts["consult_button"]  # no text: the file's own
    assert cta.variants[1].text == CTA_B[locale]
    both = script.varied("consult-cta:b,q1:short")
    assert both.texts["consult_button"] == CTA_B[locale]
    assert both.questions[0].text == Q1_SHORT[locale]
    assert both.questions[1:] == script.questions[1:]
    assert {k: v for k, v in both.texts.items() if k != "consult_button"} == \
        {k: v for k, v in script.texts.items() if k != "consult_button"}
    control = script.varied("consult-cta:a,q1:plain")
    assert (control.texts, control.questions) == (script.texts, script.questions)
    assert script.varied("") is script
    assert script.varied("gone:x,consult-cta:zz").texts == script.texts  # unknown ones: the file's own


def _with(extra: str, locale: str = "ja") -> str:
    return script_path(locale).read_text(encoding="utf-8") + "\n" + extra


BAD = {
    "unknown path": ('[[experiments]]\nname = "x"\ntext = "texts.nope"\n'
                     '[[experiments.variants]]\nname = "a"\n[[experiments.variants]]\nname = "b"\ntext = "B"\n',
                     "experiments[1].text", "not a text of this file"),
    "question out of range": ('[[experiments]]\nname = "x"\ntext = "questions[11].text"\n[[experiments.variants]]\n'
                              'name = "a"\n[[experiments.variants]]\nname = "b"\ntext = "B"\n',
                              "experiments[1].text", "not a text of this file"),
    "one variant": ('[[experiments]]\nname = "x"\ntext = "texts.framing"\n[[experiments.variants]]\nname = "a"\n',
                    "experiments[1].variants", "2 to 5 variants"),
    "duplicate variant": ('[[experiments]]\nname = "x"\ntext = "texts.framing"\n'
                          '[[experiments.variants]]\nname = "a"\n[[experiments.variants]]\nname = "a"\ntext = "B"\n',
                          "experiments[1].variants[2].name", "listed twice"),
    "same text": ('[[experiments]]\nname = "x"\ntext = "texts.framing"\n[[experiments.variants]]\n'
                  'name = "a"\ntext = "T"\n[[experiments.variants]]\nname = "b"\ntext = "T"\n',
                  "experiments[1].variants[2].text", "same text"),
    "placeholder": ('[[experiments]]\nname = "x"\ntext = "texts.stale"\n'
                    '[[experiments.variants]]\nname = "a"\n[[experiments.variants]]\nname = "b"\ntext = "Q{oops}"\n',
                    "experiments[1].variants[2].text", "unknown placeholder ['oops']"),
    "button too long": ('[[experiments]]\nname = "x"\ntext = "texts.consult_button"\n[[experiments.variants]]\n'
                        'name = "a"\n[[experiments.variants]]\nname = "b"\ntext = "' + "あ" * 21 + '"\n',
                        "experiments[1].variants[2].text", "at most 20"),
    "weight": ('[[experiments]]\nname = "x"\ntext = "texts.framing"\n[[experiments.variants]]\nname = "a"\n'
               'weight = 0\n[[experiments.variants]]\nname = "b"\ntext = "B"\n',
               "experiments[1].variants[1].weight", "whole number"),
    "name": ('[[experiments]]\nname = "X:1"\ntext = "texts.framing"\n'
             '[[experiments.variants]]\nname = "a"\n[[experiments.variants]]\nname = "b"\ntext = "B"\n',
             "experiments[1].name", "a-z"),
    "duplicate experiment": ('[[experiments]]\nname = "x"\ntext = "texts.framing"\n[[experiments.variants]]\n'
                             'name = "a"\n[[experiments.variants]]\nname = "b"\ntext = "B"\n'
                             '[[experiments]]\nname = "x"\ntext = "texts.hint"\n[[experiments.variants]]\n'
                             'name = "a"\n[[experiments.variants]]\nname = "b"\ntext = "B"\n',
                             "experiments[2].name", "listed twice"),
    "same text varied twice": ('[[experiments]]\nname = "x"\ntext = "texts.framing"\n[[experiments.variants]]\n'
                               'name = "a"\n[[experiments.variants]]\nname = "b"\ntext = "B"\n'
                               '[[experiments]]\nname = "y"\ntext = "texts.framing"\n[[experiments.variants]]\n'
                               'name = "a"\n[[experiments.variants]]\nname = "b"\ntext = "C"\n',
                               "experiments[2].text", "already varied by the experiment 'x'"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_a_bad_experiment_stops_start_up_naming_file_and_field(case: str) -> None:
    extra, field, problem = BAD[case]
    with pytest.raises(ContentError) as e:
        parse_script(_with(extra), "ja", "/content/diagnosis.ja.toml")
    assert "/content/diagnosis.ja.toml" in str(e.value)
    assert f"{field}:" in str(e.value) and problem in str(e.value), str(e.value)


EXP = Experiment("cta", "texts.consult_button", (Variant("a", "A"), Variant("b", "B")))


def test_assignment_is_deterministic_per_diagnosis_and_both_variants_occur() -> None:
    idents = [experiments.identity("line", f"U{i:032x}", 1) for i in range(200)]
    picks = [experiments.pick(EXP, i) for i in idents]
    assert picks == [experiments.pick(EXP, i) for i in idents]  # the same diagnosis, the same variant
    assert set(picks) == {"a", "b"}
    # another experiment's name hashes independently: not the same split
    other = Experiment("other", "texts.framing", EXP.variants)
    assert [experiments.pick(other, i) for i in idents] != picks
    # a retake is a new diagnosis: its own pick (some users change)
    assert [experiments.pick(EXP, i[:-1] + "2") for i in idents] != picks


def test_weights_are_honoured_and_an_ended_experiment_gives_its_winner() -> None:
    heavy = Experiment("cta", "texts.consult_button", (Variant("a", "A", 1), Variant("b", "B", 1000)))
    idents = [experiments.identity("line", f"U{i:032x}", 1) for i in range(100)]
    assert [experiments.pick(heavy, i) for i in idents].count("a") < 5  # 1 in 1001 each: a few at most
    var = experiments.assign([EXP, heavy], idents[0], {"cta": "a"})
    assert parse_variants(var) == {"cta": "a"}  # the winner, whatever the hash (one experiment per name)
    mixed = [parse_variants(experiments.assign([EXP], i, {})) for i in idents]
    assert {m["cta"] for m in mixed} == {"a", "b"}
    assert all(parse_variants(experiments.assign([EXP], i, {"cta": "b"}))["cta"] == "b" for i in idents)
    # a winner the file no longer has is ignored: the hash decides
    assert [experiments.assign([EXP], i, {"cta": "gone"}) for i in idents] == \
        [format_variants(m) for m in mixed]


def test_the_counts_of_a_figures_record() -> None:
    lead = {"id": "line:U1:1:0", "channel": "line", "user": "U1", "sid": 1, "var": "cta:b,q1:short",
            "finished": 5.0, "consult": 1}
    steps = experiments.count_steps({"lead": lead})
    assert [s.args for s in steps] == [["line:U1:1"], ["line:U1:1"]]
    assert steps[0].keys[0] == "crmbot:{x:cta}:ended"
    assert steps[0].keys[1:] == [f"crmbot:{{x:cta}}:b:{s}" for s in ("started", "finished", "requested")]
    assert steps[1].keys[1:] == ["crmbot:{x:q1}:short:started", "crmbot:{x:q1}:short:finished",
                                 "crmbot:{x:q1}:short:requested"]
    assert experiments.count_steps({"test": 1, "lead": lead}) == []  # the try page is not counted
    assert experiments.count_steps({"lead": {**lead, "var": ""}}) == []


def test_the_comparison_uses_the_library_and_says_what_is_still_needed() -> None:
    same = experiments.Counts(finished=200, finished_requested=40)
    better = experiments.Counts(finished=200, finished_requested=80)
    p_same, _ = experiments.compare(same, same, 0.05)
    p_diff, needed_now = experiments.compare(same, better, 0.05)
    assert p_same is not None and p_same > 0.9
    assert p_diff is not None and p_diff < 0.001
    small = experiments.Counts(finished=20, finished_requested=4)
    _, needed_small = experiments.compare(small, small, 0.05)
    assert needed_small is not None and needed_now is not None and needed_small > needed_now
    _, needed_big_effect = experiments.compare(small, small, 0.10)
    assert needed_big_effect is not None and needed_big_effect < needed_small  # a bigger effect needs fewer
    huge = experiments.Counts(finished=100_000, finished_requested=20_000)
    assert experiments.compare(huge, huge, 0.05)[1] == 0
    assert experiments.compare(experiments.Counts(), experiments.Counts(), 0.05)[0] is None  # nothing yet
    assert example("ja").startswith("[[experiments]]")
