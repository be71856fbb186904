"""The M2UGen module itself on random tiny weights (no files): shapes, padding, stages, losses,
checkpoints and the released key layout."""

from __future__ import annotations

import pytest
import torch

from m2ugen_model.checkpoint import load_released, load_trainable, ours_to_released, save_trainable
from m2ugen_model.hf_io import WeightsError
from m2ugen_model.losses import IGNORE_INDEX, token_cross_entropy
from m2ugen_model.presets import init_model, tiny
from m2ugen_model.stages import RELEASED_STAGE_GROUPS, set_stage, trainable_parameters

CFG = tiny()
V = CFG.vocab_size
AUD = list(range(V, V + CFG.n_aud_tokens))


def feats(b: int, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {f"{m}_feats": torch.randn(b, *CFG.feat_shape(m), generator=g) for m in CFG.modalities}


def open_gates(model, value: float = 0.7) -> None:
    """Make the adapters matter (a trained model's state), so tests exercise their path."""
    with torch.no_grad():
        for layer in model.llm.layers:
            if layer.attention.gate is not None:
                layer.attention.gate.fill_(value)
        for n, p in model.named_parameters():
            if n.endswith((".lora_b.weight", ".bias")):
                p.normal_(0, 0.05)


@pytest.fixture
def model():
    m = init_model(CFG, seed=0)
    open_gates(m)
    return m


def test_shapes_and_dtypes_every_path(model):
    ids = torch.randint(3, V, (2, 7))
    for extra in ({}, {"audio_feats": feats(2)["audio_feats"]}, {"image_feats": feats(2)["image_feats"]},
                  {"video_feats": feats(2)["video_feats"]}, feats(2)):
        out = model(ids, labels=ids, **extra)
        assert out["logits"].shape == (2, 7, V + 8) and out["logits"].dtype == torch.float32
        assert out["loss"].ndim == 0 and torch.isfinite(out["loss"])
        assert out["mse_loss"] is None
    bf = init_model(CFG, dtype=torch.bfloat16)
    out = bf(ids, labels=ids, **{k: v.bfloat16() for k, v in feats(2).items()})
    assert out["logits"].dtype == torch.bfloat16 and torch.isfinite(out["loss"])


def test_modalities_change_the_output_once_gates_are_open(model):
    ids = torch.randint(3, V, (1, 6))
    base = model(ids)["logits"]
    for m in CFG.modalities:
        other = model(ids, **{f"{m}_feats": feats(1)[f"{m}_feats"]})["logits"]
        assert (other - base).abs().max() > 1e-3, m


def test_modality_reaches_only_its_own_layers(model):
    """Layer placement: music enters layer 1, image 2, video 3 (tiny: L=1 of 4 layers)."""
    assert [layer.modality for layer in model.llm.layers] == [None, "audio", "image", "video"]
    assert [layer.attention.gate is not None for layer in model.llm.layers] == [False, True, True, True]
    seen = []
    hooks = [layer.register_forward_hook(lambda mod, args, out, i=i: seen.append((i, args[4] is not None)))
             for i, layer in enumerate(model.llm.layers)]
    model(torch.randint(3, V, (1, 4)), **feats(1))
    for h in hooks:
        h.remove()
    assert seen == [(0, False), (1, True), (2, True), (3, True)]


def _per_sample_loss(model, ids, mask, labels, **kw):
    return token_cross_entropy(model(ids, mask, **kw)["logits"], labels.masked_fill(mask == 0, IGNORE_INDEX),
                               reduction="none")


@pytest.mark.parametrize("side", ["right", "left"])
def test_padding_gives_the_unpadded_loss(model, side):
    torch.manual_seed(1)
    a, b = torch.randint(3, V, (9,)), torch.randint(3, V, (5,))
    la, lb = a.clone(), b.clone()
    la[:3] = IGNORE_INDEX  # prompt
    lb[:2] = IGNORE_INDEX
    f = feats(2, seed=3)
    ids = torch.zeros(2, 9, dtype=torch.long)
    labels = torch.full((2, 9), IGNORE_INDEX)
    mask = torch.zeros(2, 9, dtype=torch.long)
    ids[0], labels[0], mask[0] = a, la, 1
    sl = slice(0, 5) if side == "right" else slice(4, 9)
    ids[1, sl], labels[1, sl], mask[1, sl] = b, lb, 1
    batch = _per_sample_loss(model, ids, mask, labels, **f)
    alone_a = _per_sample_loss(model, a[None], torch.ones(1, 9, dtype=torch.long), la[None],
                               **{k: v[:1] for k, v in f.items()})
    alone_b = _per_sample_loss(model, b[None], torch.ones(1, 5, dtype=torch.long), lb[None],
                               **{k: v[1:] for k, v in f.items()})
    torch.testing.assert_close(batch, torch.cat((alone_a, alone_b)), rtol=1e-4, atol=1e-5)


def test_modality_mask_equals_absent_modality(model):
    ids = torch.randint(3, V, (2, 5))
    f = feats(2)
    masked = model(ids, audio_feats=f["audio_feats"], audio_mask=torch.tensor([True, False]))["logits"]
    with_audio = model(ids[:1], audio_feats=f["audio_feats"][:1])["logits"]
    without = model(ids[1:])["logits"]
    torch.testing.assert_close(masked, torch.cat((with_audio, without)), rtol=1e-4, atol=1e-5)


def _music_batch():
    """Row 0 asks for music ([AUD0..7] in the answer), row 1 is text only."""
    ids = torch.randint(3, V, (2, 14))
    ids[0, 4:12] = torch.tensor(AUD)
    labels = ids.clone()
    labels[:, :4] = IGNORE_INDEX
    target = torch.randn(2, CFG.decoder_tokens, CFG.decoder_dim)
    return ids, labels, target


def test_mse_uses_the_state_predicting_each_aud_token(model):
    ids, labels, target = _music_batch()
    out = model(ids, labels=labels, target_embeds=target, **feats(2))
    _, hidden, _ = model.llm(ids, None, model.adapter_tokens(model.modality_vectors(
        {k.split("_")[0]: v for k, v in feats(2).items()}), {}, 2))
    pred = model.projector(hidden[0:1, 3:11], model.llm.embed(torch.tensor([AUD])))
    expected = torch.mean((pred - CFG.mse_scale * target[0:1]) ** 2)
    torch.testing.assert_close(out["mse_loss"], expected)
    torch.testing.assert_close(out["loss"], out["ce_loss"] + CFG.mse_weight * out["mse_loss"])
    ids[0, 6] = 5  # a broken [AUD] run is an error, not a silent wrong target
    with pytest.raises(ValueError, match="AUD"):
        model(ids, target_embeds=target)


EXPECTED_GROUPS = {
    1: lambda n: n.startswith(("adapters.", "prefix_query.")) or n.endswith("attention.gate"),
    2: lambda n: n.startswith(("projector.", "llm.aud_embeddings.", "llm.aud_output.")),
    3: lambda n: (n.startswith(("adapters.", "prefix_query.", "projector.", "llm.aud_")) or ".lora_" in n
                  or n.endswith(("gate", ".bias", "norm.weight"))),
}


@pytest.mark.parametrize("stage", [1, 2, 3])
def test_stage_masks_and_a_step_changes_only_them(model, stage):
    names = set(set_stage(model, stage))
    all_names = [n for n, _ in model.named_parameters()]
    assert names == {n for n in all_names if EXPECTED_GROUPS[stage](n)}
    assert {n for n, p in model.named_parameters() if p.requires_grad} == names
    # frozen base weights stay frozen in every stage
    assert not names & {"llm.tok_embeddings.weight", "llm.output.weight", "llm.layers.0.attention.wq.weight"}
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2, weight_decay=0.0)
    ids, labels, target = _music_batch()
    model(ids, labels=labels, target_embeds=target, **feats(2))["loss"].backward()
    opt.step()
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert changed and changed <= names
    groups = {1: "adapters.audio.proj.weight", 2: "projector.fc_out.weight", 3: "llm.layers.0.attention.wq.lora_a.weight"}
    assert groups[stage] in changed


def test_released_stage_groups_are_selectable(model):
    names = trainable_parameters(model, 3, RELEASED_STAGE_GROUPS)
    assert "llm.tok_embeddings.weight" in names and "adapters.audio.proj.weight" not in names


def test_gradient_checkpointing_gives_the_same_gradients(model):
    set_stage(model, 3)
    model.train()
    ids, labels, target = _music_batch()
    grads = []
    for flag in (False, True):
        model.zero_grad()
        model.llm.gradient_checkpointing = flag
        model(ids, labels=labels, target_embeds=target, **feats(2))["loss"].backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys()
    for n in grads[0]:
        torch.testing.assert_close(grads[0][n], grads[1][n], rtol=1e-4, atol=1e-6)


def test_checkpoint_round_trip(model, tmp_path):
    names = set_stage(model, 3)
    save_trainable(model, tmp_path / "ck")
    assert sorted(p.name for p in (tmp_path / "ck").iterdir()) == ["config.json", "trainable.safetensors"]
    fresh = init_model(CFG, seed=5)
    loaded = load_trainable(fresh, tmp_path / "ck")
    assert loaded == names
    for n, p in fresh.named_parameters():
        if n in names:
            assert torch.equal(p, model.get_parameter(n)), n
    other = init_model(tiny(adapter_layers=1, dim=32, n_heads=2, n_kv_heads=1, ffn_dim=64))
    with pytest.raises(WeightsError, match="shape mismatch"):
        load_trainable(other, tmp_path / "ck")


RELEASED_NAMES = [  # names as they appear in the released code (llama/m2ugen.py, llama/llama.py)
    "mu_mert_agg.weight", "mu_mert_proj.weight", "mu_mert_f1_1.weight", "mu_mert_norm_1.weight",
    "iu_vit_agg.weight", "iu_vit_norm_2.weight", "iu_vivit_proj.weight", "iu_vivit_f3_3.weight",
    "prefix_query.weight", "llama.layers.1.attention.gate", "llama.layers.3.attention.lora_wq_l1.weight",
    "llama.layers.0.feed_forward.lora_w2_l2.weight", "llama.layers.2.attention.wo.bias",
    "llama.layers.0.ffn_norm.weight", "llama.tok_embeddings.weight", "output_projector.fc.weight",
    "output_projector.tfm.encoder.layers.0.self_attn.in_proj_weight", "output_projector.model.bias",
    "output_projector.query_embs",
]


def test_released_layout_loads_and_wrong_keys_fail(model, tmp_path):
    set_stage(model, 3)
    with torch.no_grad():  # make every exported value differ from a fresh model's
        for p in model.parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p) * 0.01)
    state = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    for table in ("tok_embeddings", "output"):  # the released layout keeps [AUD] rows in the full tables
        state[f"llm.{table}.weight"] = model.llm.get_parameter(f"{table}.weight").detach().clone()
    released = ours_to_released(state, CFG)
    assert set(RELEASED_NAMES) <= set(released)
    assert released["llama.tok_embeddings.weight"].shape == (V + 8, CFG.dim)
    released["llama.layers.0.attention.gate"] = torch.zeros(1, CFG.n_heads, 1, 1)  # unused in layer 0
    released["mert_model.encoder.layers.0.weight"] = torch.zeros(1)  # frozen encoder weights are skipped
    torch.save({"model": released}, tmp_path / "released.pth")

    fresh = init_model(CFG, seed=0)  # same frozen base weights, which the released file does not carry
    report = load_released(fresh, tmp_path / "released.pth")
    assert "llama.layers.0.attention.gate" in report["skipped"]
    for n, v in state.items():
        assert torch.equal(fresh.get_parameter(n), v), n
    ids = torch.randint(3, V, (1, 6))
    torch.testing.assert_close(fresh(ids, **feats(1))["logits"], model(ids, **feats(1))["logits"])

    bad = dict(released)
    bad["mu_mert_f4_1.weight"] = bad.pop("mu_mert_f1_1.weight")
    torch.save({"model": bad}, tmp_path / "bad.pth")
    with pytest.raises(WeightsError, match="mu_mert_f4_1.weight"):
        load_released(init_model(CFG), tmp_path / "bad.pth")
    missing = {k: v for k, v in released.items() if k != "iu_vit_proj.weight"}
    torch.save(missing, tmp_path / "missing.pth")
    with pytest.raises(WeightsError, match="adapters.image.proj.weight"):
        load_released(init_model(CFG), tmp_path / "missing.pth")
