"""The repository's shape: what must not appear where Streamlit would pick it up by itself."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_no_pages_folder_beside_the_entry_point():
    """Streamlit treats a pages/ folder next to streamlit_app.py as its legacy multipage app: a cold deep link
    to /Data would then run that page alone, without the entry point's navigation and sidebar. The pages live
    in app_pages/ and are listed by st.navigation in streamlit_app.py."""
    assert not (ROOT / "pages").exists(), "move the pages to app_pages/ and list them in streamlit_app.py"
    assert sorted(p.name for p in (ROOT / "app_pages").glob("*.py"))  # and the pages are where they belong
