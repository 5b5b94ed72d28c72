"""Do a word-level language model's input vectors answer the embeddings lesson? The control for bench/skipgram.py.

Trains taller's own Transformer on *words* of the Quijote (the same vocabulary as the skip-gram: lowercased words
seen at least 5 times in the training split; the rest become one <unk> id) to predict the next word, for a budget of
seconds, then asks its input embedding matrix the skip-gram's questions. Prints one JSON line.

    python bench/word_lm_vectors.py [--corpus quijote] [--budget 120] [--set key=value ...]
"""

import argparse
import json
import math
import time

import torch
import torch.nn.functional as F
from machine import cpu_info

from taller.config import Config
from taller.data.corpora import prepare_corpus
from taller.data.split import split_text
from taller.inspect.words import WordVectors
from taller.models import build_model
from taller.models.skipgram import WordVocab, words_of
from taller.models.transformer import TransformerConfig

NEAR = ["sancho", "caballero", "dulcinea", "rocinante"]
ANALOGIES = [("rey", "hombre", "mujer", "reina"), ("caballero", "don", "doña", "reina")]

if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--corpus", default="quijote")
    p.add_argument("--budget", type=float, default=120, help="seconds of training")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override the model (d_model=…)")
    a = p.parse_args()
    torch.manual_seed(1337)
    cfg = Config.preset("skipgram")
    cfg.data.corpus = a.corpus
    split = split_text(prepare_corpus(cfg.data).text, lines=False, val_fraction=0.1)
    train_words, val_words = words_of(split.train), words_of(split.val)
    vocab = WordVocab.from_words(train_words, min_count=5)
    unk = len(vocab)  # one id for every word out of the vocabulary

    def encode(words):
        return torch.tensor([vocab.index.get(w, unk) for w in words])

    train_ids, val_ids = encode(train_words), encode(val_words)
    m = TransformerConfig(
        vocab_size=len(vocab) + 1, block_size=32, d_model=128, n_heads=4, n_layers=2, d_ff=512, dropout=0.1
    )
    lm_cfg = Config(model=m)
    lm_cfg.apply_overrides(a.set)
    model = build_model(lm_cfg.model)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.1)
    T, B = m.block_size, 32
    offsets = torch.arange(T + 1)

    def batch(ids):
        w = ids[torch.randint(len(ids) - T - 1, (B,))[:, None] + offsets]  # (B, T+1)
        return w[:, :-1], w[:, 1:]

    started, steps = time.perf_counter(), 0
    model.train()
    while time.perf_counter() - started < a.budget:
        x, y = batch(train_ids)
        loss = F.cross_entropy(model(x).view(-1, m.vocab_size), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        steps += 1
    train_s = time.perf_counter() - started
    model.eval()
    with torch.no_grad():
        starts = torch.arange(0, len(val_ids) - T - 1, T)
        w = val_ids[starts[:, None] + offsets]
        val_loss = float(F.cross_entropy(model(w[:, :-1]).reshape(-1, m.vocab_size), w[:, 1:].reshape(-1)))

    vectors = WordVectors(vocab, model.embedding.weight.detach()[:unk])  # the input vectors, <unk> left out
    near = {w: [(r.word, round(r.similarity, 3)) for r in vectors.ranked(vectors.near_scores(w), [w], 2)] for w in NEAR}
    ranks = {}
    for x, y, z, expected in ANALOGIES:
        rank, competing, sim = vectors.rank_of(vectors.analogy_scores(x, y, z), expected, [x, y, z])
        ranks[f"{x}-{y}+{z}"] = {"expected": expected, "rank": rank, "of": competing, "similarity": round(sim, 3)}
    print(
        json.dumps(
            {
                **cpu_info(),
                "bench": "word_lm_vectors",
                "corpus": a.corpus,
                "overrides": a.set,
                "vocab": len(vocab) + 1,
                "steps": steps,
                "train_s": round(train_s, 1),
                "val_loss_nats_per_word": round(val_loss, 4),
                "val_perplexity": round(math.exp(val_loss), 1),
                "near": near,
                "analogies": ranks,
            },
            ensure_ascii=False,
        )
    )
