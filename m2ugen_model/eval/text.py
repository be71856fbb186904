"""Music understanding metrics (answers and captions against references): BLEU, BLEU-4, METEOR, ROUGE-L,
BERTScore, each from the library that defines it.

What each number is, and how it differs from the released MU-LLaMA/M2UGen evaluation script
(``ModelEvaluations/evaluate.py``), which fed raw strings to nltk's ``sentence_bleu`` (so its BLEU counted
*characters*) and reported ROUGE-L and BERTScore *recall*:

- ``bleu``: BLEU-1 (unigram precision with brevity penalty), ``bleu4``: BLEU up to 4-grams, both corpus-level
  from sacrebleu (13a tokenisation), 0-100, as captioning papers report B1/B4.
- ``meteor``: nltk's METEOR per sentence (wordpunct tokens, WordNet synonyms read offline:
  ``wordnet.load_wordnet``), mean, 0-1, as the released script computed it.
- ``rougeL`` (F-measure) and ``rougeL_recall`` (the released script's number): rouge-score with stemming, mean, 0-1.
- ``bertscore_f1`` / ``_precision`` / ``_recall``: bert-score with a model from a local directory (no hub), 0-1,
  no baseline rescaling; ``bertscore_layer`` says which hidden layer was used.

A reference may be a list (several references per item): BLEU takes them all, the sentence metrics the best.
Without WordNet, `m2ugen-eval` reports METEOR as not computed (with the install hint) and the rest as usual.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

References = Sequence[str | Sequence[str]]


def _ref_lists(references: References, n: int) -> list[list[str]]:
    refs = [[r] if isinstance(r, str) else list(r) for r in references]
    if len(refs) != n:
        raise ValueError(f"{n} predictions but {len(refs)} references")
    if any(not r for r in refs):
        raise ValueError("every prediction needs at least one reference")
    return refs


def bleu(predictions: Sequence[str], references: References) -> dict[str, float]:
    """Corpus BLEU-1 and BLEU-4 (sacrebleu), 0-100."""
    from sacrebleu.metrics import BLEU

    refs = _ref_lists(references, len(predictions))
    width = max(len(r) for r in refs)
    streams = [[r[k] if k < len(r) else None for r in refs] for k in range(width)]  # sacrebleu: None = no ref
    preds = list(predictions)
    return {
        "bleu": BLEU(max_ngram_order=1).corpus_score(preds, streams).score,
        "bleu4": BLEU(max_ngram_order=4).corpus_score(preds, streams).score,
    }


def meteor(predictions: Sequence[str], references: References, wordnet=None) -> float:
    """Mean sentence METEOR (nltk), wordpunct-tokenised; ``wordnet`` defaults to ``load_wordnet()``."""
    from nltk.tokenize import wordpunct_tokenize
    from nltk.translate.meteor_score import meteor_score

    from m2ugen_model.eval.wordnet import load_wordnet

    wn = wordnet if wordnet is not None else load_wordnet()
    refs = _ref_lists(references, len(predictions))
    scores = [meteor_score([wordpunct_tokenize(x) for x in r], wordpunct_tokenize(p), wordnet=wn)
              for p, r in zip(predictions, refs)]
    return sum(scores) / len(scores) if scores else float("nan")


def rouge_l(predictions: Sequence[str], references: References) -> dict[str, float]:
    """Mean ROUGE-L F-measure and recall (rouge-score, Porter stemming), best over an item's references."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    refs = _ref_lists(references, len(predictions))
    f, r = [], []
    for p, rs in zip(predictions, refs):
        scores = [scorer.score(x, p)["rougeL"] for x in rs]
        f.append(max(s.fmeasure for s in scores))
        r.append(max(s.recall for s in scores))
    n = max(1, len(f))
    return {"rougeL": sum(f) / n, "rougeL_recall": sum(r) / n}


def bertscore(predictions: Sequence[str], references: References, model_dir: str | Path,
              num_layers: int | None = None, batch_size: int = 32, device: str | None = None) -> dict[str, float]:
    """BERTScore with the model in ``model_dir`` (a transformers directory: config, weights, tokenizer).

    ``num_layers`` picks the hidden layer (bert-score's table has it only for hub names; default: the last
    layer of the local model, which is what an untabled model gets)."""
    import torch
    from bert_score import BERTScorer
    from transformers import AutoConfig

    path = Path(model_dir)
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"BERTScore model directory {path} has no config.json")
    config = AutoConfig.from_pretrained(path, local_files_only=True)
    layers = num_layers or config.num_hidden_layers
    refs = _ref_lists(references, len(predictions))
    scorer = BERTScorer(model_type=str(path), num_layers=layers, batch_size=batch_size,
                        device=device or ("cuda" if torch.cuda.is_available() else "cpu"))
    tok = scorer._tokenizer  # bert-score truncates at model_max_length: a tokenizer saved without one has 1e30
    if tok.model_max_length > config.max_position_embeddings:
        tok.model_max_length = config.max_position_embeddings
    p, r, f = scorer.score(list(predictions), refs)
    return {"bertscore_precision": p.mean().item(), "bertscore_recall": r.mean().item(),
            "bertscore_f1": f.mean().item(), "bertscore_layer": layers}
