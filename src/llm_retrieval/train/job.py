"""What one training run is: the picklable description every rank receives (it crosses ``spawn``)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class TrainJob:
    """Everything a rank needs (picklable: it crosses ``spawn``)."""

    backbone_path: str
    architecture: str
    groups_path: str
    adapter_dir: str
    checkpoint_dir: str
    log_path: str
    training: dict  # the config's `training` section
    deepspeed_config: str | None = None  # defaults to training.deepspeed_config
    fail_at_step: int | None = None  # raise after this optimizer step (1-based), for tests
    pooling: str | None = None  # the backbone's pooling (encoders.py); None: its family's default
    snapshots: dict = field(default_factory=dict)  # step -> output folder of the adapter after it (learning curve)
