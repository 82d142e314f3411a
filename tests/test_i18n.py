"""The app in English and Simplified Chinese: complete catalogs, no text outside them, the language chosen."""

from __future__ import annotations

import ast
import re
from datetime import datetime
from pathlib import Path

import pytest
from babel.messages.pofile import read_po
from streamlit.testing.v1 import AppTest

from mnist_core import i18n

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "streamlit_app.py")
PLACEHOLDER = re.compile(r"\{(\w+)")
# Streamlit calls whose first argument (or these keywords) a visitor reads
SHOWN = {
    "title", "header", "subheader", "markdown", "caption", "text", "write", "info", "warning", "error", "success",
    "button", "toggle", "checkbox", "radio", "selectbox", "multiselect", "slider", "select_slider", "number_input",
    "text_input", "text_area", "file_uploader", "expander", "popover", "metric", "download_button", "page_link",
    "form_submit_button", "spinner", "toast", "tabs", "status", "segmented_control", "pills", "chat_input",
}  # fmt: skip
SHOWN_KEYWORDS = {"label", "help", "caption", "placeholder", "title", "text", "body", "show_spinner"}
NOT_SHOWN_KEYWORDS = {
    "key", "type", "language", "icon", "format", "mime", "file_name", "selection_mode", "on_select",
    "vertical_alignment", "gap", "width", "persist_state", "unsafe_allow_html", "url_path",
}  # fmt: skip
MARKERS = {"_", "N_", "ngettext"}
PROSE = re.compile(r"[A-Za-z]{2,}[,.:;!?'’]?\s+[A-Za-z]{2,}")  # two words and a space: prose, not a key or a path


def catalog(code: str):
    with i18n.catalog_path(code).open("rb") as po:
        return read_po(po, locale=code)


def test_every_message_of_the_app_is_translated_in_every_language():
    """English is the messages themselves; every other language's catalog holds each message the code marks,
    translated (not fuzzy), with the same placeholders, and nothing the code no longer says."""
    wanted = {m.id for m in i18n.extract() if m.id}
    assert len(wanted) > 100
    for code in i18n.LANGUAGES:
        if code == i18n.DEFAULT:
            continue
        have = {m.id: m for m in catalog(code) if m.id}
        missing = sorted(wanted - have.keys())
        assert not missing, (
            f"{code}: {len(missing)} messages not in the catalog (python -m mnist_core.i18n): {missing[:5]}"
        )
        untranslated = sorted(i for i in wanted if not have[i].string or have[i].fuzzy)
        assert not untranslated, f"{code}: {len(untranslated)} untranslated, e.g. {untranslated[:5]}"
        stale = sorted(have.keys() - wanted)
        assert not stale, f"{code}: messages the code no longer has: {stale[:5]}"
        for message in have.values():
            source, translated = (message.id, message.string) if isinstance(message.id, str) else (
                message.id[0], message.string[0])  # fmt: skip
            assert set(PLACEHOLDER.findall(source)) == set(PLACEHOLDER.findall(translated)), (code, source)


def _text_outside_the_catalog(path: Path) -> list[str]:
    """Strings in ``path`` that a visitor would read, not marked for the catalog."""
    source = path.read_text()
    lines = source.splitlines()
    tree = ast.parse(source)
    exempt: set[int] = set()  # ids of nodes that are fine: docstrings, marked text, keys, code
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr):
            if isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
                exempt.add(id(body[0].value))  # a docstring
        if isinstance(node, ast.Call):
            name = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", "")
            if name in MARKERS or name in {"code", "html", "latex", "get", "pop", "setdefault"}:
                exempt.update(id(n) for arg in node.args for n in ast.walk(arg) if isinstance(n, ast.Constant))
            for kw in node.keywords:
                if kw.arg in NOT_SHOWN_KEYWORDS:
                    exempt.update(id(n) for n in ast.walk(kw.value))
        if isinstance(node, ast.Subscript):
            exempt.update(id(n) for n in ast.walk(node.slice))
        if isinstance(node, ast.Compare):
            exempt.update(id(n) for n in ast.walk(node) if isinstance(n, ast.Constant))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            name = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", "")
            if name in MARKERS and node.args and isinstance(node.args[0], ast.JoinedStr):
                found.append(f"{path.name}:{node.lineno}: an f-string as a message (use .format)")
            shown = list(node.args[:1]) if name in SHOWN else []
            shown += [kw.value for kw in node.keywords if kw.arg in SHOWN_KEYWORDS]
            for arg in shown:
                text = arg.value if isinstance(arg, ast.Constant) else None
                if isinstance(text, str) and re.search("[A-Za-z]{2,}", text) and id(arg) not in exempt:
                    if "# untranslated" not in lines[arg.lineno - 1]:
                        found.append(f"{path.name}:{arg.lineno}: {text[:60]!r}")
                    exempt.add(id(arg))
        parts = []
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in exempt:
            parts = [node]
        for part in parts:
            if PROSE.search(part.value) and "# untranslated" not in lines[part.lineno - 1]:
                found.append(f"{path.name}:{part.lineno}: {part.value[:60]!r}")
    return found


def test_no_text_on_a_page_is_outside_the_catalog():
    """Every label, message and caption of the pages and their helpers is marked for translation; a string that
    a visitor never reads as prose (code, CSS, a key) says so with an ``# untranslated`` comment on its line."""
    files = [ROOT / "streamlit_app.py", *sorted((ROOT / "app_pages").glob("*.py")), *sorted((ROOT / "ui").glob("*.py"))]
    found = [hit for path in files for hit in _text_outside_the_catalog(path)]
    assert not found, f"{len(found)} texts outside the catalog:\n" + "\n".join(found[:40])


def test_no_message_is_hidden_inside_an_f_string():
    """Babel's extractor does not look inside f-strings: ``f"{_('x')}"`` would never reach the catalog."""
    hidden = []
    for source in i18n.SOURCES:
        path = ROOT / source
        for file in [path] if path.is_file() else sorted(path.rglob("*.py")):
            for node in ast.walk(ast.parse(file.read_text())):
                if isinstance(node, ast.JoinedStr):
                    for call in ast.walk(node):
                        name = getattr(getattr(call, "func", None), "id", None)
                        if name in MARKERS and call.args and isinstance(call.args[0], ast.Constant):
                            hidden.append(f"{file.name}:{call.lineno}: {call.args[0].value!r}")
    assert not hidden, hidden


def test_a_message_saved_in_english_is_shown_in_the_readers_language():
    """A run's ending is written by its trainer in English; a reader of Chinese reads it in Chinese, values and
    all, sentence by sentence; text the catalog does not know stays as it is."""
    with i18n.using("zh_CN"):
        limit = i18n.stored("Reached this server's limit of 8,000,000 images per run")
        assert "8,000,000" in limit and "Reached" not in limit
        assert i18n.stored("Stopped by the user") != "Stopped by the user"
        assert i18n.stored("something no catalog has") == "something no catalog has"
    assert i18n.stored("Stopped by the user") == "Stopped by the user"


def test_numbers_and_dates_are_written_for_the_language():
    moment = datetime(2026, 12, 7, 13, 5)
    assert i18n.number(60000) == "60,000" and i18n.percent(0.9512) == "95.12%"
    assert i18n.when(moment).startswith("Dec 7, 2026")
    with i18n.using("zh_CN"):
        assert i18n.number(60000) == "60,000" and i18n.percent(0.9512) == "95.12%"
        assert i18n.when(moment).startswith("2026年12月7日")


@pytest.mark.parametrize(("locale", "code"), [("zh-CN", "zh_CN"), ("zh", "zh_CN"), ("en-US", "en"), (None, "en")])
def test_the_browsers_language_is_the_default(locale, code):
    assert i18n.best_match(locale) == code


def test_the_home_page_in_chinese_and_the_switch_back(runs_dir):
    at = AppTest.from_file(APP, default_timeout=120)
    at.session_state["language"] = "zh_CN"
    at.run()
    assert not at.exception, at.exception
    assert at.title[0].value == "看神经网络学习"
    assert at.selectbox(key="language").value == "zh_CN"
    at.selectbox(key="language").set_value("en").run()
    assert at.title[0].value == "Watch a neural network learn"


def test_a_callback_and_a_fragment_speak_the_sessions_language(runs_dir):
    """A button's callback runs before the page's first line, and a fragment reruns alone: both in the
    session's language (i18n's fallback asks the session). A run started in Chinese records Chinese, so its
    live lines are written in it."""
    from ui.state import job_queue

    at = AppTest.from_file(APP, default_timeout=120)
    at.session_state["language"] = "zh_CN"
    # AppTest formats a radio's options again in this thread (its format_func): in the page's language too
    with i18n.using("zh_CN"):
        at.run()
        at.switch_page("app_pages/3_Train.py").run()
        at.slider(key="keep_epochs").set_value(1).run()
        next(b for b in at.button if b.label == i18n._("Start training")).click().run()
    assert not at.exception, at.exception
    job = job_queue().latest_of(at.session_state["owner"])
    assert job is not None and job.language == "zh_CN"


def test_a_saved_message_keeps_its_words_and_translates_its_phrases():
    with i18n.using("zh_CN"):
        assert "status" in i18n.stored("run.json: status is missing.")  # a field's name is not translated


def test_the_runs_table_writes_when_a_run_started_in_the_readers_language(runs_dir, blobs):
    from helpers import trained_run

    trained_run(runs_dir, blobs, epochs=1)
    for code, written in (("en", r"[A-Z][a-z]{2} \d{1,2}, \d{4}, "), ("zh_CN", r"\d{4}年\d{1,2}月\d{1,2}日 ")):
        at = AppTest.from_file(APP, default_timeout=120)
        at.session_state["language"] = code
        with i18n.using(code):
            at.run()
            at.switch_page("app_pages/5_Runs.py").run()
        assert not at.exception, at.exception
        (started,) = at.dataframe[0].value["started"]
        assert re.match(written, started), started
