"""A character n-gram model: the lesson's P(w_i | w_{i-n+1} … w_{i-1}) made concrete, by counting.

Fitting is counting: every run of k characters (k = 1 … n) of the training text becomes one integer, its key
(the characters as digits in base V), and `np.unique` counts the keys. No gradient, no loop over the text.

Smoothing is interpolated modified Kneser–Ney (Chen & Goodman, 1998). For a history h and next character w:

    P_k(w | h) = max(c(h w) − D(c), 0) / c(h·)  +  γ(h) · P_{k-1}(w | h without its first character)
    γ(h)       = (D1 · N1(h·) + D2 · N2(h·) + D3 · N3+(h·)) / c(h·)

where c counts (order n) or, for the lower orders, counts *continuations* (how many different characters precede
the k-gram: "Francisco" makes "cisco" frequent, but only after "Fran"), N_r(h·) is the number of characters seen
r times after h, and D1, D2, D3+ come from how many k-grams were seen 1, 2, 3 and 4 times. The bottom of the
recursion is the uniform 1/V, so every character keeps some probability and each distribution sums to 1.

A history never seen at order k simply passes P_{k-1} through. The model has the interface of the neural ones:
`model(idx)` gives (B, T, V) logits (log-probabilities), and `start`/`step` carry the last n-1 characters.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn

from taller.errors import TallerError
from taller.models.kind import Kind, ModelConfig, need
from taller.text import thousands

MAX_ORDER = 12  # a cap on n; whether V**n keys fit in 64 bits is checked when fitting (see fit)
CHUNK = 1 << 20  # probabilities computed at a time by forward (8 MB of float64)


@dataclass
class NGramConfig(ModelConfig):
    """The [model] section of an n-gram."""

    kind: str = "ngram"
    order: int = 8  # n, the characters it counts together (a context of n-1); 8 was best on a slice of train

    def check(self, data) -> None:
        need(1 <= self.order <= MAX_ORDER, f"model.order={self.order} debe estar entre 1 y {MAX_ORDER}.")
        need(
            data.tokenizer == "char",
            f"el n-grama cuenta caracteres y no admite data.tokenizer='{data.tokenizer}'; "
            f"usa --tokenizer char (o un transformer o lstm con {data.tokenizer}).",
        )


class NGram(nn.Module):
    def __init__(self, cfg: NGramConfig):
        super().__init__()
        self.cfg, self.n, self.V = cfg, cfg.order, cfg.vocab_size
        self.keys = [np.zeros(0, np.int64) for _ in range(self.n)]  # order k at [k-1]: sorted distinct k-gram keys
        self.counts = [np.zeros(0, np.int64) for _ in range(self.n)]  # and their (continuation) counts
        self.tables: list[dict] = []  # derived per order: contexts, totals, discounts (rebuilt on loading)

    @property
    def block_size(self) -> None:
        return None  # generation never crops: the model itself looks at the last n-1 characters only

    reads = True  # it can go on counting what it reads (`read`): `taller score --adapt` uses it

    @property
    def num_counts(self) -> int:
        return sum(len(k) for k in self.keys)

    # --- fitting ------------------------------------------------------------------------------------------------
    def fit(self, ids: np.ndarray) -> NGram:
        """Count every k-gram of the training text (ids, an integer array) for k = 1 … n."""
        V, n = self.V, self.n
        if V**n >= 2**62:
            raise TallerError(
                f"model.order={n} con {V} caracteres distintos no cabe en un entero de 64 bits; "
                f"baja el orden (como mucho {int(62 / np.log2(V))})."
            )
        if len(ids) < n:
            raise TallerError(f"el texto de entrenamiento tiene {len(ids)} caracteres, menos que model.order={n}.")
        self.keys = [np.zeros(0, np.int64) for _ in range(n)]
        self.counts = [np.zeros(0, np.int64) for _ in range(n)]
        return self.read(ids)

    def read(self, ids: np.ndarray, start: int = 0) -> NGram:
        """Count ids[start:], a text that follows the one already counted (ids[:start] came before it, and its last
        n-1 characters are the new k-grams' context). Fitting is reading from nothing; a model that keeps reading
        while it scores (`taller score --adapt`) learns as a compressor does."""
        V, n = self.V, self.n
        ids = np.asarray(ids[max(0, start - (n - 1)) :], dtype=np.int64)
        grams = [ids]  # grams[k-1][j]: the key of ids[j : j+k]
        for k in range(2, n + 1):
            grams.append(grams[-1][:-1] * V + ids[k - 1 :])
        self.keys[n - 1], self.counts[n - 1] = add_counts(self.keys[n - 1], self.counts[n - 1], grams[-1])
        for k in range(n - 1, 0, -1):  # lower orders: how many distinct characters precede each k-gram
            above = self.keys[k] if k == n - 1 else np.union1d(self.keys[k], grams[k])  # the distinct (k+1)-grams
            self.keys[k - 1], counts = np.unique(above % V**k, return_counts=True)
            self.counts[k - 1] = counts.astype(np.int64)
        self._build_tables()
        return self

    def _build_tables(self) -> None:
        """Per order: the distinct histories with c(h·), N1, N2, N3+ and the discounts D1, D2, D3+."""
        self.tables = []
        for keys, counts in zip(self.keys, self.counts):
            history = keys // self.V  # keys are sorted, so equal histories are neighbours
            first = np.flatnonzero(np.r_[True, history[1:] != history[:-1]]) if len(keys) else np.zeros(0, np.int64)
            d = discounts(counts)
            n_r = [
                np.add.reduceat((counts == r) if r < 3 else (counts >= 3), first) if len(keys) else first
                for r in (1, 2, 3)
            ]
            self.tables.append(
                {
                    "history": history[first],
                    "total": np.add.reduceat(counts, first).astype(np.float64)
                    if len(keys)
                    else first.astype(np.float64),
                    "gamma": d[1] * n_r[0] + d[2] * n_r[1] + d[3] * n_r[2],  # γ(h) · c(h·)
                    "discount": d,  # [0, D1, D2, D3+], indexed by min(count, 3)
                }
            )

    # --- probabilities ------------------------------------------------------------------------------------------
    def prob(self, history: np.ndarray, nxt: np.ndarray) -> np.ndarray:
        """P(nxt | history): history (M, n-1) ids, −1 where the text had not started; nxt (M,). Returns (M,) float64."""
        M, V = len(nxt), self.V
        p = np.full(M, 1.0 / V)  # below order 1: uniform
        hkey, valid = np.zeros(M, np.int64), np.ones(M, bool)
        for k in range(1, self.n + 1):  # order k reads the last k-1 characters of the history
            if k > 1:
                a = history[:, self.n - k]  # the character that order k adds on the left
                valid &= a >= 0
                hkey = hkey + np.where(a >= 0, a, 0) * V ** (k - 2)
            table, keys, counts = self.tables[k - 1], self.keys[k - 1], self.counts[k - 1]
            row, seen = lookup(table["history"], hkey)
            seen &= valid
            i, found = lookup(keys, hkey * V + nxt)
            c = np.where(found, counts[np.minimum(i, len(counts) - 1)] if len(counts) else 0, 0)
            r = np.minimum(row, len(table["total"]) - 1)
            kept = c - table["discount"][np.minimum(c, 3)]
            p_k = (kept + table["gamma"][r] * p) / table["total"][r] if len(table["total"]) else p
            p = np.where(seen, p_k, p)
        return p

    def histories(self, idx: np.ndarray) -> np.ndarray:
        """idx (B, T) -> (B, T, n-1): the n-1 characters up to and including each position (−1 before the start)."""
        B, T = idx.shape
        padded = np.concatenate([np.full((B, self.n - 1), -1, np.int64), idx.astype(np.int64)], axis=1)
        if self.n == 1:
            return np.zeros((B, T, 0), np.int64)
        return np.lib.stride_tricks.sliding_window_view(padded, self.n - 1, axis=1)[:, 1 : T + 1]

    def log_probs(self, ids: np.ndarray) -> np.ndarray:
        """ln P(ids[i] | the n-1 characters before it) for i = 1 … len-1: how a text is scored. (len-1,) float64."""
        hist = self.histories(np.asarray(ids)[None, :-1])[0]  # (len-1, n-1)
        return np.log(self.prob(hist, np.asarray(ids[1:], dtype=np.int64)))

    def distributions(self, history: np.ndarray) -> np.ndarray:
        """P(· | history) for every next character at once: history (M, n-1) as in `prob` -> (M, V) float64.

        The same recursion as `prob`, one history at a time instead of one (history, next) pair: the k-grams that
        continue a history h are the keys h·V … h·V + V − 1, neighbours in the sorted keys, found with two searches."""
        M, V = len(history), self.V
        p = np.full((M, V), 1.0 / V)  # below order 1: uniform
        hkey, valid = np.zeros(M, np.int64), np.ones(M, bool)
        for k in range(1, self.n + 1):
            if k > 1:
                a = history[:, self.n - k]
                valid &= a >= 0
                hkey = hkey + np.where(a >= 0, a, 0) * V ** (k - 2)
            table, keys, counts = self.tables[k - 1], self.keys[k - 1], self.counts[k - 1]
            row, seen = lookup(table["history"], hkey)
            rows = np.flatnonzero(seen & valid)  # the positions whose history order k has seen
            if not len(rows):
                continue
            r, h = row[rows], hkey[rows]
            total = table["total"][r]  # (R,)
            p_k = p[rows] * (table["gamma"][r] / total)[:, None]  # (R, V): what the discounts leave, spread by P_{k-1}
            lo, hi = np.searchsorted(keys, h * V), np.searchsorted(keys, h * V + V)  # each history's continuations
            which = np.repeat(np.arange(len(rows)), hi - lo)  # (S,): the row of each seen continuation
            j = np.arange(len(which)) - np.repeat(np.cumsum(hi - lo) - (hi - lo) - lo, hi - lo)  # (S,): its key's index
            c = counts[j]
            p_k[which, keys[j] % V] += (c - table["discount"][np.minimum(c, 3)]) / total[which]
            p[rows] = p_k
        return p

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        """idx (B, T) -> (B, T, V) log-probabilities of every next character (logits whose softmax is P)."""
        B, T = idx.shape
        hist = self.histories(idx.cpu().numpy()).reshape(B * T, max(self.n - 1, 0))  # (BT, n-1)
        chunk = max(1, CHUNK // self.V)  # (chunk, V) float64 at a time
        logp = np.concatenate([np.log(self.distributions(hist[i : i + chunk])) for i in range(0, B * T, chunk)])
        return torch.from_numpy(logp.reshape(B, T, self.V)).float().to(idx.device)

    # --- generation: one interface for every model --------------------------------------------------------------
    def start(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        context = idx[:, -max(1, self.n - 1) :]  # (B, ≤ n-1): all the model reads
        hist = self.histories(context.cpu().numpy())[:, -1]  # (B, n-1): the history of the next character only
        logp = torch.from_numpy(np.log(self.distributions(hist))).float().to(idx.device)  # (B, V)
        return logp, context

    def step(self, idx: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.start(torch.cat([state, idx], dim=1))

    @staticmethod
    def state_length(state: torch.Tensor) -> int:
        return state.shape[1]

    # --- files: the counts are the model ------------------------------------------------------------------------
    def state_dict(self, *args, **kwargs) -> dict[str, torch.Tensor]:
        out = {}
        for k in range(self.n):
            out[f"order{k + 1}.keys"] = torch.from_numpy(self.keys[k])
            out[f"order{k + 1}.counts"] = torch.from_numpy(self.counts[k])
        return out

    def load_state_dict(self, tensors: dict, strict: bool = True, assign: bool = False):
        expected = {f"order{k + 1}.{part}" for k in range(self.n) for part in ("keys", "counts")}
        if set(tensors) != expected:
            raise TallerError(
                f"las cuentas guardadas no son las de un {self.n}-grama "
                f"(hay {sorted(tensors)[:4]}…); el fichero no es de esta ejecución."
            )
        for k in range(self.n):
            keys, counts = (tensors[f"order{k + 1}.{part}"].numpy().astype(np.int64) for part in ("keys", "counts"))
            if keys.shape != counts.shape or (len(keys) > 1 and not (np.diff(keys) > 0).all()) or (counts < 1).any():
                raise TallerError(f"las cuentas de orden {k + 1} están dañadas; vuelve a ajustar el modelo.")
            self.keys[k], self.counts[k] = keys, counts
        self._build_tables()

    def describe(self) -> str:
        return f"{self.n}-gramas de caracteres"

    def count_table(self, tokenizer=None) -> str:
        """parameters.txt for a count model: what it stored, order by order."""
        header = f"{'Orden':>5} {'n-gramas distintos':>19} {'historias':>10} {'D1':>6} {'D2':>6} {'D3+':>6}"
        lines = [
            f"Cuentas del modelo de {self.n}-gramas (Kneser–Ney modificado, interpolado)",
            "=" * len(header),
            header,
            "-" * len(header),
        ]
        for k, (keys, table) in enumerate(zip(self.keys, self.tables), start=1):
            d = table["discount"]
            lines.append(
                f"{k:>5} {thousands(len(keys)):>19} {thousands(len(table['history'])):>10} {d[1]:>6.3f} "
                f"{d[2]:>6.3f} {d[3]:>6.3f}"
            )
        lines += [
            "-" * len(header),
            "",
            "Orden k: cuentas de k caracteres seguidos (orden n: veces vistas; órdenes menores: de cuántos",
            "caracteres distintos van precedidas). Un modelo de cuentas no tiene parámetros entrenados.",
            "",
            f"Total: {thousands(self.num_counts)} cuentas",
        ]
        return "\n".join(lines) + "\n"


def discounts(counts: np.ndarray) -> np.ndarray:
    """[0, D1, D2, D3+] from the count-of-counts n1…n4 (Chen & Goodman), kept in (0, r) so that P sums to 1."""
    n1, n2, n3, n4 = (int((counts == r).sum()) for r in (1, 2, 3, 4))
    if min(n1, n2, n3, n4) == 0:  # too little text to estimate them: a common fixed choice
        return np.array([0.0, 0.5, 1.0, 1.5])
    y = n1 / (n1 + 2 * n2)
    d = np.array([0.0, 1 - 2 * y * n2 / n1, 2 - 3 * y * n3 / n2, 3 - 4 * y * n4 / n3])
    return np.clip(d, [0.0, 0.05, 0.05, 0.05], [0.0, 1.0, 2.0, 3.0])


def add_counts(keys: np.ndarray, counts: np.ndarray, grams: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted distinct keys and their counts, with the keys in `grams` counted once more each time they occur."""
    new_keys, new_counts = np.unique(grams, return_counts=True)
    merged, where = np.unique(np.concatenate([keys, new_keys]), return_inverse=True)
    total = np.zeros(len(merged), np.int64)
    np.add.at(total, where, np.concatenate([counts, new_counts]))
    return merged, total


def lookup(sorted_keys: np.ndarray, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where each query sits in a sorted array, and whether it is there."""
    i = np.searchsorted(sorted_keys, queries)
    if len(sorted_keys) == 0:
        return i, np.zeros(len(queries), bool)
    found = sorted_keys[np.minimum(i, len(sorted_keys) - 1)] == queries
    return i, found


KIND = Kind(
    name="ngram",
    title="n-grama",
    config=NGramConfig,
    build=NGram,
    objective="counts",
    preset="base",
    timed_preset="ngram",
    resumable=False,
    distributed=False,
    prepared_data=False,
    keeps_reading=True,
    tasks=(("clasificar", "ngram-clasificador"),),
)
