# Dense encoding of the queries in one job, the corpus in N shards (N = encoding.corpus_shards),
# each shard a Parquet file of (id, embedding), resumable chunk by chunk.


rule encode_queries:
    input:
        unpack(lambda wc: {"backbone": backbone_record(wc), "adapter": adapter_of(wc)}),
        queries=f"{R}/data/{{collection}}/queries.parquet",
    output:
        f"{R}/embeddings/{{setting}}/{{backbone}}/{{collection}}/queries.parquet",
    log:
        f"{R}/logs/encode_queries/{{setting}}/{{backbone}}/{{collection}}.log",
    benchmark:
        f"{R}/benchmarks/encode_queries/{{setting}}/{{backbone}}/{{collection}}.tsv"
    conda:
        ENV
    threads: rule_threads("encode_queries")
    resources:
        **rule_resources("encode_queries"),
    params:
        encoding=config["encoding"],
        max_length=supervised_max_length,
        query_sets=lambda wc: study.eval_query_sets(wc.collection),
    script:
        "../scripts/encode_queries.py"


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
    conda:
        ENV
    threads: rule_threads("encode_corpus_shard")
    resources:
        **rule_resources("encode_corpus_shard"),
    params:
        encoding=config["encoding"],
        max_length=supervised_max_length,
        num_shards=config["encoding"]["corpus_shards"],
        use_title=lambda wc: study.collection(wc.collection)["use_title"],
    script:
        "../scripts/encode_corpus_shard.py"
