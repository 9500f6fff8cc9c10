# Datasets -> canonical Parquet (corpus / queries / qrels + manifest), whatever the source.


rule build_stdlib_codesearch:
    output:
        f"{R}/sources/stdlib-codesearch/pairs.parquet",
    log:
        f"{R}/logs/build_stdlib_codesearch.log",
    benchmark:
        f"{R}/benchmarks/build_stdlib_codesearch.tsv"
    conda:
        ENV
    threads: rule_threads("data")
    resources:
        **rule_resources("data"),
    script:
        "../scripts/build_stdlib_codesearch.py"


rule build_synthetic_text:
    output:
        directory(f"{R}/sources/synth-text"),
    log:
        f"{R}/logs/build_synthetic_text.log",
    benchmark:
        f"{R}/benchmarks/build_synthetic_text.tsv"
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
        unpack(source_inputs),
    output:
        **collection_files("{collection}"),
        manifest=f"{R}/data/{{collection}}/manifest.json",
    log:
        f"{R}/logs/prepare_collection/{{collection}}.log",
    benchmark:
        f"{R}/benchmarks/prepare_collection/{{collection}}.tsv"
    wildcard_constraints:
        collection=regex_of(study.collections_of_kind(None, RETRIEVAL)),
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
