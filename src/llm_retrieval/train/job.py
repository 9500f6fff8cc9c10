"""What one training run is: the picklable description every rank receives (it crosses ``spawn``)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class TrainTask:
    """One task of a recipe's mixture: its groups, its share of the steps and its query and passage instructions."""

    name: str
    groups_path: str
    weight: float | None = None  # None: proportional to the task's size
    query_instructions: tuple[str, ...] = ()  # each training query gets one, drawn with the seed
    passage_instructions: tuple[str, ...] = ()  # each passage of its groups gets one, drawn with the seed


@dataclass(frozen=True)
class TrainJob:
    """Everything a rank needs (picklable: it crosses ``spawn``)."""

    backbone_path: str
    architecture: str
    groups: str | tuple[TrainTask, ...]  # the recipe's tasks; a path alone: one task without instructions
    adapter_dir: str
    checkpoint_dir: str
    log_path: str
    training: dict  # the recipe's `training` section
    deepspeed_config: str | None = None  # defaults to training.deepspeed_config
    fail_at_step: int | None = None  # raise after this optimizer step (1-based), for tests
    pooling: str | None = None  # the backbone's pooling (encoders.py); None: its family's default
    snapshots: dict = field(default_factory=dict)  # step -> output folder of the adapter after it (learning curve)

    @property
    def tasks(self) -> tuple[TrainTask, ...]:
        return (TrainTask("default", self.groups),) if isinstance(self.groups, str) else tuple(self.groups)
