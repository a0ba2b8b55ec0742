"""One training minibatch, two ways to run it: eagerly, or replayed as one CUDA graph.

Both do what Zaremba et al. 2014 (sec 4.1) prescribe per minibatch - forward from the carried
state without its gradient history, cross-entropy summed over the unrolled steps and averaged
over the batch, backward, global-norm clipping, plain SGD - and keep the epoch's totals on the
device, so the training loop only waits for the GPU when it writes a log record.

* EagerStep   - ordinary PyTorch, on every device and for every placement.
* GraphedStep - the same step captured once with torch.cuda.graph and replayed with one launch.
                At batch 20 a step is hundreds of tiny kernels, and launching them one by one
                from Python costs more than running them (../shared/REFERENCE.md sec 3).  The
                inputs, the carried state, the learning rate and the totals live in static
                buffers that the graph reads and writes in place; dropout masks come from
                PyTorch's graph-safe CUDA generator, so every replay draws fresh masks
                (per-step masks differ from step to step, per-sequence masks are drawn once
                per replay, i.e. once per window).

`make_step` picks one (`--step auto|graph|eager`) and says which, for the run's config.json.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import torch
import torch.nn.functional as F

from rnnreg.config import STEP_MODES  # auto, graph, eager

State = tuple[torch.Tensor, torch.Tensor]  # (h, c), each (layers, B, H)
Forward = Callable[[torch.Tensor, State], tuple[torch.Tensor, State]]  # tokens (T, B) -> logits (T, B, V), state


@dataclass
class StepOutput:
    """What the last step computed, as device tensors (a graph overwrites them at its next replay)."""

    nats: torch.Tensor  # summed cross-entropy of the minibatch, ()
    grad_norm: torch.Tensor  # global gradient norm before clipping, ()
    param_norms: list[torch.Tensor]  # each parameter's gradient norm before clipping, ()


@dataclass
class StepTotals:
    """Running totals of an epoch, on the device: summing them never waits for the GPU."""

    nats: torch.Tensor  # float64 ()
    clipped: torch.Tensor  # minibatches whose gradient norm exceeded the clip, long ()
    step: torch.Tensor  # the global minibatch count, long ()
    first_bad: torch.Tensor  # the first step whose loss was not finite (0: none yet), long ()

    @classmethod
    def zeros(cls, device: torch.device) -> "StepTotals":
        def zero(dtype):
            return torch.zeros((), device=device, dtype=dtype)

        return cls(zero(torch.float64), zero(torch.long), zero(torch.long), zero(torch.long))

    def reset(self, step: int) -> None:
        """In place (a captured graph holds these very tensors): zero, with the step count at `step`."""
        self.nats.zero_()
        self.clipped.zero_()
        self.first_bad.zero_()
        self.step.fill_(step)

    @torch.no_grad()
    def add(self, nats: torch.Tensor, grad_norm: torch.Tensor, clip: float) -> None:
        self.step.add_(1)
        self.nats.add_(nats)
        self.clipped.add_((grad_norm > clip).long())
        first = (~torch.isfinite(nats)) & (self.first_bad == 0)
        self.first_bad.copy_(torch.where(first, self.step, self.first_bad))


def train_on_window(
    forward: Forward, parameters: Sequence[torch.Tensor], inputs: torch.Tensor, targets: torch.Tensor,
    state: State, neg_lr: torch.Tensor, clip: float, weight_decay: float = 0.0,
) -> tuple[StepOutput, State]:
    """Forward, loss, backward, clip and SGD on one window; returns the step's output and final state.

    Nothing here reads a number back to the host, so it can be captured as a CUDA graph.
    """
    for parameter in parameters:
        parameter.grad = None
    logits, new_state = forward(inputs, state)
    nats = F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1), reduction="sum")
    # Zaremba et al. 2014: loss summed over the unrolled steps, averaged over the batch.
    (nats / inputs.size(1)).backward()
    with torch.no_grad():
        grads = [p.grad for p in parameters]
        # Global-norm clipping as torch.nn.utils.clip_grad_norm_ does it (same ops, same eps),
        # keeping the per-parameter norms for the per-layer records.
        param_norms = list(torch._foreach_norm(grads))
        grad_norm = torch.linalg.vector_norm(torch.stack(param_norms))
        torch._foreach_mul_(grads, torch.clamp(clip / (grad_norm + 1e-6), max=1.0))
        # Plain SGD, no momentum, no weight decay (the paper): p <- p - lr * grad.  The lr is a
        # device tensor, so a captured graph follows the schedule without being captured again.
        torch._foreach_mul_(grads, neg_lr)
        torch._foreach_add_(list(parameters), grads)
        if weight_decay:
            # Not in the paper (an option, off by default): Gal & Ghahramani's LM code follows
            # the SGD step with p <- p - wd * p, a shrink independent of the learning rate.
            torch._foreach_mul_(list(parameters), 1.0 - weight_decay)
    return StepOutput(nats.detach(), grad_norm, param_norms), new_state


class _Step:
    """What both ways share: the lr, the carried state, the totals, per-layer norms."""

    name = ""

    def __init__(self, forward: Forward, parameters: Sequence[torch.Tensor], initial_state: State, clip: float,
                 groups: Mapping[str, Sequence[torch.Tensor]], weight_decay: float = 0.0) -> None:
        self.forward, self.parameters, self.clip = forward, list(parameters), clip
        self.weight_decay = weight_decay
        device = self.parameters[0].device
        self.neg_lr = torch.zeros((), device=device, dtype=self.parameters[0].dtype)
        self.state = (initial_state[0].detach().clone(), initial_state[1].detach().clone())
        self.totals = StepTotals.zeros(device)
        index = {id(p): i for i, p in enumerate(self.parameters)}
        self._groups = {name: [index[id(p)] for p in params] for name, params in groups.items()}

    def start_epoch(self, lr: float, step: int) -> None:
        """Zero state (every epoch starts from one), zero totals, this epoch's learning rate."""
        self.neg_lr.fill_(-lr)
        self.state[0].zero_()
        self.state[1].zero_()
        self.totals.reset(step)

    @torch.no_grad()
    def restore_progress(self, state: State, nats: float, clipped: int) -> None:
        """After `start_epoch`, for a run resumed mid-epoch: the state its last window carried out
        and the totals so far, copied in place (a captured graph reads these very tensors)."""
        self.state[0].copy_(state[0])
        self.state[1].copy_(state[1])
        self.totals.nats.fill_(nats)
        self.totals.clipped.fill_(clipped)

    def layer_grad_norms(self, output: StepOutput) -> dict[str, float]:
        """Gradient norm per parameter group (embedding, lstm.0, ..., decoder), before clipping."""
        norms = torch.stack(output.param_norms).double().tolist()
        return {name: math.sqrt(sum(norms[i] ** 2 for i in members)) for name, members in self._groups.items()}


class EagerStep(_Step):
    name = "eager"

    def __call__(self, inputs: torch.Tensor, targets: torch.Tensor) -> StepOutput:
        output, state = train_on_window(self.forward, self.parameters, inputs, targets, self.state,
                                        self.neg_lr, self.clip, self.weight_decay)
        self.state = (state[0].detach(), state[1].detach())  # Zaremba et al. 2014: carried, not backpropagated
        self.totals.add(output.nats, output.grad_norm, self.clip)
        return output


class GraphedStep(_Step):
    """The step as one CUDA graph: `capture()` once, then each call copies a window in and replays.

    Without `capture()` the same body runs eagerly (how the CPU tests check its bookkeeping).
    """

    name = "cuda-graph"

    def __init__(self, forward: Forward, parameters: Sequence[torch.Tensor], initial_state: State, clip: float,
                 groups: Mapping[str, Sequence[torch.Tensor]], window: tuple[int, int],
                 weight_decay: float = 0.0) -> None:
        super().__init__(forward, parameters, initial_state, clip, groups, weight_decay)
        device = self.parameters[0].device
        self.inputs = torch.zeros(window, dtype=torch.long, device=device)  # (T, B) static buffers
        self.targets = torch.zeros(window, dtype=torch.long, device=device)
        self.graph: torch.cuda.CUDAGraph | None = None
        self._output: StepOutput | None = None

    def _body(self) -> StepOutput:
        output, state = train_on_window(self.forward, self.parameters, self.inputs, self.targets, self.state,
                                        self.neg_lr, self.clip, self.weight_decay)
        with torch.no_grad():  # carry the final state into the static buffers the next replay reads
            self.state[0].copy_(state[0])
            self.state[1].copy_(state[1])
        self.totals.add(output.nats, output.grad_norm, self.clip)
        return output

    def capture(self, warmup: int = 3) -> "GraphedStep":
        """Capture the step; the weights, RNG, state and totals are as they were before (warm-up undone)."""
        device = self.parameters[0].device
        weights = [p.detach().clone() for p in self.parameters]
        rng = torch.cuda.get_rng_state(device)
        try:
            # Warm up on a side stream (cuBLAS / cuDNN handles, autograd's buffers), as torch's docs ask.
            side = torch.cuda.Stream(device)
            side.wait_stream(torch.cuda.current_stream(device))
            with torch.cuda.stream(side):
                for _ in range(warmup):
                    self._body()
            torch.cuda.current_stream(device).wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                self._output = self._body()
        finally:  # undo the warm-up's SGD steps and draws, also when capture fails
            with torch.no_grad():
                for parameter, weight in zip(self.parameters, weights):
                    parameter.copy_(weight)
            torch.cuda.set_rng_state(rng, device)
            self.start_epoch(0.0, 0)
        self.graph = graph
        return self

    def __call__(self, inputs: torch.Tensor, targets: torch.Tensor) -> StepOutput:
        self.inputs.copy_(inputs)
        self.targets.copy_(targets)
        if self.graph is None:
            return self._body()
        self.graph.replay()
        assert self._output is not None
        return self._output


def make_step(
    mode: str, forward: Forward, parameters: Sequence[torch.Tensor], initial_state: State, clip: float,
    groups: Mapping[str, Sequence[torch.Tensor]], window: tuple[int, int], weight_decay: float = 0.0,
) -> tuple[_Step, str | None]:
    """The step for `mode` (auto, graph or eager), and a note when auto had to fall back.

    auto: a CUDA graph on a GPU, eager elsewhere, and eager (with the reason) where capture fails.
    """
    if mode not in STEP_MODES:
        raise ValueError(f"--step: unknown step mode {mode!r}; allowed: {', '.join(STEP_MODES)}")
    on_cuda = parameters[0].device.type == "cuda"
    if mode == "eager" or (mode == "auto" and not on_cuda):
        return EagerStep(forward, parameters, initial_state, clip, groups, weight_decay), None
    if not on_cuda:
        raise ValueError("--step: graph needs a CUDA device; allowed here: auto, eager")
    try:
        return GraphedStep(forward, parameters, initial_state, clip, groups, window, weight_decay).capture(), None
    except Exception as error:  # noqa: BLE001 - auto falls back, and the run records why
        if mode == "graph":
            raise
        torch.cuda.synchronize(parameters[0].device)
        return EagerStep(forward, parameters, initial_state, clip, groups, weight_decay), f"graph capture failed: {error}"
