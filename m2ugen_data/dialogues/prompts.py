"""MPT-7B-chat prompts in its ChatML format: one system prompt per dataset and per side.

Following the paper, the human side turns the captions into a request ("Change the ... to ..." for MUEdit,
"Generate a music for the image/video that is ..." for MUImage/MUVideo) and the model side into an answer
"Here is a music that is ...". Unlike the reference scripts, the MUEdit prompt also lists the measured
changes, so a model can name a real difference, which the validator then demands.
"""

from __future__ import annotations

from collections.abc import Callable

from m2ugen_data.dialogues.samples import DialogueSample

SIDES = ("human", "gpt")
GPT_PREFIX = "Here is a music that is"
STOP = ("<|im_end|>", "<|endoftext|>")

_COMMON = "- Answer with exactly one line and nothing else: no lists, no quotes, no role names"

SYSTEM_PROMPTS: dict[tuple[str, str], str] = {
    ("muedit", "human"): "\n".join(
        [
            "- You are given descriptions of a source music, of the music it should become, and the measured changes",
            "- Write a single-line instruction that asks to change the source music into the other one",
            "- Use an imperative sentence such as 'Change the ... to ...', 'Add ...', 'Remove ...' or 'Make it ...'",
            "- Name at least one of the measured changes; do not use the words input or target",
            _COMMON,
        ]
    ),
    ("muedit", "gpt"): "\n".join(
        [
            "- You are given descriptions of a source music and of the music it should become",
            f"- Write a single-line answer of the form '{GPT_PREFIX} ....' describing the new music",
            "- Complete the answer based on the description of the new music",
            _COMMON,
        ]
    ),
}
for _dataset, _kind in (("muimage", "image"), ("muvideo", "video")):
    SYSTEM_PROMPTS[(_dataset, "human")] = "\n".join(
        [
            f"- You are given a description of a music and of {'an' if _kind == 'image' else 'a'} {_kind}",
            f"- Write a single-line instruction of the form 'Generate a music for the {_kind} that is ....'",
            f"- Complete the instruction based on the music and {_kind} descriptions",
            _COMMON,
        ]
    )
    SYSTEM_PROMPTS[(_dataset, "gpt")] = "\n".join(
        [
            f"- You are given a description of a music and of {'an' if _kind == 'image' else 'a'} {_kind}",
            f"- Write a single-line answer of the form '{GPT_PREFIX} ....' that fits the {_kind}",
            f"- Complete the answer based on the music and {_kind} descriptions",
            _COMMON,
        ]
    )


def user_message(sample: DialogueSample) -> str:
    if sample.dataset == "muedit":
        assert sample.diff is not None
        return (
            f"Source music: {sample.input_caption}\n"
            f"New music: {sample.output_caption}\n"
            f"Measured changes: {sample.diff.describe()}"
        )
    return f"Music: {sample.output_caption}\n{sample.visual.capitalize()}: {sample.input_caption}"


def chatml(system: str, user: str) -> str:
    """MPT-7B-chat's conversation format, ending where the assistant's reply begins."""
    return f"<|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n"


def build_prompt(sample: DialogueSample, side: str, render: Callable[[str, str], str] = chatml) -> str:
    return render(SYSTEM_PROMPTS[(sample.dataset, side)], user_message(sample))


def build_prompts(sample: DialogueSample, render: Callable[[str, str], str] = chatml) -> dict[str, str]:
    """Both sides' prompts (they share the user message); ``render`` is the model's chat format
    (``chat_format.PromptFormat.render``), MPT's ChatML by default."""
    user = user_message(sample)
    return {side: render(SYSTEM_PROMPTS[(sample.dataset, side)], user) for side in SIDES}
