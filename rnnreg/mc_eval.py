"""`rnnreg evaluate`: a finished run's test perplexity, deterministic and Monte-Carlo.

Monte-Carlo dropout (Gal & Ghahramani 2016, sec. 5) keeps dropout on at test time and
averages the *predictive probabilities* of N stochastic passes:

    p_MC(w_t | w_<t) = 1/N * sum_n p(w_t | w_<t, masks_n),     ppl = exp(-mean_t log p_MC)

The deterministic figure is the paper's: dropout off, the test stream read with its state
carried throughout (Zaremba et al. 2014; the trainer's own final test).

Which masks a stochastic pass uses is the *protocol*.  The default is Gal & Ghahramani's
own (their LM code's run_MC_test): each sample draws its masks once for the whole test
stream (masks="stream"), and word dropout is off (word_dropout=False).  The alternative,
masks="window" with word_dropout=True, redraws the masks at every window as training does
and drops word types too; this project's first MC figures (before 2026-11-27) used it.
Per-step masks are fresh at every step either way.  Each record says which it used.

Beside the average, each record holds the perplexity of one stochastic pass alone (the
geometric mean over the samples, `single_pass_ppl`).  Against the figure with dropout off it
says whether the model scores better with its masks on at all; the MC figure against it is
what averaging the passes, an ensemble, adds.

Samples run side by side as columns of one wide batch: the test stream (rows, B) repeated S
times is (rows, S*B), column k*B + b being sample k of stream b.  Each column draws its own
masks and carries its own state, so S samples cost one pass.  Word dropout (when asked
for) is drawn per column here (rnnreg.dropout.embedding), whatever the placement draws in
training; DropConnect on W_hh cannot be (one weight mask serves the batch), so weight-drop
runs one sample per pass.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, NamedTuple

import torch
import torch.nn.functional as F

from rnnreg.data import batchify, windows
from rnnreg.dropout.masks import FrozenMasks, frozen_masks
from rnnreg.inspect_model import InspectError, load_run_corpus, load_run_model
from rnnreg.model import LanguageModel
from rnnreg.provenance import git_commit
from rnnreg.runs import RunWriter, effective_state, read_json, utc_now

MC_KIND = "mc_test"  # the metrics.jsonl record `rnnreg evaluate --mc-samples` appends
MC_MASKS = ("stream", "window")  # one mask per sample for the whole stream (Gal), or per window
LOGITS_BUDGET = {"cuda": 2e9, "cpu": 2e8}  # bytes of float32 logits one wide pass may hold


class EvaluateError(ValueError):
    """A user-caused problem (unfinished run, wrong corpus, bad sample count); one line."""


@dataclass(frozen=True)
class MCResult:
    samples: int
    mc_test_ppl: float
    test_ppl: float  # deterministic (dropout off), recomputed here
    tokens: int
    samples_per_pass: int
    seconds: float
    seed: int
    device: str
    weights_dtype: str = "float32"  # of the checkpoint evaluated: float16 after `rnnreg compact`
    masks: str = "stream"  # the protocol (module docstring); records without these keys used
    word_dropout: bool = False  # ... masks "window" with word dropout on
    torch_version: str | None = None  # which code computed the figures (records before 2026-12-07: not said)
    git_commit: str | None = None
    single_pass_ppl: float | None = None  # one stochastic pass alone (records before 2026-12-07: not measured)


def samples_per_pass(samples: int, bptt: int, batch: int, vocab: int, device: torch.device,
                     shared_masks: bool) -> int:
    """How many samples one wide pass carries: all of them unless the logits would not fit."""
    if shared_masks:
        return 1
    per_sample = bptt * batch * vocab * 4  # bytes of float32 logits per sample and window
    return max(1, min(samples, int(LOGITS_BUDGET.get(device.type, 2e8) // per_sample)))


def _token_log_probs(model: LanguageModel, data: torch.Tensor, bptt: int, copies: int, stochastic: bool,
                     masks: str = "stream", word_dropout: bool = False) -> torch.Tensor:
    """log p of every test token (in stream order), log-sum-exp'd over `copies` sample columns.

    data (rows, B); returns (tokens,) float64 = log sum_k p_k(w_t).
    """
    return _token_log_prob_sums(model, data, bptt, copies, stochastic, masks, word_dropout)[0]


@torch.no_grad()
def _token_log_prob_sums(model: LanguageModel, data: torch.Tensor, bptt: int, copies: int, stochastic: bool,
                         masks: str = "stream", word_dropout: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """(log sum_k p_k(w_t), sum_k log p_k(w_t)) of every test token, over `copies` sample columns:
    the first makes the MC average, the second each pass's own perplexity. Both (tokens,) float64.
    """
    model.train(stochastic)
    batch = data.size(1)
    wide = data.repeat(1, copies)  # (rows, copies * B), column k * B + b = sample k of stream b
    state = model.init_state(wide.size(1))
    # Written in place: a small tensor kept per window between the large logits makes the CPU
    # allocator's heap grow with every window (6.8 GB for the small model's test set, 2026-12-07).
    tokens = (data.size(0) - 1) * batch
    log_sum_p = torch.empty(tokens, dtype=torch.float64, device=data.device)
    sum_log_p = torch.empty_like(log_sum_p)
    done = 0
    held = FrozenMasks()  # masks="stream": the first window's masks serve the whole stream
    with frozen_masks(held) if masks == "stream" else contextlib.nullcontext():
        for inputs, targets in windows(wide, bptt, full_only=False):
            held.rewind()
            out = model(inputs, state, word_masks_per_column=True, drop_words=word_dropout)
            state = out.state
            steps, vocab = inputs.size(0), out.logits.size(-1)
            log_p = -F.cross_entropy(out.logits.reshape(-1, vocab), targets.reshape(-1), reduction="none")
            log_p = log_p.view(steps, copies, batch).double()  # (T, copies, B)
            span = slice(done, done + steps * batch)  # (T * B,), stream order
            torch.logsumexp(log_p, 1, out=log_sum_p[span].view(steps, batch))
            torch.sum(log_p, 1, out=sum_log_p[span].view(steps, batch))
            done += steps * batch
    model.eval()
    return log_sum_p, sum_log_p


class MCFigures(NamedTuple):
    mc_test_ppl: float  # of the averaged probabilities
    test_ppl: float  # dropout off
    tokens: int
    samples_per_pass: int
    single_pass_ppl: float  # one stochastic pass alone: exp(-mean over samples and tokens of log p_k)


def mc_evaluate(model: LanguageModel, data: torch.Tensor, bptt: int, samples: int, *, seed: int = 0,
                per_pass: int | None = None, masks: str = "stream", word_dropout: bool = False,
                progress: Callable[[int, int], None] | None = None) -> MCFigures:
    """MC, deterministic and single-pass perplexity of `data` (rows, B).

    Single-pass against deterministic says whether the model scores better with its masks on at all;
    MC against single-pass is what averaging the samples (an ensemble) adds on top.  `progress(done,
    samples)` is called after each batch of passes (a medium model's 1000 take minutes on a GPU).
    """
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise EvaluateError(f"--mc-samples: must be a whole number >= 1, got {samples!r}")
    if masks not in MC_MASKS:
        raise EvaluateError(f"--mc-masks: unknown {masks!r}; allowed: {', '.join(MC_MASKS)}")
    device = data.device
    vocab = model.decoder.out_features
    per_pass = per_pass or samples_per_pass(samples, bptt, data.size(1), vocab, device,
                                            shared_masks=model.placement.weight > 0.0)
    deterministic = _token_log_probs(model, data, bptt, 1, stochastic=False)
    torch.manual_seed(seed)
    total = None  # log sum over the samples so far of p(w_t), per token
    log_p_sum = 0.0  # sum over samples and tokens of log p_k(w_t)
    done = 0
    while done < samples:
        copies = min(per_pass, samples - done)
        chunk, chunk_sums = _token_log_prob_sums(model, data, bptt, copies, stochastic=True, masks=masks,
                                                 word_dropout=word_dropout)
        total = chunk if total is None else torch.logaddexp(total, chunk)
        log_p_sum += chunk_sums.sum().item()
        done += copies
        if progress is not None:
            progress(done, samples)
    mc_mean_log_p = (total - math.log(samples)).mean().item()
    tokens = deterministic.numel()
    return MCFigures(math.exp(-mc_mean_log_p), math.exp(-deterministic.mean().item()), tokens, per_pass,
                     math.exp(-log_p_sum / (samples * tokens)))


def evaluate_run(run_dir: str | os.PathLike[str], samples: int, device: torch.device, *, seed: int = 0,
                 data_dir: str | os.PathLike[str] | None = None, per_pass: int | None = None,
                 masks: str = "stream", word_dropout: bool = False,
                 progress: Callable[[int, int], None] | None = None) -> MCResult:
    """MC and deterministic test perplexity of a finished run's final weights (not recorded).

    The corpus is the run's own data directory unless `data_dir` is given (or, for a run made
    elsewhere on the Penn Treebank, the vendored copy); its vocabulary must be the one the run
    was trained on.
    """
    run_dir = Path(run_dir)
    status, _problem = read_json(run_dir / "status.json")
    if not status or status.get("state") != "finished":
        state = effective_state(status) if status else "unknown"  # as `list` says it: a dead 'running' is interrupted
        raise EvaluateError(f"run {run_dir.name} is {state}; only a finished run's checkpoint holds its final weights")
    try:
        run = load_run_model(run_dir)
        if run.config.task != "lm":
            raise EvaluateError(f"run {run_dir.name} is a {run.config.task!r} task run; evaluate measures "
                                "language-model perplexity (task lm)")
        corpus = load_run_corpus(run, data_dir)
    except InspectError as err:
        raise EvaluateError(str(err)) from None
    t = run.config.train
    data = batchify(corpus.test[: t.max_eval_tokens] if t.max_eval_tokens else corpus.test, t.test_batch_size)
    model = run.model.to(device)
    code = {"torch_version": torch.__version__, "git_commit": git_commit()}  # now: the checkout may move on meanwhile
    began = time.perf_counter()
    figures = mc_evaluate(model, data.to(device), t.bptt, samples, seed=seed, per_pass=per_pass, masks=masks,
                          word_dropout=word_dropout, progress=progress)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return MCResult(samples=samples, mc_test_ppl=figures.mc_test_ppl, test_ppl=figures.test_ppl,
                    tokens=figures.tokens, samples_per_pass=figures.samples_per_pass,
                    single_pass_ppl=figures.single_pass_ppl, seconds=time.perf_counter() - began, seed=seed,
                    device=torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
                    weights_dtype=run.weights_dtype, masks=masks, word_dropout=word_dropout, **code)


def record(run_dir: str | os.PathLike[str], result: MCResult) -> dict:
    """Append the result to the run's metrics.jsonl as a `mc_test` record; returns the record."""
    doc = {"kind": MC_KIND, **asdict(result), "evaluated_at": utc_now()}
    with RunWriter.open(run_dir) as writer:
        writer.append_metric(doc)
    return doc
