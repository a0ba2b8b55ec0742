"""What the dashboard pages share (a package, so Streamlit's pages/ discovery does not list it)."""
