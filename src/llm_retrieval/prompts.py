"""Turning texts into token ids the way each setting asks.

Zero-shot (PromptReps): the text sits in the user turn of the backbone's own chat
template, the assistant turn is opened and pre-filled with ``The word is: "``; the
pooled token is that closing quote. Supervised (RepLLaMA): ``Query: ``/``Passage: ``
prefix and an appended EOS, which is the pooled token.

Both truncate the *text* only, never the template around it, so the pooled token
is always the one the recipe names.
"""
from __future__ import annotations

from typing import Protocol, Sequence

from transformers import PreTrainedTokenizerBase

SENTINEL = "\u2063TEXT\u2063"  # never occurs in real text; marks where the text goes
THINK_OPENING = "<think>\n"


class Formatter(Protocol):
    def token_ids(self, kind: str, texts: Sequence[str], max_text_tokens: int) -> list[list[int]]: ...


class _PrefixSuffixFormatter:
    """Token ids = prefix ids + truncated text ids + suffix ids, per kind (query / passage)."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase, pieces: dict[str, tuple[str, str]]):
        self.tokenizer = tokenizer
        self.pieces = {kind: (self._ids(prefix), self._ids(suffix)) for kind, (prefix, suffix) in pieces.items()}

    def _ids(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"] if text else []

    def token_ids(self, kind: str, texts: Sequence[str], max_text_tokens: int) -> list[list[int]]:
        prefix, suffix = self.pieces[kind]
        bodies = self.tokenizer(list(texts), add_special_tokens=False, truncation=True,
                                max_length=max_text_tokens)["input_ids"]
        return [prefix + body + suffix for body in bodies]


def instructed_prompts(prompts: dict, instruction: str | None) -> dict:
    """Zero-shot with a task instruction: the sentence opens the user turn, before ``Query: "{text}"``.
    Passages never get one."""
    return {**prompts, "query": f"{instruction}\n{prompts['query']}"} if instruction else prompts


def instructed_query_prefix(instruction: str | None) -> str:
    """Supervised with a task instruction: ``Instruct: {task}\nQuery: `` replaces ``Query: ``."""
    return f"Instruct: {instruction}\nQuery: " if instruction else "Query: "


class PromptRepsFormatter(_PrefixSuffixFormatter):
    def __init__(self, tokenizer: PreTrainedTokenizerBase, prompts: dict, strip_think: bool = False,
                 instruction: str | None = None):
        prompts = instructed_prompts(prompts, instruction)
        pieces = {}
        for kind in ("query", "passage"):
            user_turn = prompts[kind].replace("{text}", SENTINEL)
            rendered = tokenizer.apply_chat_template([{"role": "user", "content": user_turn}],
                                                     tokenize=False, add_generation_prompt=True)
            if strip_think and rendered.endswith(THINK_OPENING):
                rendered = rendered[: -len(THINK_OPENING)]
            prefix, suffix = rendered.split(SENTINEL)
            pieces[kind] = (prefix, suffix + prompts["assistant_prefill"])
        super().__init__(tokenizer, pieces)


class PrefixEosFormatter(_PrefixSuffixFormatter):
    def __init__(self, tokenizer: PreTrainedTokenizerBase, instruction: str | None = None):
        if tokenizer.eos_token is None:
            raise ValueError("the tokenizer has no EOS token to pool on")
        super().__init__(tokenizer, {"query": (instructed_query_prefix(instruction), ""), "passage": ("Passage: ", "")})
        eos = [tokenizer.eos_token_id]
        self.pieces = {kind: (prefix, suffix + eos) for kind, (prefix, suffix) in self.pieces.items()}

    def text_budget(self, kind: str, max_length: int) -> int:
        """Text tokens that fit when ``max_length`` bounds the whole sequence (prefix + text + EOS)."""
        prefix, suffix = self.pieces[kind]
        budget = max_length - len(prefix) - len(suffix)
        if budget < 1:
            raise ValueError(f"max_length.{kind}={max_length} leaves no room for text after the prefix and EOS")
        return budget


def document_text(title: str, text: str, use_title: bool) -> str:
    return f"{title} {text}" if use_title and title else text
