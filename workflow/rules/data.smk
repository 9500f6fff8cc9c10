# Datasets -> canonical Parquet (corpus / queries / qrels + manifest), whatever the source.


rule build_stdlib_codesearch:
    output:
        layout.stdlib_codesearch_pairs(),
    log:
        layout.log("build_stdlib_codesearch"),
    benchmark:
        layout.benchmark("build_stdlib_codesearch")
    conda:
        ENV
    threads: rule_threads("data")
    resources:
        **rule_resources("data"),
    script:
        "../scripts/build_stdlib_codesearch.py"


rule build_synthetic_text:
    output:
        directory(layout.synthetic_text()),
    log:
        layout.log("build_synthetic_text"),
    benchmark:
        layout.benchmark("build_synthetic_text")
    conda:
        ENV
    threads: rule_threads("data")
    resources:
        **rule_resources("data"),
    params:
        seed=13,
    script:
        "../scripts/build_synthetic_text.py"


rule prepare_collection:
    input:
        unpack(get_source_files),
    output:
        **layout.collection_files("{collection}"),
        manifest=layout.collection_manifest("{collection}"),
    log:
        layout.log("prepare_collection/{collection}"),
    benchmark:
        layout.benchmark("prepare_collection/{collection}")
    wildcard_constraints:
        collection=regex_of(study.collections_of_kind(None, RETRIEVAL)),
    conda:
        ENV
    threads: rule_threads("data")
    resources:
        **rule_resources("data"),
    params:
        source=of_collection("source"),
        query_sets=lambda wc: list(study.collection(wc.collection)["query_sets"]),
        work_dir=lambda wc: layout.downloads(wc.collection),
    script:
        "../scripts/prepare_collection.py"
