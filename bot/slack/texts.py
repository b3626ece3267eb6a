"""Wording of the Slack KPI screens, Japanese first, English second (CRMBOT_LOCALE picks one).

Periods are named by their months (「2026年7〜9月」, "Jul-Sep 2026"); a team's quarter also by its
business year (「2026年度 第2四半期（7〜9月）」, "FY2026 Q2 (Jul-Sep 2026)"), or by that alone where room is
short (a chart's axis: 「2026年度 第2四半期」, "FY2026 Q2"). The arithmetic of periods is in
:mod:`scoring.periods`; their names, shared with the console, in :mod:`bot.kpi.labels`.
"""

from __future__ import annotations

from bot.kpi.labels import MONTHS_EN as MONTHS_EN
from bot.kpi.labels import fiscal_label as fiscal_label
from bot.kpi.labels import months_label as months_label
from bot.kpi.labels import period_label as period_label
from bot.kpi.labels import with_unit as with_unit

MONTH_NAMES_EN = ("January", "February", "March", "April", "May", "June", "July", "August", "September",
                  "October", "November", "December")

TEXTS: dict[str, dict[str, str]] = {
    "ja": {
        "help": (
            "*CRM KPIの使い方*\n"
            "• `/kpi setup [チーム名] [tz=Asia/Tokyo] [fy=4]` このチャンネルをチームとして登録（fy: 年度が始まる月）\n"
            "• `/kpi` 終わった四半期の数値を報告（さらに前の期も選べます）\n"
            "• `/kpi targets` チームの目標値を設定\n"
            "• `/kpi history` これまでの推移（グラフと表はDMで届きます）\n"
            "• `/kpi detail` 最新の結果の内訳（指標ごとの数値・目標・点数）\n"
            "• `/kpi owners` 領域ごとに報告する人を決める（部署をまたいで分担できます）\n"
            "• `/kpi export` これまでの数値をCSVにしてDMで受け取る\n"
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
        "bad_fy": "年度の始まりは1〜12の月で指定してください（例: 3月始まりなら `fy=3`）。",
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
        "unavailable": "一時的に利用できません。少し時間をおいてもう一度お試しください。",
        "unavailable_title": "ただいま利用できません",
        "close": "閉じる",
        "result_title": "CRM KPI {period}｜{team}",
        "not_reported": "未報告",
        "overall": "総合",
        "weakest": "次に取り組みたい領域: *{area}*（{score}/10）",
        "weakest_figure": "この領域の点数を下げている指標: {name} {value}（目標 {target}、{score}/10）",
        "weakest_figure_previous": "この領域の点数を下げている指標: {name} {value}（前期 {target}、{score}/10）",
        "detail_button": "内訳を見る",
        "detail_title": "*{period}* の内訳（指標ごとの数値・目標・点数）",
        "detail_area": "*{area}*  {score}",
        "detail_line": "• {name}: {value}（{basis} {target}）→ {score}",
        "detail_reference": "• {name}: {value}（参考。領域の点数には入りません）",
        "detail_blank": "• {name}: 未報告",
        "detail_basis_target": "目標",
        "detail_basis_previous": "前期",
        "detail_basis_year": "前年同期",
        "detail_none": "この四半期の報告は見つかりませんでした。",
        "detail_rules": "点数の決め方は、報告フォームの各項目の説明にあります。",
        "rule_gap": "採点: 目標に届けば10点、{step}届かないごとに2点下がります。",
        "rule_ratio": "採点: 目標に届けば10点、届かないときは達成した割合（例: 8割なら8点）。",
        "rule_scale": "採点: {floor}で0点、目標で10点、そのあいだは比例します。",
        "rule_improve": "採点: 前期より良ければ10点、同じなら8点、{step}悪くなるごとにさらに2点下がります。",
        "rule_year": "採点: 前年同期より良ければ10点、同じなら8点、{step}悪くなるごとにさらに2点下がります"
        "（前年同期の数値がない1年目は目標で採点）。",
        "rule_reference": "参考指標: 数値と目標を記録しますが、領域の点数には入りません。",
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
        # ---- every department: area owners --------------------------------------------------------
        "owners_title": "領域の担当者",
        "owners_intro": "領域ごとに、数値を報告する人を決められます。担当の方は自分の領域だけを報告でき、"
        "5つの領域がそろうと結果をチャンネルに投稿します。空欄の領域は誰でも報告できます。"
        "すべて空欄なら、これまでどおり1人がすべてを報告します。",
        "owners_label": "{area}の担当",
        "owners_post": "<@{user}> さんが領域の担当者を決めました。\n{lines}\n"
        "担当の方は `/kpi` から自分の領域を報告できます。",
        "owners_cleared_post": "<@{user}> さんが領域の担当者をなくしました。これからは1人がすべての領域を報告します。",
        "owner_line": "• {area}: <@{user}>",
        "owner_none": "• {area}: 担当なし（誰でも報告できます）",
        "owner_of": "担当 <@{user}>",
        "err_user": "Slackのメンバーを選んでください",
        "report_intro_owner": "*{team}* の *{areas}* の数値を入力してください（あなたの担当です）。"
        "ほかの領域は担当の方が報告します。",
        "readonly_in": "報告済み（<@{user}>）: {figures}",
        "readonly_missing": "未報告",
        "partial_saved": "*{areas}* の数値を受け付けました。\nまだの領域: {missing}\n"
        "すべてそろうと、結果をチャンネルに投稿します。",
        "missing_owned": "{area}（<@{user}>）",
        "no_change": "数値に変更はありませんでした。結果はすでにチャンネルに投稿しています。",
        "err_owner_changed": "担当が変わりました。お手数ですが、もう一度 `/kpi` から開いてください",
        "submitted_by_many": "報告: {users}",
        "replaced_by_many": "報告: {users}（{period} の数値を更新しました）",
        "not_reported_owner": "未報告（担当 <@{user}>）",
        "closed_note": "最後のお知らせの日になったため、報告のあった領域で結果をまとめました。"
        "未報告の領域も、あとから報告すると結果を更新します。",
        "kickoff_owners": "*担当*\n{lines}",
        "nudge_missing": "まだの領域: {missing}",
        # ---- improvement actions ---------------------------------------------------------------------
        "actions_button": "改善アクションを登録",
        "actions_title": "改善アクション",
        "actions_intro": "*{period}* の結果をふまえて、次の四半期に取り組むことを1〜3件登録します。"
        "次の四半期の結果で、その領域が動いたかをお見せします。",
        "action_area": "対象の領域",
        "action_what": "アクション{n}: 何をするか",
        "action_owner": "アクション{n}: 担当",
        "action_due": "アクション{n}: 期限",
        "err_action_what": "何をするかを入力してください",
        "err_action_owner": "担当を選んでください",
        "err_action_due": "期限を選んでください",
        "err_due_past": "今日以降の日付を選んでください",
        "err_actions_full": "この四半期の改善アクションは{max}件までです",
        "actions_post": "<@{user}> さんが *{period}* の結果から改善アクションを登録しました（{area}）。\n{lines}",
        "action_line": "• {what}（担当 <@{owner}>、期限 {due}）",
        "follow_title": "*前期に決めた改善アクション*",
        "follow_line": "• {area}: {what}（<@{owner}>、期限 {due}）→ {moved}",
        "kickoff_actions": "*前期に決めた改善アクション*（今回の結果で、その領域が動いたかをお見せします）\n{lines}",
        "kickoff_action_line": "• {area}: {what}（<@{owner}>、期限 {due}）",
        "moved_up": "▲{delta} 上がりました",
        "moved_down": "▼{delta} 下がりました",
        "moved_same": "±0 変わりませんでした",
        "moved_unknown": "比べられません（未報告）",
        "moved_pending": "次の四半期の結果で確かめます",
        "history_actions": "*改善アクション*",
        "history_action_line": "• {period} {area}: {what}（<@{owner}>、期限 {due}）→ {moved}",
        # ---- charts and the CSV ----------------------------------------------------------------------
        "history_chart_sent": "推移のグラフと表をDMでお送りしました。",
        "history_chart_comment": "*{team}* のKPI推移です（各領域0〜10点）。",
        # native charts and tables (Slack draws them in the message; each title at most 50 characters,
        # each label at most 20: see bot/slack/native.py)
        "trend_text": "{team} のKPI推移（各領域0〜10点）。{series}",
        "trend_chart_title": "KPIの推移（0〜10点）",
        "trend_left_out": "未報告の期がある領域はグラフに入れていません（表に載せています）: {areas}",
        "trend_shortened": "直近の{shown}期を表示しています（全{total}期は `/kpi export` のCSVで見られます）。",
        "scores_chart_title": "領域ごとの点数（0〜10点）",
        "axis_quarter": "四半期",
        "axis_area": "領域",
        "axis_score": "点数（0〜10）",
        "col_quarter": "四半期",
        "col_area": "領域",
        "col_score": "点数",
        "col_change": "前期比",
        "col_coverage": "報告した数値",
        "col_lowest": "点数を下げている指標（実績／目標）",
        "cell_coverage": "{reported}／{total}",
        "cell_lowest": "{name} {value}（目標 {target}）",
        "cell_lowest_previous": "{name} {value}（前期 {target}）",
        "cell_none": "－",
        "chart_radar_title": "{team} {period}",
        "chart_radar_alt": "レーダーチャート（各領域0〜10点）。{series}",
        "chart_lines_title": "{team} のKPI推移",
        "chart_lines_alt": "KPI推移の折れ線グラフ（0〜10点）。{series}",
        "chart_series": "{name}: {values}",
        "export_sent": "これまでのKPIをCSVにしてDMでお送りしました。",
        "export_empty": "まだ報告がないため、CSVは作りませんでした。`/kpi` から報告できます。",
        "export_comment": "*{team}* のKPIです（CSV、UTF-8）。Excelでそのまま開けます。",
        "csv_quarter": "四半期",
        "csv_period": "期間",
        "csv_reported_by": "報告者",
        "csv_reported_at": "報告日時",
        "csv_coverage": "報告した項目数",
        "csv_actions": "この期の結果から決めた改善アクション",
        "csv_action": "{area}: {what}（担当 {owner}、期限 {due}）",
        # ---- the Workflow Builder step: why a run ended in an error (plain text, shown in the workflow) ----
        "step_no_channel": "チームのチャンネルが指定されていません。"
        "ワークフローの設定で、このステップのチャンネルを選んでください。",
        "step_not_a_team": "このチャンネルはまだKPIのチームとして登録されていません。"
        "チャンネルで /kpi setup を実行してから、もう一度お試しください。",
        "step_bad_quarter": "四半期「{quarter}」が読み取れませんでした。"
        "2026-Q1 や 2025年度 第4四半期 のように指定してください。",
        "step_quarter_closed": "{period}は報告できません。報告できるのは、終わった四半期のうち直近の5期です。",
        "step_no_interactivity": "報告フォームを開けませんでした。"
        "このステップは、ボタンなど人の操作で始まるワークフローに入れてください。",
        "step_open_failed": "報告フォームを開けませんでした。お手数ですが、もう一度ワークフローを実行してください。",
        "step_cancelled": "報告フォームが閉じられたため、KPIは報告されていません。",
    },
    "en": {
        "help": (
            "*Using CRM KPI*\n"
            "• `/kpi setup [team name] [tz=Asia/Tokyo] [fy=4]` register this channel as a team "
            "(fy: the month your business year starts)\n"
            "• `/kpi` report the figures of the quarter that ended (earlier ones can be chosen)\n"
            "• `/kpi targets` set the team's targets\n"
            "• `/kpi history` the trend so far (the chart and table come by DM)\n"
            "• `/kpi detail` the breakdown of the latest result (each figure, its target and score)\n"
            "• `/kpi owners` choose who reports each area (areas can be shared out across departments)\n"
            "• `/kpi export` get the figures so far as a CSV file by DM\n"
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
        "bad_fy": "Give the month your business year starts, 1-12 (e.g. `fy=3` for a year from March).",
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
        "unavailable": "Temporarily unavailable, please try again in a moment.",
        "unavailable_title": "Unavailable right now",
        "close": "Close",
        "result_title": "CRM KPI {period} | {team}",
        "not_reported": "not reported",
        "overall": "Overall",
        "weakest": "Area to work on next: *{area}* ({score}/10)",
        "weakest_figure": "Pulling this area down: {name} {value} (target {target}, {score}/10)",
        "weakest_figure_previous": "Pulling this area down: {name} {value} (last quarter {target}, {score}/10)",
        "detail_button": "See the breakdown",
        "detail_title": "Breakdown of *{period}* (each figure, its target and its score)",
        "detail_area": "*{area}*  {score}",
        "detail_line": "• {name}: {value} ({basis} {target}) → {score}",
        "detail_reference": "• {name}: {value} (for reference: not in the area's score)",
        "detail_blank": "• {name}: not reported",
        "detail_basis_target": "target",
        "detail_basis_previous": "last quarter",
        "detail_basis_year": "same quarter last year",
        "detail_none": "No report was found for this quarter.",
        "detail_rules": "How each figure is scored is under its field in the report form.",
        "rule_gap": "Scoring: 10 at the target; 2 points off for every {step} short of it.",
        "rule_ratio": "Scoring: 10 at the target; short of it, the share reached (80% of it scores 8).",
        "rule_scale": "Scoring: 0 at {floor}, 10 at the target, in proportion between.",
        "rule_improve": "Scoring: 10 for beating last quarter, 8 for matching it, 2 more off for every {step} worse.",
        "rule_year": "Scoring: 10 for beating the same quarter last year, 8 for matching it, 2 more off for every "
        "{step} worse (scored against the target in the first year, without that figure).",
        "rule_reference": "For reference: the figure and its target are kept, but it is not in the area's score.",
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
        # ---- every department: area owners --------------------------------------------------------
        "owners_title": "Area owners",
        "owners_intro": "Choose who reports each area. An owner reports their own areas only; once all five "
        "are in, the result is posted in the channel. Anyone may report an area left blank. "
        "With every field blank, one person reports everything, as before.",
        "owners_label": "Owner of {area}",
        "owners_post": "<@{user}> chose the area owners.\n{lines}\nOwners report their areas with `/kpi`.",
        "owners_cleared_post": "<@{user}> removed the area owners. One person now reports every area.",
        "owner_line": "• {area}: <@{user}>",
        "owner_none": "• {area}: no owner (anyone may report it)",
        "owner_of": "Owner <@{user}>",
        "err_user": "Please choose a member of this Slack",
        "report_intro_owner": "Enter the figures of *{areas}* for *{team}* (your areas). "
        "The other areas are reported by their owners.",
        "readonly_in": "Reported (<@{user}>): {figures}",
        "readonly_missing": "Not reported yet",
        "partial_saved": "Figures for *{areas}* received.\nStill to come: {missing}\n"
        "The result is posted in the channel once every area is in.",
        "missing_owned": "{area} (<@{user}>)",
        "no_change": "No figure changed. The result is already in the channel.",
        "err_owner_changed": "The area owners changed. Please open the form again with `/kpi`",
        "submitted_by_many": "Reported by {users}",
        "replaced_by_many": "Reported by {users} (figures for {period} updated)",
        "not_reported_owner": "not reported (owner <@{user}>)",
        "closed_note": "The last reminder is due, so the result covers the areas reported so far. "
        "A missing area reported later updates the result.",
        "kickoff_owners": "*Owners*\n{lines}",
        "nudge_missing": "Still to come: {missing}",
        # ---- improvement actions ---------------------------------------------------------------------
        "actions_button": "Add improvement actions",
        "actions_title": "Improvement actions",
        "actions_intro": "From the result of *{period}*, record one to three things to do next quarter. "
        "Next quarter's result shows whether their area moved.",
        "action_area": "Area",
        "action_what": "Action {n}: what",
        "action_owner": "Action {n}: owner",
        "action_due": "Action {n}: due",
        "err_action_what": "Please say what will be done",
        "err_action_owner": "Please choose an owner",
        "err_action_due": "Please choose a due date",
        "err_due_past": "Please choose today or a later date",
        "err_actions_full": "A quarter holds at most {max} improvement actions",
        "actions_post": "<@{user}> added improvement actions from the result of *{period}* ({area}).\n{lines}",
        "action_line": "• {what} (owner <@{owner}>, due {due})",
        "follow_title": "*Actions decided last quarter*",
        "follow_line": "• {area}: {what} (<@{owner}>, due {due}) → {moved}",
        "kickoff_actions": "*Actions decided last quarter* (this result will show whether their area moved)\n{lines}",
        "kickoff_action_line": "• {area}: {what} (<@{owner}>, due {due})",
        "moved_up": "▲{delta} up",
        "moved_down": "▼{delta} down",
        "moved_same": "±0 no change",
        "moved_unknown": "cannot compare (not reported)",
        "moved_pending": "checked with next quarter's result",
        "history_actions": "*Improvement actions*",
        "history_action_line": "• {period} {area}: {what} (<@{owner}>, due {due}) → {moved}",
        # ---- charts and the CSV ----------------------------------------------------------------------
        "history_chart_sent": "I've sent you the trend chart and table by DM.",
        "history_chart_comment": "KPI trend of *{team}* (each area 0-10).",
        "trend_text": "KPI trend of {team} (each area 0-10). {series}",
        "trend_chart_title": "KPI trend (0-10)",
        "trend_left_out": "Left out of the chart, a quarter not reported (they are in the table): {areas}",
        "trend_shortened": "The last {shown} quarters are shown (all {total} are in the CSV of `/kpi export`).",
        "scores_chart_title": "Score by area (0-10)",
        "axis_quarter": "Quarter",
        "axis_area": "Area",
        "axis_score": "Score (0-10)",
        "col_quarter": "Quarter",
        "col_area": "Area",
        "col_score": "Score",
        "col_change": "vs previous",
        "col_coverage": "Figures reported",
        "col_lowest": "Pulling it down (actual / target)",
        "cell_coverage": "{reported}/{total}",
        "cell_lowest": "{name} {value} (target {target})",
        "cell_lowest_previous": "{name} {value} (last quarter {target})",
        "cell_none": "-",
        "chart_radar_title": "{team} {period}",
        "chart_radar_alt": "Radar chart (each area 0-10). {series}",
        "chart_lines_title": "KPI trend of {team}",
        "chart_lines_alt": "Line chart of the KPI trend (0-10). {series}",
        "chart_series": "{name}: {values}",
        "export_sent": "I've sent you the KPI figures so far as a CSV file by DM.",
        "export_empty": "Nothing reported yet, so there is no CSV. Use `/kpi` to report.",
        "export_comment": "KPI figures of *{team}* (CSV, UTF-8); opens in Excel as it is.",
        "csv_quarter": "Quarter",
        "csv_period": "Period",
        "csv_reported_by": "Reported by",
        "csv_reported_at": "Reported at",
        "csv_coverage": "Figures reported",
        "csv_actions": "Improvement actions decided on this result",
        "csv_action": "{area}: {what} (owner {owner}, due {due})",
        # ---- the Workflow Builder step: why a run ended in an error (plain text, shown in the workflow) ----
        "step_no_channel": "No team channel is set. Choose the channel for this step in the workflow's settings.",
        "step_not_a_team": "This channel is not a KPI team yet. Run /kpi setup in the channel, then try again.",
        "step_bad_quarter": "Could not read the quarter \u201c{quarter}\u201d. Write it like 2026-Q1 or FY2025 Q4.",
        "step_quarter_closed": "{period} cannot be reported. A report is for one of the last five quarters that "
        "have ended.",
        "step_no_interactivity": "Could not open the report form. Put this step in a workflow that a person starts, "
        "with a button or a link.",
        "step_open_failed": "Could not open the report form. Please run the workflow again.",
        "step_cancelled": "The report form was closed, so no KPIs were reported.",
    },
}


def t(locale: str, key: str, **params: object) -> str:
    text = TEXTS.get(locale, TEXTS["ja"])[key]
    return text.format(**params) if params else text


def fy_month(locale: str, month: int) -> str:
    """The first month of a business year: 「4」 (the Japanese texts add 月) / "April"."""
    return MONTH_NAMES_EN[month - 1] if locale == "en" else str(month)


