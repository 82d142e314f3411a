"""The app's languages: gettext catalogs, the language in use, and numbers and dates written for it.

English is the source language. Every text a person reads is written in English in the code, inside ``_()``
(or ``N_()`` where it is defined before anyone reads it, and ``_()`` where it is shown); the catalog
``locales/<language>/LC_MESSAGES/mnist.po`` translates it. Babel reads the .po file and compiles it in memory on
first use, so no compiled .mo file is kept in git. To add a language: README, "Adding a language".

The language in use is a context variable: a Streamlit session sets it at the top of each run of its page (a
run has its own thread), the command line from ``--lang`` or ``LANG``, the queue around a job's live lines.
Text cached across sessions must keep the language in its cache key.
"""

from __future__ import annotations

import contextvars
import functools
import gettext
import io
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

LANGUAGES = {"en": "English", "zh_CN": "简体中文"}  # code: the language's own name, as the switch shows it
DEFAULT = "en"
DOMAIN = "mnist"
LOCALES = Path(__file__).parent / "locales"
_language: contextvars.ContextVar[str | None] = contextvars.ContextVar("language", default=None)
# Where no language was set in this thread: asked of the UI (a Streamlit callback or fragment runs in a thread of
# its own, before or without the page's first lines); None: English
_fallback: Callable[[], str | None] | None = None
_PLACEHOLDER = re.compile(r"\{(\w+)(?:![rsa])?(?::[^{}]*)?\}")
# In a saved message, a placeholder stands for one word or number ("8,000,000", "0.01"), except these, which
# may hold a phrase: so that a short message ("step {step}") never swallows a sentence that starts like it.
_PHRASES = {
    "message", "reason", "error", "errors", "problem", "detail", "why", "what", "rule", "text", "name", "study",
    "title", "source", "folder", "path",
}  # fmt: skip


def N_(message: str) -> str:
    """Mark ``message`` for the catalog where it is defined; ``_()`` translates it where it is shown."""
    return message


def catalog_path(language: str) -> Path:
    return LOCALES / language / "LC_MESSAGES" / f"{DOMAIN}.po"


@functools.lru_cache(maxsize=len(LANGUAGES))
def translations(language: str) -> gettext.NullTranslations:
    """The compiled catalog of ``language`` (English: none, the messages are English)."""
    if language == DEFAULT or language not in LANGUAGES:
        return gettext.NullTranslations()
    from babel.messages.mofile import write_mo  # noqa: PLC0415 (only where a translated page is shown)
    from babel.messages.pofile import read_po  # noqa: PLC0415

    with catalog_path(language).open("rb") as po:
        catalog = read_po(po, locale=language, domain=DOMAIN)
    buffer = io.BytesIO()
    write_mo(buffer, catalog)
    buffer.seek(0)
    return gettext.GNUTranslations(buffer)


def language() -> str:
    code = _language.get()
    if code is None and _fallback is not None:
        code = _fallback()
    return code if code in LANGUAGES else DEFAULT


def set_fallback(ask: Callable[[], str | None]) -> None:
    """Where a thread has no language of its own, ``ask()`` names it (ui/language.py: the session's)."""
    global _fallback
    _fallback = ask


def set_language(code: str) -> None:
    """Use ``code`` (one of LANGUAGES, else English) from now on in this thread and what it starts."""
    _language.set(code if code in LANGUAGES else DEFAULT)


@contextmanager
def using(code: str) -> Iterator[None]:
    """Use ``code`` inside the block: the queue writes a job's live lines in its owner's language."""
    token = _language.set(code if code in LANGUAGES else DEFAULT)
    try:
        yield
    finally:
        _language.reset(token)


def _(message: str) -> str:
    """``message`` in the language in use."""
    return translations(language()).gettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    return translations(language()).ngettext(singular, plural, n)


def pgettext(context: str, message: str) -> str:
    """``message`` in the sense ``context`` names, where one English word has two ("step": of a table, of training)."""
    return translations(language()).pgettext(context, message)


def best_match(locale: str | None) -> str:
    """The language for a browser's locale ("zh-CN", "zh", "en-US", None): any Chinese gets Simplified Chinese,
    the only Chinese there is; anything else English."""
    tag = (locale or "").replace("-", "_").lower()
    if tag.startswith("zh"):
        return "zh_CN"
    return DEFAULT


# --------------------------------------------------------------------------- text saved in English


@functools.lru_cache(maxsize=len(LANGUAGES))
def _patterns(language: str) -> list[tuple[re.Pattern, str]]:
    """The catalog's messages with placeholders, as patterns that match them filled in, most specific first."""
    if language == DEFAULT:
        return []
    from babel.messages.pofile import read_po  # noqa: PLC0415

    with catalog_path(language).open("rb") as po:
        catalog = read_po(po, locale=language)
    found = []
    for message in catalog:
        if not isinstance(message.id, str) or not message.string or not _PLACEHOLDER.search(message.id):
            continue
        parts, names, at = [], set(), 0
        for m in _PLACEHOLDER.finditer(message.id):
            parts.append(re.escape(message.id[at : m.start()]))
            name = m.group(1)
            wildcard = ".+?" if name in _PHRASES else r"\S+?"
            parts.append(f"(?P={name})" if name in names else f"(?P<{name}>{wildcard})")
            names.add(name)
            at = m.end()
        parts.append(re.escape(message.id[at:]))
        found.append((re.compile("".join(parts), re.DOTALL), message.id))
    # The most literal text first: a message that is mostly placeholders matches too much to go before it
    return sorted(found, key=lambda p: -len(_PLACEHOLDER.sub("", p[1])))


def stored(text: str) -> str:
    """A message that was saved in English (a run's ending, written by its trainer; a queue's refusal), in the
    language in use: the catalog's message it is, its values put back in; sentence by sentence if the whole is
    none; itself where the catalog has nothing."""
    if language() == DEFAULT or not text:
        return text
    whole = _stored_one(text)
    if whole is not None:
        return whole
    sentences = re.split(r"(?<=[.!?:;])\s+", text)
    if len(sentences) == 1:
        return text
    return " ".join(_stored_one(s) or s for s in sentences)


def _stored_one(text: str) -> str | None:
    catalog = translations(language())
    if (exact := catalog.gettext(text)) != text:
        return exact
    for pattern, message in _patterns(language()):
        if m := pattern.fullmatch(text):
            values = m.groupdict()
            translated = _PLACEHOLDER.sub(lambda p: "{" + p.group(1) + "}", catalog.gettext(message))
            # A phrase may be a message of its own; a word (a field's name, a number) stays as it was written
            return translated.format(**{k: stored(v) if k in _PHRASES else v for k, v in values.items()})
    return None


# --------------------------------------------------------------------------- numbers and dates


def number(value: float, digits: int = 0) -> str:
    """``value`` with the language's grouping and decimal marks, ``digits`` after the point."""
    from babel.numbers import format_decimal  # noqa: PLC0415

    pattern = "#,##0" + ("." + "0" * digits if digits else "")
    return format_decimal(value, format=pattern, locale=language())


def percent(share: float, digits: int = 2) -> str:
    """A share (0.9512) as the language writes a percentage ("95.12%")."""
    from babel.numbers import format_percent  # noqa: PLC0415

    pattern = "#,##0" + ("." + "0" * digits if digits else "") + "%"
    return format_percent(share, format=pattern, locale=language())


def when(moment: datetime) -> str:
    """A date and time as the language writes it: "Dec 7, 2026, 1:05:00 AM" or "2026年12月7日 01:05:00"."""
    from babel.dates import format_datetime  # noqa: PLC0415

    return format_datetime(moment, "medium", locale=language())


# --------------------------------------------------------------------------- the catalogs' upkeep

SOURCES = ("streamlit_app.py", "app_pages", "ui", "mnist_core")  # where the app's texts are written


def extract(root: Path | None = None):
    """Every message the code marks (``_``, ``N_``, ``ngettext``), as a Babel catalog with its places."""
    from babel.messages.catalog import Catalog  # noqa: PLC0415
    from babel.messages.extract import extract_from_file  # noqa: PLC0415

    root = root or Path(__file__).resolve().parents[1]
    catalog = Catalog(domain=DOMAIN, project="mnist-dashboard", msgid_bugs_address=None)
    for source in SOURCES:
        path = root / source
        for file in sorted([path] if path.is_file() else path.rglob("*.py")):
            for line, message, comments, context in extract_from_file("python", str(file)):
                catalog.add(message, None, [(str(file.relative_to(root)), line)], auto_comments=comments,
                            context=context)  # fmt: skip
    return catalog


def update(root: Path | None = None) -> dict[str, int]:
    """Bring every language's .po up to the code: new messages added untranslated, gone ones dropped, the
    translations kept. Returns, per language, how many messages still want a translation."""
    from babel.messages.pofile import read_po, write_po  # noqa: PLC0415

    template = extract(root)
    missing = {}
    for code in LANGUAGES:
        if code == DEFAULT:
            continue
        path = catalog_path(code)
        with path.open("rb") as po:
            catalog = read_po(po, locale=code, domain=DOMAIN)
        catalog.update(template, no_fuzzy_matching=True)
        catalog.obsolete.clear()
        catalog.fuzzy = False
        with path.open("wb") as po:  # places without line numbers: an edit elsewhere in a file changes nothing here
            write_po(po, catalog, width=120, include_previous=False, include_lineno=False)
        missing[code] = sum(1 for m in catalog if m.id and not m.string)
    return missing


if __name__ == "__main__":  # python -m mnist_core.i18n: update the catalogs after changing the app's texts
    for code, count in update().items():
        print(f"{catalog_path(code)}: {count} message(s) to translate")
