"""LINE's side of the per-unit statistics (:mod:`bot.insight`): the units used this month and one unit's figures
for one day, through line-bot-sdk's async clients (the Messaging API's, shared with the transport, for the
list; the Insight API's, opened for a pass and closed after it, for the figures). Every answer counted in the
metrics; a failure raised as :class:`bot.insight.InsightError` with its status and ``x-line-request-id``."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, TypeVar

import aiohttp
from linebot.v3 import insight as line_insight
from linebot.v3.messaging import ApiException

from bot import metrics
from bot.insight import DayFigures, InsightError
from bot.line.answers import API, request_id
from bot.line.transport import LineApi

T = TypeVar("T")
MAX_PAGES = 20  # pages of the units list read at most (LINE's limit is 100 a page)


class LineInsight:
    def __init__(self, api: LineApi) -> None:
        self.line = api
        self._client: Any = None
        self._insight: Any = None

    def _stats_api(self) -> Any:
        if self._insight is None:
            cfg = line_insight.Configuration(host=self.line.host, access_token=self.line.access_token)
            cfg.retries = 0
            self._client = line_insight.AsyncApiClient(cfg)
            self._insight = line_insight.AsyncInsight(self._client)
        return self._insight

    async def units(self) -> list[str]:
        names: list[str] = []
        start: str | None = None
        for _ in range(MAX_PAGES):
            page = await _ask("aggregation unit list", self.line.api.get_aggregation_unit_name_list(
                limit="100", start=start, _request_timeout=self.line.timeout()))
            names += [str(n) for n in page.custom_aggregation_units or []]
            start = page.next
            if not start:
                break
        return names

    async def day(self, unit: str, day: str) -> DayFigures:
        res = await _ask("statistics per unit", self._stats_api().get_statistics_per_unit(
            unit, day, day, _request_timeout=self.line.timeout()))
        overview = res.overview
        return DayFigures(overview.unique_impression, overview.unique_click)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = self._insight = None


async def _ask(what: str, request: Awaitable[T]) -> T:
    try:
        result = await request
    except (ApiException, line_insight.ApiException) as e:
        metrics.api_response(API, e.status or "error")
        raise InsightError(what, e.status or None, request_id(e)) from None
    except (TimeoutError, aiohttp.ClientError) as e:
        metrics.api_response(API, "timeout" if isinstance(e, TimeoutError) else "error")
        raise InsightError(what, None, detail=type(e).__name__) from None
    metrics.api_response(API, 200)
    return result
