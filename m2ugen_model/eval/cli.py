"""``m2ugen-eval``: score a model's answers and music against references; writes ``results.json`` and
``results.md`` (a Markdown table) into ``--out`` and prints the table.

    m2ugen-eval controls requests.jsonl --out ctl/      # the same requests, audio -> silence / another clip
    m2ugen-eval understanding --predictions answers.jsonl [--references refs.jsonl] \\
        [--bertscore-model /models/roberta-large] [--control silence=ctl/silence/results.jsonl \\
        --control swapped=ctl/swapped/results.jsonl] --out eval/qa
    m2ugen-eval generation --generated out/music --reference eval/music [--prompts prompts.jsonl] \\
        [--fad-model /models/clap-htsat-unfused] [--kl-tagger musicnn] [--clap-model /models/clap-htsat-unfused] \\
        --out eval/t2m       # prompts rows may name tempo_bpm, key, chords, instruments, absent: adherence

Models come from local directories only (``HF_HUB_OFFLINE`` is set for the run).
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markdown import Markdown

from m2ugen_model.cli_one_line import run_app
from m2ugen_model.infer.media_io import MAX_AUDIO_SECONDS

app = typer.Typer(add_completion=False, help=__doc__, no_args_is_help=True, pretty_exceptions_enable=False)
console = Console(stderr=True)
Opt = typer.Option


def _finish(report, out: Path) -> None:
    from m2ugen_model.eval.report import markdown, write_report

    js, md = write_report(report, out)
    Console().print(Markdown(markdown(report)))
    console.print(f"wrote {js} and {md}" + (f"; {len(report.failures)} input(s) failed, listed in {js.name}"
                                             if report.failures else ""))


@app.command()
def understanding(
    predictions: Annotated[Path, Opt(help="JSONL/JSON rows: id + prediction|text|answer (+ reference)")],
    out: Annotated[Path, Opt(help="directory for results.json and results.md")],
    references: Annotated[Optional[Path], Opt(help="JSONL/JSON rows: id + reference (str or list); else inline")] = None,
    bertscore_model: Annotated[Optional[Path], Opt(help="local transformers model dir for BERTScore")] = None,
    control: Annotated[Optional[list[str]], Opt(
        help="NAME=PREDICTIONS of the same requests with the audio replaced (m2ugen-eval controls): the report "
        "shows each metric's drop; repeatable (silence=..., swapped=...)")] = None,
) -> None:
    """BLEU, BLEU-4, METEOR, ROUGE-L and BERTScore of answers or captions against references, and how much
    each falls when the audio is replaced by silence or another clip (grounding controls)."""
    from m2ugen_model.eval.run import EvalInputError, evaluate_understanding

    controls = {}
    for spec in control or ():
        name, sep, path = spec.partition("=")
        if not sep or not name or not path:
            raise EvalInputError(f"--control {spec!r}: expected NAME=PREDICTIONS, e.g. silence=ctl/silence/results.jsonl")
        controls[name] = Path(path)
    _finish(evaluate_understanding(predictions, references, bertscore_model, controls), out)


@app.command()
def controls(
    requests: Annotated[Path, typer.Argument(help="m2ugen-infer batch file (JSONL) of caption/answer requests")],
    out: Annotated[Path, Opt(help="directory for silence.jsonl, swapped.jsonl and the silence audio")],
    seed: Annotated[int, Opt(help="seed of the swap (each request gets another request's audio)")] = 0,
    max_audio_seconds: Annotated[float, Opt(min=1.0, help="refuse audio longer than this (m2ugen-infer's "
                                            "--max-audio-seconds)")] = MAX_AUDIO_SECONDS,
) -> None:
    """Write the grounding controls of an understanding run: the same requests with each audio replaced by
    silence, and by another request's audio. Run them with m2ugen-infer batch, then pass their results to
    `m2ugen-eval understanding --control`."""
    from m2ugen_model.eval.grounding import write_controls

    written = write_controls(requests, out, seed=seed, max_audio_seconds=max_audio_seconds)
    for name, path in written.items():
        console.print(f"{name}: {path}\n  m2ugen-infer <model options> batch {path} --out-dir {out / name}")
    console.print("then: m2ugen-eval understanding --predictions <real results.jsonl> " + " ".join(
        f"--control {n}={out / n / 'results.jsonl'}" for n in written) + " --out <dir>")


@app.command()
def generation(
    generated: Annotated[Path, Opt(help="directory of generated audio (wav/flac/mp3/ogg)")],
    out: Annotated[Path, Opt(help="directory for results.json and results.md")],
    reference: Annotated[Optional[Path], Opt(help="directory of reference audio, paired by file stem")] = None,
    prompts: Annotated[Optional[Path], Opt(help="JSONL/JSON rows: id (= file stem) + prompt|text, optionally "
                                           "tempo_bpm, key, chords, instruments, absent (adherence)")] = None,
    fad_model: Annotated[Optional[Path], Opt(help="local CLAP or AST model dir for FAD embeddings")] = None,
    kl_tagger: Annotated[Optional[str], Opt(help="'musicnn' or a local audio-classifier model dir")] = None,
    clap_model: Annotated[Optional[Path], Opt(help="local ClapModel dir for the CLAP score")] = None,
    device: Annotated[str, Opt(help="cpu or cuda")] = "cpu",
    adherence: Annotated[bool, Opt("--adherence/--no-adherence", help="measure the tempo, key, chords and "
                                   "instruments each prompt row names (the data pipeline's analysers)")] = True,
    max_audio_seconds: Annotated[float, Opt(min=1.0, help="a clip longer than this is a recorded failure (judged "
                                            "from its header, before decoding)")] = MAX_AUDIO_SECONDS,
) -> None:
    """FAD, KL over tagger outputs, CLAP score and adherence (did the music get the asked tempo, key, chords,
    instruments) of generated music."""
    from m2ugen_model.eval.run import evaluate_generation

    report = evaluate_generation(generated, reference, prompts=prompts, fad_model=fad_model, tagger=kl_tagger,
                                 clap_model=clap_model, device=device, adherence=adherence,
                                 max_audio_seconds=max_audio_seconds)
    _finish(report, out)


def main() -> None:
    """User errors (missing files or models, unusable inputs) become one line and exit code 2."""
    from m2ugen_model.eval.audio import AudioInputError
    from m2ugen_model.eval.run import EvalInputError
    from m2ugen_model.eval.wordnet import WordNetMissing

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        run_app(app, "m2ugen-eval")
    except (EvalInputError, AudioInputError, WordNetMissing, FileNotFoundError, ValueError) as exc:
        console.print(f"[bold red]error:[/] {str(exc).splitlines()[0]}", highlight=False, soft_wrap=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
