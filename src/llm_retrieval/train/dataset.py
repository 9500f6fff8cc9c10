"""Training groups: one positive + hard negatives per query, sampled deterministically.

Every random choice is a pure function of (seed, epoch, query index), so the batch a
given optimizer step sees never depends on what ran before it: a resumed run picks up
the data order exactly where the interrupted one stopped, with no loader state to save.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..data.canonical import TRAIN_GROUPS_SCHEMA, DataError, check_schema, first_few, read_parquet


@dataclass(frozen=True)
class Passage:
    docid: str
    title: str
    text: str


@dataclass(frozen=True)
class Group:
    query_id: str
    query: str
    positives: tuple[Passage, ...]
    negatives: tuple[Passage, ...]


def read_groups(path: str | Path) -> list[Group]:
    check_schema(path, TRAIN_GROUPS_SCHEMA)
    rows = read_parquet(path, columns=TRAIN_GROUPS_SCHEMA.names).to_pylist()
    groups = [Group(r["query_id"], r["query"] or "",
                    tuple(Passage(p["docid"], p["title"] or "", p["text"] or "") for p in r["positive_passages"] or []),
                    tuple(Passage(p["docid"], p["title"] or "", p["text"] or "") for p in r["negative_passages"] or []))
              for r in rows]
    if not groups:
        raise DataError(path, "no training groups")
    no_pos = [g.query_id for g in groups if not g.positives]
    if no_pos:
        raise DataError(path, f"queries without a positive passage: {first_few(no_pos)}")
    no_neg = [g.query_id for g in groups if not g.negatives]
    if no_neg:
        raise DataError(path, f"queries without any negative passage: {first_few(no_neg)}")
    return groups


def _rng(seed: int, epoch: int, index: int = -1) -> np.random.Generator:
    # SeedSequence mixes the tuple, so neighbouring (epoch, index) pairs get unrelated streams.
    return np.random.default_rng([seed, epoch, index + 1])


def sample_group(group: Group, group_size: int, seed: int, epoch: int, index: int) -> list[Passage]:
    """Positive first, then ``group_size - 1`` negatives (with replacement only when too few)."""
    rng = _rng(seed, epoch, index)
    positive = group.positives[int(rng.integers(len(group.positives)))]
    need = group_size - 1
    replace = len(group.negatives) < need
    picks = rng.choice(len(group.negatives), size=need, replace=replace) if need else []
    return [positive] + [group.negatives[int(i)] for i in picks]


class GroupSchedule:
    """Which groups each (optimizer step, micro step, rank) trains on.

    One epoch is a seeded permutation of the groups, cut into global batches of
    ``per_device x accumulation x world`` (the last partial batch is dropped). With
    ``max_steps`` the run is exactly that many steps, cycling epochs as needed.
    """

    def __init__(self, n_groups: int, per_device: int, accumulation: int, world_size: int, seed: int,
                 epochs: int = 1, max_steps: int | None = None):
        self.n, self.per_device, self.accumulation, self.world = n_groups, per_device, accumulation, world_size
        self.seed = seed
        self.global_batch = per_device * accumulation * world_size
        self.steps_per_epoch = n_groups // self.global_batch
        if self.steps_per_epoch == 0:
            raise ValueError(f"{n_groups} training groups cannot fill one global batch of {self.global_batch}")
        self.total_steps = max_steps if max_steps else epochs * self.steps_per_epoch
        self._orders: dict[int, np.ndarray] = {}

    def order(self, epoch: int) -> np.ndarray:
        if epoch not in self._orders:
            self._orders = {epoch: _rng(self.seed, epoch).permutation(self.n)}
        return self._orders[epoch]

    def micro_batch(self, step: int, micro: int, rank: int) -> tuple[int, list[int]]:
        """(epoch, group indices) for one rank's micro batch of optimizer step ``step`` (0-based)."""
        epoch, within = divmod(step, self.steps_per_epoch)
        start = within * self.global_batch + (micro * self.world + rank) * self.per_device
        return epoch, [int(i) for i in self.order(epoch)[start:start + self.per_device]]
