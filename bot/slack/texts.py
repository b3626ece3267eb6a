"""Wording of the Slack KPI screens, Japanese first, English second (CRMBOT_LOCALE picks one).

Periods are named by their months (「2026年7〜9月」, "Jul-Sep 2026"); a team's quarter also by its
business year (「2026年度 第2四半期（7〜9月）」, "FY2026 Q2 (Jul-Sep 2026)"). The arithmetic of
periods is in :mod:`scoring.periods`; only the words are here.
"""

from __future__ import annotations

from scoring.periods import Quarter, fiscal

MONTHS_EN = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
MONTH_NAMES_EN = ("January", "February", "March", "April", "May", "June", "July", "August", "September",
                  "October", "November", "December")

TEXTS: dict[str, dict[str, str]] = {
    "ja": {
        "help": (
            "*CRM KPIの使い方*\n"
            "• `/kpi setup [チーム名] [tz=Asia/Tokyo] [fy=4]` このチャンネルをチームとして登録（fy: 年度が始まる月）\n"
            "• `/kpi` 終わった四半期の数値を報告（さらに前の期も選べます）\n"
            "• `/kpi targets` チームの目標値を設定\n"
            "• `/kpi history` これまでの推移\n"
            "• `/kpi reminders off` / `on` 四半期ごとのお知らせを止める・再開する\n"
            "• `/diagnosis` CRM診断（10問）をDMで受ける"
        ),
        "not_a_team": "このチャンネルはまだチーム登録されていません。`/kpi setup` で登録できます。",
        "setup_done": "このチャンネルを「{name}」として登録しました（タイムゾーン: {tz}、年度の始まり: {fy}月）。\n"
        "数値の報告は `/kpi`、目標の設定は `/kpi targets` からどうぞ。",
        "setup_updated": "チーム「{name}」の設定を更新しました（タイムゾーン: {tz}、年度の始まり: {fy}月）。",
        "setup_announce": "<@{user}> さんがこのチャンネルをCRM KPIのチーム「{name}」として登録しました。\n"
        "四半期ごとの数値と採点結果は、このチャンネルで全員に共有されます。",
        "bad_tz": "タイムゾーン「{tz}」がわかりませんでした。例: `tz=Asia/Tokyo`",
        "bad_fy": "年度の始まりは1・4・7・10月のどれかを指定してください（例: `fy=4`）。"
        "数値は暦どおりの四半期（1〜3月など）で集計するためです。",
        "report_title": "KPIの報告",
        "targets_title": "目標値の設定",
        "submit": "送信する",
        "save": "保存する",
        "cancel": "キャンセル",
        "quarter_label": "対象の四半期",
        "quarter_hint": "終わった四半期の数値を報告します。遅れて報告するときは、さらに前の期を選んでください。",
        "report_intro": "*{team}* の数値を入力してください。わからない任意項目は空欄のままで大丈夫です。",
        "targets_intro": "*{team}* の目標値です。空欄にすると標準の目標に戻ります。",
        "target_hint": "目標: {target}（{direction}）",
        "default_hint": "標準の目標: {target}（{direction}）",
        "improve_hint": "目標: 前期を上回ること（前期の数値がないときは {target}）",
        "improve_default_hint": "前期を上回れば10点です。前期の数値がないときの目標（標準: {target}）",
        "higher": "高いほど良い",
        "lower": "低いほど良い",
        "err_number": "数値で入力してください（例: 92.5）",
        "err_range": "{min}〜{max}の範囲で入力してください",
        "err_percent": "100%を超える値は入力できません",
        "err_running": "まだ終わっていない四半期は報告できません。終わった期を選んでください",
        "err_floor_higher": "目標は {floor} より高くしてください",
        "err_floor_lower": "目標は {floor} より低くしてください",
        "err_quarter": "四半期を選んでください",
        "err_store": "保存できませんでした。お手数ですが、もう一度お試しください。",
        "result_title": "CRM KPI {period} ー {team}",
        "not_reported": "未報告",
        "overall": "総合",
        "weakest": "次に取り組みたい領域: *{area}*（{score}/10）",
        "weakest_figure": "いちばん低い数値: {name} {value}（目標 {target}、{score}/10）",
        "weakest_figure_previous": "いちばん低い数値: {name} {value}（前期 {target}、{score}/10）",
        "coverage": "{total}項目中{reported}項目を報告",
        "submitted_by": "報告: <@{user}>",
        "replaced_by": "報告: <@{user}>（{period} の数値を更新しました）",
        "no_previous": "前期の報告はありません",
        "vs_previous": "前期比",
        "history_title": "*{team}* のKPI推移",
        "history_empty": "まだ報告がありません。`/kpi` から報告できます。",
        "targets_saved": "目標値を保存しました。次の採点から使われます。",
        "reminders_off": "このチームへの四半期ごとのお知らせを停止しました。`/kpi reminders on` で再開できます。",
        "reminders_on": "このチームへの四半期ごとのお知らせを再開しました。",
        "home_title": "CRM KPI",
        "home_intro": "このワークスペースのチームと、最新の採点です。",
        "home_none": "まだチームがありません。チャンネルで `/kpi setup` を実行すると登録できます。",
        "home_reported": "{period}: 報告済み",
        "home_missing": "{period}: 未報告",
        "home_latest": "最新 {period} の総合 {score}/10",
        "dm_only": "診断の質問をDMでお送りしました。",
        "report_button": "数値を報告する",
        "remind_kickoff": "*{period}* が終わりました。この期のKPIを報告しましょう。\n"
        "下のボタンから数値を入力してください。採点結果はこのチャンネルで共有されます。",
        "remind_nudge": "*{period}* のKPIがまだ報告されていません。\n"
        "数分で終わります。下のボタンからどうぞ（止めるには `/kpi reminders off`）。",
    },
    "en": {
        "help": (
            "*Using CRM KPI*\n"
            "• `/kpi setup [team name] [tz=Asia/Tokyo] [fy=4]` register this channel as a team "
            "(fy: the month your business year starts)\n"
            "• `/kpi` report the figures of the quarter that ended (earlier ones can be chosen)\n"
            "• `/kpi targets` set the team's targets\n"
            "• `/kpi history` the trend so far\n"
            "• `/kpi reminders off` / `on` pause or resume quarterly reminders\n"
            "• `/diagnosis` take the CRM diagnosis (10 questions) in a DM"
        ),
        "not_a_team": "This channel is not a team yet. Register it with `/kpi setup`.",
        "setup_done": "Registered this channel as \u201c{name}\u201d (time zone: {tz}; business year from {fy}).\n"
        "Report figures with `/kpi`, set targets with `/kpi targets`.",
        "setup_updated": "Updated team \u201c{name}\u201d (time zone: {tz}; business year from {fy}).",
        "setup_announce": "<@{user}> registered this channel as the CRM KPI team \u201c{name}\u201d.\n"
        "Each quarter's figures and scores will be shared here with everyone.",
        "bad_tz": "Unknown time zone \u201c{tz}\u201d. Example: `tz=Asia/Tokyo`",
        "bad_fy": "A business year can start in month 1, 4, 7 or 10 (e.g. `fy=4`): "
        "figures are kept by calendar quarter (Jan-Mar and so on).",
        "report_title": "Report KPIs",
        "targets_title": "Set targets",
        "submit": "Submit",
        "save": "Save",
        "cancel": "Cancel",
        "quarter_label": "Quarter",
        "quarter_hint": "Figures are for a quarter that has ended. Pick an earlier one for a late report.",
        "report_intro": "Enter the figures for *{team}*. Optional items may stay blank.",
        "targets_intro": "Targets for *{team}*. Leave a field blank to use the default.",
        "target_hint": "Target: {target} ({direction})",
        "default_hint": "Default target: {target} ({direction})",
        "improve_hint": "Target: better than last quarter ({target} when there is no figure for it)",
        "improve_default_hint": "Better than last quarter scores 10; target without a figure for it (default {target})",
        "higher": "higher is better",
        "lower": "lower is better",
        "err_number": "Please enter a number (e.g. 92.5)",
        "err_range": "Please enter a value from {min} to {max}",
        "err_percent": "A percentage cannot be above 100",
        "err_running": "That quarter has not ended yet. Please choose one that has",
        "err_floor_higher": "The target must be above {floor}",
        "err_floor_lower": "The target must be below {floor}",
        "err_quarter": "Please choose a quarter",
        "err_store": "Could not save. Please try again.",
        "result_title": "CRM KPI {period} \u2014 {team}",
        "not_reported": "not reported",
        "overall": "Overall",
        "weakest": "Area to work on next: *{area}* ({score}/10)",
        "weakest_figure": "Lowest figure: {name} {value} (target {target}, {score}/10)",
        "weakest_figure_previous": "Lowest figure: {name} {value} (last quarter {target}, {score}/10)",
        "coverage": "{reported} of {total} figures reported",
        "submitted_by": "Reported by <@{user}>",
        "replaced_by": "Reported by <@{user}> (figures for {period} updated)",
        "no_previous": "No report for the previous quarter",
        "vs_previous": "vs previous quarter",
        "history_title": "KPI trend of *{team}*",
        "history_empty": "Nothing reported yet. Use `/kpi` to report.",
        "targets_saved": "Targets saved. They apply from the next scoring.",
        "reminders_off": "Quarterly reminders for this team are paused. `/kpi reminders on` resumes them.",
        "reminders_on": "Quarterly reminders for this team are on again.",
        "home_title": "CRM KPI",
        "home_intro": "Teams in this workspace and their latest scores.",
        "home_none": "No teams yet. Run `/kpi setup` in a channel to register one.",
        "home_reported": "{period}: reported",
        "home_missing": "{period}: not reported yet",
        "home_latest": "Latest {period} overall {score}/10",
        "dm_only": "I've sent the diagnosis questions to you by DM.",
        "report_button": "Report the figures",
        "remind_kickoff": "*{period}* has ended: time to report its KPIs.\n"
        "Enter the figures with the button below; the scores will be shared in this channel.",
        "remind_nudge": "The KPIs for *{period}* have not been reported yet.\n"
        "It takes a few minutes: use the button below (`/kpi reminders off` pauses these).",
    },
}


def t(locale: str, key: str, **params: object) -> str:
    text = TEXTS.get(locale, TEXTS["ja"])[key]
    return text.format(**params) if params else text


def months_label(locale: str, quarter: Quarter) -> str:
    """The quarter named by its months: 「2026年7〜9月」 / "Jul-Sep 2026"."""
    if locale == "en":
        return f"{MONTHS_EN[quarter.first_month - 1]}-{MONTHS_EN[quarter.last_month - 1]} {quarter.year}"
    return f"{quarter.year}年{quarter.first_month}〜{quarter.last_month}月"


def period_label(locale: str, quarter: Quarter, fy_start: int) -> str:
    """The quarter in the team's business year, with its months: 「2026年度 第2四半期（7〜9月）」,
    「2026年度 第4四半期（2027年1〜3月）」 (the months' year said when it is not the business year's),
    "FY2026 Q2 (Jul-Sep 2026)"."""
    fq = fiscal(quarter, fy_start)
    if locale == "en":
        return f"FY{fq.year} Q{fq.q} ({months_label(locale, quarter)})"
    months = f"{quarter.first_month}〜{quarter.last_month}月"
    if quarter.year != fq.year:
        months = f"{quarter.year}年{months}"
    return f"{fq.year}年度 第{fq.q}四半期（{months}）"


def fy_month(locale: str, month: int) -> str:
    """The first month of a business year: 「4」 (the Japanese texts add 月) / "April"."""
    return MONTH_NAMES_EN[month - 1] if locale == "en" else str(month)


def with_unit(locale: str, value: str, unit: str) -> str:
    """A figure with its unit: 「95%」「3.5点」 / "95%", "3.5 of 5"."""
    if locale == "en" and unit not in ("%", "pt"):
        return f"{value} {unit}"
    return f"{value}{unit}"
