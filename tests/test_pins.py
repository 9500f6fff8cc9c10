"""Pinned hub revisions: the pins command against a loopback stand-in for the hub API,
the lock applied to the config, strict mode at job time (not at dry run), and the pins
recorded in data manifests and report tables."""

from __future__ import annotations

import copy
import hashlib
import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from llm_retrieval.pins import UnpinnedError, apply_lock, check_pins, hub_refs, read_lock, resolve, unpinned, write_lock

ROOT = Path(__file__).resolve().parents[1]
PAPER = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())


def fake_sha(kind: str, repo: str, revision: str) -> str:
    return hashlib.sha1(f"{kind}:{repo}@{revision}".encode()).hexdigest()


class FakeHub:
    """``GET /api/{models,datasets}/<repo>/revision/<rev>`` -> ``{"id", "sha"}``, as the hub answers."""

    def __init__(self):
        self.requests: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                outer.requests.append(self.path)
                parts = self.path.split("?")[0].split("/")  # '', api, models, org, name, revision, rev
                if len(parts) != 7 or parts[1] != "api" or parts[5] != "revision":
                    self.send_error(404)
                    return
                kind, repo, rev = parts[2][:-1], f"{parts[3]}/{parts[4]}", parts[6]
                body = json.dumps({"id": repo, "sha": fake_sha(kind, repo, rev), "private": False}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def hub():
    server = FakeHub()
    yield server
    server.close()


def test_pins_command_resolves_every_hub_revision_of_the_paper_config_to_a_commit(tmp_path, hub):
    lock_path = tmp_path / "pins.lock.yaml"
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    env.update(PYTHONPATH=str(ROOT / "src"), HF_HUB_DISABLE_TELEMETRY="1")
    cmd = [
        sys.executable,
        "-m",
        "llm_retrieval.pins",
        "--configfile",
        str(ROOT / "config" / "config.yaml"),
        "--lock",
        str(lock_path),
    ]
    done = subprocess.run(cmd + ["--endpoint", hub.url], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    refs = hub_refs(PAPER)
    assert len(refs) == 8 + 2 * 20 + 2 + 1  # 8 models; 20 CoIR tasks x (qrels, queries-corpus); MS MARCO; training
    lock = read_lock(lock_path)
    for ref in refs:
        assert lock[f"{ref.kind}s"][ref.repo][ref.revision] == fake_sha(ref.kind, ref.repo, ref.revision)
    assert "/api/models/Qwen/Qwen2.5-7B/revision/main" in hub.requests
    assert "/api/datasets/CoIR-Retrieval/CodeSearchNet-ccr-go-qrels/revision/main" in hub.requests
    check = subprocess.run(cmd + ["--check"], env=env, capture_output=True, text=True, timeout=60)
    assert check.returncode == 0 and "every hub revision is pinned" in check.stdout


def test_resolve_names_the_repo_it_could_not_resolve():
    class Down:
        def repo_info(self, repo, repo_type, revision):
            raise ConnectionError("hub unreachable")

    with pytest.raises(
        UnpinnedError,
        match=r"backbones\.base\.revision: could not resolve model "
        r"Qwen/Qwen2\.5-7B@main: ConnectionError: hub unreachable",
    ):
        resolve(hub_refs(PAPER)[:1], Down())


def test_lock_replaces_every_revision_the_sources_read(tmp_path):
    config = copy.deepcopy(PAPER)
    lock = {"models": {}, "datasets": {}}
    for ref in hub_refs(config):
        lock[f"{ref.kind}s"].setdefault(ref.repo, {})[ref.revision] = fake_sha(ref.kind, ref.repo, ref.revision)
    write_lock(tmp_path / "lock.yaml", lock, "test")
    assert apply_lock(config, read_lock(tmp_path / "lock.yaml")) == []
    assert config["backbones"]["base"]["revision"] == fake_sha("model", "Qwen/Qwen2.5-7B", "main")
    assert config["training"]["data"]["revision"] == fake_sha("dataset", "Tevatron/msmarco-passage-aug", "main")
    # The readers pick the hashes up from the keys they already read.
    from llm_retrieval.data.coir import HubReader
    from llm_retrieval.data.download import JsonFiles

    coir = HubReader(config["collections"]["codesearchnet-ccr-go"]["source"], tmp_path)
    repo = "CoIR-Retrieval/CodeSearchNet-ccr-go-qrels"
    assert coir.revisions[repo] == fake_sha("dataset", repo, "main")
    marco = JsonFiles(config["collections"]["msmarco"]["source"], tmp_path)
    assert marco.location("corpus", "Tevatron/msmarco-passage-corpus", "corpus.jsonl.gz") == (
        f"hf://datasets/Tevatron/msmarco-passage-corpus@{fake_sha('dataset', 'Tevatron/msmarco-passage-corpus', 'main')}"
        "/corpus.jsonl.gz"
    )
    assert unpinned(config, {}) == []  # hashes in the config are pinned without a lock


def test_strict_refuses_listing_what_is_unpinned_and_non_strict_warns():
    missing = unpinned(PAPER, {"models": {"Qwen/Qwen2.5-7B": {"main": "a" * 40}}, "datasets": {}})
    assert len(missing) == len(hub_refs(PAPER)) - 1
    with pytest.raises(UnpinnedError) as err:
        check_pins(missing, True, "config/pins.lock.yaml")
    assert "Qwen/Qwen2.5-7B-Instruct@main  (backbones.instruct.revision)" in str(err.value)
    assert "Qwen/Qwen2.5-7B@main" not in str(err.value) and "python -m llm_retrieval.pins" in str(err.value)
    warned = []

    class Log:
        def warning(self, message):
            warned.append(message)

    check_pins(missing, False, "config/pins.lock.yaml", Log())
    assert len(warned) == 1 and "Tevatron/msmarco-passage-aug@main" in warned[0]
    with pytest.raises(UnpinnedError, match="not a 40-hex commit hash"):
        bad = Path(os.environ.get("TMPDIR", "/tmp")) / f"bad-lock-{os.getpid()}.yaml"
        bad.write_text("models: {Qwen/Qwen2.5-7B: {main: latest}}\n")
        try:
            read_lock(bad)
        finally:
            bad.unlink()


def test_strict_paper_config_refuses_to_run_jobs_but_dry_runs(tmp_path):
    """Strict applies when jobs run, not to `snakemake -n`."""
    from workflow_helpers import scratch_copy, snakemake

    workdir = scratch_copy(tmp_path)
    (workdir / "config" / "pins.lock.yaml").unlink(missing_ok=True)
    target = ["--cores", "1", "results/models/base/backbone.json"]
    snakemake(workdir, *target, "-n")
    real = snakemake(workdir, *target, check=False, timeout=300)
    out = real.stdout + real.stderr
    assert real.returncode != 0 and "pins.strict is on; refusing to run jobs" in out
    assert "Qwen/Qwen2.5-7B@main  (backbones.base.revision)" in out
    assert not (workdir / "results" / "models" / "base").exists()


def test_manifest_and_report_record_the_pins(tmp_path, monkeypatch):
    import datasets
    from data_fixtures import write_coir_task

    from llm_retrieval.data.sources import prepare_collection
    from llm_retrieval.report.tables import pins_note
    from llm_retrieval.study import Study

    write_coir_task(
        tmp_path / "hub",
        "apps",
        [{"_id": "c1", "title": "", "text": "x"}],
        [{"_id": "q1", "text": "y"}],
        [{"query_id": "q1", "corpus_id": "c1", "score": 1}],
    )
    real_load = datasets.load_dataset
    seen = []

    def hub_stand_in(path, revision=None, **kwargs):  # the hub, served from the local fixture
        seen.append((path, revision))
        return real_load(str(tmp_path / "hub" / path.split("/", 1)[1]), **kwargs)

    monkeypatch.setattr(datasets, "load_dataset", hub_stand_in)
    sha = "c" * 40
    source = {"type": "coir", "name": "apps", "revision": sha}
    manifest = prepare_collection(source, ["test"], tmp_path / "out", tmp_path / "work")
    assert seen == [("CoIR-Retrieval/apps-qrels", sha), ("CoIR-Retrieval/apps-queries-corpus", sha)]
    assert manifest["provenance"]["pins"] == {
        "CoIR-Retrieval/apps-qrels": sha,
        "CoIR-Retrieval/apps-queries-corpus": sha,
    }
    assert not any("unpinned" in note for note in manifest["validation"]["notes"])

    config = copy.deepcopy(PAPER)
    config["backbones"]["base"]["revision"] = "b" * 40
    note = pins_note(Study(config), "coir")
    assert f"Qwen/Qwen2.5-7B@{'b' * 40}," in note and "Qwen/Qwen2.5-7B-Instruct@main (UNPINNED)" in note
    assert "CoIR-Retrieval/apps-qrels@main (UNPINNED)" in note and "fiqa" not in note
