"""Wording of the Slack KPI screens, Japanese first, English second (CRMBOT_LOCALE picks one)."""

from __future__ import annotations

TEXTS: dict[str, dict[str, str]] = {
    "ja": {
        "help": (
            "*CRM KPIの使い方*\n"
            "• `/kpi setup [チーム名] [tz=Asia/Tokyo]` このチャンネルをチームとして登録\n"
            "• `/kpi` 今期の数値を報告（過去の期も選べます）\n"
            "• `/kpi targets` チームの目標値を設定\n"
            "• `/kpi history` これまでの推移\n"
            "• `/kpi reminders off` / `on` 四半期ごとのお知らせを止める・再開する\n"
            "• `/diagnosis` CRM診断（10問）をDMで受ける"
        ),
        "not_a_team": "このチャンネルはまだチーム登録されていません。`/kpi setup` で登録できます。",
        "setup_done": "このチャンネルを「{name}」として登録しました（タイムゾーン: {tz}）。\n"
        "数値の報告は `/kpi`、目標の設定は `/kpi targets` からどうぞ。",
        "setup_updated": "チーム「{name}」の設定を更新しました（タイムゾーン: {tz}）。",
        "setup_announce": "<@{user}> さんがこのチャンネルをCRM KPIのチーム「{name}」として登録しました。\n"
        "四半期ごとの数値と採点結果は、このチャンネルで全員に共有されます。",
        "bad_tz": "タイムゾーン「{tz}」がわかりませんでした。例: `tz=Asia/Tokyo`",
        "report_title": "KPIの報告",
        "targets_title": "目標値の設定",
        "submit": "送信する",
        "save": "保存する",
        "cancel": "キャンセル",
        "quarter_label": "対象の四半期",
        "quarter_hint": "遅れて報告するときは過去の期を選んでください。",
        "report_intro": "*{team}* の数値を入力してください。わからない任意項目は空欄のままで大丈夫です。",
        "targets_intro": "*{team}* の目標値です。空欄にすると標準の目標に戻ります。",
        "target_hint": "目標: {target}{unit}（{direction}）",
        "default_hint": "標準の目標: {target}{unit}（{direction}）",
        "higher": "高いほど良い",
        "lower": "低いほど良い",
        "err_number": "数値で入力してください（例: 92.5）",
        "err_range": "{min}〜{max}の範囲で入力してください",
        "err_percent": "100%を超える値は入力できません",
        "err_future": "まだ来ていない四半期には報告できません",
        "err_quarter": "四半期を選んでください",
        "err_store": "保存できませんでした。お手数ですが、もう一度お試しください。",
        "result_title": "CRM KPI {quarter} ー {team}",
        "not_reported": "未報告",
        "overall": "総合",
        "weakest": "次に取り組みたい領域: *{area}*（{score}/10）",
        "submitted_by": "報告: <@{user}>",
        "replaced_by": "報告: <@{user}>（{quarter} の数値を更新しました）",
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
        "home_reported": "{quarter}: 報告済み",
        "home_missing": "{quarter}: 未報告",
        "home_latest": "最新 {quarter} の総合 {score}/10",
        "dm_only": "診断の質問をDMでお送りしました。",
        "report_button": "今期の数値を報告する",
        "remind_kickoff": "*{quarter}* のKPI報告の時期になりました。\n"
        "下のボタンから数値を入力してください。採点結果はこのチャンネルで共有されます。",
        "remind_nudge": "*{quarter}* のKPIがまだ報告されていません。\n"
        "数分で終わります。下のボタンからどうぞ（止めるには `/kpi reminders off`）。",
    },
    "en": {
        "help": (
            "*Using CRM KPI*\n"
            "• `/kpi setup [team name] [tz=Asia/Tokyo]` register this channel as a team\n"
            "• `/kpi` report this quarter's figures (earlier quarters can be chosen)\n"
            "• `/kpi targets` set the team's targets\n"
            "• `/kpi history` the trend so far\n"
            "• `/kpi reminders off` / `on` pause or resume quarterly reminders\n"
            "• `/diagnosis` take the CRM diagnosis (10 questions) in a DM"
        ),
        "not_a_team": "This channel is not a team yet. Register it with `/kpi setup`.",
        "setup_done": "Registered this channel as \u201c{name}\u201d (time zone: {tz}).\n"
        "Report figures with `/kpi`, set targets with `/kpi targets`.",
        "setup_updated": "Updated team \u201c{name}\u201d (time zone: {tz}).",
        "setup_announce": "<@{user}> registered this channel as the CRM KPI team \u201c{name}\u201d.\n"
        "Each quarter's figures and scores will be shared here with everyone.",
        "bad_tz": "Unknown time zone \u201c{tz}\u201d. Example: `tz=Asia/Tokyo`",
        "report_title": "Report KPIs",
        "targets_title": "Set targets",
        "submit": "Submit",
        "save": "Save",
        "cancel": "Cancel",
        "quarter_label": "Quarter",
        "quarter_hint": "Pick an earlier quarter for a late report.",
        "report_intro": "Enter the figures for *{team}*. Optional items may stay blank.",
        "targets_intro": "Targets for *{team}*. Leave a field blank to use the default.",
        "target_hint": "Target: {target}{unit} ({direction})",
        "default_hint": "Default target: {target}{unit} ({direction})",
        "higher": "higher is better",
        "lower": "lower is better",
        "err_number": "Please enter a number (e.g. 92.5)",
        "err_range": "Please enter a value from {min} to {max}",
        "err_percent": "A percentage cannot be above 100",
        "err_future": "That quarter has not started yet",
        "err_quarter": "Please choose a quarter",
        "err_store": "Could not save. Please try again.",
        "result_title": "CRM KPI {quarter} \u2014 {team}",
        "not_reported": "not reported",
        "overall": "Overall",
        "weakest": "Area to work on next: *{area}* ({score}/10)",
        "submitted_by": "Reported by <@{user}>",
        "replaced_by": "Reported by <@{user}> (figures for {quarter} updated)",
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
        "home_reported": "{quarter}: reported",
        "home_missing": "{quarter}: not reported yet",
        "home_latest": "Latest {quarter} overall {score}/10",
        "dm_only": "I've sent the diagnosis questions to you by DM.",
        "report_button": "Report this quarter",
        "remind_kickoff": "It's time to report the KPIs for *{quarter}*.\n"
        "Enter the current figures with the button below; the scores will be shared in this channel.",
        "remind_nudge": "The KPIs for *{quarter}* have not been reported yet.\n"
        "It takes a few minutes: use the button below (`/kpi reminders off` pauses these).",
    },
}


def t(locale: str, key: str, **params: object) -> str:
    text = TEXTS.get(locale, TEXTS["ja"])[key]
    return text.format(**params) if params else text
