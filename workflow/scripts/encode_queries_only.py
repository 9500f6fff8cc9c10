"""A collection's evaluated queries on their own (one model load): the setting searches another setting's
corpus encoding (Study.corpus_setting)."""

import torch

from llm_retrieval.encode import encode_queries
from llm_retrieval.encoder import EncoderSpec
from llm_retrieval.joblog import job_log


def main(snakemake) -> None:
    torch.set_num_threads(snakemake.threads)  # torch takes every core otherwise, whatever Snakemake granted
    with job_log(snakemake.log[0]) as log:
        spec = EncoderSpec.for_job(
            snakemake.input.backbone, snakemake.params.encoding, snakemake.input.adapter, snakemake.params.max_length
        )
        count = encode_queries(snakemake.input.queries, snakemake.output[0], spec, snakemake.params.query_sets)
        log.info("encoded %d queries", count)


if __name__ == "__main__":  # Snakemake runs `python <script>`
    main(snakemake)
