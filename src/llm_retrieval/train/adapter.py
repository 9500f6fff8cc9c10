"""Writing the trained weights from a DeepSpeed engine: the LoRA adapter (peft layout, safetensors), or
under full fine-tuning the whole backbone as an ordinary model folder (config + safetensors)."""

from __future__ import annotations

import torch.distributed as dist

from ..atomic import atomic_path


def save_adapter(engine, adapter_dir: str, rank: int, deepspeed) -> None:
    """Gather the (possibly ZeRO-3 partitioned) LoRA weights and write them on rank 0, atomically."""
    from peft import PeftModel, get_peft_model_state_dict

    peft_model = engine.module.backbone
    if not isinstance(peft_model, PeftModel):
        save_full_model(engine, adapter_dir, rank, deepspeed)
        return
    trainable = [p for p in peft_model.parameters() if p.requires_grad]
    # Under ZeRO-2 the parameters are whole already and the context does nothing.
    with deepspeed.zero.GatheredParameters(trainable, modifier_rank=None):
        if rank == 0:
            weights = {k: v.detach().float().cpu().clone() for k, v in get_peft_model_state_dict(peft_model).items()}
    if rank == 0:
        with atomic_path(adapter_dir, is_dir=True) as tmp:
            peft_model.save_pretrained(str(tmp), state_dict=weights, safe_serialization=True)
    dist.barrier()


def save_full_model(engine, model_dir: str, rank: int, deepspeed) -> None:
    """Full fine-tuning: gather every (possibly partitioned) weight, rank 0 writes a model folder that
    ``from_pretrained`` loads as it loads the backbone."""
    model = engine.module.backbone
    with deepspeed.zero.GatheredParameters(list(model.parameters()), modifier_rank=None):
        if rank == 0:
            weights = {k: v.detach().float().cpu().clone() for k, v in model.state_dict().items()}
    if rank == 0:
        with atomic_path(model_dir, is_dir=True) as tmp:
            model.save_pretrained(str(tmp), state_dict=weights, safe_serialization=True)
    dist.barrier()
