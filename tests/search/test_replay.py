"""Replayed searches against small synthetic tables with known outcomes (no model, no server)."""

from __future__ import annotations

import random

import pytest
import yaml

from itas.arch.spec import parse_architecture
from itas.search.replay import Staging, TableIndex, compare, hypervolume_ratio, replay
from itas.search.runner import describe
from itas.search.space import parse_space
from itas.search.table import Table, enumerate_space

# 12 architectures: m1 with 1 or 2 samples, or m1 and m2 with 1 or 2 samples each; a vote layer or not.
# The baseline of m1 is one of them; that of m2 is not (the space's generators always include m1).
SPACE = {"name": "tiny", "max_tokens": 16, "stages": [
    {"generate": {"models": ["m1", "m2"], "count": [1, 2], "samples": [1, 2]}},
    {"vote": {"optional": True}}]}
N_QUESTIONS = 8


def make_table(outcome, failed=()) -> Table:
    """A table of every architecture of SPACE; ``outcome(params, arch_dict)`` gives its per-question rows
    [score, calls, prompt_tokens, completion_tokens, latency, cost]."""
    text = yaml.safe_dump(SPACE, sort_keys=False)
    space = parse_space(SPACE, "tiny", text=text)
    table = Table(header={"kind": "header", "space": text, "benchmark": "synthetic", "models": ["m1", "m2"],
                          "question_ids": [f"q{i}" for i in range(N_QUESTIONS)], "max_tokens": 16})
    for params, arch in enumerate_space(space):
        fp = parse_architecture(arch, "tiny").fingerprint()
        if fp in table.rows:
            continue
        table.rows[fp] = {"kind": "arch", "fingerprint": fp, "params": params,
                          "description": describe(parse_architecture(arch, "tiny")),
                          "status": "failed" if _name(arch) in failed else "evaluated",
                          "questions": outcome(params, arch)}
    assert len(table.rows) == 12
    return table


def _write(table: Table, path) -> None:
    import json

    path.write_text("".join(json.dumps(r) + "\n" for r in [table.header, *table.rows.values()]))


def _name(arch: dict) -> str:
    """'m1x2+m2x1+vote' for an architecture dict of SPACE."""
    gens = "+".join(f"{c['model']}x{c['samples']}" for c in arch["layers"][0])
    return gens + ("+vote" if len(arch["layers"]) > 1 else "")


def _calls(arch: dict) -> int:
    return sum(c["samples"] for c in arch["layers"][0])


def fp_of(table: Table, name: str) -> str:
    return next(fp for fp, r in table.rows.items() if _name(_arch(table, r)) == name)


def _arch(table: Table, row: dict) -> dict:
    space = parse_space(yaml.safe_load(table.header["space"]), "tiny")

    class Fixed:
        def suggest_categorical(self, name, choices):
            return row["params"][name]

    return space.suggest(Fixed())


def unique_best(best: str = "m1x2+m2x2+vote"):
    """``best`` answers every question right; every other architecture half of them. Latency and cost grow with
    the calls (constant over questions)."""
    def outcome(params, arch):
        calls = _calls(arch)
        right = _name(arch) == best
        return [[1.0 if right or i % 2 else 0.0, calls, 10 * calls, 5 * calls, float(len(arch["layers"])),
                 15.0 * calls] for i in range(N_QUESTIONS)]
    return outcome


def random_outcomes(seed: int):
    """Accuracy growing with the calls, with noise; latency and cost constant over questions (what the staged
    evaluation's guarantee assumes)."""
    rng = random.Random(seed)

    def outcome(params, arch):
        calls = _calls(arch)
        p = min(0.95, 0.2 + 0.12 * calls + (0.1 if len(arch["layers"]) > 1 else 0.0) + rng.uniform(-0.15, 0.15))
        lat = len(arch["layers"]) + 0.3 * max(c["samples"] for c in arch["layers"][0]) + rng.uniform(0, 0.1)
        return [[float(rng.random() < p), calls, 10 * calls, 5 * calls, round(lat, 4), 15.0 * calls]
                for _ in range(N_QUESTIONS)]
    return outcome


# ---- the search's accounting ------------------------------------------------------------------------------------
@pytest.mark.parametrize("sampler", ["random", "tpe"])
def test_evaluations_to_best_counts_each_architecture_once(sampler):
    table = make_table(unique_best())
    best = fp_of(table, "m1x2+m2x2+vote")
    out = replay(table, sampler, seed=3, budget=12)
    assert out.stop == "budget" and out.counted == 12
    assert len(set(out.evaluated)) == 12  # every architecture once, although the sampler drew some again
    assert out.duplicates > 0
    assert out.evaluated[0] == fp_of(table, "m1x1")  # the baseline first; m2's is not in the space
    assert out.found_best and out.evaluations_to_best == out.evaluated.index(best) + 1
    assert out.calls == sum(q[1] for r in table.rows.values() for q in r["questions"])
    assert set(out.front_fps) == {best, fp_of(table, "m1x1")}  # the best, and the cheapest and fastest
    assert TableIndex(table).missing_baselines == ["m2"]


def test_evaluations_to_best_is_the_budget_when_no_best_was_evaluated():
    table = make_table(unique_best())
    best = fp_of(table, "m1x2+m2x2+vote")
    found = missed = 0
    for seed in range(12):
        out = replay(table, "random", seed, budget=3)
        assert out.counted == 3
        if best in out.evaluated:
            found += 1
            assert out.evaluations_to_best == out.evaluated.index(best) + 1 <= 3
        else:
            missed += 1
            assert out.evaluations_to_best == 3 and not out.found_best
    assert found and missed


def test_within_counts_architectures_that_many_questions_below_the_best_as_best_ones():
    # m1x2+m2x2+vote right on every question, m1x2+m2x2 on all but one, the rest on half
    def outcome(params, arch):
        name = _name(arch)
        misses = {"m1x2+m2x2+vote": 0, "m1x2+m2x2": 1}.get(name, N_QUESTIONS // 2)
        return [[0.0 if i < misses else 1.0, 1, 10, 5, 1.0, 15.0] for i in range(N_QUESTIONS)]
    table = make_table(outcome)
    exact, near = TableIndex(table), TableIndex(table, within=1)
    assert exact.best == {fp_of(table, "m1x2+m2x2+vote")}
    assert near.best == {fp_of(table, "m1x2+m2x2+vote"), fp_of(table, "m1x2+m2x2")}
    assert TableIndex(table, within=N_QUESTIONS // 2).best == set(table.rows)
    for seed in range(6):
        a, b = replay(exact, "random", seed, budget=12), replay(near, "random", seed, budget=12)
        assert a.evaluated == b.evaluated  # the same search; only what counts as found differs
        assert b.evaluations_to_best == min(b.evaluated.index(fp) + 1 for fp in near.best) <= a.evaluations_to_best
    c = compare(exact, seeds=3, budget=12, budgets=(12,), stagings=(), within=1)
    assert c.n_best == 2


def test_failed_architectures_do_not_count_and_a_partial_table_ends_exhausted():
    table = make_table(unique_best(), failed={"m1x2"})
    out = replay(table, "random", 0, budget=12)
    assert fp_of(table, "m1x2") not in out.evaluated and out.failed >= 1
    assert out.counted == 11 and out.stop == "exhausted"  # 11 evaluable architectures, then nothing new
    # a table still being recorded: architectures it does not hold are skipped, and the replay ends
    partial = make_table(unique_best())
    kept = sorted(partial.rows)[:6]
    partial.rows = {fp: partial.rows[fp] for fp in kept}
    out = replay(partial, "random", 0, budget=20)
    assert out.stop == "exhausted" and out.missing > 0 and set(out.evaluated) <= set(kept)


# ---- hypervolume --------------------------------------------------------------------------------------------
def test_hypervolume_ratio_of_known_fronts():
    bounds = ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
    true = [(1.0, 0.0, 0.0)]
    assert hypervolume_ratio(true, true, bounds) == pytest.approx(1.0)
    # normalised, the found point is (0.5, 0.5, 0.5) from the ideal; the reference point is 1.1 in each
    assert hypervolume_ratio([(0.5, 0.5, 0.5)], true, bounds) == pytest.approx((0.6 / 1.1) ** 3)
    assert hypervolume_ratio([], true, bounds) == 0.0
    front = [(0.9, 2.0, 30.0), (0.5, 1.0, 10.0), (0.7, 1.5, 12.0)]
    assert hypervolume_ratio(front[:2], front) < 1.0 == pytest.approx(hypervolume_ratio(front, front))


@pytest.mark.parametrize("sampler", ["random", "tpe"])
def test_the_whole_space_evaluated_finds_the_whole_front(sampler):
    table = make_table(random_outcomes(1))
    index = TableIndex(table)
    out = replay(index, sampler, seed=0, budget=12)
    assert out.counted == 12
    assert set(out.front_fps) == index.true_front_fps
    assert index.hypervolume_ratio(out.front) == pytest.approx(1.0)
    early = replay(index, sampler, seed=0, budget=3)
    assert index.hypervolume_ratio(early.front) <= 1.0


# ---- staged evaluation -------------------------------------------------------------------------------------------
def test_staged_replay_stops_dominated_architectures_and_never_one_of_the_true_front():
    stopped_any = False
    for table_seed in range(6):
        index = TableIndex(make_table(random_outcomes(table_seed)))
        for seed in range(3):
            full = replay(index, "random", seed, budget=12)
            staged = replay(index, "random", seed, budget=12, staged=Staging(rungs=(0.25, 0.5, 1.0)))
            assert staged.counted == 12 and set(staged.evaluated) == set(full.evaluated)
            assert not set(staged.stopped) & index.true_front_fps
            assert set(staged.front_fps) == index.true_front_fps  # nothing of the front lost
            if staged.stopped:
                stopped_any = True
                assert staged.calls < full.calls
                for fp in staged.stopped:  # a stopped architecture is dominated on the whole subset
                    assert fp not in index.true_front_fps
            else:
                assert staged.calls == full.calls
    assert stopped_any


def test_a_dominated_architecture_is_stopped_after_the_first_rung():
    # m1x1 (the baseline, evaluated first) is right everywhere, fastest and cheapest: with one rung of 2 of 8
    # questions, every architecture that misses one of its first two questions is stopped there
    def outcome(params, arch):
        calls = _calls(arch)
        best = _name(arch) == "m1x1"
        return [[1.0 if best or i >= 2 else 0.0, calls, 10 * calls, 5 * calls, 1.0 + calls, 15.0 * calls]
                for i in range(N_QUESTIONS)]

    table = make_table(outcome)
    out = replay(table, "random", 0, budget=12, staged=Staging(rungs=(0.25, 1.0)))
    assert len(out.stopped) == 11 and out.front_fps == [fp_of(table, "m1x1")]
    per_question = {fp: table.rows[fp]["questions"][0][1] for fp in table.rows}
    expected = sum(per_question[fp] * (N_QUESTIONS if fp == fp_of(table, "m1x1") else 2) for fp in out.evaluated)
    assert out.calls == expected


# ---- the comparison -----------------------------------------------------------------------------------------
def test_compare_summarises_both_samplers_and_staging():
    table = make_table(random_outcomes(2))
    c = compare(table, seeds=3, budget=12, budgets=(4, 12))
    assert set(c.evaluations_to_best) == {"tpe", "random"}
    assert all(1 <= v <= 12 for v in c.evaluations_to_best.values())
    assert c.hypervolume["tpe"][12] == pytest.approx(1.0) == c.hypervolume["random"][12]
    assert all(0 <= c.hypervolume[s][4] <= 1.0 for s in ("tpe", "random"))
    assert [s.staging.bound for s in c.staged] == ["all-correct", "wilson", "seen-rate"]
    safe = c.staged[0]
    assert safe.true_front_stopped == 0 and safe.hypervolume_lost == pytest.approx(0.0)
    assert 0.0 <= safe.calls_saved < 1.0
    assert c.speedup == pytest.approx(c.evaluations_to_best["random"] / c.evaluations_to_best["tpe"])


# ---- what holds TPE down on a table (bench/bench_replay.py's bound rows) -------------------------------------------
def _bench_module(name: str):
    """A script of bench/ (not a package) loaded as a module."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "bench" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def bench_replay():
    return _bench_module("bench_replay")


def test_signals_say_which_of_the_best_values_the_table_points_at(bench_replay):
    # the best (m1x2+m2x2+vote) is right everywhere, the rest half the time: each of its values has the higher mean
    index = TableIndex(make_table(unique_best()))
    sig = bench_replay.signals(index)
    assert set(sig) == {"generate.count", "generate.m1.samples", "generate.m2.samples", "vote.enabled"}
    assert sig["generate.count"][0] == 2 and sig["vote.enabled"][0] is True
    assert all(better for _, _, _, better in sig.values())
    # a best that differs from an equally good twin only by the vote: the vote carries no signal pointing at it
    def outcome(params, arch):
        name = _name(arch)
        right = name in ("m1x2+m2x2+vote", "m1x2+m2x2")
        return [[1.0 if right or i % 2 else 0.0, 1, 10, 5, 1.0, 15.0 + (name == "m1x2+m2x2+vote")]
                for i in range(N_QUESTIONS)]
    sig = bench_replay.signals(TableIndex(make_table(outcome)))
    assert sig["generate.count"][3] is True
    assert sig["vote.enabled"][1] == sig["vote.enabled"][2] and sig["vote.enabled"][3] is False


def test_an_oracle_told_every_value_of_the_best_finds_it_right_after_the_baselines(bench_replay):
    index = TableIndex(make_table(unique_best()))
    told_all = list(bench_replay.signals(index))
    assert all(bench_replay.oracle_evaluations(index, told_all, seed, 12) == 2 for seed in range(5))
    told_none = [bench_replay.oracle_evaluations(index, [], seed, 12) for seed in range(20)]
    assert all(2 <= e <= 12 for e in told_none) and max(told_none) > 2
    told_count = [bench_replay.oracle_evaluations(index, ["generate.count"], seed, 12) for seed in range(20)]
    assert max(told_count) <= 1 + 8  # the baseline, then at most the 8 architectures with two models


def test_brief_rows_give_the_ratio_and_what_3x_would_need(bench_replay, tmp_path):
    from itas.search.runner import tpe_startup

    path = tmp_path / "table.jsonl"
    _write(make_table(unique_best()), path)
    rows = bench_replay.rows(path, seeds=3, budget=12, full=False)
    assert len(rows) == 2  # no hypervolume or staged rows
    what, measured, target, verdict = rows[1]
    tpe, rnd = (float(x) for x in rows[0][1].split(" (")[0].split(" / "))
    assert measured == f"{rnd / tpe:.2f}x" and target == ">= 3x"
    assert verdict == ("met" if rnd / tpe >= 3 else "NOT MET")
    assert f"{N_QUESTIONS} questions" in what
    assert f"start-up take {1 + tpe_startup(12)})" in what  # one baseline (m1's) and the start-up
    assert tpe_startup(12) == 4 and tpe_startup(50) == 10 and tpe_startup(1000) == 10
    (near,) = bench_replay.rows(path, seeds=3, budget=12, full=False, within=N_QUESTIONS // 2)
    assert near[0].startswith(f"evaluations to an architecture within {N_QUESTIONS // 2} questions of the best "
                              f"({N_QUESTIONS // 2} or more of {N_QUESTIONS} right: 12 of 12 architectures")
    assert near[1].startswith("1 / 1 (found in 3 / 3 seeds; 1.00x)") and near[2:] == ("—", "—")


def test_the_additive_fit_of_an_additive_table_is_the_table_itself(bench_replay):
    # accuracy = a sum of one effect per parameter value: the fit explains all of it and ranks the best first
    effects = {("generate.count", 1): 0.0, ("generate.count", 2): 0.25, ("generate.m1.samples", 1): 0.0,
               ("generate.m1.samples", 2): 0.125, ("generate.m2.samples", 1): 0.0, ("generate.m2.samples", 2): 0.375,
               ("vote.enabled", False): 0.0, ("vote.enabled", True): 0.125}

    def outcome(params, arch):
        right = round(N_QUESTIONS * sum(effects[(k, v)] for k, v in params.items()))
        return [[float(i < right), 1, 10, 5, 1.0, 15.0] for i in range(N_QUESTIONS)]

    index = TableIndex(make_table(outcome))
    fitted, r2, predicted = bench_replay.fitted_table(index)
    assert r2 == pytest.approx(1.0)
    assert all(predicted[fp] == pytest.approx(index.full[fp][0]) for fp in index.full)
    assert all(TableIndex(fitted).full[fp][0] == pytest.approx(index.full[fp][0]) for fp in index.full)
    assert index.table.rows[fp_of(index.table, "m1x2+m2x2+vote")]["questions"][0][0] == 1.0  # the table is untouched


def test_fit_rows_rank_a_best_that_its_parameters_do_not_point_at(bench_replay, tmp_path):
    # accuracy grows with the calls and the vote (m1x2+m2x2+vote: 7 of 8), but the best is m1x1 (8 of 8), whose
    # every value is the low one: the fit ranks it low, and the fitted table's best has every high value
    def outcome(params, arch):
        name = _name(arch)
        right = 8 if name == "m1x1" else 7 if name == "m1x2+m2x2+vote" else _calls(arch) + (len(arch["layers"]) > 1)
        return [[float(i < right), 1, 10, 5, 1.0, 15.0] for i in range(N_QUESTIONS)]

    path = tmp_path / "table.jsonl"
    _write(make_table(outcome), path)
    (luck, rank, search) = bench_replay.fit_rows(path, seeds=3, budget=12)
    assert luck[0].startswith("how much of the best is its questions' luck (8 questions)") and luck[1] == "100%"
    assert rank[0].startswith("where the parameters point (8 questions): an additive fit")
    assert "ranks the table's best (m1x1) this far down of 12; the fit's own top is m1x2 + m2x2 → vote" in rank[0]
    assert int(rank[1]) > 6
    assert search[0].startswith("the same search on the fitted table (8 questions")
    tpe, rnd = (float(x) for x in search[1].split(" (")[0].split(" / "))
    assert 1 <= tpe <= 12 and 1 <= rnd <= 12 and search[1].endswith(f"{rnd / tpe:.2f}x)")


def test_best_stability_tells_a_best_on_every_question_from_one_on_some(bench_replay):
    # m1x1 is right on every question, the rest on the first only: m1x1 is the best in every resample
    def always(params, arch):
        return [[float(_name(arch) == "m1x1" or i == 0), 1, 10, 5, 1.0, 15.0] for i in range(N_QUESTIONS)]

    index = TableIndex(make_table(always))
    again, shares = bench_replay.best_stability(index, resamples=200)
    assert again == 1.0 and shares == {fp_of(index.table, "m1x1"): 1.0}
    # m1x1 is right on questions 0-4, m1x2 on 3-7, the rest on none: m1x1 is the best (5 of 8, m1x2 4), but a
    # resample with more of 5-7 than of 0-2 puts m1x2 first; between them they are always a best one
    def split(params, arch):
        name = _name(arch)
        return [[float(name == "m1x1" and i < 5 or name == "m1x2" and i >= 4), 1, 10, 5, 1.0, 15.0]
                for i in range(N_QUESTIONS)]

    index = TableIndex(make_table(split))
    assert index.best == {fp_of(index.table, "m1x1")}
    again, shares = bench_replay.best_stability(index, resamples=400)
    assert 0.5 < again < 0.95
    assert set(shares) == {fp_of(index.table, "m1x1"), fp_of(index.table, "m1x2")}
    assert shares[fp_of(index.table, "m1x2")] > 0.1 and sum(shares.values()) >= 1.0


def test_replicate_rows_compare_recordings_of_the_same_space(bench_replay, tmp_path):
    # the first recording's best is m1x2+m2x2+vote, the second's m1x1, the third's m1x2 (each right everywhere,
    # every other architecture on half the questions): each best is placed 2nd in the other recordings
    paths = [tmp_path / f"r{i}.jsonl" for i in range(3)]
    for path, best in zip(paths, ("m1x2+m2x2+vote", "m1x1", "m1x2"), strict=True):
        _write(make_table(unique_best(best)), path)
    (agree, second, third, mean) = bench_replay.replicate_rows(paths[0], paths[1:], seeds=3, budget=12)
    assert agree[0].startswith("the same space recorded 3 times (8 questions, each time with samples of its own): "
                               "correlation of the 12 architectures' accuracies between two recordings, median "
                               "of 3 pairs (range -0.09--0.09)")
    assert agree[0].endswith("m1x2 + m2x2 → vote (8 right; placed 2, 2); m1x1 (8 right; placed 2, 2); m1x2 (8 "
                             "right; placed 2, 2)")
    assert float(agree[1]) == pytest.approx(-1 / 11, abs=0.01)
    assert second[0].startswith("evaluations to a best architecture of recording 2 (8 questions; accuracy 1.000: "
                                "1 of 12)")
    assert third[0].startswith("evaluations to a best architecture of recording 3 (8 questions")
    # averaged: each of the three bests is right everywhere in one recording and on half the questions in the
    # other two ((1 + 0.5 + 0.5) / 3), every other architecture on half
    assert mean[0].startswith("evaluations to a best architecture of the 3 recordings averaged (8 questions; "
                              "accuracy 0.667: 3 of 12)")
    tpe, rnd = (float(x) for x in mean[1].split(" (")[0].split(" / "))
    assert 1 <= tpe <= 12 and 1 <= rnd <= 12 and mean[1].endswith(f"{rnd / tpe:.2f}x)")


def test_mean_table_averages_each_question_and_refuses_other_questions(bench_replay):
    a, b = make_table(unique_best()), make_table(unique_best("m1x1"))
    m = bench_replay.mean_table([a, b])
    fp = fp_of(a, "m1x1")
    assert [q[0] for q in m.rows[fp]["questions"]] == [0.5 if i % 2 == 0 else 1.0 for i in range(N_QUESTIONS)]
    assert [q[0] for q in a.rows[fp]["questions"]] == [float(i % 2) for i in range(N_QUESTIONS)]  # untouched
    b.header = {**b.header, "question_ids": list(reversed(b.header["question_ids"]))}
    with pytest.raises(ValueError, match="not recorded on the same questions"):
        bench_replay.mean_table([a, b])


def test_a_recording_with_a_server_seed_starts_servers_of_its_own():
    # record_table.py --server-seed N: the default pool with vLLM's --seed N on every server, so its servers are
    # not the default pool's (whose samples, drawn with seed 0, a new recording would largely repeat)
    from itas.pool.config import load_pool

    default, seeded = load_pool(None), _bench_module("record_table").seeded_pool(2)
    assert seeded.names == default.names
    for d, s in zip(default.models, seeded.models, strict=True):
        assert s.serve.args == (*d.serve.args, "--seed", "2")
        assert s.serve.spec_hash(s.name) != d.serve.spec_hash(d.name)
    assert seeded.source.endswith("vLLM --seed 2")
