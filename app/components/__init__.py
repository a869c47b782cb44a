"""Custom Streamlit components (st.components.v2), each with its assets in a folder of the same name."""
