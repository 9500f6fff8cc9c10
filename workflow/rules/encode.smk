# Dense encoding. A corpus is cut into shards by estimated token volume (encoding.shard_tokens over the
# sizes in resources/collection_sizes.tsv: a small corpus is one job, MS MARCO many). The first shard's job
# also encodes the queries, with the same model load; every shard is a Parquet file of (id, embedding),
# resumable chunk by chunk. The shard count is a param: a changed plan (sizes, shard_tokens) reruns the shards.


rule encode_queries_and_first_shard:
    input:
        unpack(get_encoder_files),
        queries=layout.collection_file("{collection}", "queries"),
        corpus=layout.collection_file("{collection}", "corpus"),
    output:
        queries=layout.query_embeddings("{setting}", "{backbone}", "{collection}"),
        shard=layout.corpus_shard("{setting}", "{backbone}", "{collection}", 0),
    log:
        layout.log("encode_queries_and_first_shard/{setting}/{backbone}/{collection}"),
    benchmark:
        layout.benchmark("encode_queries_and_first_shard/{setting}/{backbone}/{collection}")
    conda:
        ENV
    threads: rule_threads("encode_queries_and_first_shard")
    resources:
        **rule_resources("encode_queries_and_first_shard"),
    params:
        encoding=get_encoding,
        max_length=get_max_length,
        num_shards=get_num_shards,
        query_sets=lambda wc: study.eval_query_sets(wc.collection),
        use_title=of_collection("use_title"),
        estimated_documents=lambda wc: study.corpus_size(wc.collection, wc.setting)[0],
    script:
        "../scripts/encode_queries_and_first_shard.py"


rule encode_corpus_shard:
    input:
        unpack(get_encoder_files),
        corpus=layout.collection_file("{collection}", "corpus"),
    output:
        layout.corpus_shard("{setting}", "{backbone}", "{collection}", "{shard}"),
    log:
        layout.log("encode_corpus_shard/{setting}/{backbone}/{collection}/shard-{shard}"),
    benchmark:
        layout.benchmark("encode_corpus_shard/{setting}/{backbone}/{collection}/shard-{shard}")
    wildcard_constraints:
        shard=r"[1-9]\d*",
    conda:
        ENV
    threads: rule_threads("encode_corpus_shard")
    resources:
        **rule_resources("encode_corpus_shard"),
    params:
        encoding=get_encoding,
        max_length=get_max_length,
        num_shards=get_num_shards,
        use_title=of_collection("use_title"),
    script:
        "../scripts/encode_corpus_shard.py"


# Queries on their own, for a setting that searches another setting's corpus encoding (Study.corpus_setting:
# an instruction variant without a passage instruction of its own); the kind of the job that encodes queries.
rule encode_queries_only:
    input:
        unpack(get_encoder_files),
        queries=layout.collection_file("{collection}", "queries"),
    output:
        layout.query_embeddings_only("{setting}", "{backbone}", "{collection}"),
    log:
        layout.log("encode_queries_only/{setting}/{backbone}/{collection}"),
    benchmark:
        layout.benchmark("encode_queries_only/{setting}/{backbone}/{collection}")
    conda:
        ENV
    threads: rule_threads("encode_queries_and_first_shard")
    resources:
        **rule_resources("encode_queries_and_first_shard"),
    params:
        encoding=get_encoding,
        max_length=get_max_length,
        query_sets=lambda wc: study.eval_query_sets(wc.collection),
    script:
        "../scripts/encode_queries_only.py"
