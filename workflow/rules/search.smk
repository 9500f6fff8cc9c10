# Exact inner-product search (FAISS) over all corpus shards -> one TREC run per query set.


rule dense_search:
    input:
        queries=f"{R}/embeddings/{{setting}}/{{backbone}}/{{collection}}/queries.parquet",
        shards=corpus_shards,
    output:
        f"{R}/runs/{{setting}}/{{backbone}}/{{collection}}/{{query_set}}.trec",
    log:
        f"{R}/logs/dense_search/{{setting}}/{{backbone}}/{{collection}}/{{query_set}}.log",
    benchmark:
        f"{R}/benchmarks/dense_search/{{setting}}/{{backbone}}/{{collection}}/{{query_set}}.tsv"
    conda:
        ENV
    threads: rule_threads("search")
    resources:
        **rule_resources("search"),
    params:
        top_k=lambda wc: study.collection(wc.collection)["top_k"],
        drop_self_hits=lambda wc: study.collection(wc.collection)["drop_self_hits"],
    script:
        "../scripts/dense_search.py"
