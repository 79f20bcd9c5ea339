import copy

from itas.arch.state import Candidate, CandidateScore, Critique, Origin, State, merge_states


def cand(layer, comp, sample, text="t"):
    return Candidate(text, Origin(layer, comp, "generator", "m", sample))


def test_merge_keeps_each_candidate_once_in_spec_order():
    a, b, c, d = cand(0, 0, 0), cand(0, 0, 1), cand(1, 0, 0), cand(1, 1, 0)
    before = State(question="q", candidates=(a, b), critiques=(Critique(a.id, "ca"),))
    out1 = before.adding_candidates([c]).with_unit_tests(["t1"])
    out2 = before.adding_candidates([d]).with_unit_tests(["t1", "t2"])
    merged = merge_states(before, [out1, out2])
    assert merged.candidates == (a, b, c, d)
    assert merged.critiques == (Critique(a.id, "ca"),)
    assert merged.unit_tests == ("t1", "t2")


def test_fusers_in_one_layer_give_one_candidate_each():
    a = cand(0, 0, 0)
    before = State(question="q", candidates=(a,), critiques=(Critique(a.id, "x"),))
    f1, f2 = before.with_candidates([cand(1, 0, 0)]), before.with_candidates([cand(1, 1, 0)])
    merged = merge_states(before, [f1, f2])
    assert [x.id for x in merged.candidates] == ["L1.C0.S0", "L1.C1.S0"] and merged.critiques == ()


def test_new_states_never_change_the_old():
    a, b = cand(0, 0, 0), cand(0, 0, 1)
    s = State(question="q", candidates=(a, b), scores=(CandidateScore(b.id, 1.0, "vote"),))
    snapshot = copy.deepcopy(s)
    t = s.with_candidates([a]).with_critiques([Critique(a.id, "c")]).with_unit_tests(["u"])
    assert s == snapshot
    assert t.scores == () and t.critique_of(a) == "c" and s.score_of(b) == 1.0
    assert s.with_critiques([Critique(a.id, "1")]).with_critiques([Critique(a.id, "2")]).critique_of(a) == "2"
