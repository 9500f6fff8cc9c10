"""Writing the trained LoRA adapter (peft layout, safetensors) from a DeepSpeed engine."""
from __future__ import annotations

import torch.distributed as dist

from ..atomic import atomic_path


def save_adapter(engine, adapter_dir: str, rank: int, deepspeed) -> None:
    """Gather the (possibly ZeRO-3 partitioned) LoRA weights and write them on rank 0, atomically."""
    from peft import get_peft_model_state_dict

    peft_model = engine.module.backbone
    trainable = [p for p in peft_model.parameters() if p.requires_grad]
    # Under ZeRO-2 the parameters are whole already and the context does nothing.
    with deepspeed.zero.GatheredParameters(trainable, modifier_rank=None):
        if rank == 0:
            weights = {k: v.detach().float().cpu().clone() for k, v in get_peft_model_state_dict(peft_model).items()}
    if rank == 0:
        with atomic_path(adapter_dir, is_dir=True) as tmp:
            peft_model.save_pretrained(str(tmp), state_dict=weights, safe_serialization=True)
    dist.barrier()
