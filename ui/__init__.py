"""Streamlit helpers shared by the pages: sidebar, cached data set, charts. UI only."""
