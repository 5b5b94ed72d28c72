"""A task written as text: a T5 reads «clasifica: TEXTO» and writes the label, «refrán» or «Cervantes».

The same labelled lines, split and batches as the BERT classifier (classify.py); what changes is the answer: not a
head with one score per label but the decoder writing the label's characters and then <end>. The loss is the
decoder's, on the answer's tokens. To score, every label is read as a possible answer and the most probable one is
the prediction (so the model never answers a label that does not exist). With `--init` the whole pretrained T5 (its
encoder, decoder and cross-attention) is the start, or a BERT of the same size: the encoder only.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from taller.models import kind_of
from taller.models.modes import evaluating
from taller.models.t5 import CLASSIFY_PREFIX, IGNORE, answers_of, label_scores
from taller.runs.folder import Run
from taller.training.classify import Classify, batch_of


class TextToText(Classify):
    """Labelled texts in, the label written out: a T5's way of classifying."""

    prefix = CLASSIFY_PREFIX

    def __init__(self, cfg, out, ctx, resume: bool):
        super().__init__(cfg, out, ctx, resume)
        self.dec_in, self.targets = answers_of(self.tokenizer, self.labelled.names, cfg.model)

    def start_from(self, pretrained: Run) -> None:
        """A pretrained T5: all of it (encoder, decoder, cross-attention, output), tensor by tensor. A BERT of the same
        size: the encoder only, the decoder starting anew (a BERT that hid single characters reads better than a T5
        span-pretrained as long: README «Tildes»)."""
        if kind_of(pretrained.config).encoder_decoder:
            self.model.load_state_dict(pretrained.model.state_dict())
        else:
            self.model.start_encoder_from(pretrained.model)

    def loss(self, model, batch) -> torch.Tensor:
        x, keys, y = batch
        dec_in, targets = self.dec_in[y.cpu()].to(x.device), self.targets[y.cpu()].to(x.device)  # (B, A) each
        with self.autocast:
            logits = model(x, dec_in, keys)  # (B, A, n_ids)
        return F.cross_entropy(logits.float().transpose(1, 2), targets, ignore_index=IGNORE)

    @torch.no_grad()
    def predict(self, rows: list[int], batch_size: int = 128) -> torch.Tensor:
        """Each label's log-probability as the answer (N, L): the classifier's logits."""
        with evaluating(self.model):
            out = []
            device = self.ctx.device
            for i in range(0, len(rows), batch_size):
                x, keys = batch_of(self.x, self.lengths, torch.tensor(rows[i : i + batch_size]))
                with self.autocast:
                    out.append(
                        label_scores(
                            self.model, x.to(device), keys.to(device), self.dec_in.to(device), self.targets.to(device)
                        ).cpu()
                    )
        return torch.cat(out)
