# The lexical baseline, one index per collection, one run per query set.


rule bm25_index:
    input:
        corpus=f"{R}/data/{{collection}}/corpus.parquet",
    output:
        directory(f"{R}/bm25/{{collection}}/index"),
    log:
        f"{R}/logs/bm25_index/{{collection}}.log",
    benchmark:
        f"{R}/benchmarks/bm25_index/{{collection}}.tsv"
    conda:
        ENV
    threads: rule_threads("bm25")
    resources:
        **rule_resources("bm25"),
    params:
        bm25=config["bm25"],
        use_title=lambda wc: study.collection(wc.collection)["use_title"],
    script:
        "../scripts/bm25_index.py"


rule bm25_search:
    input:
        index=f"{R}/bm25/{{collection}}/index",
        corpus=f"{R}/data/{{collection}}/corpus.parquet",
        queries=f"{R}/data/{{collection}}/queries.parquet",
    output:
        f"{R}/runs/{LEXICAL}/{BM25}/{{collection}}/{{query_set}}.trec",
    log:
        f"{R}/logs/bm25_search/{{collection}}/{{query_set}}.log",
    benchmark:
        f"{R}/benchmarks/bm25_search/{{collection}}/{{query_set}}.tsv"
    conda:
        ENV
    threads: rule_threads("bm25")
    resources:
        **rule_resources("bm25"),
    params:
        bm25=config["bm25"],
        top_k=lambda wc: study.collection(wc.collection)["top_k"],
        drop_self_hits=lambda wc: study.collection(wc.collection)["drop_self_hits"],
    script:
        "../scripts/bm25_search.py"
