# Dense encoding. A corpus is cut into shards by estimated token volume (encoding.shard_tokens over the
# sizes in resources/collection_sizes.tsv: a small corpus is one job, MS MARCO many). The first shard's job
# also encodes the queries, with the same model load; every shard is a Parquet file of (id, embedding),
# resumable chunk by chunk. The shard count is a param: a changed plan (sizes, shard_tokens) reruns the shards.


rule encode_queries_and_first_shard:
    input:
        unpack(lambda wc: {"backbone": backbone_record(wc), "adapter": adapter_of(wc)}),
        queries=f"{R}/data/{{collection}}/queries.parquet",
        corpus=f"{R}/data/{{collection}}/corpus.parquet",
    output:
        queries=f"{R}/embeddings/{{setting}}/{{backbone}}/{{collection}}/queries.parquet",
        shard=f"{R}/embeddings/{{setting}}/{{backbone}}/{{collection}}/corpus/shard-0.parquet",
    log:
        f"{R}/logs/encode_queries_and_first_shard/{{setting}}/{{backbone}}/{{collection}}.log",
    benchmark:
        f"{R}/benchmarks/encode_queries_and_first_shard/{{setting}}/{{backbone}}/{{collection}}.tsv"
    conda:
        ENV
    threads: rule_threads("encode_queries_and_first_shard")
    resources:
        **rule_resources("encode_queries_and_first_shard"),
    params:
        encoding=encoding_of,
        max_length=supervised_max_length,
        num_shards=lambda wc: study.corpus_shards(wc.collection, wc.setting),
        query_sets=lambda wc: study.eval_query_sets(wc.collection),
        use_title=lambda wc: study.collection(wc.collection)["use_title"],
        estimated_documents=lambda wc: study.corpus_size(wc.collection, wc.setting)[0],
    script:
        "../scripts/encode_queries_and_first_shard.py"


rule encode_corpus_shard:
    input:
        unpack(lambda wc: {"backbone": backbone_record(wc), "adapter": adapter_of(wc)}),
        corpus=f"{R}/data/{{collection}}/corpus.parquet",
    output:
        f"{R}/embeddings/{{setting}}/{{backbone}}/{{collection}}/corpus/shard-{{shard}}.parquet",
    log:
        f"{R}/logs/encode_corpus_shard/{{setting}}/{{backbone}}/{{collection}}/shard-{{shard}}.log",
    benchmark:
        f"{R}/benchmarks/encode_corpus_shard/{{setting}}/{{backbone}}/{{collection}}/shard-{{shard}}.tsv"
    wildcard_constraints:
        shard=r"[1-9]\d*",
    conda:
        ENV
    threads: rule_threads("encode_corpus_shard")
    resources:
        **rule_resources("encode_corpus_shard"),
    params:
        encoding=encoding_of,
        max_length=supervised_max_length,
        num_shards=lambda wc: study.corpus_shards(wc.collection, wc.setting),
        use_title=lambda wc: study.collection(wc.collection)["use_title"],
    script:
        "../scripts/encode_corpus_shard.py"
