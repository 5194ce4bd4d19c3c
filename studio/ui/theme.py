"""The studio's look: a theme and a little CSS, passed to `launch()` (Gradio 6 takes them there)."""

import gradio as gr

THEME = gr.themes.Soft(primary_hue="violet", secondary_hue="indigo", neutral_hue="slate")

CSS = """
#studio-header h1 { margin-bottom: 0; }
.studio-device { opacity: 0.7; font-size: 0.9em; }
#txt2img-gallery { min-height: 420px; }
/* Style previews: whole names, wrapped under each other rather than cut off */
#style-previews .caption-label {
  white-space: normal; overflow: visible; text-overflow: clip; max-width: 94%;
  font-size: 12px; line-height: 1.25; text-align: center;
}
.grid-status { min-height: 1.5em; }
/* A failed run's status line says what went wrong: Gradio's bare "Error" badge would only cover its words */
.grid-status > [data-testid="status-tracker"]:has(.error) { display: none; }
.one-line { white-space: nowrap; }
/* Generate, Reroll and Stop share a row: each label stays on one line, in any language, on a phone too */
.run-buttons button { white-space: nowrap; overflow: hidden; text-overflow: ellipsis; padding-inline: 0.5em; }
/* History: a page is a grid of small thumbnails however few results it has (Gradio narrows it to them) */
#history-gallery .grid-container { --grid-cols: 8 !important; }
#history-gallery .thumbnail-item { aspect-ratio: 1; }
/* On a phone the inpaint editor's zoom bar would cover its label (the instruction): it moves below it */
@media (max-width: 480px) { #inpaint-editor .top-panel { top: 40px; } }
/* A live frame made at half size on a CPU is shown scaled up to the frame's box */
#live-frame img { width: 100%; height: 100%; object-fit: contain; }
"""
