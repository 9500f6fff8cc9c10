# Sentence similarity (STS, evaluation kind sts: src/llm_retrieval/sts.py): a collection of sentence pairs,
# both sentences embedded by the backbone as queries are, the Spearman correlation of their cosines with
# the gold scores per query set. No corpus, no search, no BM25.


rule prepare_sts_pairs:
    input:
        unpack(lambda wc: local_inputs(study.collection(wc.collection)["source"])),
    output:
        pairs=f"{R}/data/{{collection}}/pairs.parquet",
        manifest=f"{R}/data/{{collection}}/manifest.json",
    log:
        f"{R}/logs/prepare_sts_pairs/{{collection}}.log",
    benchmark:
        f"{R}/benchmarks/prepare_sts_pairs/{{collection}}.tsv"
    wildcard_constraints:
        collection=regex_of(study.collections_of_kind(None, STS)),
    conda:
        ENV
    threads: rule_threads("data")
    resources:
        **rule_resources("data"),
    params:
        source=lambda wc: study.collection(wc.collection)["source"],
        query_sets=lambda wc: list(study.collection(wc.collection)["query_sets"]),
        work_dir=lambda wc: f"{R}/downloads/{wc.collection}",
    script:
        "../scripts/prepare_collection.py"


rule encode_sts_sentences:
    input:
        unpack(lambda wc: {"backbone": backbone_record(wc), "adapter": adapter_of(wc)}),
        pairs=f"{R}/data/{{collection}}/pairs.parquet",
    output:
        f"{R}/embeddings/{{setting}}/{{backbone}}/{{collection}}/sentences.parquet",
    log:
        f"{R}/logs/encode_sts_sentences/{{setting}}/{{backbone}}/{{collection}}.log",
    benchmark:
        f"{R}/benchmarks/encode_sts_sentences/{{setting}}/{{backbone}}/{{collection}}.tsv"
    wildcard_constraints:
        collection=regex_of(study.collections_of_kind(None, STS)),
    conda:
        ENV
    # Encodes short texts with one model load, as the query encoding does: that job kind's resources.
    threads: rule_threads("encode_queries_and_first_shard")
    resources:
        **rule_resources("encode_queries_and_first_shard"),
    params:
        encoding=encoding_of,
        max_length=supervised_max_length,
        query_sets=lambda wc: study.eval_query_sets(wc.collection),
    script:
        "../scripts/encode_sts_sentences.py"


rule evaluate_sts:
    input:
        pairs=f"{R}/data/{{collection}}/pairs.parquet",
        sentences=f"{R}/embeddings/{{setting}}/{{backbone}}/{{collection}}/sentences.parquet",
    output:
        f"{R}/metrics/{{setting}}/{{backbone}}/{{collection}}/{{query_set}}.json",
    log:
        f"{R}/logs/evaluate_sts/{{setting}}/{{backbone}}/{{collection}}/{{query_set}}.log",
    benchmark:
        f"{R}/benchmarks/evaluate_sts/{{setting}}/{{backbone}}/{{collection}}/{{query_set}}.tsv"
    wildcard_constraints:
        collection=regex_of(study.collections_of_kind(None, STS)),
    conda:
        ENV
    threads: rule_threads("evaluate")
    resources:
        **rule_resources("evaluate"),
    script:
        "../scripts/evaluate_sts.py"
