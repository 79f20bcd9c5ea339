"""The hierarchical vote on hand-made cases."""

from itas.arc.vote import hierarchical_vote


def answers(ranked):
    return [r.answer for r in ranked]


def test_the_answer_most_augmentations_agree_on_wins():
    groups = [["A", "A", "B"], ["A", "C"], ["B", "A"], ["D"]]
    ranked = hierarchical_vote(groups)
    assert answers(ranked) == ["A", "B"]
    assert (ranked[0].votes, ranked[0].samples, ranked[0].first) == (3, 4, (0, 0))


def test_within_an_augmentation_only_the_top_answers_vote():
    # "X" is frequent in one augmentation only; "Y" is the top answer of two augmentations
    groups = [["X", "X", "X", "X", "Y"], ["Y"], ["Y", "Z"]]
    ranked = hierarchical_vote(groups, within=1)
    assert answers(ranked) == ["Y", "X"] and [r.votes for r in ranked] == [2, 1]
    # a flat majority over all samples would pick X (4 samples against 3)
    assert [r.samples for r in ranked] == [3, 4]
    assert [r.votes for r in hierarchical_vote(groups, within=3)] == [3, 1]


def test_ties_go_to_more_samples_then_to_the_first_seen():
    assert answers(hierarchical_vote([["A"], ["B", "B"]])) == ["B", "A"]
    assert answers(hierarchical_vote([["A"], ["B"]])) == ["A", "B"]
    assert answers(hierarchical_vote([["B", "A"], ["A", "B"]])) == ["B", "A"]


def test_no_answer_does_not_vote():
    assert hierarchical_vote([[None, None], [None]]) == []
    assert answers(hierarchical_vote([[None, "A"], [None]])) == ["A"]


def test_keeps_at_most_two_and_a_lone_answer_alone():
    assert answers(hierarchical_vote([["A", "B", "C"], ["C"]])) == ["C", "A"]
    assert answers(hierarchical_vote([["A"]])) == ["A"]


def test_the_right_answer_wins_over_scattered_mistakes():
    # eight augmentations: the right grid in five of them, every wrong answer different
    groups = [["right"], ["w1"], ["right"], ["w2"], ["right", "w3"], ["right"], ["w4", "w4"], ["right"]]
    ranked = hierarchical_vote(groups)
    assert ranked[0].answer == "right" and ranked[0].votes == 5
    assert ranked[1].answer == "w4"  # most samples among the one-vote answers
