"""Record the ORIGINAL MusiCNN network's outputs on real audio, for ``tests/pipeline/analysis/test_taggers.py``. Run once, by hand.

Why: ``m2ugen_data.analysis.musicnn_net`` restates musicnn's TF1 graph in PyTorch. The only proof that the
restatement (layer order, kernel layouts, 'same' padding, batch-norm epsilon, pooling order) is right is the
original graph itself, restored from the same checkpoint and fed the same input. That needs TensorFlow, which
the project does not depend on, so this tool drives a throwaway TensorFlow venv and checks in the result
(``tests/data/musicnn_reference.npz``: the log-mel patches fed to both networks, the original's logits and
sigmoid probabilities for MTT_musicnn and MSD_musicnn, and the tag names).

Set-up of the throwaway venv (TensorFlow 2.15 is the last with ``tf.compat.v1.layers`` on Keras 2, which
musicnn's graph code uses; it runs on Python 3.11; musicnn's own numpy/TF pins are skipped with --no-deps):

    python3.11 -m venv /tmp/tfvenv
    /tmp/tfvenv/bin/pip install tensorflow-cpu==2.15.1 'numpy<2'
    /tmp/tfvenv/bin/pip install --no-deps musicnn==0.1.0

Then, from the project venv (needs Debian's fluidsynth and fluid-soundfont-gm):

    .venv/bin/python tools/musicnn_reference.py --tf-python /tmp/tfvenv/bin/python

The audio is real instrument samples: two short General-MIDI pieces written here and rendered by fluidsynth
(piano + strings + drums; nylon guitar + flute + acoustic bass). The log-mel patches come from our
``taggers.mel_patches``; the comparison is of the networks, on identical input. musicnn's graph code is
imported from the TF venv's musicnn package, unmodified (TF 2.15 needs no shims beyond graph mode).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import warnings
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "tests" / "data" / "musicnn_reference.npz"
SOUNDFONT = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
RENDER_SR = 44100
PATCHES_PER_PIECE = 2  # 4 patches of 187 x 96 float32: ~0.3 MB checked in
TPQ = 480  # MIDI ticks per quarter note
DRUM_CHANNEL = 9

# chord roots per bar (C major: C Am F G C) as MIDI triads
CHORDS = ((60, 64, 67), (57, 60, 64), (53, 57, 60), (55, 59, 62), (60, 64, 67))


def _track(program: int, channel: int, notes: list[tuple[float, float, int, int]]):
    """A mido track from (start beat, length in beats, pitch, velocity) notes."""
    import mido

    events = []
    for start, length, pitch, velocity in notes:
        events.append((round(start * TPQ), 1, pitch, velocity))
        events.append((round((start + length) * TPQ), 0, pitch, 0))
    track = mido.MidiTrack()
    if channel != DRUM_CHANNEL:
        track.append(mido.Message("program_change", program=program, channel=channel, time=0))
    now = 0
    for tick, is_on, pitch, velocity in sorted(events, key=lambda e: (e[0], e[1])):
        kind = "note_on" if is_on else "note_off"
        track.append(mido.Message(kind, note=pitch, velocity=velocity, channel=channel, time=tick - now))
        now = tick
    return track


def piano_strings_drums() -> list:
    """Five bars at 120 bpm: piano eighth-note arpeggios, held string chords, a rock beat."""
    piano, strings, drums = [], [], []
    for bar, chord in enumerate(CHORDS):
        b = 4 * bar
        arpeggio = (*chord, chord[0] + 12, *reversed(chord[1:]), chord[0] + 12, chord[1])
        piano += [(b + 0.5 * i, 0.5, pitch, 80) for i, pitch in enumerate(arpeggio)]
        strings += [(b, 4, pitch - 12, 70) for pitch in chord]
        drums += [(b + beat, 0.25, 36, 100) for beat in (0, 2.5)]
        drums += [(b + beat, 0.25, 38, 95) for beat in (1, 3)]
        drums += [(b + 0.5 * i, 0.25, 42, 70) for i in range(8)]
    return [_track(0, 0, piano), _track(48, 1, strings), _track(0, DRUM_CHANNEL, drums)]


def guitar_flute_bass() -> list:
    """Five bars at 120 bpm: nylon-guitar arpeggios, a flute line, acoustic bass on the roots."""
    guitar, flute, bass = [], [], []
    for bar, chord in enumerate(CHORDS):
        b = 4 * bar
        guitar += [(b + 0.5 * i, 1.0, chord[i % 3] - 12 + 12 * (i % 2), 75) for i in range(8)]
        flute += [(b + 2 * i, 1.5, chord[(bar + i) % 3] + 12, 85) for i in range(2)]
        bass += [(b + 2 * i, 1.8, chord[0] - 24, 90) for i in range(2)]
    return [_track(24, 0, guitar), _track(73, 1, flute), _track(32, 2, bass)]


PIECES = {"piano_strings_drums": piano_strings_drums, "guitar_flute_bass": guitar_flute_bass}


def render(tracks: list, workdir: Path, name: str) -> np.ndarray:
    """Write a type-1 MIDI file, render it with fluidsynth, return 16 kHz mono float32 audio."""
    import mido
    import soundfile
    import soxr

    midi = mido.MidiFile(type=1, ticks_per_beat=TPQ)
    midi.tracks.extend(tracks)
    mid_path, wav_path = workdir / f"{name}.mid", workdir / f"{name}.wav"
    midi.save(mid_path)
    cmd = ["fluidsynth", "-ni", "-q", "-g", "0.5", "-r", str(RENDER_SR), "-F", str(wav_path), str(SOUNDFONT)]
    subprocess.run([*cmd, str(mid_path)], check=True, capture_output=True)
    audio, sr = soundfile.read(wav_path, dtype="float32", always_2d=True)
    return soxr.resample(audio.mean(axis=1), sr, 16000).astype(np.float32)


def reference_patches(workdir: Path) -> tuple[np.ndarray, list[str]]:
    """The first ``PATCHES_PER_PIECE`` log-mel patches of each rendered piece, and their piece names."""
    from m2ugen_data.analysis.taggers import mel_patches

    patches, sources = [], []
    for name, compose in PIECES.items():
        piece = mel_patches(render(compose(), workdir, name))[:PATCHES_PER_PIECE]
        if len(piece) < PATCHES_PER_PIECE:
            raise SystemExit(f"{name}: rendered only {len(piece)} patches")
        patches.append(piece)
        sources += [name] * len(piece)
    return np.concatenate(patches).astype(np.float32), sources


def run_original(tf_python: Path, model_dir: Path, patches: np.ndarray, workdir: Path) -> dict[str, np.ndarray]:
    """Run this file's ``--tf-run`` mode under the TensorFlow venv; return its logits and probabilities."""
    inp, out = workdir / "patches.npy", workdir / "original.npz"
    np.save(inp, patches)
    cmd = [str(tf_python), __file__, "--tf-run", str(inp), str(out), "--model-dir", str(model_dir)]
    subprocess.run(cmd, check=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})  # TF's C++ start-up chatter
    with np.load(out) as data:
        return {key: data[key] for key in data.files}


def tf_run(inp: Path, out: Path, model_dir: Path) -> None:
    """(In the TF venv.) musicnn's own graph, restored from its checkpoint, on the given patches."""
    import tensorflow as tf
    from musicnn import models

    warnings.filterwarnings("ignore", module="musicnn")  # one deprecation warning per tf.compat.v1.layers call
    tf.compat.v1.disable_eager_execution()
    patches = np.load(inp)
    results = {}
    for model in ("MTT_musicnn", "MSD_musicnn"):
        graph = tf.Graph()
        with graph.as_default(), tf.compat.v1.Session(graph=graph) as sess:
            with tf.name_scope("model"):
                x = tf.compat.v1.placeholder(tf.float32, [None, *patches.shape[1:]])
                is_training = tf.compat.v1.placeholder(tf.bool)
                logits = models.define_model(x, is_training, model, 50)[0]
                probs = tf.nn.sigmoid(logits)
            tf.compat.v1.train.Saver().restore(sess, f"{model_dir / model}/")
            logit_v, prob_v = sess.run([logits, probs], feed_dict={x: patches, is_training: False})
        key = model.split("_")[0].lower()
        results[f"{key}_logits"], results[f"{key}_probs"] = logit_v, prob_v
    results["tf_version"] = np.array(tf.__version__)
    np.savez(out, **results)


def compare_with_ours(reference: dict[str, np.ndarray], patches: np.ndarray) -> None:
    """Print our conversion's (the onnxruntime graph tag_audio runs) max |diff| from the original, per model."""
    from m2ugen_data.analysis.taggers import load_taggers, patch_logits

    models = load_taggers()
    for key, session in (("mtt", models.mtt), ("msd", models.msd)):
        logits = patch_logits(session, patches)
        probs = 1.0 / (1.0 + np.exp(-logits.astype(np.float64)))
        print(
            f"{key}: max |diff| probabilities {np.abs(probs - reference[f'{key}_probs']).max():.2e}, "
            f"logits {np.abs(logits - reference[f'{key}_logits']).max():.2e}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tf-python", type=Path, default=Path("/tmp/tfvenv/bin/python"))
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--model-dir", type=Path, help="musicnn package dir (default: the installed one)")
    parser.add_argument("--tf-run", nargs=2, type=Path, metavar=("PATCHES", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.tf_run:
        tf_run(*args.tf_run, args.model_dir)
        return
    from m2ugen_data.analysis.taggers import MSD_TAGS, MTT_TAGS, find_musicnn_dir

    model_dir = find_musicnn_dir(args.model_dir)
    with tempfile.TemporaryDirectory() as tmp:
        patches, sources = reference_patches(Path(tmp))
        original = run_original(args.tf_python, model_dir, patches, Path(tmp))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        args.out,
        patches=patches,
        sources=np.array(sources),
        mtt_tags=np.array(MTT_TAGS),
        msd_tags=np.array(MSD_TAGS),
        **original,
    )
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes, {len(patches)} patches, TF {original['tf_version']})")
    compare_with_ours(original, patches)


if __name__ == "__main__":
    main()
