"""A diagnosis content file with experiments, for the experiment tests: the real file, its commented example
(``[[experiments]]`` on the consultation button) switched on, and a second experiment on question 1's wording."""

from __future__ import annotations

from pathlib import Path

from conversations.content import script_path

Q1_SHORT = {"ja": "お客さま一人ひとりの年間LTV（初回購入から1年間のお買い上げ合計）で、判断していますか？",
            "en": "Do you decide by each customer's annual LTV (their spend in the year from their first purchase)?"}
CTA_B = {"ja": "担当者に相談する", "en": "Ask a consultant"}  # as in the files' commented example


def example(locale: str = "ja") -> str:
    """The commented example at the end of the real file, uncommented."""
    lines = script_path(locale).read_text(encoding="utf-8").splitlines()
    start = lines.index("# [[experiments]]")
    return "\n".join(line.removeprefix("# ") for line in lines[start:] if line.startswith("#")) + "\n"


def source(locale: str = "ja") -> str:
    return (script_path(locale).read_text(encoding="utf-8") + "\n" + example(locale)
            + f'\n[[experiments]]\nname = "q1"\ntext = "questions[1].text"\n'
            f'[[experiments.variants]]\nname = "plain"\n'
            f'[[experiments.variants]]\nname = "short"\ntext = "{Q1_SHORT[locale]}"\n')


def content_dir(tmp_path: Path, locale: str = "ja") -> str:
    folder = tmp_path / "content"
    folder.mkdir(exist_ok=True)
    (folder / f"diagnosis.{locale}.toml").write_text(source(locale), encoding="utf-8")
    return str(folder)
