"""The executor's commit rule on Kafka: the committed offset never passes an offset whose
record the executor has not processed (executor/faust_transport.py).

Faust's own rule passes one missing offset at the committed position, and any number when
nothing was committed yet; a gap guessed from a jump between two records handed over passed
records a rebalance had left unread (notes/issue-13.md, ``steady-00021``).
"""

from __future__ import annotations

from intervaltree import IntervalTree

from executor.faust_transport import commit_point, unread_offsets


def gaps(*ranges: tuple[int, int]) -> IntervalTree:
    tree = IntervalTree()
    for begin, stop in ranges:
        tree.addi(begin, stop)
    return tree


def test_the_commit_moves_over_acked_offsets_that_start_at_the_committed_one() -> None:
    acked = [12, 10, 11]
    assert commit_point(10, acked, gaps()) == (13, 3)


def test_a_single_missing_offset_at_the_committed_position_holds_the_commit() -> None:
    # Faust's _new_offset commits to 15 here (its gap-of-1 tolerance)
    assert commit_point(10, [11, 12, 13, 14], gaps()) == (10, 0)


def test_acked_offsets_after_an_unread_one_hold_the_commit_at_the_unread_one() -> None:
    # a rebalance's seek to 49, records 73.. handed over from a batch fetched before it
    assert commit_point(49, [73, 74, 75], gaps()) == (49, 0)


def test_known_gaps_are_passed_with_the_acked_offsets_around_them() -> None:
    # 5 and 6: the commit markers of two transactions; 9: trailing marker
    assert commit_point(3, [3, 4, 7, 8], gaps((5, 7), (9, 10))) == (10, 4)


def test_a_gap_alone_moves_the_commit() -> None:
    assert commit_point(9, [], gaps((9, 10))) == (10, 0)


def test_offsets_below_the_committed_one_are_dropped_and_do_not_move_it() -> None:
    acked = [4, 5, 8]
    assert commit_point(7, acked, gaps()) == (7, 2)


def test_unread_offsets_of_a_fetch_are_what_it_read_past_without_a_record() -> None:
    assert unread_offsets(10, 20, [12, 13, 17]) == [(10, 12), (14, 17), (18, 20)]
    assert unread_offsets(10, 13, [10, 11, 12]) == []
    assert unread_offsets(10, 12, []) == [(10, 12)]  # markers only
