"""The Streamlit user interface: one module per sidebar/tab, each drawing widgets for one config."""
