"""AppTest tests of the Streamlit app: pages, tabs, URLs, server state and paths, charts."""
