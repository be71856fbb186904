"""Two-turn instruction dialogues (MUEdit, MUImage, MUVideo): prompts, backends, validation, writer."""
