"""Hugging Face hub ids: resolved through huggingface_hub's own cache, offline, by revision, with
one-line errors; a local path always wins. No network: a cache laid out as the hub writes it and
a local stand-in for the hub's HTTP API."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from edge_sdk import ConfigError, load_bundle
from edge_sdk.cli_support import Progress
from edge_sdk.exporters import load_model
from edge_sdk.exporters.cli import main
from edge_sdk.exporters.hub import is_hub_id, resolve_hub_model
from tests.exporters.hub_cache import FakeHub, add_to_cache, serve

pytest.importorskip("transformers")
constants = pytest.importorskip("huggingface_hub.constants")

REPO = "tiny-org/tiny-llama"
COMMIT = "0123456789abcdef0123456789abcdef01234567"
COMMIT_V1 = "89abcdef0123456789abcdef0123456789abcdef"
SNAPSHOTS = Path(f"models--{REPO.replace('/', '--')}", "snapshots")  # under the cache

HubEnv = Callable[..., None]


@pytest.fixture(scope="module")
def hf_folder(tmp_path_factory: pytest.TempPathFactory, demo_checkpoint: Path) -> Path:
    """A tiny random Llama saved by transformers, with a tokenizer, generation config and a file
    the export does not need."""
    from edge_sdk.checkpoint import read_checkpoint_metadata
    from tests.exporters.hf_models import make_hf_folder

    folder = tmp_path_factory.mktemp("tiny-llama")
    tokenizer_json = str(read_checkpoint_metadata(demo_checkpoint)["tokenizer"])
    make_hf_folder("llama", folder, tokenizer_json, vocab_size=2048)
    (folder / "tokenizer_config.json").write_text('{"model_max_length": 256}', encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory, hf_folder: Path) -> Path:
    """A hub cache holding REPO at COMMIT (branch main) and at COMMIT_V1 (tag v1)."""
    root = tmp_path_factory.mktemp("hub-cache")
    add_to_cache(root, REPO, hf_folder, COMMIT, refs=("main",))
    add_to_cache(root, REPO, hf_folder, COMMIT_V1, refs=("v1",))
    return root


@pytest.fixture
def hub_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> HubEnv:
    """Point huggingface_hub at a cache (and, online, at an endpoint), as the environment would.

    huggingface_hub reads HF_HUB_CACHE, HF_HUB_OFFLINE and HF_ENDPOINT once, at import: the
    environment is set for what reads it later, the constants to what that import would compute.
    """
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))  # no token or config of the user's
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "hf-home" / "token"))
    monkeypatch.delenv("HF_TOKEN", raising=False)

    def point(cache: Path, offline: bool = True, endpoint: str | None = None) -> None:
        monkeypatch.setenv("HF_HUB_CACHE", str(cache))
        monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
        if offline:
            monkeypatch.setenv("HF_HUB_OFFLINE", "1")
        else:
            monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", offline)
        if endpoint is not None:
            monkeypatch.setattr(constants, "ENDPOINT", endpoint)
            monkeypatch.setattr(
                constants,
                "HUGGINGFACE_CO_URL_TEMPLATE",
                endpoint + "/{repo_id}/resolve/{revision}/{filename}",
            )

    return point


def _error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("edge-export: error: ")
    return last


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_hub_id_resolves_offline_and_exports(
    cache: Path, hub_env: HubEnv, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    hub_env(cache)
    out = tmp_path / "bundle"
    assert main([REPO, "--fp32", "-o", str(out), "--no-ort-graph"]) == 0
    err = capsys.readouterr().err
    assert "local Hugging Face cache only (HF_HUB_OFFLINE)" in err and f"commit {COMMIT}" in err
    bundle = load_bundle(out)
    assert bundle.manifest["model"]["source"] == f"hf://{REPO}@{COMMIT}"
    assert bundle.manifest["model"]["name"] == "tiny-llama"
    assert bundle.config.num_layers == 2


def test_revision_follows_a_ref_in_the_cache(cache: Path, hub_env: HubEnv) -> None:
    hub_env(cache)
    assert resolve_hub_model(REPO) == cache / SNAPSHOTS / COMMIT
    assert resolve_hub_model(REPO, "v1").name == COMMIT_V1
    assert resolve_hub_model(REPO, COMMIT_V1).name == COMMIT_V1  # a commit hash names its snapshot
    assert load_model(REPO, revision="v1").source == f"hf://{REPO}@{COMMIT_V1}"


def test_revision_through_the_cli(
    cache: Path, hub_env: HubEnv, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    hub_env(cache)
    out = tmp_path / "v1"
    argv = [REPO, "--revision", "v1", "--fp32", "-o", str(out), "--no-ort-graph", "--json"]
    assert main(argv) == 0
    assert json.loads(capsys.readouterr().out)["bundle"] == str(out)
    assert load_bundle(out).manifest["model"]["source"] == f"hf://{REPO}@{COMMIT_V1}"
    assert main([REPO, "--revision", "v2", "--fp32", "-o", str(tmp_path / "v2")]) == 1
    line = _error_line(capsys)
    assert "(revision v2) is neither a local path nor in the local Hugging Face cache" in line
    assert not (tmp_path / "v2").exists()


def test_partly_cached_offline_says_so(
    hf_folder: Path, hub_env: HubEnv, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    only_config = tmp_path / "config-only"
    only_config.mkdir()
    (only_config / "config.json").write_bytes((hf_folder / "config.json").read_bytes())
    add_to_cache(tmp_path / "cache", REPO, only_config, COMMIT)
    hub_env(tmp_path / "cache")
    assert main([REPO, "--fp32", "-o", str(tmp_path / "out")]) == 1
    line = _error_line(capsys)
    assert f"the cached snapshot of {REPO}" in line and "run once online" in line


def test_not_cached_offline_is_one_line(
    hub_env: HubEnv, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    hub_env(tmp_path / "empty-cache")
    assert main(["Qwen/Qwen2.5-0.5B-Instruct", "--int4", "-o", str(tmp_path / "out")]) == 1
    line = _error_line(capsys)
    assert (
        "Qwen/Qwen2.5-0.5B-Instruct (revision main) is neither a local path nor in the local "
        "Hugging Face cache"
    ) in line
    assert str(tmp_path / "empty-cache") in line and "HF_HUB_OFFLINE=1" in line
    assert "run once online" in line and "pass its path" in line
    assert not (tmp_path / "out").exists()


def test_environment_is_read_as_set_at_startup(tmp_path: Path) -> None:
    """A fresh process: HF_HOME (no patched constants) sets the cache, HF_HUB_OFFLINE the mode."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE_"))}
    env.update(HF_HOME=str(tmp_path / "home"), HF_HUB_OFFLINE="1")
    proc = subprocess.run(
        [sys.executable, "-m", "edge_sdk.exporters.cli", REPO, "--fp32", "-q"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=tmp_path,
        check=False,
    )
    assert proc.returncode == 1, proc.stderr
    line = proc.stderr.strip().splitlines()[-1]
    assert "Traceback" not in proc.stderr and "nor in the local Hugging Face cache" in line
    assert str(tmp_path / "home" / "hub") in line


def test_an_existing_local_folder_wins(
    hf_folder: Path, hub_env: HubEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub_env(tmp_path / "empty-cache")  # the hub would fail: not cached, offline
    local = tmp_path / "tiny-org" / "tiny-llama"
    local.mkdir(parents=True)
    for file in hf_folder.iterdir():
        (local / file.name).symlink_to(file)
    monkeypatch.chdir(tmp_path)
    loaded = load_model(REPO)
    assert loaded.source == REPO and loaded.name == "tiny-llama"
    with pytest.raises(ConfigError, match="applies to a Hugging Face hub id"):
        load_model(REPO, revision="v1")


@pytest.mark.parametrize(
    "text",
    [
        "a/b/c",
        "./owner/name",
        "/owner/name",
        "owner/",
        ".owner/name",
        "owner/.name",
        "ow--ner/name",
        "owner/na..me",
        "owner/name-",
        "owner/model.pt",
        "owner/model.gguf",
        "owner name/x",
        "x" * 50 + "/" + "y" * 50,
    ],
)
def test_bad_hub_id_syntax_is_a_missing_path(
    text: str, hub_env: HubEnv, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert not is_hub_id(text)
    hub_env(tmp_path / "empty-cache")
    assert main([text, "--int8", "-o", str(tmp_path / "out")]) == 1
    line = _error_line(capsys)
    assert line.startswith(f"edge-export: error: {Path(text)} does not exist. Give ")


@pytest.mark.parametrize(
    "text",
    [
        "Qwen/Qwen2.5-0.5B-Instruct",
        "meta-llama/Llama-3.2-1B",
        "HuggingFaceTB/SmolLM2-135M-Instruct",
        "a_b/c.d-e",
    ],
)
def test_hub_id_syntax(text: str) -> None:
    assert is_hub_id(text)


def test_revision_with_a_local_path_is_bad_usage(
    hf_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for model in (str(hf_folder), str(tmp_path / "missing.pt")):
        with pytest.raises(SystemExit) as exc:
            main([model, "--fp32", "--revision", "v1"])
        assert exc.value.code == 2
        assert "--revision applies to a Hugging Face hub id" in capsys.readouterr().err


def test_hub_unreachable_uses_the_cache_or_says_so(
    cache: Path, hub_env: HubEnv, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    hub_env(cache, offline=False, endpoint=f"http://127.0.0.1:{_closed_port()}")
    assert resolve_hub_model(REPO).name == COMMIT  # huggingface_hub falls back on the cache
    hub_env(tmp_path / "empty-cache", offline=False, endpoint=f"http://127.0.0.1:{_closed_port()}")
    assert main([REPO, "--fp32", "-o", str(tmp_path / "out")]) == 1
    line = _error_line(capsys)
    assert "nor in the local Hugging Face cache, and the hub is unreachable" in line
    assert "ConnectError" in line and "pass its path" in line


@pytest.mark.parametrize(
    "status, code, message",
    [
        (401, "GatedRepo", "is a gated model: accept its conditions on https://huggingface.co/"),
        (403, "GatedRepo", "`hf auth login` or set HF_TOKEN"),
        (
            403,
            None,
            f"the Hugging Face hub refused access to {REPO} (HTTP 403): run `hf auth login`",
        ),
        (404, "RepoNotFound", "not a model on the Hugging Face hub, or it is private"),
        (404, "RevisionNotFound", "has no revision 'main'"),
        (500, None, "the hub is unreachable (HfHubHTTPError: Server error '500"),
    ],
)
def test_hub_errors_are_one_line(
    status: int,
    code: str | None,
    message: str,
    hub_env: HubEnv,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    hub = FakeHub(REPO, COMMIT, {})
    hub.error = (status, code)
    with serve(hub) as endpoint:
        hub_env(tmp_path / "cache", offline=False, endpoint=endpoint)
        assert main([REPO, "--int8", "-o", str(tmp_path / "out")]) == 1
    line = _error_line(capsys)
    assert message in line, line
    assert hub.requests and not (tmp_path / "out").exists()


def test_download_fetches_only_what_an_export_reads(
    hf_folder: Path, hub_env: HubEnv, tmp_path: Path
) -> None:
    files = {f.name: f.read_bytes() for f in hf_folder.iterdir()}
    skipped = {
        "pytorch_model.bin": b"pickle",
        "model.gguf": b"GGUF",
        "README.md": b"# tiny",
        "onnx/model.safetensors": b"nested",
        "original/params.json": b"{}",
    }
    hub = FakeHub(REPO, COMMIT, {**files, **skipped})
    progress_log = tmp_path / "progress.txt"
    with serve(hub) as endpoint, progress_log.open("w") as stream:
        hub_env(tmp_path / "cache", offline=False, endpoint=endpoint)
        folder = resolve_hub_model(REPO, progress=Progress(1, stream=stream))
    assert folder == tmp_path / "cache" / SNAPSHOTS / COMMIT
    assert sorted(p.name for p in folder.iterdir()) == sorted(files)
    assert all((folder / name).read_bytes() == data for name, data in files.items())
    assert not any(name in request for request in hub.requests for name in skipped)
    log = progress_log.read_text()
    assert "resolving on the Hugging Face hub" in log
    assert f"commit {COMMIT}, {len(files)} files" in log
    hub_env(tmp_path / "cache")  # and now offline, from the cache it filled
    assert resolve_hub_model(REPO).name == COMMIT


@pytest.mark.parametrize("quiet, terminal", [(False, True), (False, False), (True, True)])
def test_hub_bars_on_a_terminal_only(
    quiet: bool,
    terminal: bool,
    hf_folder: Path,
    hub_env: HubEnv,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr(sys.stderr, "isatty", lambda: terminal)  # sys.stderr is capsys's here
    hub = FakeHub(REPO, COMMIT, {f.name: f.read_bytes() for f in hf_folder.iterdir()})
    with serve(hub) as endpoint:
        hub_env(tmp_path / "cache", offline=False, endpoint=endpoint)
        resolve_hub_model(REPO, progress=Progress(1, quiet=quiet))
    err = capsys.readouterr().err
    bars = terminal and not quiet
    assert ("Fetching" in err) is bars and ("\r" in err) is bars
    assert ("resolving on the Hugging Face hub" in err) is not quiet


def test_a_repository_without_safetensors_is_refused(
    hub_env: HubEnv, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    hub = FakeHub(
        REPO,
        COMMIT,
        {"config.json": b"{}", "pytorch_model.bin": b"pickle", "model-Q4_K_M.gguf": b"GGUF"},
    )
    with serve(hub) as endpoint:
        hub_env(tmp_path / "cache", offline=False, endpoint=endpoint)
        assert main([REPO, "--int8", "-o", str(tmp_path / "out")]) == 1
    line = _error_line(capsys)
    assert f"{REPO} has no config.json with *.safetensors weights at its top level" in line
    assert not any("pytorch_model.bin" in r or ".gguf" in r for r in hub.requests)
