"""The online mixer: logistic mixing in the log domain over the alphabet (see models/mix.py), learning while it reads.

    log p(s) = Σ_i w_i · log p_i(s) − log Z

The weights are not one vector but a small table, one row per mixing context (here: how long a context the order
models have seen, and how long the match has run), so the mixer can trust the 8th order after «Sancho Pan» and the
2nd order after a rare word. Each input may also say how sure it is, as a small integer: its *state* (an order's
count total and whether one symbol alone followed its context; the match's length). Its weight is then the row's
plus a second one read from its own table by its state, w_i = W[row, i] + C[i, state_i]: an 8th order seen once
and one seen 200 times are trusted differently, whatever the row. After each character both take one step down the
gradient of the character's cost −log p(y):

    ∂(−log p(y)) / ∂w_i = −(log p_i(y) − Σ_s p(s) · log p_i(s))

An input that gave the coming character more than the mix expected gains weight; one that gave it less loses some.
"""

from __future__ import annotations

import numpy as np

FLOOR = -30.0  # log-probabilities below this count as this
BOOST_STEPS = 1000.0  # a row's boost halves after this many steps


class Mixer:
    def __init__(
        self,
        inputs: int,
        contexts: int,
        rate: float,
        start: float,
        states: int = 1,
        state_rate: float = 0.0,
        boost: float = 0.0,
    ):
        """states: how many states each input may say it is in (1: none; the weights are the row's alone), learnt
        at state_rate; boost: a row's first steps are (1 + boost) times larger, falling to `rate` as it is used."""
        self.weights = np.full((contexts, inputs), start)  # (contexts, inputs)
        self.confidence = np.zeros((inputs, states))  # (inputs, states): added to the row's weight
        self.each = np.arange(inputs)
        self.rate, self.state_rate, self.boost = rate, state_rate, boost
        self.uses = np.zeros(contexts)  # (contexts,) steps each row has taken
        self.logp = np.zeros(0)  # (inputs, V) the last inputs, kept for learn()
        self.p = np.zeros(0)  # (V,) the last mixed distribution
        self.row, self.state = 0, np.zeros(inputs, np.intp)

    def mix(
        self, probs: np.ndarray, context: int, state: np.ndarray | None = None, logp: np.ndarray | None = None
    ) -> np.ndarray:
        """(inputs, V) distributions, the mixing context and (inputs,) each input's state -> (V,) the mixture;
        logp: the inputs' floored logs, if another mixer has them already."""
        self.row, self.logp = context, np.maximum(np.log(probs), FLOOR) if logp is None else logp
        self.state = self.state if state is None else state
        w = self.weights[context]  # (inputs,)
        w = w + self.confidence[self.each, self.state] if self.confidence.shape[1] > 1 else w
        z = w @ self.logp  # (V,)
        e = np.exp(z - z.max())
        self.p = e / e.sum()
        return self.p

    def learn(self, symbol: int) -> None:
        gradient = self.logp[:, symbol] - self.logp @ self.p  # (inputs,): minus the gradient of −log p(y)
        fresh = BOOST_STEPS / (BOOST_STEPS + self.uses[self.row])  # 1 for a new row, towards 0
        self.weights[self.row] += self.rate * (1.0 + self.boost * fresh) * gradient
        self.uses[self.row] += 1.0
        if self.confidence.shape[1] > 1:
            self.confidence[self.each, self.state] += self.state_rate * gradient
