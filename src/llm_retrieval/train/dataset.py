"""Training groups: one positive + hard negatives per query, sampled deterministically; tasks mixed by step.

Every random choice is a pure function of (seed, epoch, query index), so the batch a
given optimizer step sees never depends on what ran before it: a resumed run picks up
the data order exactly where the interrupted one stopped, with no loader state to save.
The same holds for a recipe's task mixture (:class:`TaskMixture`: which task each step
trains on) and for each training query's and passage's instruction (:func:`instruction_for`,
:func:`passage_instructions_for`).
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
    groups = [
        Group(
            r["query_id"],
            r["query"] or "",
            tuple(Passage(p["docid"], p["title"] or "", p["text"] or "") for p in r["positive_passages"] or []),
            tuple(Passage(p["docid"], p["title"] or "", p["text"] or "") for p in r["negative_passages"] or []),
        )
        for r in rows
    ]
    if not groups:
        raise DataError(path, "no training groups")
    no_pos = [g.query_id for g in groups if not g.positives]
    if no_pos:
        raise DataError(path, f"queries without a positive passage: {first_few(no_pos)}")
    no_neg = [g.query_id for g in groups if not g.negatives]
    if no_neg and len(no_neg) < len(groups):  # a source has hard negatives for every query, or for none
        raise DataError(
            path,
            f"queries without any negative passage: {first_few(no_neg)} (a source without hard "
            "negatives leaves them out on every query: it then trains with in-batch negatives only)",
        )
    return groups


Seed = int | tuple  # a run's seed, or (seed, task index) for one task of a mixture
INSTRUCTION_STREAM = 1  # instruction draws: a stream apart from the group sampling's
TASK_ORDER_STREAM = 2  # the mixture's task order
PASSAGE_INSTRUCTION_STREAM = 3  # a group's passages' instruction draws


def _rng(seed: Seed, epoch: int, index: int = -1, stream: int = 0) -> np.random.Generator:
    # SeedSequence mixes the tuple, so neighbouring (epoch, index) pairs get unrelated streams.
    key = [*(seed if isinstance(seed, tuple) else (seed,)), epoch, index + 1]
    return np.random.default_rng(key + [stream] if stream else key)


def sample_group(group: Group, group_size: int, seed: Seed, epoch: int, index: int) -> list[Passage]:
    """Positive first, then ``group_size - 1`` negatives (with replacement only when too few); a group of a
    source without hard negatives is its positive alone (in-batch negatives only)."""
    rng = _rng(seed, epoch, index)
    positive = group.positives[int(rng.integers(len(group.positives)))]
    need = group_size - 1 if group.negatives else 0
    replace = len(group.negatives) < need
    picks = rng.choice(len(group.negatives), size=need, replace=replace) if need else []
    return [positive] + [group.negatives[int(i)] for i in picks]


class GroupSchedule:
    """Which groups each (optimizer step, micro step, rank) trains on.

    One epoch is a seeded permutation of the groups, cut into global batches of
    ``per_device x accumulation x world`` (the last partial batch is dropped). With
    ``max_steps`` the run is exactly that many steps, cycling epochs as needed.
    """

    def __init__(
        self,
        n_groups: int,
        per_device: int,
        accumulation: int,
        world_size: int,
        seed: Seed,
        epochs: int = 1,
        max_steps: int | None = None,
    ):
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
        return epoch, [int(i) for i in self.order(epoch)[start : start + self.per_device]]


def instruction_for(instructions: tuple[str, ...], seed: Seed, epoch: int, index: int) -> str | None:
    """The instruction a training query gets: one of its task's, drawn from (seed, epoch, query index)."""
    if not instructions:
        return None
    return instructions[int(_rng(seed, epoch, index, INSTRUCTION_STREAM).integers(len(instructions)))]


def passage_instructions_for(
    instructions: tuple[str, ...], seed: Seed, epoch: int, index: int, count: int
) -> list[str | None]:
    """The instructions of a training group's ``count`` passages (positive and negatives, in order): each one of
    its task's passage instructions, drawn from (seed, epoch, query index) on a stream of their own."""
    if not instructions:
        return [None] * count
    picks = _rng(seed, epoch, index, PASSAGE_INSTRUCTION_STREAM).integers(len(instructions), size=count)
    return [instructions[int(i)] for i in picks]


@dataclass(frozen=True)
class MicroBatch:
    task: int  # index into the recipe's tasks
    seed: Seed  # the task's seed (group sampling, instructions)
    epoch: int  # the task's own epoch
    indices: list[int]  # group indices within the task


class TaskMixture:
    """Which task, and which of its groups, each (optimizer step, micro step, rank) trains on.

    Every global batch comes from ONE task (in-batch and cross-rank negatives are then of that task).
    A mixture epoch holds ``E = sum of the tasks' global batches`` steps; each task gets its share of
    them, proportional to its size (``weights[i] is None`` for every task) or to its weight, in an order
    that is a seeded permutation per mixture epoch. Task ``i`` walks its own :class:`GroupSchedule`
    (seed ``(seed, i)``; with one task the run's seed itself, so a one-task mixture is exactly the
    single-source schedule). Step -> (task, task step) is a pure function: resume needs no saved state.
    """

    def __init__(
        self,
        sizes: list[int],
        weights: list[float | None],
        per_device: int,
        accumulation: int,
        world_size: int,
        seed: int,
        epochs: int = 1,
        max_steps: int | None = None,
    ):
        one = len(sizes) == 1
        self.seed = seed
        self.tasks = [
            GroupSchedule(n, per_device, accumulation, world_size, seed if one else (seed, i), epochs)
            for i, n in enumerate(sizes)
        ]
        self.global_batch = self.tasks[0].global_batch
        self.counts = share_of_steps([t.steps_per_epoch for t in self.tasks], weights)
        self.steps_per_epoch = sum(self.counts)
        self.total_steps = max_steps if max_steps else epochs * self.steps_per_epoch
        self._epoch: tuple[int, np.ndarray, np.ndarray] | None = None

    def _order(self, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        """(task of each step, that task's steps before it) in one mixture epoch."""
        if self._epoch is None or self._epoch[0] != epoch:
            tasks = np.repeat(np.arange(len(self.counts)), self.counts)
            if len(self.counts) > 1:
                tasks = _rng(self.seed, epoch, -1, TASK_ORDER_STREAM).permutation(tasks)
            before = np.zeros(len(tasks), dtype=np.int64)
            seen = np.zeros(len(self.counts), dtype=np.int64)
            for position, task in enumerate(tasks):
                before[position], seen[task] = seen[task], seen[task] + 1
            self._epoch = (epoch, tasks, before)
        return self._epoch[1], self._epoch[2]

    def task_of(self, step: int) -> tuple[int, int]:
        """(task index, the task's own step) of optimizer step ``step`` (0-based)."""
        epoch, within = divmod(step, self.steps_per_epoch)
        tasks, before = self._order(epoch)
        task = int(tasks[within])
        return task, epoch * self.counts[task] + int(before[within])

    def micro_batch(self, step: int, micro: int, rank: int) -> MicroBatch:
        task, task_step = self.task_of(step)
        epoch, indices = self.tasks[task].micro_batch(task_step, micro, rank)
        return MicroBatch(task, self.tasks[task].seed, epoch, indices)


def share_of_steps(steps: list[int], weights: list[float | None]) -> list[int]:
    """Steps per mixture epoch of each task: its own global batches (proportional to size), or, with weights,
    the epoch's total split by weight (at least one step each)."""
    if all(w is None for w in weights):
        return list(steps)
    if any(w is None for w in weights):
        raise ValueError("task weights: give every task of a recipe a weight, or none (proportional to size)")
    total = sum(steps)
    return [max(1, round(total * w / sum(weights))) for w in weights]
