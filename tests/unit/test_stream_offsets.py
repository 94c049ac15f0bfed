"""PartitionOffsets: answers complete in any order, commits only move over a gap-free prefix."""

from hypothesis import given
from hypothesis import strategies as st

from model_server.stream.offsets import PartitionOffsets


def test_a_later_answer_never_commits_past_an_earlier_one_in_flight():
    offsets = PartitionOffsets()
    for offset in (10, 11, 12):
        offsets.start(offset)
    offsets.answered(12)
    offsets.answered(11)
    assert offsets.to_commit() is None and len(offsets) == 3
    offsets.answered(10)
    assert offsets.to_commit() == 13 and len(offsets) == 0


def test_nothing_to_commit_twice():
    offsets = PartitionOffsets()
    offsets.start(0)
    offsets.answered(0)
    offsets.committed = offsets.to_commit()
    assert offsets.committed == 1 and offsets.to_commit() is None


@given(st.permutations(list(range(30))), st.integers(0, 30))
def test_committable_is_one_past_the_longest_answered_prefix(order, answered_count):
    offsets = PartitionOffsets()
    for offset in range(30):
        offsets.start(offset)
    done = set(order[:answered_count])
    for offset in order[:answered_count]:
        offsets.answered(offset)
    prefix = 0
    while prefix in done:
        prefix += 1
    assert offsets.to_commit() == (prefix if prefix else None)
