"""Checks every generated turn must pass before it is kept; each failure is a short reason code.

The reference pipeline kept the last line of whatever MPT returned. Here a turn is one clean line of sane
length, the answer opens like an answer ("Here is a music that is", "Here's", "I wrote" ...), the request
asks (an imperative, or "Could you ...", "I'd like ...") without the words input/target, nothing of the
chat template leaks, a MUEdit request names a change that was measured, and no turn has a defect of
``text_quality`` (its rule's name is the reason).
"""

from __future__ import annotations

import re

from m2ugen_data.facts.measured import tempo_word
from m2ugen_data.dialogues.prompts import GPT_PREFIX, STOP
from m2ugen_data.dialogues.samples import EditDiff
from m2ugen_data.dialogues.text_quality import defects

MIN_CHARS = 8  # "Add harp." is a complete edit request
MAX_CHARS = 400

# First words that make a sentence an imperative request (lowercase); "please" may precede any of them.
IMPERATIVE_VERBS = frozenset(
    """add adjust alter boost bring change come compose convert create cut drop emphasize generate get give go increase
    introduce keep layer lead leave let lower make move play produce put raise reduce remove replace rework
    score set shift slow speed strip substitute swap switch take trade transform transpose turn use work
    write""".split()
)
# Openings that ask without an imperative verb (lowercase, apostrophes as typed).
REQUEST_OPENERS = (
    "can you", "could you", "would you", "will you", "can i", "could i", "may i", "any chance",
    "i'd like", "i would like", "i'd love", "i want", "i need", "i'm looking for", "i am looking for", "i'm after",
)  # fmt: skip
# How an answer that delivers music opens (the paper's "Here is a music that is" among them).
ANSWER_OPENERS = (
    "here is", "here's", "here it is", "here you go", "this is", "i wrote", "i made", "i composed", "i came up with",
    "i went with", "i reworked", "how about", "try this",
)  # fmt: skip
_SENTENCE = re.compile(r"(?<=[.!?])\s+")
_FORBIDDEN = re.compile(r"\b(input|target)s?\b", re.IGNORECASE)
_LEAKS = re.compile(
    r"<\|[a-z_]+\|>|</?s>|\[/?INST\]|###\s*\w+|^\s*\w+\s*:|\b(assistant|user|system|human|gpt)\s*:",
    re.IGNORECASE,
)
_WORD = re.compile(r"[a-z]+")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\ufffd]")


def clean_output(text: str) -> str:
    """Strip what every backend may leave around an answer: stop strings, whitespace, wrapping quotes."""
    for stop in STOP:
        i = text.find(stop)
        if i >= 0:
            text = text[:i]
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        text = text[1:-1].strip()
    return text


def _common(text: str) -> list[str]:
    if not text:
        return ["empty"]
    reasons = []
    if "\n" in text or "\r" in text:
        reasons.append("multiline")
    if _CONTROL.search(text):
        reasons.append("non_text")
    if len(text) < MIN_CHARS:
        reasons.append("too_short")
    elif len(text) > MAX_CHARS:
        reasons.append("too_long")
    if any(c in text for c in "<:#[") and _LEAKS.search(text):  # every leak pattern has one of these
        reasons.append("template_leak")
    return reasons + defects(text)


def difference_terms(diff: EditDiff) -> list[str]:
    """Words or phrases any one of which shows that a text names a measured change."""
    terms = [*diff.added_instruments, *diff.removed_instruments, *diff.added_moods, *diff.added_genres]
    if diff.tempo_change:
        terms += [diff.tempo_change, "speed", "slow", "tempo", f"{round(diff.tempo_tgt)} bpm"]
        if tempo_word(diff.tempo_tgt) != tempo_word(diff.tempo_src):
            terms.append(tempo_word(diff.tempo_tgt))
    if diff.key_changed:
        terms += [diff.key_tgt, "transpose", "key"]
        src_mode, tgt_mode = diff.key_src.split()[-1], diff.key_tgt.split()[-1]
        if src_mode != tgt_mode:
            terms.append(tgt_mode)
    return [t.lower() for t in terms if t]


def _has_phrase(text: str, phrase: str) -> bool:
    """``phrase`` occurs in ``text`` as whole words (no letter right before or after it)."""
    start = text.find(phrase)
    while start >= 0:
        end = start + len(phrase)
        if (start == 0 or not text[start - 1].isalpha()) and (end == len(text) or not text[end].isalpha()):
            return True
        start = text.find(phrase, start + 1)
    return False


def mentions_difference(text: str, diff: EditDiff) -> bool:
    low = text.lower()
    return any(_has_phrase(low, t) for t in difference_terms(diff))


def _asks(sentence: str) -> bool:
    """An imperative ("Add ...", "Please add ...") or a request opener ("Could you ...", "I'd like ...")."""
    low = sentence.lower().replace("\u2019", "'")
    if low.startswith(REQUEST_OPENERS):
        return True
    words = _WORD.findall(low[:40])[:2]
    if words[:1] == ["please"]:
        words = words[1:]
    return bool(words) and words[0] in IMPERATIVE_VERBS


def validate_human(text: str, diff: EditDiff | None = None) -> list[str]:
    reasons = _common(text)
    if reasons[:1] == ["empty"]:
        return reasons
    if _FORBIDDEN.search(text):
        reasons.append("forbidden_word")
    if not any(_asks(sentence) for sentence in _SENTENCE.split(text)):
        reasons.append("not_imperative")
    if diff is not None and not mentions_difference(text, diff):
        reasons.append("no_measured_difference")
    return reasons


def validate_gpt(text: str) -> list[str]:
    reasons = _common(text)
    if reasons[:1] == ["empty"]:
        return reasons
    opener = next((o for o in ANSWER_OPENERS if text.lower().replace("\u2019", "'").startswith(o)), None)
    if opener is None:
        reasons.append("missing_prefix")
    elif len(text[len(GPT_PREFIX if text.startswith(GPT_PREFIX) else opener) :].strip(" .:")) < 3:
        reasons.append("too_short")
    return sorted(set(reasons), key=reasons.index)


def validate_turn(side: str, text: str, diff: EditDiff | None = None) -> list[str]:
    """Reason codes for one turn (empty when the turn is acceptable)."""
    return validate_human(text, diff) if side == "human" else validate_gpt(text)
