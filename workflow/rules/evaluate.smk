# pytrec_eval metrics per run: aggregate and per-query values (kept for significance tests).


rule evaluate_run:
    input:
        run=run_of,
        qrels=f"{R}/data/{{collection}}/qrels.parquet",
    output:
        f"{R}/metrics/{{run_setting}}/{{retriever}}/{{collection}}/{{query_set}}.json",
    log:
        f"{R}/logs/evaluate_run/{{run_setting}}/{{retriever}}/{{collection}}/{{query_set}}.log",
    benchmark:
        f"{R}/benchmarks/evaluate_run/{{run_setting}}/{{retriever}}/{{collection}}/{{query_set}}.tsv"
    wildcard_constraints:
        run_setting=regex_of([LEXICAL, *study.dense_settings()]),
        collection=regex_of(study.collections_of_kind(None, RETRIEVAL)),
    conda:
        ENV
    threads: rule_threads("evaluate")
    resources:
        **rule_resources("evaluate"),
    params:
        run_file=run_file_of,
        relevance_level=lambda wc: study.collection(wc.collection)["query_sets"][wc.query_set]["relevance_level"],
    script:
        "../scripts/evaluate_run.py"
