"""InfoNCE with cross-rank negatives equals the single-process loss on the concatenated batch."""

from __future__ import annotations

import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

from llm_retrieval.train.loss import info_nce

WORLD, PER_RANK, GROUP, DIM, TAU = 2, 3, 4, 8, 0.05


def _inputs():
    g = torch.Generator().manual_seed(0)
    q = F.normalize(torch.randn(WORLD * PER_RANK, DIM, generator=g), dim=-1)
    p = F.normalize(torch.randn(WORLD * PER_RANK * GROUP, DIM, generator=g), dim=-1)
    return q, p


def _reference():
    q, p = _inputs()
    q.requires_grad_(), p.requires_grad_()
    loss = info_nce(q, p, TAU, gather=False)
    loss.backward()
    # Parameter gradients of a shared linear encoder, as one process would get them.
    torch.manual_seed(1)
    enc = torch.nn.Linear(DIM, DIM)
    qx, px = _inputs()
    info_nce(enc(qx), enc(px), TAU, gather=False).backward()
    return loss.detach(), q.grad, p.grad, enc.weight.grad


def _rank(rank: int, port: int) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    try:
        ref_loss, ref_qg, ref_pg, ref_wg = _reference()
        q, p = _inputs()
        qs, ps = (
            slice(rank * PER_RANK, (rank + 1) * PER_RANK),
            slice(rank * PER_RANK * GROUP, (rank + 1) * PER_RANK * GROUP),
        )
        q_local, p_local = q[qs].clone().requires_grad_(), p[ps].clone().requires_grad_()
        loss = info_nce(q_local, p_local, TAU)
        loss.backward()
        torch.testing.assert_close(loss.detach(), ref_loss)
        torch.testing.assert_close(q_local.grad, ref_qg[qs])
        torch.testing.assert_close(p_local.grad, ref_pg[ps])

        # Through parameters: each rank back-propagates loss x world size, the engine
        # averages gradients over ranks (simulated here); the result is the full gradient.
        torch.manual_seed(1)
        enc = torch.nn.Linear(DIM, DIM)
        qx, px = _inputs()
        (info_nce(enc(qx[qs]), enc(px[ps]), TAU) * WORLD).backward()
        grad = enc.weight.grad.clone()
        dist.all_reduce(grad)
        torch.testing.assert_close(grad / WORLD, ref_wg)
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_gathered_loss_and_gradients_match_single_process():
    mp.spawn(_rank, args=(_free_port(),), nprocs=WORLD, join=True)


def test_single_process_loss_is_plain_cross_entropy():
    q, p = _inputs()
    scores = q @ p.T / TAU
    expected = F.cross_entropy(scores, torch.arange(q.size(0)) * GROUP)
    torch.testing.assert_close(info_nce(q, p, TAU), expected)


def test_rejects_ragged_groups():
    q, p = _inputs()
    with pytest.raises(ValueError, match="whole group"):
        info_nce(q, p[:-1], TAU)
