"""Does a model trained with dropout need its masks at test time?  (A measurement, not a test.)

    python benchmarks/moon_masks.py [--preset demo] [--placements moon,recurrent,zaremba]
        [--samples 20] [--seed 0] [--json PATH]

`moon` (one mask per window on the cell state c_t) is the worst placement at small size (README,
Results).  Its mask multiplies the carried memory at every step of a window in training,
scale 1/(1-p) and all, and evaluation has no mask: if that mismatch is what costs it, its model
should score far better *with* the masks it trained with.  For each placement this trains one
run (`python -m rnnreg train --preset P --placement X --seed S --device cpu`, the placement's own
rates) in a scratch runs root, then evaluates its final weights on the test stream twice: the
paper's way (dropout off) and Monte-Carlo (`rnnreg.mc_eval`: the predictive probabilities of
`--samples` passes averaged, masks drawn per window as in training, word dropout off).  Prints
both side by side per placement; `--json` writes them with the commit and torch version.
CPU only, one thread per run: on the `demo` preset about four minutes a placement here.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from datetime import date
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from rnnreg.mc_eval import evaluate_run  # noqa: E402
from rnnreg.runs import read_jsonl  # noqa: E402
from rnnreg.provenance import git_commit  # noqa: E402


def train(root: Path, preset: str, placement: str, seed: int) -> Path:
    """One run of `placement` at its own rates, trained to the end; its directory."""
    name = f"{preset}-{placement}-s{seed}"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, "-m", "rnnreg", "train", "--preset", preset, "--placement", placement,
                    "--seed", str(seed), "--device", "cpu", "--name", name, "--runs-dir", str(root)],
                   cwd=REPO, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    (run_dir,) = root.glob(f"*-{name}-*/")
    return run_dir


def measure(run_dir: Path, samples: int, seed: int) -> dict:
    result = evaluate_run(run_dir, samples, torch.device("cpu"), seed=seed, masks="window")
    config = json.loads((run_dir / "config.json").read_text())["config"]
    (final,) = read_jsonl(run_dir / "metrics.jsonl", "test")
    return {"placement": config["dropout"]["placement"], "rates": config["dropout"]["rates"],
            "final_valid_ppl": final["valid_ppl"], "test_ppl": result.test_ppl, "mc_test_ppl": result.mc_test_ppl,
            "mc_over_test": result.mc_test_ppl / result.test_ppl, "samples": samples, "masks": "window",
            "tokens": result.tokens}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="demo")
    parser.add_argument("--placements", default="moon,recurrent,zaremba")
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args(argv)
    commit = git_commit()  # now: the checkout may move on during the minutes this takes
    torch.set_num_threads(1)  # as each training run (OMP_NUM_THREADS=1)
    rows = []
    with tempfile.TemporaryDirectory(prefix="rnnreg-moon-masks-") as scratch:
        for placement in args.placements.split(","):
            rows.append(measure(train(Path(scratch), args.preset, placement, args.seed), args.samples, args.seed))
            row = rows[-1]
            print(f"{placement:>12}  test {row['test_ppl']:8.2f} (dropout off)  {row['mc_test_ppl']:8.2f} "
                  f"(MC, {args.samples} passes with training's masks)  {row['mc_over_test']:.2f}x", flush=True)
    if args.json:
        doc = {"preset": args.preset, "seed": args.seed, "date": date.today().isoformat(), "device": "cpu",
               "threads": 1, "torch": torch.__version__, "git_commit": commit, "results": rows}
        args.json.write_text(json.dumps(doc, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
