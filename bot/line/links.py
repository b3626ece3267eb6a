"""``crmbot line links --source NAME``: a link (and its QR code) that brings people from one source.

The link is LINE's ``https://line.me/R/oaMessage/{basic ID}/?{text}``: it opens the chat with the account
and puts the text 「診断 NAME」 (the script's first start keyword, a space, the source) in the message box.
Sent, it starts the diagnosis like 診断 and the person keeps ``NAME`` as their source (the first one:
:mod:`conversations.inputs`, :mod:`conversations.analytics`), so the console's figures and leads can be
filtered by it (``?source=NAME``).

The basic ID is ``CRMBOT_LINE_BASIC_ID``, else asked of LINE (``GET /v2/bot/info``, with the channel's
token). The QR code is a PNG drawn by ``segno`` (no image library needed).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TextIO
from urllib.parse import quote

from bot.config import Config
from conversations.content import Script
from conversations.errors import ConfigError, CrmbotError
from conversations.inputs import source_name

QR_SCALE = 10  # pixels per module: about 3 cm at print resolution for a short link
QR_BORDER = 4  # the quiet zone the QR standard asks for, in modules


def chat_text(script: Script, source: str) -> str:
    """The text the link puts in the message box: 「診断 NAME」."""
    return f"{script.keywords['start'][0]} {source}"


def chat_link(basic_id: str, text: str) -> str:
    """LINE's link that opens the chat with the account, ``text`` in the message box."""
    return f"https://line.me/R/oaMessage/{quote(basic_id, safe='@')}/?{quote(text, safe='')}"


def write_qr(link: str, path: Path) -> None:
    import segno

    segno.make(link, error="m", micro=False).save(str(path), kind="png", scale=QR_SCALE, border=QR_BORDER)


def basic_id(config: Config) -> str:
    """The account's basic ID: CRMBOT_LINE_BASIC_ID, else LINE's answer to ``GET /v2/bot/info``."""
    if config.line_basic_id:
        return config.line_basic_id
    if not config.line_channel_access_token:
        raise ConfigError("line links: set CRMBOT_LINE_BASIC_ID (the account's basic ID, e.g. @123abcde) or "
                          "LINE_CHANNEL_ACCESS_TOKEN (to ask LINE for it)")
    from linebot.v3.messaging import ApiException
    from urllib3.exceptions import HTTPError as Urllib3Error

    from bot.line.setup import clients

    with clients(config.line_api_host, config.line_api_data_host, config.line_channel_access_token) as (api, _):
        try:
            info: Any = api.get_bot_info(_request_timeout=config.api_timeout)
        except ApiException as e:
            raise CrmbotError(f"line links: reading the bot's basic ID: LINE answered {e.status}") from None
        except Urllib3Error as e:
            raise CrmbotError(f"line links: LINE could not be reached ({type(e).__name__})") from None
    return str(info.basic_id)


def links_cmd(config: Config, script: Script, source: str, qr: str | None, out: TextIO) -> int:
    """Print the link and the text it carries; write its QR code (``qr``, default ``line-<NAME>.png``)."""
    if not source or source_name(source) != source:
        raise ConfigError(f"line links: {source[:40]!r} is not a source name: lower-case letters, digits, - and _, "
                          "at most 20 characters")
    text = chat_text(script, source)
    link = chat_link(basic_id(config), text)
    path = Path(qr or f"line-{source}.png")
    write_qr(link, path)
    out.write(f"link: {link}\ntext: {text}\nQR code: {path}\n")
    return 0
