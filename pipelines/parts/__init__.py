"""What the tasks are made of: conditioning, decoders, previews, seamless tiling, LoRAs, image prompts, the
fast CPU backend, the seed rule and the parameters a PNG records. A part never imports a task."""
