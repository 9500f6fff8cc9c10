"""A collection's queries and corpus shard 0, one model load. Work only under the __main__ guard: with
several GPUs the shard job spawns one process per GPU, and each re-imports this file (as __mp_main__)."""

import torch

from llm_retrieval.encode import QueriesTask, encode_corpus_shard
from llm_retrieval.encoder import EncoderSpec
from llm_retrieval.joblog import job_log


def main(snakemake) -> None:
    torch.set_num_threads(snakemake.threads)  # torch takes every core otherwise, whatever Snakemake granted
    with job_log(snakemake.log[0]) as log:
        spec = EncoderSpec.for_job(
            snakemake.input.backbone, snakemake.params.encoding, snakemake.input.adapter, snakemake.params.max_length
        )
        queries = QueriesTask(snakemake.input.queries, snakemake.output.queries, tuple(snakemake.params.query_sets))
        count = encode_corpus_shard(
            snakemake.input.corpus,
            0,
            snakemake.params.num_shards,
            snakemake.output.shard,
            spec,
            snakemake.params.use_title,
            chunk_rows=snakemake.params.encoding["chunk_rows"],
            queries=queries,
            estimated_documents=snakemake.params.estimated_documents,
        )
        log.info("encoded %d documents (shard 0 of %s)", count, snakemake.params.num_shards)


if __name__ == "__main__":  # Snakemake runs `python <script>`; spawned workers import it as __mp_main__
    main(snakemake)
