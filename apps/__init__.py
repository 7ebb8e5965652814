"""Gradio apps of the lab (the arena arrives with its own issue)."""
