import json
from pathlib import Path

import torch

from llm_retrieval.encoder import EncoderSpec
from llm_retrieval.joblog import job_log
from llm_retrieval.sts import encode_sentences

torch.set_num_threads(snakemake.threads)  # torch takes every core otherwise, whatever Snakemake granted

with job_log(snakemake.log[0]) as log:
    adapter = snakemake.input.adapter[0] if snakemake.input.adapter else None
    spec = EncoderSpec(
        json.loads(Path(snakemake.input.backbone).read_text()),
        snakemake.params.encoding,
        adapter,
        snakemake.params.max_length,
    )
    count = encode_sentences(snakemake.input.pairs, snakemake.params.query_sets, snakemake.output[0], spec)
    log.info("encoded %d sentences (both sides of every pair)", count)
