"""Text from outside made literal in Slack's mrkdwn: the one helper every Slack renderer uses.

Outside text is anything the bot did not write: a LINE display name (the operator's consultation brief,
:mod:`bot.operator`), a team name typed with ``/kpi setup``, an improvement action someone typed, a time
zone typed wrong. It reaches Slack inside our own mrkdwn (section and context texts, fields, a message's
``text``, which Slack reads as mrkdwn too, a file's comment), where Slack would act on it:
``<!channel>`` pings the whole channel, ``<https://evil.example|公式サポート>`` is a link disguised as
words, ``*`` and ``_`` change how the rest of our line reads. :func:`escape` makes it show as typed:

- ``&``, ``<`` and ``>`` become ``&amp;``, ``&lt;`` and ``&gt;``, the escaping Slack documents: no
  mention (``<@U…>``, ``<!here>``, ``<!channel>``, ``<!subteam^…>``), channel link (``<#C…>``), date
  or link (``<url|label>``) can come out of outside text, and Slack shows the characters themselves.
- A formatting mark that could act as one becomes a look-alike that is no mark: ``*`` ``∗`` (U+2217),
  ``_`` ``ˍ`` (U+02CD), ``~`` ``∼`` (U+223C), the backtick ``ˋ`` (U+02CB), and the full-width ``＊``
  ``﹡`` (U+FE61), ``＿`` ``⸏`` (U+2E0F), ``｀`` ``ˋ`` (jsx-slack's ``<Escape>`` mapping). Slack documents
  no escape for them, and an invisible character beside a mark does not reliably stop it (a
  zero-width space even counts as a word boundary, which is what *starts* bold or italics); a
  look-alike cannot act as a mark, whatever Slack's rules. Slack reads ``*``, ``_`` and ``~`` as marks
  only at a word's edge, so one between two ASCII letters or digits stays as typed (``Asia/Ho_Chi_Minh``,
  ``crm_team``, ``10~20``); at the text's start or end, or beside anything else, it is replaced.
  Backticks and the full-width marks are always replaced.
- Line breaks and other control characters become a space: outside text is one line, so it cannot
  start a line that looks like ours. A ``>`` (or ``＞``) it starts with gets an invisible soft hyphen
  (U+00AD) before it, so it does not make a quote of the line it starts.

Escape once, where the text is put into mrkdwn (never the stored text: the console, the CSV and the
charts show it as it is); ``plain_text`` objects (headers, buttons, modal titles and labels) and a
file's title take the text as it is. Every mrkdwn text object is ``verbatim`` (:func:`mrkdwn`): Slack
then leaves plain text alone (no URL made a link, no channel name or ``@`` name turned into a
mention), and still reads our own ``<@U…>`` and ``<#C…>``.
"""

from __future__ import annotations

import re
from typing import Any

_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
LOOKALIKES = {"*": "\u2217", "_": "\u02cd", "~": "\u223c", "`": "\u02cb",
              "\uff0a": "\ufe61", "\uff3f": "\u2e0f", "\uff40": "\u02cb"}
_TABLE = str.maketrans(_ENTITIES)
# a mark with no ASCII letter or digit on one side (the text's start and end count as none)
_MARK = re.compile(r"(?<![A-Za-z0-9])[*_~]|[*_~](?![A-Za-z0-9])|[`\uff0a\uff3f\uff40]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")
SOFT_HYPHEN = "\u00ad"


def escape(text: str) -> str:
    """Outside text, shown as typed in mrkdwn: no mention, link or formatting can come out of it."""
    one_line = _CONTROL.sub(" ", text)
    if one_line.lstrip().startswith((">", "\uff1e")):
        one_line = SOFT_HYPHEN + one_line
    return _MARK.sub(lambda m: LOOKALIKES[m.group()], one_line).translate(_TABLE)


def unescape(text: str) -> str:
    """What someone typed, from the text Slack sends us (a slash command's ``text``: Slack sends the
    typed ``&``, ``<`` and ``>`` as ``&amp;``, ``&lt;`` and ``&gt;``). Kept so; :func:`escape` when shown."""
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def mrkdwn(text: str) -> dict[str, Any]:
    """A mrkdwn text object; ``verbatim``: Slack makes no link or mention of plain text in it."""
    return {"type": "mrkdwn", "text": text, "verbatim": True}
