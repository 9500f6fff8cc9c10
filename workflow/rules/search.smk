# Exact inner-product search over all corpus shards, one job per (setting, backbone, collection):
# the corpus is read once and every evaluated query set's run is written into one folder.


rule dense_search:
    input:
        queries=f"{R}/embeddings/{{setting}}/{{backbone}}/{{collection}}/queries.parquet",
        shards=corpus_shards,
    output:
        directory(f"{R}/runs/{{setting}}/{{backbone}}/{{collection}}"),
    log:
        f"{R}/logs/dense_search/{{setting}}/{{backbone}}/{{collection}}.log",
    benchmark:
        f"{R}/benchmarks/dense_search/{{setting}}/{{backbone}}/{{collection}}.tsv"
    conda:
        ENV
    threads: rule_threads("search")
    resources:
        **rule_resources("search"),
    params:
        query_sets=lambda wc: study.eval_query_sets(wc.collection),
        top_k=lambda wc: study.collection(wc.collection)["top_k"],
        drop_self_hits=lambda wc: study.collection(wc.collection)["drop_self_hits"],
        backend=config["search"]["backend"],
    script:
        "../scripts/dense_search.py"
