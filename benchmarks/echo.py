"""The baseline: a minimal LINE echo bot written the way line-bot-sdk's common sample is.

Flask, ``WebhookHandler`` (signature check), and a synchronous reply inside the webhook request, with
a new ``ApiClient`` per event, exactly as the sample does. It answers every event the benchmark sends
(follow, postback, text) with one text reply, so it makes as many API calls as crmbot does. Served
by the same web server and settings as crmbot: ``python -m benchmarks.echo`` takes the arguments of
``crmbot web`` (--host, --port, --threads) and runs bot.web.serve_web.
"""

from __future__ import annotations

import argparse
import os

from flask import Flask, abort, request
from linebot.v3 import WebhookHandler
from linebot.v3.exceptions import InvalidSignatureError
from linebot.v3.messaging import ApiClient, Configuration, MessagingApi, ReplyMessageRequest, TextMessage
from linebot.v3.webhooks import FollowEvent, MessageEvent, PostbackEvent, TextMessageContent


def create_app() -> Flask:
    app = Flask(__name__)
    configuration = Configuration(
        host=os.environ.get("LINE_API_HOST", "https://api.line.me"),
        access_token=os.environ["LINE_CHANNEL_ACCESS_TOKEN"],
    )
    handler = WebhookHandler(os.environ["LINE_CHANNEL_SECRET"])

    @app.route("/callback", methods=["POST"])
    def callback() -> str:
        signature = request.headers["X-Line-Signature"]
        body = request.get_data(as_text=True)
        try:
            handler.handle(body, signature)
        except InvalidSignatureError:
            abort(400)
        return "OK"

    def reply(reply_token: str, text: str) -> None:
        with ApiClient(configuration) as api_client:
            line_bot_api = MessagingApi(api_client)
            line_bot_api.reply_message_with_http_info(
                ReplyMessageRequest(reply_token=reply_token, messages=[TextMessage(text=text)])
            )

    @handler.add(MessageEvent, message=TextMessageContent)
    def handle_message(event: MessageEvent) -> None:
        reply(event.reply_token, event.message.text)

    @handler.add(PostbackEvent)
    def handle_postback(event: PostbackEvent) -> None:
        reply(event.reply_token, event.postback.data)

    @handler.add(FollowEvent)
    def handle_follow(event: FollowEvent) -> None:
        reply(event.reply_token, "Thanks for adding me!")

    return app


def main() -> None:
    from bot.config import Config
    from bot.logs import setup
    from bot.web import THREADS, ClientLimits, serve_web

    parser = argparse.ArgumentParser(prog="python -m benchmarks.echo")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT") or 8000))
    parser.add_argument("--threads", type=int, default=THREADS)
    args = parser.parse_args()
    setup()
    serve_web(create_app(), args.host, args.port, threads=args.threads,
              limits=ClientLimits.from_config(Config.from_env()))  # as crmbot web reads them


if __name__ == "__main__":
    main()
