"""The bench measures every placement beside the nn.LSTM baseline in one run (shape, not speed)."""

import json

import pytest
import torch

from rnnreg.bench import BASELINE, PlainLSTM, baseline_dropout, build_steps, run_bench
from tests.test_cli import rnnreg


def test_bench_reports_each_placement_with_its_path_and_ratio_to_the_baseline():
    results = run_bench("demo", ["zaremba", "recurrent"], batches=1, rounds=1, warmup=1, vocab=50)
    by_name = {r.name: r for r in results}
    assert set(by_name) == {BASELINE, "zaremba", "recurrent"}
    assert by_name[BASELINE].ratio == 1.0
    assert by_name["zaremba"].path == "fused" and by_name["recurrent"].path == "explicit"
    assert {r.step for r in results} == {"eager"}  # the trainer's own step (rnnreg.steps), as a CPU runs it
    for r in results:
        assert r.ms_per_batch > 0 and abs(r.words_per_s * r.ms_per_batch / 1000 - 20 * 20) < 1e-6


def test_baseline_is_a_single_multi_layer_nn_lstm_with_dropout_between_layers():
    model = PlainLSTM(vocab=10, hidden=8, layers=2, dropout=0.5)
    assert model.lstm.num_layers == 2 and model.lstm.dropout == 0.5


def test_baseline_drops_out_at_zarembas_rate_so_zaremba_is_compared_like_for_like():
    # the preset's own rates (none for demo) would time zaremba's masks against a model without any
    assert baseline_dropout("medium") == 0.5 and baseline_dropout("large") == 0.65
    assert baseline_dropout("demo") == 0.5
    path, _ = build_steps("demo", [], torch.device("cpu"), ["eager"], vocab=50)[(BASELINE, "eager")]
    assert path == "nn.LSTM"


def test_rounds_rotate_the_order_so_no_entry_always_runs_first(monkeypatch):
    import rnnreg.bench as bench

    order = []
    monkeypatch.setattr(bench, "build_steps", lambda *a, **k: {
        (name, "eager"): ("p", lambda name=name: order.append(name)) for name in (BASELINE, "a", "b")})
    monkeypatch.setattr(bench, "_time", lambda step, batches, dev: (step(), 0.001)[1])
    run_bench("demo", ["a", "b"], batches=1, rounds=3, warmup=0)
    assert order == [BASELINE, "a", "b", "a", "b", BASELINE, "b", BASELINE, "a"]


def test_bench_cli_json_and_errors():
    result = rnnreg("bench", "--preset", "demo", "--placements", "none", "--batches", "1", "--rounds", "1", "--json")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert {r["name"] for r in doc["results"]} == {BASELINE, "none"} and doc["torch"]
    assert doc["steps"] == ["eager"] and doc["results"][0]["step"] == "eager"
    assert doc["baseline_dropout"] == 0.5
    graph_on_cpu = rnnreg("bench", "--device", "cpu", "--step", "graph")
    assert graph_on_cpu.returncode == 2 and "--step graph needs --device cuda" in graph_on_cpu.stderr
    bad = rnnreg("bench", "--placements", "none,bogus")
    assert bad.returncode == 2 and "bogus" in bad.stderr and "allowed" in bad.stderr


def test_profile_splits_each_step_by_kind_of_work():
    from rnnreg.bench import profile_bench
    from rnnreg.step_profile import category

    profiles = profile_bench("demo", ["recurrent"], "cpu", ["eager"], batches=2, warmup=1, vocab=50)
    by_name = {p.name: p for p in profiles}
    assert set(by_name) == {BASELINE, "recurrent"}
    for p in profiles:
        assert p.wall_ms > 0 and p.busy_ms > 0 and p.kernels > 0 and p.device == "cpu"
        assert abs(sum(p.by_kind.values()) - p.busy_ms) < 1e-6 * max(p.busy_ms, 1)
        assert p.by_kind["matmul"] > 0 and p.top
    # the explicit LSTM runs step by step: many more operators per step than one aten::lstm call
    assert by_name["recurrent"].kernels > 3 * by_name[BASELINE].kernels
    assert "LSTM op (cuDNN)" in by_name[BASELINE].by_kind and "LSTM op (cuDNN)" not in by_name["recurrent"].by_kind
    assert category("_cell_forward_kernel_0d1d2d") == "fused cell (Triton)"
    assert category("sm90_xmma_gemm_f32f32_tf32f32") == "matmul"
    assert category("void at::native::vectorized_elementwise_kernel<4, bernoulli>") == "dropout masks"


def test_bench_cli_profile_json():
    result = rnnreg("bench", "--preset", "demo", "--placements", "none", "--batches", "1", "--rounds", "1",
                    "--profile", "--json")
    assert result.returncode == 0, result.stderr
    profiles = json.loads(result.stdout)["profiles"]
    assert [p["name"] for p in profiles] == [BASELINE, "none"] and all(p["by_kind"] for p in profiles)


def test_a_share_bench_worker_that_died_is_named_with_its_last_words():
    import sys

    from rnnreg.bench_share import _Worker

    worker = _Worker(0, [sys.executable, "-c", "import sys; sys.stderr.write('CUDA error: out of memory')"], {})
    worker.process.wait()
    with pytest.raises(RuntimeError, match="(?s)bench worker 0: exited .*CUDA error: out of memory"):
        for _ in range(100):  # the first writes may still fit the dead pipe's buffer on some systems
            worker.send({"batches": 1})
    worker.close()  # and closing it is no second error
    assert worker.process.returncode == 0
