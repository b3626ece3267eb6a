"""The words of the console's content page (bot/console/routes/content.py), merged into the console's texts
(bot/console/texts.py) so the nav and the audit log name it too."""

from __future__ import annotations

CONTENT_JA: dict[str, str] = {
    "nav_content": "文面",
    "content_title": "診断の文面（バージョン）",
    "content_note": "診断の文面ファイル（diagnosis.{locale}.toml）をここから差し替えられます。"
                    "アップロードすると起動時と同じチェックを行い、問題がなければ下書きになります。"
                    "下書きは「ブラウザで試す」で確かめてから公開してください。",
    "content_in_use": "いま使っている文面",
    "content_deployed": "デプロイされたファイル",
    "content_since": "{when}に{who}さんが公開",
    "content_version": "バージョン",
    "content_hash": "内容の識別子",
    "content_published_by": "最初に公開した人",
    "content_published_at": "最初に公開した日時",
    "content_none": "まだ公開したバージョンはありません。デプロイされたファイルを使っています。",
    "content_history": "公開したバージョン",
    "content_rollback": "この版に戻す",
    "content_use_deployed": "デプロイされたファイルに戻す",
    "content_active_badge": "使用中",
    "content_download": "ダウンロード",
    "content_upload_title": "文面ファイルをアップロード",
    "content_upload_help": "{locale} のファイルを選んでください（最大512KB）。",
    "content_upload": "チェックして下書きにする",
    "content_upload_none": "ファイルを選んでください。",
    "content_problem": "このファイルは使えません。何も変更していません。",
    "content_problem_line": "{line}行目",
    "content_problem_noline": "行なし",
    "content_draft_title": "下書き",
    "content_draft_ok": "チェックに通りました。まだ公開していません。",
    "content_draft_try": "ブラウザで試す（この下書きで診断します。あなたのブラウザだけです）",
    "content_publish": "公開する",
    "content_draft_gone": "この下書きは見つかりません（期限切れの可能性があります）。"
                          "もう一度アップロードしてください。",
    "content_published": "{label}を公開しました。これから始まる診断は、この文面になります。",
    "content_rolled_back": "{label}に戻しました。これから始まる診断は、この文面になります。",
    "content_back_to_deployed": "デプロイされたファイルに戻しました。",
    "content_admin_only": "アップロード・公開・戻すのは管理者だけが行えます。",
    "content_keep_note": "診断の途中の方は、始めたときの文面のまま最後まで進みます。"
                         "新しい文面は、次に始まる診断から使われます。",
    "act_content_upload": "文面をアップロード",
    "act_content_publish": "文面を公開",
    "act_content_rollback": "文面を戻す",
}

CONTENT_EN: dict[str, str] = {
    "nav_content": "Content",
    "content_title": "Diagnosis content (versions)",
    "content_note": "Replace the diagnosis' content file (diagnosis.{locale}.toml) here. An upload gets the same "
                    "checks as at start-up and, if it passes, becomes a draft. Try the draft in the browser, "
                    "then publish it.",
    "content_in_use": "In use now",
    "content_deployed": "the deployed file",
    "content_since": "published by {who} on {when}",
    "content_version": "Version",
    "content_hash": "Content id",
    "content_published_by": "First published by",
    "content_published_at": "First published on",
    "content_none": "No version published yet: the deployed file is in use.",
    "content_history": "Published versions",
    "content_rollback": "Go back to this one",
    "content_use_deployed": "Go back to the deployed file",
    "content_active_badge": "in use",
    "content_download": "Download",
    "content_upload_title": "Upload a content file",
    "content_upload_help": "Choose a {locale} file (512 KB at most).",
    "content_upload": "Check it and keep it as a draft",
    "content_upload_none": "Choose a file.",
    "content_problem": "This file cannot be used. Nothing was changed.",
    "content_problem_line": "line {line}",
    "content_problem_noline": "no line",
    "content_draft_title": "Draft",
    "content_draft_ok": "It passed the checks. It is not published yet.",
    "content_draft_try": "Try it in the browser (the diagnosis runs this draft, for your browser only)",
    "content_publish": "Publish",
    "content_draft_gone": "This draft cannot be found (it may have expired). Please upload it again.",
    "content_published": "{label} is published. Diagnoses that start from now on use it.",
    "content_rolled_back": "Back to {label}. Diagnoses that start from now on use it.",
    "content_back_to_deployed": "Back to the deployed file.",
    "content_admin_only": "Only an admin may upload, publish or go back.",
    "content_keep_note": "A diagnosis under way keeps the wording it started with to its end; new wording is used "
                         "from the next diagnosis that starts.",
    "act_content_upload": "Content uploaded",
    "act_content_publish": "Content published",
    "act_content_rollback": "Content rolled back",
}

CONTENT_TEXTS = {"ja": CONTENT_JA, "en": CONTENT_EN}
