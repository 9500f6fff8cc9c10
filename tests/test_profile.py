"""The users' own command: `snakemake --profile slurm` from the repository root.

Snakemake looks for a profile named `slurm` in the working directory (or in
~/.config/snakemake); the repository's `slurm` is a link to `profiles/slurm`, the
one source of the profile. A dry run needs no cluster.
"""

from pathlib import Path

from workflow_helpers import ROOT, scratch_copy, snakemake


def test_the_slurm_profile_at_the_repository_root_is_profiles_slurm():
    link = ROOT / "slurm"
    assert link.is_symlink() and link.resolve() == (ROOT / "profiles" / "slurm").resolve()
    assert (link / "config.v8+.yaml").is_file()


def test_snakemake_profile_slurm_from_the_repository_root_plans_the_study(tmp_path: Path):
    wd = scratch_copy(tmp_path)
    proc = snakemake(wd, "--profile", "slurm", "-n", "--configfile", "config/mini.yaml", timeout=120)
    out = proc.stdout + proc.stderr
    assert "Using profile slurm" in out
    assert "no profile.yaml" not in out
    assert "train_lora" in out and "This was a dry-run" in out
