"""Turning texts into token ids the way each setting asks.

Zero-shot (PromptReps): the text sits in the user turn of the backbone's own chat
template, the assistant turn is opened and pre-filled with ``The word is: "``; the
pooled token is that closing quote. Supervised (RepLLaMA): ``Query: ``/``Passage: ``
prefix and an appended EOS, which is the pooled token.

Encoders (BERT, T5) and sentence-transformers models read their tokenizer's own special
tokens around the text (``[CLS] text [SEP]``, ``text </s>``), a sentence-transformers model
with its own query/passage prompt first. Where a tokenizer adds a BOS (Llama, Mistral, Gemma),
every format starts with it, once.

All truncate the *text* only, never the template around it, so the pooled token
is always the one the recipe names. :func:`formatter_and_budgets` is the one place a
format is chosen, for encoding and training alike.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import Protocol

from transformers import PreTrainedTokenizerBase

SENTINEL = "\u2063TEXT\u2063"  # never occurs in real text; marks where the text goes
THINK_OPENING = "<think>\n"


class Formatter(Protocol):
    pieces: dict[str, tuple[list[int], list[int]]]

    def token_ids(self, kind: str, texts: Sequence[str], max_text_tokens: int) -> list[list[int]]: ...

    def text_budget(self, kind: str, max_length: int) -> int: ...


class FormatError(ValueError):
    """A tokenizer that cannot produce the format its family reads."""


def special_tokens_around(tokenizer: PreTrainedTokenizerBase) -> tuple[list[int], list[int]]:
    """The ids the tokenizer's own template puts before and after a text: a BOS (Llama, Gemma),
    ``[CLS]``/``[SEP]`` (BERT), ``</s>`` (T5), nothing (Qwen)."""
    bare = tokenizer("a", add_special_tokens=False)["input_ids"]
    full = tokenizer("a", add_special_tokens=True)["input_ids"]
    for start in range(len(full) - len(bare) + 1):
        if full[start : start + len(bare)] == bare:
            return full[:start], full[start + len(bare) :]
    raise FormatError(f"{tokenizer.name_or_path}: its special-tokens template changes the text's own tokens")


class _PrefixSuffixFormatter:
    """Token ids = prefix ids + truncated text ids + suffix ids, per kind (query / passage)."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase, pieces: dict[str, tuple[str, str]]):
        self.tokenizer = tokenizer
        self.pieces = {kind: (self._ids(prefix), self._ids(suffix)) for kind, (prefix, suffix) in pieces.items()}

    def _ids(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"] if text else []

    def token_ids(self, kind: str, texts: Sequence[str], max_text_tokens: int) -> list[list[int]]:
        prefix, suffix = self.pieces[kind]
        bodies = self.tokenizer(list(texts), add_special_tokens=False, truncation=True, max_length=max_text_tokens)[
            "input_ids"
        ]
        return [prefix + body + suffix for body in bodies]

    def text_budget(self, kind: str, max_length: int) -> int:
        """Text tokens that fit when ``max_length`` bounds the whole sequence (template + text)."""
        prefix, suffix = self.pieces[kind]
        budget = max_length - len(prefix) - len(suffix)
        if budget < 1:
            raise ValueError(f"max_length.{kind}={max_length} leaves no room for text after the prefix and EOS")
        return budget

    def lead_with(self, lead: list[int]) -> None:
        """Start every sequence with ``lead`` (the tokenizer's BOS) unless the template already does."""
        if lead:
            self.pieces = {
                kind: (prefix if prefix[: len(lead)] == lead else lead + prefix, suffix)
                for kind, (prefix, suffix) in self.pieces.items()
            }


def instructed_prompts(prompts: dict, instruction: str | None, passage_instruction: str | None = None) -> dict:
    """Zero-shot with a task instruction: the sentence opens the user turn, before ``Query: "{text}"`` (a passage
    instruction before ``Passage: "{text}"``)."""
    told = {"query": instruction, "passage": passage_instruction}
    return {**prompts, **{kind: f"{told[kind]}\n{prompts[kind]}" for kind in told if told[kind]}}


PREFIXES = {"query": "Query: ", "passage": "Passage: "}


def instructed_prefix(kind: str, instruction: str | None) -> str:
    """Supervised with a task instruction: ``Instruct: {task}\nQuery: `` replaces ``Query: `` (passages:
    ``Instruct: {task}\nPassage: `` replaces ``Passage: ``)."""
    return f"Instruct: {instruction}\n{PREFIXES[kind]}" if instruction else PREFIXES[kind]


class PromptRepsFormatter(_PrefixSuffixFormatter):
    """The PromptReps prompt as the user turn of the model's own chat template; a tokenizer without
    one (Llama-2 base, Phi) renders ``prompts.plain_template`` instead (``{user}``: the user turn)."""

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerBase,
        prompts: dict,
        strip_think: bool = False,
        instruction: str | None = None,
        passage_instruction: str | None = None,
    ):
        prompts = instructed_prompts(prompts, instruction, passage_instruction)
        pieces = {}
        for kind in ("query", "passage"):
            user_turn = prompts[kind].replace("{text}", SENTINEL)
            if getattr(tokenizer, "chat_template", None):
                rendered = tokenizer.apply_chat_template(
                    [{"role": "user", "content": user_turn}], tokenize=False, add_generation_prompt=True
                )
            elif prompts.get("plain_template"):
                rendered = prompts["plain_template"].replace("{user}", user_turn)
            else:
                raise FormatError(f"{tokenizer.name_or_path}: no chat template; set encoding.prompts.plain_template")
            if strip_think and rendered.endswith(THINK_OPENING):
                rendered = rendered[: -len(THINK_OPENING)]
            prefix, suffix = rendered.split(SENTINEL)
            pieces[kind] = (prefix, suffix + prompts["assistant_prefill"])
        super().__init__(tokenizer, pieces)
        self.lead_with(special_tokens_around(tokenizer)[0])  # a chat template may render the BOS itself


class PrefixEosFormatter(_PrefixSuffixFormatter):
    """RepLLaMA's decoder format: [BOS] ``Query: ``/``Passage: `` text EOS (the EOS is pooled)."""

    def __init__(
        self, tokenizer: PreTrainedTokenizerBase, instruction: str | None = None, passage_instruction: str | None = None
    ):
        if tokenizer.eos_token is None:
            raise FormatError(f"{tokenizer.name_or_path}: the tokenizer has no EOS token to pool on")
        told = {"query": instruction, "passage": passage_instruction}
        super().__init__(tokenizer, {kind: (instructed_prefix(kind, told[kind]), "") for kind in told})
        eos = [tokenizer.eos_token_id]
        self.pieces = {kind: (prefix, suffix + eos) for kind, (prefix, suffix) in self.pieces.items()}
        self.lead_with(special_tokens_around(tokenizer)[0])


class SpecialTokensFormatter(_PrefixSuffixFormatter):
    """The tokenizer's own special tokens around the text (``[CLS] text [SEP]`` for BERT,
    ``text </s>`` for T5); a sentence-transformers model's prompt before the text."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase, prompts: dict | None = None, lowercase: bool = False):
        prompts = prompts or {"query": "", "passage": ""}
        super().__init__(tokenizer, {kind: (prompts[kind], "") for kind in ("query", "passage")})
        lead, trail = special_tokens_around(tokenizer)
        if not lead and not trail:
            raise FormatError(f"{tokenizer.name_or_path}: the tokenizer adds no special tokens around a text")
        self.pieces = {kind: (lead + prefix, suffix + trail) for kind, (prefix, suffix) in self.pieces.items()}
        self.lowercase = lowercase

    def token_ids(self, kind: str, texts: Sequence[str], max_text_tokens: int) -> list[list[int]]:
        return super().token_ids(kind, [t.lower() for t in texts] if self.lowercase else texts, max_text_tokens)


def formatter_for(
    tokenizer: PreTrainedTokenizerBase,
    backbone: dict,
    supervised: bool,
    prompts: dict | None = None,
    instruction: str | None = None,
    passage_instruction: str | None = None,
) -> Formatter:
    """The input format of a backbone (a backbone.json record) in a setting, for encoding and training; a query
    (passage) instruction in the family's query (passage) format."""
    from .encoders import family, sentence_transformers_config

    told = {"query": instruction, "passage": passage_instruction}
    if backbone["architecture"] == "sentence_transformers":
        st = sentence_transformers_config(str(backbone["path"]))
        own = {
            kind: instructed_prefix(kind, told[kind]) + text if told[kind] else text
            for kind, text in st["prompts"].items()
        }
        return SpecialTokensFormatter(tokenizer, own, st["do_lower_case"])
    if family(backbone["architecture"]).bidirectional:
        if instruction or passage_instruction:
            return SpecialTokensFormatter(tokenizer, {k: instructed_prefix(k, i) if i else "" for k, i in told.items()})
        return SpecialTokensFormatter(tokenizer)
    if supervised:
        return PrefixEosFormatter(tokenizer, instruction, passage_instruction)
    return PromptRepsFormatter(tokenizer, prompts, backbone.get("strip_think", False), instruction, passage_instruction)


def formatter_and_budgets(
    tokenizer: PreTrainedTokenizerBase,
    backbone: dict,
    max_length: dict | None,
    encoding: dict | None = None,
    instruction: str | None = None,
    passage_instruction: str | None = None,
) -> tuple[Formatter, dict[str, int]]:
    """The format and each kind's text-token budget.

    Supervised (``max_length``: whole-sequence limits, as in training): the budget is what fits
    beside the template; an instruction (query or passage) does not take from it (limits count as
    without one). Zero-shot: ``encoding.max_text_tokens``, and for a sentence-transformers model no
    more than its own ``max_seq_length`` leaves beside its template.
    """
    from .encoders import sentence_transformers_config

    supervised, prompts = max_length is not None, (encoding or {}).get("prompts")
    formatter = formatter_for(tokenizer, backbone, supervised, prompts, instruction, passage_instruction)
    told = instruction or passage_instruction
    plain = formatter_for(tokenizer, backbone, supervised, prompts) if told else formatter
    if supervised:
        return formatter, {kind: plain.text_budget(kind, n) for kind, n in max_length.items()}
    budgets = dict(encoding["max_text_tokens"])
    if backbone["architecture"] == "sentence_transformers":
        own = sentence_transformers_config(str(backbone["path"]))["max_seq_length"]
        if own:
            budgets = {kind: min(n, plain.text_budget(kind, own)) for kind, n in budgets.items()}
    return formatter, budgets


def document_text(title: str, text: str, use_title: bool) -> str:
    return f"{title} {text}" if use_title and title else text


class InstructedFormatters:
    """Texts that each carry their own instruction (or none): one formatter per (kind, instruction), built on
    first use by ``make(query_instruction, passage_instruction)``; texts are tokenised per instruction and put
    back in their order."""

    def __init__(self, make: Callable[[str | None, str | None], Formatter]):
        self.make, self.cache = make, {}

    def get(self, instruction: str | None, kind: str = "query") -> Formatter:
        if (kind, instruction) not in self.cache:
            told = (instruction, None) if kind == "query" else (None, instruction)
            self.cache[kind, instruction] = self.make(*told)
        return self.cache[kind, instruction]

    def token_ids(
        self, kind: str, texts: Sequence[str], instructions: Sequence[str | None], max_text_tokens: int
    ) -> list[list[int]]:
        rows_of: dict[str | None, list[int]] = {}
        for row, instruction in enumerate(instructions):
            rows_of.setdefault(instruction, []).append(row)
        out: list[list[int]] = [[] for _ in texts]
        for instruction, rows in rows_of.items():
            ids = self.get(instruction, kind).token_ids(kind, [texts[r] for r in rows], max_text_tokens)
            for row, seq in zip(rows, ids):
                out[row] = seq
        return out


def instruction_of_query(instructions: Sequence[str], query_id: str) -> str:
    """At evaluation, the instruction of a named set a query gets: chosen by its id (the same on every run); a
    document gets one of the set's passage instructions the same way, by its id."""
    return instructions[int(hashlib.sha256(query_id.encode()).hexdigest(), 16) % len(instructions)]
