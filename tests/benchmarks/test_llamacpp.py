"""benchmarks/llamacpp.py: finding a cached build, llama-bench's JSON, starting llama-server.

The build itself is never run here (minutes of compilation): the llama.cpp programs are faked at
their boundary by small scripts that take the same flags and answer in the same formats; one
test runs the real ``llama-server`` when a build and a GGUF model are cached on this machine.
"""

from __future__ import annotations

import importlib.util
import json
import re
import stat
import sys
import urllib.request
from pathlib import Path
from types import ModuleType

import pytest

from edge_sdk.errors import BackendUnavailableError

ROOT = Path(__file__).resolve().parents[2]


def _module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("llamacpp", ROOT / "benchmarks" / "llamacpp.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["llamacpp"] = module
    spec.loader.exec_module(module)
    return module


llamacpp = _module()

FAKE_BENCH = f"""#!{sys.executable}
import json, sys
args = sys.argv[1:]
value = lambda flag: args[args.index(flag) + 1]
open(value("-m") + ".args", "w").write(json.dumps(args))
print(json.dumps([
    {{"n_prompt": int(value("-p")), "n_gen": 0, "avg_ts": 1000.0 + int(value("-t"))}},
    {{"n_prompt": 0, "n_gen": int(value("-n")), "avg_ts": 50.5}}]))
"""

FAKE_SERVER = f"""#!{sys.executable}
import http.server, json, sys
args = sys.argv[1:]
value = lambda flag: args[args.index(flag) + 1]
if value("-m").endswith("broken.gguf"):
    sys.exit(3)
open(value("-m") + ".args", "w").write(json.dumps(args))
class Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == "/health" else 404)
        self.end_headers()
        self.wfile.write(b'{{"status": "ok"}}')
    def log_message(self, *a):
        pass
http.server.HTTPServer((value("--host"), int(value("--port"))), Health).serve_forever()
"""


def _fake_build(cache: Path) -> Path:
    root = cache / f"llama.cpp-{llamacpp.LLAMA_CPP_PYTHON_VERSION}"
    bins = root / "build" / "bin"
    bins.mkdir(parents=True)
    for name, text in (
        ("llama-bench", FAKE_BENCH),
        ("llama-server", FAKE_SERVER),
        ("llama-quantize", "#!/bin/sh\nexit 0\n"),
    ):
        (bins / name).write_text(text)
        (bins / name).chmod((bins / name).stat().st_mode | stat.S_IEXEC)
    (root / "src").mkdir()
    (root / "src" / "CHANGELOG.md").write_text(
        "## [0.3.36]\n\n- feat: update llama.cpp to ggml-org/llama.cpp@0c1e57098\n"
    )
    (bins.parent / llamacpp.STAMP).write_text(
        json.dumps({"cmake_options": llamacpp._options(root)})
    )
    return root


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("EDGE_SDK_BENCH_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_no_build_says_how_to_make_one(cache: Path) -> None:
    assert llamacpp.cache_dir() == cache / f"llama.cpp-{llamacpp.LLAMA_CPP_PYTHON_VERSION}"
    assert llamacpp.find() is None
    with pytest.raises(BackendUnavailableError, match=re.escape("benchmarks/llamacpp.py build")):
        llamacpp.require()


def test_a_cached_build_is_found_with_its_commit(cache: Path) -> None:
    root = _fake_build(cache)
    llama = llamacpp.require()
    assert llama.root == root and llama.commit == "0c1e57098"
    assert llama.server == root / "build" / "bin" / "llama-server"
    assert llama.convert_script.name == "convert_hf_to_gguf.py"


@pytest.mark.parametrize("damage", ["half built", "other options"])
def test_a_stale_build_is_not_used(cache: Path, damage: str) -> None:
    root = _fake_build(cache)
    if damage == "half built":
        (root / "build" / "bin" / "llama-quantize").unlink()
    else:
        (root / "build" / llamacpp.STAMP).write_text(json.dumps({"cmake_options": ["-DOLD=ON"]}))
    assert llamacpp.find() is None


def test_bench_reads_prefill_and_decode_speeds(cache: Path, tmp_path: Path) -> None:
    _fake_build(cache)
    llama = llamacpp.require()
    model = tmp_path / "m.gguf"
    speeds = llamacpp.bench(llama, model, threads=2, prompt_tokens=512, new_tokens=128)
    assert speeds == {"prefill_tokens_per_s": 1002.0, "decode_tokens_per_s": 50.5}
    args = json.loads(Path(f"{model}.args").read_text())
    assert args[args.index("-o") + 1] == "json" and args[args.index("-p") + 1] == "512"


def test_server_starts_on_a_free_port_answers_health_and_stops(cache: Path, tmp_path: Path) -> None:
    _fake_build(cache)
    model = tmp_path / "m.gguf"
    with llamacpp.LlamaServer(llamacpp.require(), model, slots=4, context=4096) as server:
        assert server.url.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(f"{server.url}/health", timeout=5) as response:
            assert response.status == 200
        args = json.loads(Path(f"{model}.args").read_text())
        assert args[args.index("-np") + 1] == "4" and args[args.index("-c") + 1] == "4096"
        assert args[args.index("-t") + 1] == "2"
        process = server.process
    assert process is not None and process.poll() is not None
    assert not server.healthy()


def test_a_server_that_exits_early_is_an_error(cache: Path, tmp_path: Path) -> None:
    _fake_build(cache)
    server = llamacpp.LlamaServer(llamacpp.require(), tmp_path / "broken.gguf")
    with pytest.raises(llamacpp.LlamaCppError, match="exited with 3"):
        server.start(timeout_s=10)


@pytest.mark.slow
def test_the_real_server_serves_a_real_model(request: pytest.FixtureRequest) -> None:
    llama = llamacpp.find()
    if llama is None:
        pytest.skip("needs a llama.cpp build: `python benchmarks/llamacpp.py build`")
    gguf: Path = request.getfixturevalue("smollm2_gguf")  # the test-model cache's SmolLM2
    with llamacpp.LlamaServer(llama, gguf, slots=2, context=1024) as server:
        completion = urllib.request.Request(
            f"{server.url}/completion",
            data=json.dumps({"prompt": "Hello", "n_predict": 4}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(completion, timeout=60) as response:
            assert json.loads(response.read())["tokens_predicted"] == 4
