"""Put the accents back («tildes»): the objective of the accent tagger (the model is BertTagger, models/bert.py).

    a batch:  B windows of T characters of the training text with its accents stripped (B, T);
              the answer, per character: none, acute or diaeresis (data/accents.py), or IGNORE where the bare
              character cannot carry any mark (only vowels carry the acute, only «u» the diaeresis)
    its loss: cross_entropy over the characters that could carry a mark — the encoder reads both sides of each one —
              plus, weighted by model.word_loss, the choice the decoder makes (inspect/tildes.py: seen_forms): for each
              word with several training forms, the cross-entropy of its form among them, each form scored by the sum
              of its letters' mark log-probabilities (`form_loss`). A letter's mark alone teaches «é» and «l» apart;
              the choice teaches «él» against «el», the decision that counts.

Any corpus is the task's data: no labelled file, its own train/validation split. With `--init RUN` the encoder
starts from a pretrained BERT run (its tokenizer and size too), or from a tagger run
(all of it: a long training in two parts). Validation: disjoint windows of the stripped val
text; at each epoch the loss and the share of marks right; at the end the val text fixed whole and scored word by
word against the lookup baseline's words (data/accents.py: word_scores).
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import torch
import torch.nn.functional as F

from taller.data.accents import CAN_CARRY, Lookup, form_table, marks_of, strip, word_scores
from taller.data.corpora import prepare_corpus
from taller.data.split import Split, split_corpus
from taller.data.tokenizers import build_tokenizer, load_tokenizer
from taller.errors import TallerError
from taller.inspect.tildes import allowed_marks, char_ids, mark_ids, put_accents
from taller.models import build_model, kind_of
from taller.models.bert import N_MARKS
from taller.models.t5 import TILDES_PREFIX
from taller.runs.folder import Run, load_run
from taller.text import number, thousands
from taller.training.classify import NOT_COPIED, EncoderTask, pretrained_run
from taller.training.device import autocast_for
from taller.training.optim import make_optimizer

IGNORE = -100  # a character that cannot carry a mark: not asked about


def char_tokenizer(tokenizer, where: str):
    if tokenizer.kind != "char":
        raise TallerError(
            f"{where} usa tokens {tokenizer.kind}; el etiquetador de tildes pone una marca por carácter "
            "y necesita un BERT de caracteres (entrénalo con --set tokenizer=char)."
        )
    return tokenizer


def encode_task(tokenizer, text: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A text -> the ids of its stripped characters (N,), each one's mark, or IGNORE where none is possible (N,), and
    the ids of the text itself (N,): what a T5 writes."""
    bare = strip(text)
    ids = char_ids(tokenizer, bare)
    marks = [m if len(CAN_CARRY.get(ch, ())) > 1 else IGNORE for ch, m in zip(bare, marks_of(text))]
    return ids, torch.tensor(marks, dtype=torch.long), char_ids(tokenizer, text)


def starting_run(cfg, path: str) -> Run:
    """--init: a pretrained BERT (its encoder starts the tagger) or an accent tagger (all of it goes on learning: a
    long training in two parts). The new run takes its size."""
    run = load_run(path, can=("fills", "fixes_accents"))
    if not kind_of(run.config).fixes_accents:
        return pretrained_run(cfg, path)
    if kind_of(run.config) is not kind_of(cfg):
        raise TallerError(
            f"--init {path}: es {kind_of(run.config).a_title} y no puede empezar {kind_of(cfg).a_title}; "
            "usa una ejecución del mismo tipo o una preentrenada."
        )
    for f in dataclasses.fields(run.config.model):
        if f.name not in (*NOT_COPIED, "init", "word_loss"):  # how it goes on learning is the new run's
            setattr(cfg.model, f.name, getattr(run.config.model, f.name))
    return run


def form_loss(logits, allowed, forms, back, truth) -> torch.Tensor:
    """What the decoder does with a seen word, taught: the cross-entropy of the choice among a word's training forms
    (data/accents.py: form_table), each form scored by the sum of its letters' mark log-probabilities, over the words
    that start and end inside the window. logits (B, T, N_MARKS), allowed (B, T, N_MARKS) bool, forms (B, T, k),
    back and truth (B, T) -> a scalar (0 when the window has no such word)."""
    B, T, _ = logits.shape
    logp = logits.masked_fill(~allowed, -1e4).log_softmax(-1)  # (B, T, N_MARKS): a letter's impossible marks out
    forms = forms.long()
    per_letter = logp.gather(-1, forms.clamp(min=0)).masked_fill(forms < 0, 0.0)  # (B, T, k)
    summed = F.pad(per_letter.cumsum(1), (0, 0, 1, 0))  # (B, T + 1, k): summed[:, t] = the sum before t
    start = torch.arange(T, device=logits.device) - back.long()  # (B, T) where the word ending here starts
    b, t = ((truth >= 0) & (back >= 0) & (start >= 0)).nonzero(as_tuple=True)  # (W,) the words inside
    if len(b) == 0:
        return logits.sum() * 0.0
    scores = summed[b, t + 1] - summed[b, start[b, t]]  # (W, k): each form's log-probability
    scores = scores.masked_fill(forms[b, t] < 0, float("-inf"))  # a word with fewer forms
    return F.cross_entropy(scores, truth[b, t].long())


class Accents(EncoderTask):
    """Stripped text in, one mark per character out: what the training loop needs to teach an accent tagger. A T5
    (a kind that is `encoder_decoder`) reads «tildes: » and the window, and writes the window with its accents: its
    loss is the decoder's over every character it writes (and the choice of forms, from its teacher-forced scores of
    each character's marks); its marks' score, teacher-forced, over the marks only."""

    speed_key, speed_unit = "chars_per_s", "car/s"
    clip_gradients = True

    def __init__(self, cfg, out: Path, ctx, resume: bool):
        m, t, self.cfg, self.ctx = cfg.model, cfg.train, cfg, ctx
        self.writes = kind_of(cfg).encoder_decoder  # a T5: the decoder writes the text
        self.word_weight = m.word_loss  # besides each mark (or character), the choice of a word's training form
        self.corpus = prepare_corpus(cfg.data)
        self.split = split_corpus(self.corpus, cfg.data)
        pretrained = starting_run(cfg, m.init) if m.init and not resume else None
        if resume:
            self.tokenizer = load_tokenizer(out / "tokenizer.json")
        elif pretrained is not None:
            self.tokenizer = char_tokenizer(pretrained.tokenizer, f"--init {m.init}")
        else:  # a tagger reads stripped text only; a T5 writes the text as well
            train, val = strip(self.split.train), strip(self.split.val)
            if self.writes:
                train, val = self.split.train + train, self.split.val + val
            self.tokenizer = build_tokenizer(cfg.data, Split(train, val, self.split.kind))
        m.vocab_size = self.tokenizer.vocab_size
        self.train_x, self.train_y, self.train_text = encode_task(self.tokenizer, self.split.train)
        val_x, val_y, val_text = encode_task(self.tokenizer, self.split.val)
        T = self.window = m.text_window if self.writes else m.block_size
        if len(self.train_x) <= T or len(val_x) < 2:
            raise TallerError(
                f"el texto es demasiado corto para aprender tildes: {len(self.train_x)} caracteres de "
                f"entrenamiento y {len(val_x)} de validación; usa un texto más largo o baja "
                "block_size."
            )
        n = max(1, len(val_x) // T)
        self.val_x, self.val_y = val_x[: n * T].view(n, T), val_y[: n * T].view(n, T)  # (N, T) disjoint windows
        self.val_text = val_text[: n * T].view(n, T)
        self.lookup = Lookup(self.split.train)
        self.forms = form_table(self.split.train, self.lookup) if self.word_weight else None  # (N, k), (N,), (N,)
        self.allowed = allowed_marks(self.tokenizer)  # (V, N_MARKS)
        self.variants = mark_ids(self.tokenizer)  # (V, N_MARKS): each bare character's id with each mark, -1: none
        self.prefix = char_ids(self.tokenizer, TILDES_PREFIX)  # (P,) what a T5 reads first
        self.chosen = cfg.fit_to_text(len(self.train_x))
        cfg.validate()
        torch.manual_seed(t.seed)
        self.model = build_model(m).to(ctx.device)
        if pretrained is not None:
            start = kind_of(pretrained.config)
            if start.fixes_accents or (self.writes and start.encoder_decoder):
                self.model.load_state_dict(pretrained.model.state_dict())  # a tagger, a T5: all of it
            elif self.writes:
                self.model.start_encoder_from(pretrained.model)  # a T5 from a BERT: its decoder starts anew
            else:
                self.model.encoder.load_state_dict(pretrained.model.state_dict())  # the head starts anew
        self.autocast = autocast_for(ctx.device, t.dtype)
        self.n_eval = max(1, math.ceil(t.eval_chars / T))
        self.generator = torch.Generator().manual_seed(t.seed + 1)  # which windows each batch takes

    # --- what the loop asks ---------------------------------------------------------------------------------------
    def make_optimizer(self):
        return make_optimizer(self.model, self.cfg)

    @property
    def steps_per_epoch(self) -> int:
        return max(1, math.ceil(len(self.train_x) / (self.cfg.train.batch_size * self.window)))

    def epochs_done(self, step: int) -> float:
        return step / self.steps_per_epoch

    def epoch_ended(self, step: int) -> bool:
        return step % self.steps_per_epoch == 0

    def next_batch(self):
        B, T = self.cfg.train.batch_size, self.window
        starts = torch.randint(len(self.train_x) - T + 1, (B,), generator=self.generator)
        rows = starts[:, None] + torch.arange(T)[None, :]  # (B, T)
        device = self.ctx.device
        forms = tuple(f[rows].to(device) for f in self.forms) if self.forms is not None else None
        return self.train_x[rows].to(device), self.train_y[rows].to(device), self.train_text[rows].to(device), forms

    def items(self, batch) -> int:
        return batch[0].numel()

    def written(self, model, x: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        """A T5's logits for each character of the text, teacher-forced (B, T, n_ids): «tildes: » and the stripped
        window in, <start> and the text so far into the decoder."""
        B = len(x)
        src = torch.cat([self.prefix.to(x.device).expand(B, -1), x], dim=1)  # (B, P + T)
        start = torch.full((B, 1), model.cfg.start_id, device=x.device)
        with self.autocast:
            return model(src, torch.cat([start, text[:, :-1]], dim=1)).float()

    def mark_logits(self, model, x: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        """(B, T, N_MARKS): a tagger's head; a T5's scores for the character with each mark (-inf: none such)."""
        if not self.writes:
            with self.autocast:
                return model(x).float()
        options = self.variants.to(x.device)[x]  # (B, T, N_MARKS)
        scores = self.written(model, x, text).gather(-1, options.clamp(min=0))
        return scores.masked_fill(options < 0, float("-inf"))

    def loss(self, model, batch) -> torch.Tensor:
        x, y, text, forms = batch
        if self.writes:  # the decoder writes every character: the copied ones too
            written = self.written(model, x, text)  # (B, T, n_ids)
            letters = F.cross_entropy(written.view(-1, written.shape[-1]), text.reshape(-1))
            options = self.variants.to(x.device)[x]  # (B, T, N_MARKS): each mark's character, -1: none such
            logits = written.gather(-1, options.clamp(min=0)).masked_fill(options < 0, -1e4)  # (B, T, N_MARKS)
        else:
            with self.autocast:
                logits = model(x).float()  # (B, T, N_MARKS)
            letters = F.cross_entropy(logits.view(-1, N_MARKS), y.reshape(-1), ignore_index=IGNORE)
        if forms is None:
            return letters
        return letters + self.word_weight * form_loss(logits, self.allowed.to(x.device)[x], *forms)

    @torch.no_grad()
    def evaluate(self, whole: bool = False) -> dict:
        """The loss and the share of marks right, over the characters that can carry one."""
        self.model.eval()
        n = len(self.val_x) if whole else min(self.n_eval, len(self.val_x))
        total, right, count = 0.0, 0, 0
        for i in range(0, n, 64):
            xb, yb, tb = (v[i : min(i + 64, n)].to(self.ctx.device) for v in (self.val_x, self.val_y, self.val_text))
            logits = self.mark_logits(self.model, xb, tb)  # (B, T, N_MARKS)
            m = yb != IGNORE
            total += F.cross_entropy(logits[m], yb[m], reduction="sum").item()
            right += int((logits[m].argmax(-1) == yb[m]).sum())
            count += int(m.sum())
        self.model.train()
        return {"val_loss": total / max(1, count), "val_accuracy": right / max(1, count)}

    def word_scores(self) -> dict:
        """The val text fixed whole, word by word against the original (the ambiguous words: by the training text)."""
        self.model.eval()
        fixed = put_accents(self.model, self.tokenizer, self.split.val, self.lookup, self.writes)
        self.model.train()
        return word_scores(fixed, self.split.val, self.lookup)

    # --- saving and resuming ----------------------------------------------------------------------------------------
    def random_state(self) -> dict[str, torch.Tensor]:
        return {"rng.torch": torch.get_rng_state(), "rng.data": self.generator.get_state()}

    def restore(self, tensors: dict[str, torch.Tensor], state: dict) -> None:
        torch.set_rng_state(tensors["rng.torch"])
        self.generator.set_state(tensors["rng.data"])

    def state(self) -> dict:
        return {"corpus": self.corpus, "split": self.split, "init": self.cfg.model.init}

    def save_vocabulary(self, out: Path) -> None:
        self.tokenizer.save(out / "tokenizer.json")

    # --- what the run folder shows ----------------------------------------------------------------------------------
    def begin(self, trainer) -> None:
        self.say_start(
            trainer,
            "Tildes",
            f"{self.corpus.name}: {thousands(len(self.train_x))} caracteres de "
            f"entrenamiento, {thousands(self.val_x.numel())} de validación",
        )

    def finish(self, trainer, final: dict) -> Run:
        """The marks' score and the val text's words (state.json and the log), and the loss curves."""
        words = self.word_scores()
        trainer.commit(finished=True, extra={**final, **{f"val_words_{k}": v for k, v in words.items()}})
        self.stopped(trainer)
        trainer.log(
            f"Validación: {number(100 * final['val_accuracy'], 2)} % de las marcas; palabras: "
            f"{number(100 * words['accuracy'], 2)} % "
            f"({thousands(words['errors'])} errores de {thousands(words['words'])}), ambiguas: "
            f"{number(100 * words['ambiguous_accuracy'], 1)} % de {thousands(words['ambiguous'])} ({trainer.step} "
            f"pasos, {trainer.train_time:.0f} s)."
        )
        trainer.log(f'Prueba: taller tildes {trainer.out} --text "El dijo que si, que esta cansado"')
        return Run(trainer.out, self.cfg, self.tokenizer, self.model, trainer.saved_state)

    def interrupted_run(self, trainer) -> Run:
        return Run(
            trainer.out, self.cfg, self.tokenizer, self.model, trainer.saved_state, interrupted=trainer.stopped_by
        )
