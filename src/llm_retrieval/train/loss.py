"""InfoNCE over each query's group plus every other passage in the global batch."""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F


def gather_with_grad(local: torch.Tensor) -> torch.Tensor:
    """Concatenate ``local`` from every rank (rank order); gradients flow into the local slice.

    ``all_gather`` returns detached copies; putting the local tensor back in its slot
    keeps this rank's graph, so each rank back-propagates into its own inputs while
    the other ranks' rows act as constants (their own ranks cover those paths).
    """
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return local
    parts = [torch.empty_like(local) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, local.detach().contiguous())
    parts[dist.get_rank()] = local
    return torch.cat(parts)


def info_nce(queries: torch.Tensor, passages: torch.Tensor, temperature: float, gather: bool = True) -> torch.Tensor:
    """Mean InfoNCE loss over the *global* batch (same value on every rank).

    ``queries`` [B, d] and ``passages`` [B * G, d] are this rank's embeddings, passages
    grouped per query with the positive first. Every rank computes the full loss, so the
    gradient it back-propagates into its local slice is exactly that slice's share of the
    full gradient. Data-parallel engines *average* parameter gradients over ranks; the
    caller multiplies the loss by the world size before ``backward`` to undo that.
    """
    if passages.size(0) % queries.size(0):
        raise ValueError(f"{passages.size(0)} passages is not a whole group per query for {queries.size(0)} queries")
    if gather:
        queries, passages = gather_with_grad(queries), gather_with_grad(passages)
    group_size = passages.size(0) // queries.size(0)
    scores = queries @ passages.T / temperature
    # Passages are rank-major then query-major, so query i's positive sits at row i * G.
    target = torch.arange(queries.size(0), device=scores.device) * group_size
    return F.cross_entropy(scores.float(), target)
