"""The paper-faithful trainer (Zaremba et al. 2014, sec 4.1): config in, events out.

Per minibatch: forward with the carried (detached) state, cross-entropy summed over the
unrolled steps and averaged over the batch, backward, global-norm clipping, plain SGD.
Per epoch: the preset's lr schedule, validation with the state carried through the split.
At the end: the test set streamed with its state carried (batch 1, as the paper's code).

Listeners (rnnreg.recording, rnnreg.probes, the CLI's progress bar) subscribe to events
(`on_train_start`, `on_step`, `on_epoch_end`, `on_test`, `on_cancel`); the loop itself writes nothing.
"""

from __future__ import annotations

import itertools
import math
import time
from dataclasses import dataclass
from typing import Callable, Iterable, Protocol

import torch
import torch.nn.functional as F

from rnnreg.config import RunConfig, lr_at_epoch
from rnnreg.data import Corpus, batchify, count_windows, windows
from rnnreg.lstm import State
from rnnreg.model import LanguageModel
from rnnreg.steps import make_step


# Not in the paper (which stops no run): a model whose mean training loss exceeds this many times a
# uniform guess's, ln(vocabulary), has blown up, though its loss may stay finite (lr 100 on the demo:
# 170,000 nats a word, perplexity 1e304); it stops as diverged.  A model's first steps sit near 1x
# (the large preset's first logged loss is 15.0 nats against 9.2).
BLOWN_UP_FACTOR = 10.0


class Diverged(RuntimeError):
    """The training loss became NaN or infinite, or blew up past BLOWN_UP_FACTOR x ln(vocabulary)."""

    def __init__(self, step: int, epoch: int, lr: float, blown_up: tuple[float, float] | None = None) -> None:
        self.step, self.epoch, self.lr = step, epoch, lr
        what = ("became non-finite" if blown_up is None else
                f"blew up: {blown_up[0]:.4g} nats a word, over {BLOWN_UP_FACTOR:g} times a uniform guess's "
                f"{blown_up[1]:.1f},")
        super().__init__(
            f"loss {what} at step {step} (epoch {epoch}, lr {lr:g}); "
            "hint: lower the learning rate or the gradient clip, or check the data"
        )


class Cancelled(RuntimeError):
    """Training was asked to stop (SIGTERM / `rnnreg cancel`)."""


@dataclass(frozen=True)
class StepEvent:
    step: int  # global minibatch count, 1-based
    epoch: int
    loss: float  # mean cross-entropy per token of this minibatch (nats)
    grad_norm: float  # global norm before clipping
    layer_grad_norms: dict[str, float]
    clipped: bool
    lr: float
    words_per_s: float  # since the previous logged step
    words: int  # training tokens seen so far
    time: float  # seconds since training started


@dataclass(frozen=True)
class EpochEvent:
    epoch: int
    train_ppl: float
    valid_ppl: float
    lr: float
    seconds: float  # this epoch's training + validation time
    clipped_fraction: float  # of all minibatches of the epoch
    words: int
    time: float
    valid_accuracy: float | None = None  # recall accuracy, for tasks with a query token


@dataclass(frozen=True)
class TestEvent:
    test_ppl: float
    valid_ppl: float  # of the final model
    epoch: int
    test_accuracy: float | None = None  # recall accuracy, for tasks with a query token
    # recall accuracy by gap d ("d": accuracy), for tasks whose sequences each fill one window
    test_accuracy_by_delay: dict[str, float] | None = None


@dataclass(frozen=True)
class Scores:
    ppl: float
    accuracy: float | None  # of the next-token guess where the input is the task's query token
    accuracy_by_delay: dict[str, float] | None = None  # query at window row d + 1 -> gap d


@dataclass(frozen=True)
class EpochProgress:
    """How far training got into an epoch it has not finished: what a mid-epoch checkpoint holds,
    besides the weights and the RNG states, for `Trainer.restore` to go on from the next window."""

    windows: int  # minibatches of this epoch already trained
    seconds: float  # this epoch's training time so far
    nats: float  # their summed training cross-entropy (the epoch's train ppl needs it)
    clipped: int  # how many of them were clipped
    state: State  # the (h, c) carried out of the last of them, each (layers, B, H), on the CPU


class Listener(Protocol):
    """Every method is optional.  A listener must not draw from the global RNG in `on_step`
    (dropout masks draw from it, and a mid-epoch checkpoint saves it as it is then)."""

    def on_train_start(self, trainer: "Trainer") -> None: ...
    def on_step(self, trainer: "Trainer", event: StepEvent) -> None: ...
    def on_epoch_end(self, trainer: "Trainer", event: EpochEvent) -> None: ...
    def on_test(self, trainer: "Trainer", event: TestEvent) -> None: ...
    # asked to stop between two minibatches; `trainer.epoch_progress()` is where it stopped
    def on_cancel(self, trainer: "Trainer") -> None: ...


def resolve_device(requested: str) -> torch.device:
    """`auto` picks CUDA when present; `cuda` without a GPU is a user error."""
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if requested == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device: cuda was asked for but no CUDA GPU is available; allowed here: auto, cpu")
    return torch.device(requested)


def perplexity(total_nats: float, tokens: int) -> float:
    return math.exp(min(total_nats / max(tokens, 1), 700.0))  # capped to stay a finite float


def _cut_by(option: str, kept: torch.Tensor, whole: torch.Tensor) -> str:
    """'--max-eval-tokens / ' where that option cut the split short: a split too short for its
    batch columns names it beside the batch size."""
    return f"{option} / " if kept.numel() < whole.numel() else ""


class Trainer:
    def __init__(
        self,
        config: RunConfig,
        corpus: Corpus,
        device: torch.device,
        listeners: Iterable[Listener] = (),
        should_stop: Callable[[], bool] = lambda: False,
    ) -> None:
        self.config, self.corpus, self.device = config, corpus, device
        self.listeners = list(listeners)
        self.should_stop = should_stop
        t = config.train
        if t.threads is not None and device.type == "cpu":
            torch.set_num_threads(t.threads)
        torch.manual_seed(t.seed)
        self.vocab_size = len(corpus.vocab)
        self.model = LanguageModel(self.vocab_size, config.model, config.dropout).to(device)
        train_ids = corpus.train[: t.max_train_tokens] if t.max_train_tokens else corpus.train
        valid_ids = corpus.valid[: t.max_eval_tokens] if t.max_eval_tokens else corpus.valid
        test_ids = corpus.test[: t.max_eval_tokens] if t.max_eval_tokens else corpus.test
        self.train_data = batchify(train_ids, t.batch_size, _cut_by("--max-train-tokens", train_ids, corpus.train)
                                   + "--batch-size: the train split").to(device)  # (N/B, B)
        self.valid_data = batchify(valid_ids, t.batch_size, _cut_by("--max-eval-tokens", valid_ids, corpus.valid)
                                   + "--batch-size: the valid split").to(device)
        self.test_data = batchify(test_ids, t.test_batch_size, _cut_by("--max-eval-tokens", test_ids, corpus.test)
                                  + "test_batch_size: the test split").to(device)
        self.batches_per_epoch = count_windows(self.train_data, t.bptt, full_only=True)
        if self.batches_per_epoch == 0:  # name what the user can change: the window, or the tokens they cut
            longest = self.train_data.shape[0] - 1  # each of the B columns: inputs and their next-word targets
            raise ValueError(
                f"--bptt / --max-train-tokens / --batch-size: {train_ids.numel()} training tokens in {t.batch_size} "
                f"columns give no full window of {t.bptt} steps (at most --bptt {longest} here)"
            )
        if count_windows(self.valid_data, t.bptt, full_only=True) == 0:  # validation reads full windows only
            raise ValueError(
                f"the valid split: {valid_ids.numel()} validation tokens (max_eval_tokens {t.max_eval_tokens}) give "
                f"no full window of {t.bptt} steps at batch size {t.batch_size}; validation perplexity would read 1.00"
            )
        self.parameters = list(self.model.parameters())
        # The minibatch step: replayed as one CUDA graph on a GPU (`--step auto`), eager elsewhere.
        self.training_step, self.step_note = make_step(
            t.step, self._forward, self.parameters, self.model.init_state(t.batch_size), t.clip,
            self.model.parameter_groups(), (t.bptt, t.batch_size), t.weight_decay,
        )
        self.step = 0
        self.epoch = 0
        self.words = 0
        self.started = time.perf_counter()
        # The RNG states at the end of the last epoch (dropout masks draw from them).  The next
        # epoch starts from exactly these, so listeners that draw random numbers between epochs
        # change nothing, and a checkpoint holding them resumes bit for bit.
        self.rng_state: dict[str, torch.Tensor] | None = None
        self._progress: EpochProgress | None = None  # restored from a mid-epoch checkpoint, until used
        self._epoch_start = (time.perf_counter(), 0)  # (clock, global step) where the current epoch began

    def _forward(self, tokens: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        out = self.model(tokens, state)
        return out.logits, out.state

    def rng_states(self) -> dict[str, torch.Tensor]:
        """The generators training draws from: {"cpu": ..., "cuda": ... (on a GPU)}."""
        states = {"cpu": torch.get_rng_state()}
        if self.device.type == "cuda":
            states["cuda"] = torch.cuda.get_rng_state(self.device)
        return states

    def _set_rng_states(self, states: dict[str, torch.Tensor]) -> None:
        torch.set_rng_state(states["cpu"])
        if self.device.type == "cuda" and "cuda" in states:
            torch.cuda.set_rng_state(states["cuda"], self.device)

    def restore(
        self, weights: dict[str, torch.Tensor], *, epoch: int, step: int, words: int, elapsed: float,
        rng: dict[str, torch.Tensor], progress: EpochProgress | None = None,
    ) -> None:
        """Continue after completed `epoch` (from a checkpoint): `run()` then trains epoch + 1 on,
        from its first window, or with `progress` (a mid-epoch checkpoint) from the window after
        `progress.windows`, with the state those carried out.

        Between epochs no hidden state is needed: every epoch starts from a zero state.  The lr
        follows from the epoch (`lr_at_epoch`); plain SGD keeps no optimizer state.
        """
        if progress is not None and not 0 <= progress.windows <= min(step, self.batches_per_epoch):
            raise ValueError(f"a mid-epoch checkpoint after {progress.windows} windows of an epoch of "
                             f"{self.batches_per_epoch} (step {step})")
        self.model.load_state_dict(weights, strict=True)
        self.epoch, self.step, self.words = epoch, step, words
        self.started = time.perf_counter() - elapsed  # the `time` of records continues
        self.rng_state = {name: state.clone() for name, state in rng.items()}
        self._progress = progress

    def epoch_progress(self) -> EpochProgress:
        """Where the epoch being trained stands, after its last minibatch (for a mid-epoch checkpoint)."""
        totals = self.training_step.totals
        clock, first_step = self._epoch_start
        h, c = (part.detach().to("cpu", copy=True) for part in self.training_step.state)
        return EpochProgress(
            windows=self.step - first_step, seconds=time.perf_counter() - clock, nats=totals.nats.item(),
            clipped=int(totals.clipped.item()), state=(h, c),
        )

    def _emit(self, name: str, *args: object) -> None:
        for listener in self.listeners:
            method = getattr(listener, name, None)
            if method is not None:
                method(self, *args)

    def run(self) -> TestEvent:
        """Train for the configured epochs, then test. Raises Diverged or Cancelled."""
        self._emit("on_train_start")
        valid_ppl = math.nan
        for epoch in range(self.epoch + 1, self.config.train.epochs + 1):
            valid_ppl = self.train_epoch(epoch).valid_ppl
        if math.isnan(valid_ppl):  # resumed after the last epoch: only the test was left to do
            valid_ppl = self.evaluate(self.valid_data, full_windows=True)
        test = self.scores(self.test_data, full_windows=False)
        event = TestEvent(test_ppl=test.ppl, valid_ppl=valid_ppl, epoch=self.epoch, test_accuracy=test.accuracy,
                          test_accuracy_by_delay=test.accuracy_by_delay)
        self._emit("on_test", event)
        return event

    def train_epoch(self, epoch: int) -> EpochEvent:
        t = self.config.train
        model = self.model
        lr = lr_at_epoch(t, epoch)
        epoch_start = time.perf_counter()
        if self.rng_state is not None:
            self._set_rng_states(self.rng_state)
        model.train()
        step_fn = self.training_step
        step_fn.start_epoch(lr, self.step)  # zero state at the start of every epoch
        totals = step_fn.totals  # accumulated on the device: the loop never waits for the GPU between logs
        done, self._progress = self._progress, None
        if done is not None:  # resumed mid-epoch: its first `done.windows` windows are trained already
            step_fn.restore_progress(done.state, done.nats, done.clipped)
            epoch_start -= done.seconds
        skip = done.windows if done is not None else 0
        self._epoch_start = (epoch_start, self.step - skip)
        tokens = skip * t.bptt * t.batch_size  # full windows only
        last_log_time, last_log_words = time.perf_counter(), self.words
        for inputs, targets in itertools.islice(windows(self.train_data, t.bptt, full_only=True), skip, None):
            if self.should_stop():
                self._check_finite(totals.first_bad, epoch, lr)  # a diverged run ends diverged, not resumable
                self._emit("on_cancel")
                raise Cancelled(f"cancelled during epoch {epoch} at step {self.step}")
            self.step += 1
            steps, batch = inputs.shape
            out = step_fn(inputs, targets)
            tokens += steps * batch
            self.words += steps * batch
            if self.step % t.log_every == 0:
                self._check_finite(totals.first_bad, epoch, lr)
                loss = out.nats.item() / (steps * batch)
                self._check_not_blown_up(loss, self.step, epoch, lr)
                now = time.perf_counter()
                grad_norm = out.grad_norm.item()
                event = StepEvent(
                    step=self.step, epoch=epoch, loss=loss, grad_norm=grad_norm,
                    layer_grad_norms=step_fn.layer_grad_norms(out), clipped=grad_norm > t.clip, lr=lr,
                    words_per_s=(self.words - last_log_words) / max(now - last_log_time, 1e-9),
                    words=self.words, time=now - self.started,
                )
                last_log_time, last_log_words = now, self.words
                self._emit("on_step", event)
        self._check_finite(totals.first_bad, epoch, lr)
        self._check_not_blown_up(totals.nats.item() / max(tokens, 1), self.step, epoch, lr)  # the epoch's mean
        valid = self.scores(self.valid_data, full_windows=True)
        valid_ppl = valid.ppl
        self.epoch = epoch
        self.rng_state = self.rng_states()
        event = EpochEvent(
            epoch=epoch, train_ppl=perplexity(totals.nats.item(), tokens), valid_ppl=valid_ppl, lr=lr,
            seconds=time.perf_counter() - epoch_start, clipped_fraction=totals.clipped.item() / self.batches_per_epoch,
            words=self.words, time=time.perf_counter() - self.started, valid_accuracy=valid.accuracy,
        )
        self._emit("on_epoch_end", event)
        return event

    def _check_not_blown_up(self, nats_per_word: float, step: int, epoch: int, lr: float) -> None:
        uniform = math.log(self.vocab_size)
        if nats_per_word > BLOWN_UP_FACTOR * uniform:
            raise Diverged(step, epoch, lr, blown_up=(nats_per_word, uniform))

    def _check_finite(self, first_bad_step: torch.Tensor, epoch: int, lr: float) -> None:
        bad_step = int(first_bad_step.item())
        if bad_step:
            raise Diverged(bad_step, epoch, lr)

    def evaluate(self, data: torch.Tensor, *, full_windows: bool) -> float:
        """Perplexity of `data` (rows x batch) read in windows with the state carried throughout."""
        return self.scores(data, full_windows=full_windows).ppl

    @torch.no_grad()
    def scores(self, data: torch.Tensor, *, full_windows: bool) -> Scores:
        """Perplexity, and recall accuracy where the corpus has a query token."""
        model = self.model
        was_training = model.training
        model.eval()
        batch = data.size(1)
        state = model.init_state(batch)
        total = torch.zeros((), device=self.device, dtype=torch.float64)
        query = self.corpus.query_id
        bptt = self.config.train.bptt
        hits = torch.zeros(bptt, device=self.device, dtype=torch.long)  # by row of the window
        queries = torch.zeros(bptt, device=self.device, dtype=torch.long)
        tokens = 0
        for inputs, targets in windows(data, self.config.train.bptt, full_only=full_windows):
            out = model(inputs, state)
            state = out.state
            total += F.cross_entropy(out.logits.view(-1, out.logits.size(-1)), targets.reshape(-1), reduction="sum")
            tokens += targets.numel()
            if query is not None:
                asked = inputs == query  # (T, B)
                rows = torch.arange(inputs.size(0), device=inputs.device)[:, None].expand_as(inputs)
                correct = asked & (out.logits.argmax(-1) == targets)
                hits += torch.bincount(rows[correct], minlength=bptt)[:bptt]
                queries += torch.bincount(rows[asked], minlength=bptt)[:bptt]
        model.train(was_training)
        if query is None or queries.sum().item() == 0:
            return Scores(perplexity(total.item(), tokens), None)
        hits_list, queries_list = hits.tolist(), queries.tolist()
        by_delay = {str(row - 1): h / q for row, (h, q) in enumerate(zip(hits_list, queries_list)) if q and row >= 1}
        return Scores(perplexity(total.item(), tokens), sum(hits_list) / sum(queries_list), by_delay)
