# The lexical baseline, one index per collection, one run per query set.


rule bm25_index:
    input:
        corpus=layout.collection_file("{collection}", "corpus"),
    output:
        directory(layout.bm25_index("{collection}")),
    log:
        layout.log("bm25_index/{collection}"),
    benchmark:
        layout.benchmark("bm25_index/{collection}")
    conda:
        ENV
    threads: rule_threads("bm25")
    resources:
        **rule_resources("bm25"),
    params:
        bm25=config["bm25"],
        use_title=of_collection("use_title"),
    script:
        "../scripts/bm25_index.py"


rule bm25_search:
    input:
        index=layout.bm25_index("{collection}"),
        corpus=layout.collection_file("{collection}", "corpus"),
        queries=layout.collection_file("{collection}", "queries"),
    output:
        layout.run_file(LEXICAL, BM25, "{collection}", "{query_set}"),
    log:
        layout.log("bm25_search/{collection}/{query_set}"),
    benchmark:
        layout.benchmark("bm25_search/{collection}/{query_set}")
    conda:
        ENV
    threads: rule_threads("bm25")
    resources:
        **rule_resources("bm25"),
    params:
        bm25=config["bm25"],
        top_k=of_collection("top_k"),
        drop_self_hits=of_collection("drop_self_hits"),
    script:
        "../scripts/bm25_search.py"
