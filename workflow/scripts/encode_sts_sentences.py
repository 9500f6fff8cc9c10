import torch

from llm_retrieval.encoder import EncoderSpec
from llm_retrieval.joblog import job_log
from llm_retrieval.sts import encode_sentences

torch.set_num_threads(snakemake.threads)  # torch takes every core otherwise, whatever Snakemake granted

with job_log(snakemake.log[0]) as log:
    spec = EncoderSpec.for_job(
        snakemake.input.backbone, snakemake.params.encoding, snakemake.input.adapter, snakemake.params.max_length
    )
    count = encode_sentences(snakemake.input.pairs, snakemake.params.query_sets, snakemake.output[0], spec)
    log.info("encoded %d sentences (both sides of every pair)", count)
