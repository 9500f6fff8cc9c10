"""The config checked against its JSON schema, with one readable line per problem.

The schema (workflow/schemas/config.schema.yaml) is the one home of the config's shapes and defaults.
``validate_config`` fills the defaults (as ``snakemake.utils.validate`` does) and turns every schema
error into one line: the key path, the value, what is wrong and what to write instead. A key that was
renamed names its replacement (``RENAMED_KEYS``, the one table of renames: config keys and Slurm job
kinds); an unknown key names the closest known key.
"""

from __future__ import annotations

import difflib
import fnmatch
import reprlib
from pathlib import Path

import yaml

# Old config key path -> (new key path, what changed besides the name). "*" matches one path segment.
RENAMED_KEYS = {
    "encoding.batch_size": ("encoding.batch_tokens", "it counts padded tokens per forward batch, not rows"),
    "encoding.corpus_shards": (
        "encoding.shard_tokens",
        "it sets the estimated tokens per shard job, not the number of shards",
    ),
    # Job kinds are named after the rule they serve (or the stage, where several rules share one).
    "slurm.kinds.build_backbone": ("slurm.kinds.resolve_backbone", ""),
    "slurm.kinds.mine_negatives": ("slurm.kinds.training_groups", ""),
    "slurm.kinds.train": ("slurm.kinds.train_lora", ""),
    "slurm.kinds.encode_queries": ("slurm.kinds.encode_queries_and_first_shard", ""),
}

_SHORT = reprlib.Repr()
_SHORT.maxstring, _SHORT.maxother, _SHORT.maxdict, _SHORT.maxlist = 60, 60, 4, 4


class ConfigSchemaError(ValueError):
    """The config does not fit the schema; one line per problem."""

    def __init__(self, problems: list[str], source: str = "the config"):
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        plural = "s" if len(problems) > 1 else ""
        super().__init__(f"{len(problems)} problem{plural} in {source}:\n{lines}")


def renamed(path: str) -> tuple[str, str] | None:
    """(new key path, note) for a renamed config key path, else None."""
    for old, new in RENAMED_KEYS.items():
        if fnmatch.fnmatchcase(path, old):
            return new
    return None


def _validator(schema: dict):
    """A Draft 2020-12 validator that fills each property's schema default (as snakemake's validate)."""
    from jsonschema import Draft202012Validator, validators

    check_properties = Draft202012Validator.VALIDATORS["properties"]

    def fill_defaults(validator, properties, instance, subschema):
        for name, prop in properties.items():
            if "default" in prop and isinstance(instance, dict):
                instance.setdefault(name, prop["default"])
        yield from check_properties(validator, properties, instance, subschema)

    return validators.extend(Draft202012Validator, {"properties": fill_defaults})(schema)


def validate_config(config: dict, schema_path: str | Path, source: str = "the config") -> dict:
    """Check ``config`` against the schema, filling defaults in place; raise ConfigSchemaError."""
    schema = yaml.safe_load(Path(schema_path).read_text(encoding="utf-8"))
    errors = sorted(_validator(schema).iter_errors(config), key=lambda e: [str(p) for p in e.absolute_path])
    problems = [line for error in errors for line in describe(error)]
    if problems:
        raise ConfigSchemaError(list(dict.fromkeys(problems)), source)
    return config


def _path(error, *more) -> str:
    return ".".join(str(p) for p in [*error.absolute_path, *more]) or "(top level)"


def describe(error) -> list[str]:
    """One line per problem in a jsonschema ValidationError."""
    if error.validator == "additionalProperties" and error.validator_value is False:
        return _unknown_keys(error)
    if error.validator in ("oneOf", "anyOf") and error.context:
        return _alternatives(error)
    what = error.message
    if error.validator == "oneOf":  # no context: the value fits several shapes at once
        what = "fits more than one of its allowed shapes (e.g. both hub_id and build): keep only one"
    elif error.validator == "required":
        missing = what.split("'")[1] if "'" in what else ""
        described = error.schema.get("properties", {}).get(missing, {}).get("description")
        if described:
            what += f" ({described})"
    elif error.schema.get("description"):  # jsonschema's message names the value; the schema says what it is
        what += f" ({error.schema['description']})"
    if len(what) > 300:
        what = what[:300] + "..."
    return [f"config key {_path(error)}: {what}"]


def _unknown_keys(error) -> list[str]:
    known = sorted(error.schema.get("properties", {}))
    lines = []
    for key in sorted(set(error.instance) - set(known)):
        path, value = _path(error, key), _SHORT.repr(error.instance[key])
        new = renamed(path)
        if new:
            note = f" ({new[1]})" if new[1] else ""
            lines.append(f"config key {path} (value {value}): renamed to {new[0]}{note}; write {new[0]} instead")
            continue
        close = difflib.get_close_matches(key, known, n=1, cutoff=0.5)
        hint = f"did you mean {_path(error, close[0])}?" if close else f"known keys here: {', '.join(known)}"
        lines.append(f"config key {path} (value {value}): unknown key; {hint}")
    return lines


def _alternatives(error) -> list[str]:
    """A value allowed several shapes (oneOf/anyOf): the problems with the shape it was meant to have."""
    branches: dict = {}
    for sub in error.context:
        branches.setdefault(sub.relative_schema_path[0], []).append(sub)
    # A branch whose type did not even match is not the shape the user meant.
    meant = [subs for subs in branches.values() if not any(s.validator == "type" and not s.relative_path for s in subs)]
    if len(meant) == 1:
        return [line for sub in meant[0] for line in describe(sub)]
    wanted = error.schema.get("description")
    shapes = " or ".join("(" + "; ".join(s.message for s in subs) + ")" for subs in branches.values())
    return [
        f"config key {_path(error)} (value {_SHORT.repr(error.instance)}): "
        + (f"expected {wanted}: " if wanted else "")
        + f"fits none of its allowed shapes: {shapes}"
    ]
