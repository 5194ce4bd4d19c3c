"""The studio's look: a theme and a little CSS, passed to `launch()` (Gradio 6 takes them there)."""

import gradio as gr

THEME = gr.themes.Soft(primary_hue="violet", secondary_hue="indigo", neutral_hue="slate")

CSS = """
#studio-header h1 { margin-bottom: 0; }
.studio-device { opacity: 0.7; font-size: 0.9em; }
#txt2img-gallery { min-height: 420px; }
"""
