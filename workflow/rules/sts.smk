# Sentence similarity (STS, evaluation kind sts: src/llm_retrieval/sts.py): a collection of sentence pairs,
# both sentences embedded by the backbone as queries are, the Spearman correlation of their cosines with
# the gold scores per query set. No corpus, no search, no BM25.


rule prepare_sts_pairs:
    input:
        unpack(get_source_files),
    output:
        pairs=layout.collection_file("{collection}", "pairs"),
        manifest=layout.collection_manifest("{collection}"),
    log:
        layout.log("prepare_sts_pairs/{collection}"),
    benchmark:
        layout.benchmark("prepare_sts_pairs/{collection}")
    wildcard_constraints:
        collection=regex_of(study.collections_of_kind(None, STS)),
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


rule encode_sts_sentences:
    input:
        unpack(get_encoder_files),
        pairs=layout.collection_file("{collection}", "pairs"),
    output:
        layout.sentence_embeddings("{setting}", "{backbone}", "{collection}"),
    log:
        layout.log("encode_sts_sentences/{setting}/{backbone}/{collection}"),
    benchmark:
        layout.benchmark("encode_sts_sentences/{setting}/{backbone}/{collection}")
    wildcard_constraints:
        collection=regex_of(study.collections_of_kind(None, STS)),
    conda:
        ENV
    # Encodes short texts with one model load, as the query encoding does: that job kind's resources.
    threads: rule_threads("encode_queries_and_first_shard")
    resources:
        **rule_resources("encode_queries_and_first_shard"),
    params:
        encoding=get_encoding,
        max_length=get_max_length,
        query_sets=lambda wc: study.eval_query_sets(wc.collection),
    script:
        "../scripts/encode_sts_sentences.py"


rule evaluate_sts:
    input:
        pairs=layout.collection_file("{collection}", "pairs"),
        sentences=layout.sentence_embeddings("{setting}", "{backbone}", "{collection}"),
    output:
        layout.metrics(EvalUnit("{setting}", "{backbone}", "{collection}", "{query_set}")),
    log:
        layout.log("evaluate_sts/{setting}/{backbone}/{collection}/{query_set}"),
    benchmark:
        layout.benchmark("evaluate_sts/{setting}/{backbone}/{collection}/{query_set}")
    wildcard_constraints:
        collection=regex_of(study.collections_of_kind(None, STS)),
    conda:
        ENV
    threads: rule_threads("evaluate")
    resources:
        **rule_resources("evaluate"),
    script:
        "../scripts/evaluate_sts.py"
