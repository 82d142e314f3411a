"""The visitor's language: the browser's (``st.context.locale``) until they choose one in the sidebar; the choice
is kept in a cookie, so that later pages and refreshes keep it. Imports only Streamlit and the core's i18n: it
runs before anything else draws, also on a cold start."""

from __future__ import annotations

import json

import streamlit as st

from mnist_core.i18n import LANGUAGES, best_match, set_fallback, set_language

LANGUAGE_KEY = "language"  # the session's language code
LANGUAGE_COOKIE = "mnist_language"
# Written by the browser itself: a year, the whole site, never sent elsewhere
_COOKIE_SCRIPT = (
    "<script>"  # untranslated: code
    """
  const secure = location.protocol === "https:" ? "; Secure" : "";
  document.cookie = `%s=${%s}; path=/; max-age=31536000; SameSite=Strict${secure}`;
</script>"""
)


def _cookie() -> str | None:
    value = st.context.cookies.get(LANGUAGE_COOKIE)  # AppTest has no browser, hence no cookies
    return value if value in LANGUAGES else None


def _session_language() -> str | None:
    """The session's language, in a thread of a Streamlit session (a callback, a fragment); else None."""
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    if get_script_run_ctx(suppress_warning=True) is None:
        return None
    return st.session_state.get(LANGUAGE_KEY)


set_fallback(_session_language)


def choose_language() -> str:
    """Set this run's language, before anything is drawn: the session's choice, else the cookie's, else the
    browser's locale; English where none says otherwise."""
    if LANGUAGE_KEY not in st.session_state:
        st.session_state[LANGUAGE_KEY] = _cookie() or best_match(st.context.locale)
    code = st.session_state[LANGUAGE_KEY]
    set_language(code)
    return code


def _chosen() -> None:
    st.session_state["language_cookie_due"] = True


def language_switch() -> None:
    """The sidebar's switch; a change redraws the page in the new language and asks the browser to keep it."""
    st.sidebar.selectbox(
        "Language · 语言",  # untranslated: both at once, so that a visitor who reads only one of them finds it
        list(LANGUAGES),
        format_func=LANGUAGES.get,
        key=LANGUAGE_KEY,
        on_change=_chosen,
    )
    if st.session_state.pop("language_cookie_due", False) and st.context.headers:
        with st.sidebar.container(key="language_cookie"):
            st.html(_COOKIE_SCRIPT % (LANGUAGE_COOKIE, json.dumps(st.session_state[LANGUAGE_KEY])),
                    unsafe_allow_javascript=True)  # fmt: skip
