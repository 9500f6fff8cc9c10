# Exact inner-product search over all corpus shards, one job per (setting, backbone, collection):
# the corpus is read once and every evaluated query set's run is written into one folder. An instruction
# variant without a passage instruction searches its retriever's own corpus encoding (Study.corpus_setting).


rule dense_search:
    input:
        queries=get_query_file,
        shards=get_corpus_shard_files,
    output:
        directory(layout.runs_dir("{setting}", "{backbone}", "{collection}")),
    log:
        layout.log("dense_search/{setting}/{backbone}/{collection}"),
    benchmark:
        layout.benchmark("dense_search/{setting}/{backbone}/{collection}")
    conda:
        ENV
    threads: rule_threads("search")
    resources:
        **rule_resources("search"),
    params:
        query_sets=lambda wc: study.eval_query_sets(wc.collection),
        top_k=of_collection("top_k"),
        drop_self_hits=of_collection("drop_self_hits"),
        backend=config["search"]["backend"],
    script:
        "../scripts/dense_search.py"
