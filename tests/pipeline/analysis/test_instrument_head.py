"""The fitted parts of hearing: logistic and conditional-logit fits recover known models, the instrument head
sets precision-first thresholds from held-out groups and re-derives words from stored columns."""

from __future__ import annotations

import json

import numpy as np
import pytest

from m2ugen_data.analysis import derived, fitting, instrument_head, taggers
from m2ugen_data.analysis.instrument_head import WORDS, choose_threshold, fit_head, head_from_json, word_targets


def test_logistic_fit_recovers_the_direction_and_calibration() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4000, 3))
    p = 1 / (1 + np.exp(-(2.0 * x[:, 0] - 1.0 * x[:, 1] + 0.5)))
    y = (rng.uniform(size=p.size) < p).astype(float)
    w, b, mean, scale = fitting.fit_logistic(x, y, l2=1e-3)
    est = fitting.logistic_prob(x, w, b, mean, scale)
    assert np.corrcoef(est, p)[0, 1] > 0.99 and abs(est.mean() - y.mean()) < 0.01
    assert abs(w[2] / scale[2]) < 0.15  # the irrelevant input gets ~no weight


def test_conditional_logit_recovers_a_shared_weight_vector() -> None:
    rng = np.random.default_rng(1)
    n, k = 3000, 4
    x = rng.standard_normal((n, k, 2))
    s = 3.0 * x[..., 0] - 1.0 * x[..., 1]
    p = np.exp(s) / np.exp(s).sum(axis=1, keepdims=True)
    target = np.array([rng.choice(k, p=pi) for pi in p])
    allowed = np.ones((n, k), bool)
    allowed[:, 3] = rng.uniform(size=n) < 0.5
    keep = allowed[np.arange(n), target]
    w, mean, scale = fitting.fit_conditional_logit(x[keep], allowed[keep], target[keep], l2=1e-3)
    raw = w / scale
    assert raw[0] / raw[1] == pytest.approx(-3.0, rel=0.15)


def test_threshold_is_the_lowest_that_keeps_precision() -> None:
    p = np.array([0.95, 0.9, 0.85, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2])
    right = np.array([1, 1, 1, 1, 1, 0, 1, 0, 0, 0], dtype=bool)
    assert choose_threshold(p, right, target=0.8, min_said=3) == pytest.approx(0.5)  # 6 of 7 right
    assert choose_threshold(p, right, target=1.0, min_said=3) == pytest.approx(0.7)
    assert choose_threshold(p, right, target=0.8, min_said=20) == float("inf")  # too few to tell: never said


def _clips(rng: np.random.Generator, n: int, group: str):
    """Synthetic clips where the MTT 'piano' tag tells piano apart (with a group-specific offset in timbre)."""
    fams, tags, timbres = [], [], []
    for _ in range(n):
        piano = rng.uniform() < 0.4
        mtt = rng.uniform(0.01, 0.2, size=len(taggers.MTT_TAGS))
        mtt[taggers.MTT_TAGS.index("piano")] = rng.uniform(0.5, 0.9) if piano else rng.uniform(0.01, 0.3)
        msd = rng.uniform(0.01, 0.2, size=len(taggers.MSD_TAGS))
        tags.append({"mtt": mtt, "msd": msd})
        timbres.append(rng.standard_normal(24) + (3.0 if group == "b" else 0.0))
        fams.append(["piano"] if piano else ["organ"])
    return fams, tags, timbres


def test_head_says_what_it_can_say_precisely_and_nothing_else() -> None:
    rng = np.random.default_rng(2)
    fams, tags, timbres, groups = [], [], [], []
    for g in ("a", "b", "c"):
        f, t, tb = _clips(rng, 200, g)
        fams += f
        tags += t
        timbres += tb
        groups += [g] * 200
    x = np.stack([instrument_head.features(t, tb) for t, tb in zip(tags, timbres)])
    head = fit_head(x, fams, groups, "test")
    piano = WORDS.index("piano")
    assert np.isfinite(head.thresholds[piano])
    assert not np.isfinite(head.thresholds[WORDS.index("harp")])  # never present: never said
    f, t, tb = _clips(np.random.default_rng(3), 300, "d")
    said = [head.words_for(instrument_head.features(ti, ti_tb), 4) for ti, ti_tb in zip(t, tb)]
    y = word_targets(f)[:, piano]
    got = np.array(["piano" in s for s in said])
    assert got.sum() > 30 and y[got].mean() >= 0.85
    assert all(set(s) <= {"piano"} for s in said)
    back = head_from_json(json.loads(json.dumps(head.to_json({"clips": 600}))))
    np.testing.assert_allclose(back.probabilities(x[:5]), head.probabilities(x[:5]))


def test_derived_words_come_from_the_head_for_its_words_and_from_thresholds_for_the_rest() -> None:
    rng = np.random.default_rng(4)
    mtt = np.full(len(taggers.MTT_TAGS), 0.05)
    mtt[taggers.MTT_TAGS.index("sitar")] = 0.9  # a word the head does not cover: the tag threshold says it
    mtt[taggers.MTT_TAGS.index("violin")] = 0.9  # a head word: only the head decides
    tags = {"mtt": mtt, "msd": np.full(len(taggers.MSD_TAGS), 0.05)}
    n_in = len(taggers.MTT_TAGS) + len(taggers.MSD_TAGS) + 24
    never = instrument_head.InstrumentHead(WORDS, np.zeros((len(WORDS), n_in)), np.zeros(len(WORDS)), np.zeros(n_in),
                                           np.ones(n_in), np.full(len(WORDS), np.inf), "never")  # fmt: skip
    cols = derived.tag_columns(tags, timbre=rng.standard_normal(24).tolist(), head=never)
    assert cols["instruments"] == ["sitar"]
    assert json.loads(cols["tag_thresholds"])["instrument_head"] == "never"
    old = derived.tag_columns(tags, head=None)
    assert "violin" in old["instruments"] and json.loads(old["tag_thresholds"])["instrument_head"] is None
    row = {"tags_mtt": mtt.tolist(), "tags_msd": tags["msd"].tolist(), "timbre": [0.0] * 24}
    assert derived.rederive(dict(row), head=never)["instruments"] == ["sitar"]
