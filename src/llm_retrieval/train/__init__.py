"""Supervised setting (RepLLaMA recipe): LoRA retrievers trained with InfoNCE under DeepSpeed ZeRO-3.

- :mod:`.mine` BM25 hard negatives for the offline demo (the paper uses Tevatron's groups)
- :mod:`.dataset` deterministic groups and batches from the training-groups Parquet
- :mod:`.loss` InfoNCE with embeddings gathered across ranks
- :mod:`.model` the LoRA retriever being trained (encoding with the adapter: ``modeling.load_text_model``)
- :mod:`.checkpoint` atomic, resumable checkpoints
- :mod:`.driver` the launcher that starts the ranks; :mod:`.rank` one rank's training loop
- :mod:`.engine` DeepSpeed config (one template, `zero_stage` 2|3) and engine; :mod:`.adapter` adapter export
"""
