"""The seeds a run derives from its ``seed`` (cdkd_core.seeds): distinct for one run, and
the numbers runs have been reproduced with."""

from __future__ import annotations

from cdkd_core import seeds


def test_the_derivations_keep_their_numbers():
    assert seeds.student_seed(5) == 6
    assert [seeds.member_seed(5, k) for k in range(3)] == [5, 5 + 7919, 5 + 2 * 7919]
    assert seeds.finetune_seed(5) == 12
    assert seeds.domain_seed(5, 2) == 5002
    assert seeds.labelled_seed(5002, "train") == 5002
    assert seeds.labelled_seed(5002, "val") == 5003
    assert seeds.quiz_seed(5002) == 5019
    assert seeds.round_seed(5, 1) == 6
    assert seeds.sample_seed(5, 3) == 8
    assert seeds.numpy_seed(2**32 + 3) == 3


def test_one_runs_network_and_domain_seeds_are_distinct():
    for seed in (0, 1, 41, 10**6):
        networks = [seeds.student_seed(seed), seeds.finetune_seed(seed)]
        networks += [seeds.member_seed(seed, k) for k in range(64)]
        assert len(set(networks)) == len(networks)
        assert len({seeds.domain_seed(seed, i) for i in range(50)}) == 50
