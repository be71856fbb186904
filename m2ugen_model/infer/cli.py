"""``m2ugen-infer``: answer questions about music and make music with a trained M2UGen, from local weights.

    m2ugen-infer --weights-dir W [--checkpoint runs/s3] caption song.flac
    m2ugen-infer --weights-dir W answer song.flac "Which instruments play?"
    m2ugen-infer --weights-dir W compose "An upbeat jazz tune" --out-dir out/
    m2ugen-infer --weights-dir W compose "Music for this picture" --image beach.jpg --out-dir out/
    m2ugen-infer --weights-dir W edit song.flac "Replace the piano with a violin" --out-dir out/
    m2ugen-infer --weights-dir W batch requests.jsonl --out-dir out/
    m2ugen-infer --preset 7b --llama-dir ... --mert-dir ... [--checkpoint ckpt.pth] check   # no GPU needed

Model options go before the command. Music commands write ``<id>.wav`` and ``<id>.json`` (the text, the
inputs and the conditioning used); ``batch`` writes one JSON per request, a failed one with its error,
resumes by skipping requests already done, and ends with ``results.jsonl``.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, Optional

import typer
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from rich.console import Console

from m2ugen_model.cli_one_line import run_app
from m2ugen_model.errors import InferenceError, one_line
from m2ugen_model.infer.load import ModelSpec, load_for_inference
from m2ugen_model.infer.media_io import MAX_AUDIO_SECONDS, MAX_VIDEO_FRAMES

HELP = """Answer questions about music and make music with a trained M2UGen, from local weights.

Model options go before the command. Music commands write <id>.wav and <id>.json (the text, the inputs
and the conditioning used); batch writes one JSON per request (a failed one with its error), skips
requests already done, and ends with results.jsonl. Examples: see the README, section "Use the model".
"""
app = typer.Typer(add_completion=False, help=HELP, no_args_is_help=True, rich_markup_mode=None)
console = Console(stderr=True)
Opt = typer.Option

MAX_STEPS = 1000  # AudioLDM2's scheduler was trained on 1000 steps: more only costs time
MUSIC_TASKS = ("text2music", "image2music", "video2music", "edit")
DEFAULT_PROMPTS = {"image2music": "Generate a music for this image.",
                   "video2music": "Generate a music for this video."}
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
# Music length: at least one decoder frame's worth, at most what the decoders make in one go (MusicGen's
# positions run out near 40 s; a request for hours once ran out of memory instead of being refused).
MUSIC_SECONDS = (0.01, 60.0)


class InferRequest(BaseModel):
    """One line of a batch file (media paths relative to the file's directory)."""

    model_config = ConfigDict(extra="forbid")

    id: str
    task: Literal["caption", "answer", "text2music", "image2music", "video2music", "edit"]
    prompt: Optional[str] = None
    audio: Optional[str] = None
    image: Optional[str] = None
    video: Optional[str] = None
    seconds: Optional[float] = Field(None, ge=MUSIC_SECONDS[0], le=MUSIC_SECONDS[1])
    seed: Optional[int] = None

    @field_validator("id")
    @classmethod
    def _safe_id(cls, v: str) -> str:
        if not _ID.fullmatch(v) or ".." in v:
            raise ValueError(f"id {v!r} must be 1-128 of A-Z a-z 0-9 _ . - (it names the output files)")
        return v

    @model_validator(mode="after")
    def _inputs_fit_task(self) -> InferRequest:
        need = {"caption": ("audio",), "answer": ("audio", "prompt"), "text2music": ("prompt",),
                "image2music": ("image",), "video2music": ("video",), "edit": ("audio", "prompt")}[self.task]
        missing = [k for k in need if not getattr(self, k)]
        if missing:
            raise ValueError(f"task {self.task} needs {' and '.join(missing)}")
        return self


@dataclass
class Settings:
    """How text and music are generated (the same for every request of a run)."""

    max_new_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 0.75
    seconds: float = 10.0
    guidance_scale: float = 3.0
    decoder_conditioning: str = "projector"
    mask_padding: bool = True
    seed: int = 0
    steps: int = 200  # AudioLDM2 denoising steps
    max_audio_seconds: float = MAX_AUDIO_SECONDS  # longer input audio is refused
    max_video_frames: int = MAX_VIDEO_FRAMES  # longer input video is refused
    decoder_kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass
class Session:
    spec: ModelSpec
    settings: Settings
    loaded: tuple[Any, Any, dict] | None = None

    def model(self) -> tuple[Any, Any, dict]:
        if self.loaded is None:
            self.loaded = load_for_inference(self.spec)
        return self.loaded


def _write_json(path: Path, record: dict) -> None:
    from m2ugen_model.atomic import write_atomic

    write_atomic(path, lambda tmp: Path(tmp).write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n"))


def _write_wav(path: Path, audio, sr: int) -> None:
    import soundfile as sf

    from m2ugen_model.atomic import write_atomic

    write_atomic(path, lambda tmp: sf.write(tmp, audio, sr, format="WAV", subtype="FLOAT"))


def _resolve(p: str | None, base: Path | None) -> str | None:
    if p is None or base is None or Path(p).is_absolute():
        return p
    return str(base / p)


def run_request(session: Session, req: InferRequest, out_dir: Path | None, base: Path | None = None) -> dict:
    """Run one request; writes `<id>.wav` (music tasks) and `<id>.json` under out_dir. Returns the record.
    Bad input raises InferenceError / MediaInputError / PromptTooLongError (one line each)."""
    from m2ugen_model.infer.inference import CAPTION_QUESTION, encode_inputs, generate_batch
    from m2ugen_model.infer.media_io import read_audio, read_image, read_video

    paths = {k: _resolve(getattr(req, k), base) for k in ("audio", "image", "video")}
    # Media first: a bad file fails in a second, before minutes of model loading.
    audio = sr = image = video = None
    if paths["audio"]:
        audio, sr = read_audio(paths["audio"], max_seconds=session.settings.max_audio_seconds)
    if paths["image"]:
        image = read_image(paths["image"])
    model, tok, info = session.model()
    if paths["video"]:
        video = read_video(paths["video"], frames=model.cfg.video_frames, sampling=model.cfg.video_sampling,
                           max_frames=session.settings.max_video_frames)
    t0 = time.perf_counter()
    s = session.settings
    enc = model.encoders
    for kind, attr in (("audio", "mert"), ("image", "vit"), ("video", "vivit")):
        if paths[kind] and (enc is None or getattr(enc, attr) is None):
            raise InferenceError(f"request {req.id} has {kind} input but no {kind} encoder is loaded "
                                 f"(--{attr}-dir, or {attr}_dir in preset.json)")
    if req.task in MUSIC_TASKS and model.decoder is None:
        raise InferenceError(f"request {req.id} asks for music but no music decoder is loaded (--decoder-dir)")
    prompt = req.prompt or DEFAULT_PROMPTS.get(req.task) or CAPTION_QUESTION
    music = req.task in MUSIC_TASKS
    seed = req.seed if req.seed is not None else s.seed
    seconds = req.seconds or s.seconds
    from m2ugen_model.infer.inference import check_prompt_fits, prompt_ids

    check_prompt_fits(model, len(prompt_ids(tok, prompt, input_text=model.cfg.prompt_input)),
                      max(s.max_new_tokens, model.cfg.n_aud_tokens))
    feats = encode_inputs(model, None if audio is None else [audio], sr, None if image is None else [image],
                          None if video is None else [video])
    dkw = dict(s.decoder_kwargs)
    if model.decoder is not None and model.decoder.kind == "audioldm2":
        dkw.setdefault("num_inference_steps", s.steps)
    res = generate_batch(model, tok, [prompt], feats, max_new_tokens=s.max_new_tokens, temperature=s.temperature,
                         top_p=s.top_p, music_seconds=seconds, force_aud=music,
                         decoder_conditioning=s.decoder_conditioning, guidance_scale=s.guidance_scale,
                         mask_padding=s.mask_padding, seed=seed, decoder_kwargs=dkw)[0]
    aud = model.cfg.vocab_size
    record: dict[str, Any] = {
        "id": req.id, "task": req.task, "status": "ok", "prompt": prompt,
        "inputs": {k: v for k, v in paths.items() if v}, "answer": res.text,
        "aud_emitted": aud in res.token_ids and not res.aud_forced, "aud_forced": res.aud_forced,
        "generation": {"max_new_tokens": s.max_new_tokens, "temperature": s.temperature, "top_p": s.top_p,
                       "seed": seed},
        "model": info,
    }
    if music:
        if res.music is None:
            raise InferenceError(f"request {req.id}: the model produced no [AUD] conditioning")
        record["music"] = {
            "file": f"{req.id}.wav", "sample_rate": res.sample_rate, "seconds": round(len(res.music) / res.sample_rate, 3),
            "decoder": model.decoder.kind, "conditioning": res.conditioning, "decoder_text": res.decoder_text,
            "guidance_scale": s.guidance_scale, "attended_tokens": res.mask_tokens,
            "conditioning_shape": list(res.music_embeds.shape), **({"steps": dkw["num_inference_steps"]}
                                                                   if "num_inference_steps" in dkw else {}),
        }
    record["elapsed_s"] = round(time.perf_counter() - t0, 3)
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        if music:
            _write_wav(out_dir / f"{req.id}.wav", res.music, res.sample_rate)
        _write_json(out_dir / f"{req.id}.json", record)
    return record


# ---------------------------------------------------------------- commands
@app.callback()
def main_options(
    ctx: typer.Context,
    weights_dir: Annotated[Optional[str], Opt(help="directory with preset.json (and the weight dirs it names)")] = None,
    preset: Annotated[str, Opt(help="without --weights-dir: 7b (M2UGen) or mu_llama_7b")] = "7b",
    llama_dir: Annotated[Optional[str], Opt(help="LLaMA-2: HF (config.json) or Meta (consolidated.*.pth) layout")] = None,
    mert_dir: Annotated[Optional[str], Opt(help="MERT-v1-330M (music understanding)")] = None,
    vit_dir: Annotated[Optional[str], Opt(help="ViT-B/16 (image input)")] = None,
    vivit_dir: Annotated[Optional[str], Opt(help="ViViT-B 16x2 (video input)")] = None,
    decoder_dir: Annotated[Optional[str], Opt(help="MusicGen or AudioLDM2 (music output)")] = None,
    decoder: Annotated[str, Opt(help="7b preset: musicgen or audioldm2")] = "musicgen",
    checkpoint: Annotated[Optional[str], Opt(help="our checkpoint dir / run dir / .safetensors, or a released .pth")] = None,
    device: Annotated[str, Opt(help="auto (the GPU when there is one), cpu, cuda, cuda:1 ...")] = "auto",
    dtype: Annotated[str, Opt(help="auto (bf16 on a GPU, fp32 on the CPU), bf16, fp16 or fp32")] = "auto",
    load_in_8bit: Annotated[bool, Opt("--load-in-8bit", help="LLaMA weights in int8 (bitsandbytes, CUDA)")] = False,
    offload_layers: Annotated[int, Opt(min=0, help="keep this many LLaMA blocks in CPU memory (accelerate)")] = 0,
    max_new_tokens: Annotated[int, Opt(min=1)] = 256,
    temperature: Annotated[float, Opt(min=0.0, help="0 = greedy")] = 0.0,
    top_p: Annotated[float, Opt(min=0.0, max=1.0, help="nucleus sampling: the likeliest tokens up to this mass")] = 0.75,
    seconds: Annotated[float, Opt(min=MUSIC_SECONDS[0], max=MUSIC_SECONDS[1], help="music length")] = 10.0,
    guidance_scale: Annotated[float, Opt(help="classifier-free guidance of the decoder (<= 1: off)")] = 3.0,
    decoder_conditioning: Annotated[str, Opt(help="projector (the [AUD] states) or text (the answer, as released)")] = "projector",
    mask_padding: Annotated[bool, Opt("--mask-padding/--no-mask-padding", help="mask conditioning past the answer's length")] = True,
    steps: Annotated[int, Opt(min=1, max=MAX_STEPS, help="AudioLDM2 denoising steps")] = 200,
    seed: Annotated[int, Opt()] = 0,
    max_audio_seconds: Annotated[float, Opt(min=1.0, help="refuse input audio longer than this (decoded "
                                            "whole: ~4 bytes per sample)")] = MAX_AUDIO_SECONDS,
    max_video_frames: Annotated[int, Opt(min=1, help="refuse input video with more frames than this")] = MAX_VIDEO_FRAMES,
) -> None:
    """Model and generation options (before the command)."""
    if decoder_conditioning not in ("projector", "text"):
        _fail(f"--decoder-conditioning must be projector or text, not {decoder_conditioning!r}")
    paths = {"llama_dir": llama_dir, "mert_dir": mert_dir, "vit_dir": vit_dir, "vivit_dir": vivit_dir,
             "decoder_dir": decoder_dir}
    spec = ModelSpec(weights_dir=weights_dir, preset=preset, paths=paths, decoder=decoder, checkpoint=checkpoint,
                     device=device, dtype=dtype, load_in_8bit=load_in_8bit, offload_layers=offload_layers)
    settings = Settings(max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, seconds=seconds,
                        guidance_scale=guidance_scale, decoder_conditioning=decoder_conditioning,
                        mask_padding=mask_padding, seed=seed, steps=steps, max_audio_seconds=max_audio_seconds,
                        max_video_frames=max_video_frames)
    ctx.obj = Session(spec, settings)


def _fail(message: str) -> None:
    console.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True, markup=True)
    raise typer.Exit(2)


def _single(ctx: typer.Context, out_dir: Optional[Path], **fields: Any) -> dict:
    from m2ugen_model.infer.inference import PromptTooLongError
    from m2ugen_model.infer.media_io import MediaInputError

    try:
        req = InferRequest(**{k: v for k, v in fields.items() if v is not None})
        return run_request(ctx.obj, req, out_dir)
    except ValidationError as exc:
        _fail(exc.errors()[0]["msg"])
    except (InferenceError, MediaInputError, PromptTooLongError) as exc:
        _fail(one_line(exc))
    raise AssertionError("unreachable")


IdOpt = Annotated[str, Opt("--id", help="names the output files")]
OutOpt = Annotated[Optional[Path], Opt(help="write <id>.json (and <id>.wav) here")]


@app.command()
def check(ctx: typer.Context) -> None:
    """Check every weight directory, tokenizer, checkpoint and library the options name, in seconds and without a
    GPU (run it on the login node before queueing): one table of what is missing, each with its fix; exit 1 when
    something blocks."""
    from m2ugen_model.infer.load import plan_for
    from m2ugen_model.preflight import plan as preflight
    from m2ugen_model.preflight.findings import exit_code, render

    try:
        plan = plan_for(ctx.obj.spec)
    except InferenceError as exc:
        _fail(one_line(exc))
    findings, checked = preflight.run(plan)
    render(findings, checked, Console())
    raise typer.Exit(exit_code(findings))


@app.command()
def caption(ctx: typer.Context, audio: Annotated[str, typer.Argument(help="music file")],
            id: IdOpt = "caption", out_dir: OutOpt = None) -> None:
    """Describe a piece of music."""
    print(_single(ctx, out_dir, id=id, task="caption", audio=audio)["answer"])


@app.command()
def answer(ctx: typer.Context, audio: Annotated[str, typer.Argument(help="music file")],
           question: Annotated[str, typer.Argument()], id: IdOpt = "answer", out_dir: OutOpt = None) -> None:
    """Answer a question about a piece of music."""
    print(_single(ctx, out_dir, id=id, task="answer", audio=audio, prompt=question)["answer"])


@app.command()
def compose(ctx: typer.Context, prompt: Annotated[Optional[str], typer.Argument(help="what to make")] = None,
            image: Annotated[Optional[str], Opt(help="image -> music")] = None,
            video: Annotated[Optional[str], Opt(help="video -> music")] = None,
            id: IdOpt = "music", out_dir: Annotated[Path, Opt(help="where <id>.wav and <id>.json go")] = Path("."),
            music_seconds: Annotated[Optional[float], Opt("--length", min=MUSIC_SECONDS[0], max=MUSIC_SECONDS[1],
                                                          help="seconds (default: --seconds)")] = None) -> None:
    """Make music from text, an image or a video."""
    if image and video:
        _fail("give --image or --video, not both")
    task = "image2music" if image else "video2music" if video else "text2music"
    rec = _single(ctx, out_dir, id=id, task=task, prompt=prompt, image=image, video=video, seconds=music_seconds)
    print(f"{out_dir / rec['music']['file']}  ({rec['answer']!r})")


@app.command()
def edit(ctx: typer.Context, audio: Annotated[str, typer.Argument(help="music to edit")],
         instruction: Annotated[str, typer.Argument()], id: IdOpt = "edit",
         out_dir: Annotated[Path, Opt(help="where <id>.wav and <id>.json go")] = Path(".")) -> None:
    """Edit music by an instruction."""
    rec = _single(ctx, out_dir, id=id, task="edit", audio=audio, prompt=instruction)
    print(f"{out_dir / rec['music']['file']}  ({rec['answer']!r})")


def _read_requests(path: Path) -> list[tuple[str, InferRequest | None, str | None]]:
    """(id, request or None, error) per non-empty line; a bad line keeps its position as `line-N`."""
    out: list[tuple[str, InferRequest | None, str | None]] = []
    seen: set[str] = set()
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        rid = f"line-{n}"
        try:
            raw = json.loads(line)
            if isinstance(raw, dict) and isinstance(raw.get("id"), str) and _ID.fullmatch(raw["id"]):
                rid = raw["id"]
            req = InferRequest.model_validate(raw)
            if req.id in seen:
                raise ValueError(f"duplicate id {req.id!r}")
            seen.add(req.id)
            out.append((req.id, req, None))
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(x) for x in err["loc"])
            out.append((rid, None, f"line {n}: {where + ': ' if where else ''}{err['msg']}"))
        except ValueError as exc:  # JSONDecodeError too
            out.append((rid if rid not in seen else f"line-{n}", None, f"line {n}: {one_line(exc)}"))
    return out


@app.command()
def batch(ctx: typer.Context, requests: Annotated[Path, typer.Argument(help="JSONL: one request per line")],
          out_dir: Annotated[Path, Opt(help="where results go")],
          overwrite: Annotated[bool, Opt("--overwrite", help="redo requests already done")] = False) -> None:
    """Run a JSONL of requests ({"id", "task", "prompt", "audio", "image", "video", "seconds", "seed"});
    a failure is recorded in its <id>.json and the run goes on."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from m2ugen_model.infer.inference import PromptTooLongError
    from m2ugen_model.infer.media_io import MediaInputError

    if not requests.is_file():
        _fail(f"requests file not found: {requests}")
    session: Session = ctx.obj
    items = _read_requests(requests)
    out_dir.mkdir(parents=True, exist_ok=True)
    records, counts = [], {"ok": 0, "error": 0, "skipped": 0}
    with Progress(TextColumn("infer"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
                  TimeElapsedColumn(), console=console) as bar:
        task = bar.add_task("infer", total=len(items), info="")
        for rid, req, error in items:
            done = out_dir / f"{rid}.json"
            if req is not None and not overwrite and done.is_file() and _status(done) == "ok":
                records.append(json.loads(done.read_text()))
                counts["skipped"] += 1
                bar.update(task, advance=1, info=f"{rid}: done before")
                continue
            if error is None:
                try:
                    session.model()
                except InferenceError as exc:  # the model fails every request the same way: stop once
                    bar.stop()
                    _fail(one_line(exc))
                try:
                    records.append(run_request(session, req, out_dir, requests.parent))
                    counts["ok"] += 1
                    bar.update(task, advance=1, info=rid)
                    continue
                except (InferenceError, MediaInputError, PromptTooLongError) as exc:
                    error = one_line(exc)
                except Exception as exc:  # a bug for one request must not lose the others' results
                    error = f"{type(exc).__name__}: {one_line(exc)}"
            rec = {"id": rid, "task": getattr(req, "task", None), "status": "error", "error": error}
            _write_json(out_dir / f"{rid}.json", rec)
            records.append(rec)
            counts["error"] += 1
            console.print(f"[yellow]failed[/yellow] {rid}: {error}", highlight=False, soft_wrap=True)
            bar.update(task, advance=1, info=f"{rid}: failed")
    from m2ugen_model.atomic import write_atomic

    lines = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    write_atomic(out_dir / "results.jsonl", lambda tmp: Path(tmp).write_text(lines))
    console.print(f"{counts['ok']} done, {counts['skipped']} already done, {counts['error']} failed; "
                  f"results: {out_dir / 'results.jsonl'}", highlight=False)


def _status(path: Path) -> str | None:
    try:
        return json.loads(path.read_text()).get("status")
    except (OSError, ValueError):
        return None


def main() -> None:
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # config notes and weight-loading bars would bury the results
    hf_logging.disable_progress_bar()
    run_app(app, "m2ugen-infer")


if __name__ == "__main__":
    main()
