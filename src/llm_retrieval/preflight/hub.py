"""The hub: every revision pinned (strict mode), and a token where a gated model is in the study."""

from __future__ import annotations

from . import Check, failed, passed, skipped

# Hub organisations whose models need an accepted licence and a token (Llama, Gemma).
GATED_PREFIXES = ("meta-llama/", "google/gemma")


def gated_models(config: dict) -> list[str]:
    study = {b for s in config["settings"].values() for b in s["backbones"]}
    return sorted(
        {
            config["backbones"][b]["hub_id"]
            for b in study
            if config["backbones"][b].get("hub_id", "").startswith(GATED_PREFIXES)
        }
    )


def pin_check(refs: int, unpinned: list[str], strict: bool, lock: str, configfiles: list[str]) -> Check:
    name = "hub: pins lock complete"
    if refs == 0:
        return passed(name, "the study reads no hub revision (built models, local data)")
    if not unpinned:
        return passed(name, f"all {refs} hub revisions pinned to commits ({lock})")
    detail = f"{len(unpinned)} of {refs} unpinned: {', '.join(unpinned[:5])}{' ...' if len(unpinned) > 5 else ''}"
    if not strict:
        return skipped(name, f"{detail}; pins.strict is false, so jobs run with moving revisions (warned at start)")
    return failed(
        name,
        detail,
        f"where the hub is reachable run `python -m llm_retrieval.pins --configfile "
        f"{' '.join(configfiles) or 'config/config.yaml'}` and commit {lock}",
    )


def token_check(gated: list[str], token: str | None) -> Check:
    name = "hub: token for gated models"
    if not gated:
        return passed(name, "no gated model (Llama, Gemma) in the study")
    if token:
        return passed(name, f"a token is set for {', '.join(gated)}")
    return failed(
        name,
        f"no hub token, and the study reads gated {', '.join(gated)}",
        "run `hf auth login` (or export HF_TOKEN) where the jobs see it (a shared home), and accept "
        "each model's licence on its hub page",
    )


def hub_checks(config: dict, refs: int, unpinned: list[str], configfiles: list[str]) -> list[Check]:
    from huggingface_hub import get_token

    return [
        pin_check(refs, unpinned, config["pins"]["strict"], config["pins"]["lock"], configfiles),
        token_check(gated_models(config), get_token()),
    ]
