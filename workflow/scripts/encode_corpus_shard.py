"""One corpus shard (shards >= 1). Work only under the __main__ guard: with several GPUs the shard job
spawns one process per GPU, and each re-imports this file (as __mp_main__) before it starts."""

import torch

from llm_retrieval.encode import encode_corpus_shard
from llm_retrieval.encoder import EncoderSpec
from llm_retrieval.joblog import job_log


def main(snakemake) -> None:
    torch.set_num_threads(snakemake.threads)  # torch takes every core otherwise, whatever Snakemake granted
    with job_log(snakemake.log[0]) as log:
        spec = EncoderSpec.for_job(
            snakemake.input.backbone, snakemake.params.encoding, snakemake.input.adapter, snakemake.params.max_length
        )
        count = encode_corpus_shard(
            snakemake.input.corpus,
            int(snakemake.wildcards.shard),
            snakemake.params.num_shards,
            snakemake.output[0],
            spec,
            snakemake.params.use_title,
            chunk_rows=snakemake.params.encoding["chunk_rows"],
        )
        log.info("encoded %d documents (shard %s of %s)", count, snakemake.wildcards.shard, snakemake.params.num_shards)


if __name__ == "__main__":  # Snakemake runs `python <script>`; spawned workers import it as __mp_main__
    main(snakemake)
