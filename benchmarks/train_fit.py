"""How well do a run's final weights fit the training text?  (A measurement, not a test.)

    python benchmarks/train_fit.py RUN [--runs-dir DIR] [--data DIR] [--split train]
        [--online-windows N] [--lr LR ...] [--threads 1]

The training perplexity a run records for an epoch is measured on the fly: each window is scored
by the weights of that moment, just after SGD steps on the windows before it, and the scores are
averaged over the epoch.  That is the paper's figure, and for most runs it is what the final
weights would score too.  A model that memorises can make the two part: if each step fits the
stretch of text it is on and loses some of the rest, the on-the-fly score stays low while the
fixed weights fit the whole training set far worse.

This prints, for the weights in RUN's checkpoint (the epoch it was written after):
  1. the perplexity of the fixed weights on `--split` (train, the default, or valid), read as the
     trainer reads it (batch_size streams, full windows, state carried), dropout off; overall and
     by quarter of the streams (the first quarter is what an epoch trains on first);
  2. the training perplexity the run recorded for that epoch (and with --split valid its
     validation perplexity, which step 1 reproduces), for comparison;
  3. with `--online-windows N`: the first N training windows scored by the trainer's own step
     (`rnnreg.steps.train_on_window`: forward, loss, backward, clip, SGD) at learning rate 0
     (the fixed weights, through the training path) and at each `--lr` (default: the rate of
     the checkpoint's epoch), each window scored before its own update, by quarter of the N.
Nothing is written to the run.  The training path scores dropout placements with their masks on,
so for any placement but `none` step 3's lr-0 line is not the fixed model's; step 1's is.
"""

from __future__ import annotations

import argparse
import copy
import math
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from rnnreg.data import DataError, batchify, windows  # noqa: E402
from rnnreg.inspect_model import InspectError, load_run_corpus, load_run_model  # noqa: E402
from rnnreg.model import LanguageModel  # noqa: E402
from rnnreg.runs import RunStoreError, find_run_arg, read_jsonl, runs_root  # noqa: E402
from rnnreg.steps import train_on_window  # noqa: E402

SPLITS = ("train", "valid")  # as the trainer reads them: batch_size streams, full windows only


def quarters(nats_per_token: torch.Tensor) -> list[float]:
    """Perplexity of each quarter of a (positions, ...) tensor of nats, split along positions."""
    return [math.exp(part.mean().item()) for part in torch.tensor_split(nats_per_token, 4)]


@torch.no_grad()
def fixed_nats(model: LanguageModel, data: torch.Tensor, bptt: int) -> torch.Tensor:
    """Nats of every token in the full windows of `data` (rows, B), fixed weights, state carried: (positions, B).

    Full windows only, as the trainer reads the train and valid splits, so that on valid this
    is the trainer's own validation figure.
    """
    model.eval()
    state = model.init_state(data.size(1))
    pieces = []
    for inputs, targets in windows(data, bptt, full_only=True):
        out = model(inputs, state)
        state = out.state
        nats = F.cross_entropy(out.logits.reshape(-1, out.logits.size(-1)), targets.reshape(-1), reduction="none")
        pieces.append(nats.view_as(targets))
    return torch.cat(pieces)


def online_nats(model: LanguageModel, data: torch.Tensor, bptt: int, clip: float, lr: float,
                n_windows: int, weight_decay: float = 0.0) -> torch.Tensor:
    """Mean nats per token of each of the first `n_windows` full windows, as the trainer scores them.

    A copy of `model` is trained on them in order (state carried, zero at the start, as every
    epoch starts); each window's loss is taken before its own update.  Returns (n_windows,).
    """
    model = copy.deepcopy(model).train()
    parameters = list(model.parameters())

    def forward(inputs: torch.Tensor, state):
        out = model(inputs, state)
        return out.logits, out.state

    state = model.init_state(data.size(1))
    neg_lr = torch.tensor(-lr, dtype=parameters[0].dtype)
    per_window = []
    for index, (inputs, targets) in enumerate(windows(data, bptt, full_only=True)):
        if index == n_windows:
            break
        out, state = train_on_window(forward, parameters, inputs, targets, state, neg_lr, clip, weight_decay)
        state = (state[0].detach(), state[1].detach())  # truncated BPTT, as in training
        per_window.append(out.nats / targets.numel())
    return torch.stack(per_window)


def recorded_epoch(run_dir: Path, epoch: int) -> dict:
    """The run's epoch record for `epoch` (its train_ppl, lr), or {} if it has none."""
    records = [r for r in read_jsonl(run_dir / "metrics.jsonl", kind="epoch") if r.get("epoch") == epoch]
    return records[-1] if records else {}


def _row(label: str, nats: torch.Tensor) -> str:
    return (f"{label}: ppl {math.exp(nats.mean().item()):.2f}; by quarter "
            + " ".join(f"{q:.2f}" for q in quarters(nats)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", metavar="RUN", help="run id (or a run directory) with a checkpoint")
    parser.add_argument("--runs-dir", default=None, help="runs root (default: $RNNREG_RUNS_DIR, else runs/)")
    parser.add_argument("--data", default=None, metavar="DIR",
                        help="the corpus (default: the run's own data directory, or for a run made "
                             "elsewhere the vendored PTB)")
    parser.add_argument("--split", choices=SPLITS, default="train")
    parser.add_argument("--online-windows", type=int, default=0, metavar="N",
                        help="also score the first N training windows with online SGD steps (default 0: skip)")
    parser.add_argument("--lr", type=float, action="append", default=None,
                        help="learning rate of the online steps (repeatable; default: the checkpoint epoch's)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    if args.online_windows < 0:
        parser.error(f"--online-windows: must be >= 0, got {args.online_windows}")
    if args.threads < 1:
        parser.error(f"--threads: must be >= 1, got {args.threads}")
    if any(lr < 0 for lr in args.lr or []):
        parser.error(f"--lr: must be >= 0, got {min(args.lr)}")
    torch.set_num_threads(args.threads)
    try:
        run_dir = find_run_arg(runs_root(args.runs_dir), args.run)
        run = load_run_model(run_dir)
        corpus = load_run_corpus(run, args.data)
    except (RunStoreError, InspectError, DataError) as err:
        print(f"train_fit: {err}", file=sys.stderr)
        return 2
    t = run.config.train
    record = recorded_epoch(run_dir, run.epoch)
    print(f"{run_dir.name}: {run.config.dropout.placement}, weights after epoch {run.epoch} "
          f"({run.weights_dtype}), batch {t.batch_size}, bptt {t.bptt}")

    began = time.perf_counter()
    split = batchify(getattr(corpus, args.split), t.batch_size)
    print(_row(f"fixed weights on {args.split}", fixed_nats(run.model, split, t.bptt))
          + f"  ({time.perf_counter() - began:.0f} s)")
    if "train_ppl" in record:
        print(f"recorded training perplexity of epoch {run.epoch} (scored on the fly): {record['train_ppl']:.2f}")
    if args.split == "valid" and "valid_ppl" in record:
        print(f"recorded validation perplexity of epoch {run.epoch}: {record['valid_ppl']:.2f}")

    if args.online_windows:
        train = batchify(corpus.train, t.batch_size)
        rates = [0.0] + (args.lr or ([record["lr"]] if "lr" in record else []))
        for lr in rates:
            began = time.perf_counter()
            nats = online_nats(run.model, train, t.bptt, t.clip, lr, args.online_windows, t.weight_decay)
            print(_row(f"first {nats.numel()} training windows, online steps at lr {lr:g}", nats)
                  + f"  ({time.perf_counter() - began:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
