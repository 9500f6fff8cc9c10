# pytrec_eval metrics per run: aggregate and per-query values (kept for significance tests).


rule evaluate_run:
    input:
        run=get_run,
        qrels=layout.collection_file("{collection}", "qrels"),
    output:
        layout.metrics(EvalUnit("{run_setting}", "{retriever}", "{collection}", "{query_set}")),
    log:
        layout.log("evaluate_run/{run_setting}/{retriever}/{collection}/{query_set}"),
    benchmark:
        layout.benchmark("evaluate_run/{run_setting}/{retriever}/{collection}/{query_set}")
    wildcard_constraints:
        run_setting=regex_of([LEXICAL, *study.dense_settings()]),
        collection=regex_of(study.collections_of_kind(None, RETRIEVAL)),
    conda:
        ENV
    threads: rule_threads("evaluate")
    resources:
        **rule_resources("evaluate"),
    params:
        run_file=get_run_file,
        relevance_level=lambda wc: of_collection("query_sets")(wc)[wc.query_set]["relevance_level"],
    script:
        "../scripts/evaluate_run.py"
