"""The worker's Slack Web API client, every answer counted by its HTTP status (:mod:`bot.metrics`):
``crmbot_api_responses_total{api="slack"}``, 429s included (an ``ok: false`` answer counts as the HTTP
status it came with, 200 mostly; its error code is in the worker's log)."""

from __future__ import annotations

from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from bot import metrics

API = "slack"


class MeteredWebClient(AsyncWebClient):
    async def api_call(self, api_method: str, **kwargs: Any) -> AsyncSlackResponse:
        try:
            response = await super().api_call(api_method, **kwargs)
        except SlackApiError as e:
            metrics.api_response(API, e.response.status_code)
            raise
        except TimeoutError:
            metrics.api_response(API, "timeout")
            raise
        except aiohttp.ClientError:
            metrics.api_response(API, "error")
            raise
        metrics.api_response(API, response.status_code)
        return response
