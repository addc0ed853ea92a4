"""llama.cpp for the benchmarks: built once from the sources PyPI's llama-cpp-python vendors.

    python benchmarks/llamacpp.py build        # download + build (10-20 min on 2 cores), cached
    python benchmarks/llamacpp.py where --json # the binaries and convert_hf_to_gguf.py

The sdist ``llama-cpp-python==LLAMA_CPP_PYTHON_VERSION`` carries llama.cpp in
``vendor/llama.cpp``; it is downloaded with pip, unpacked and built on the CPU (no CUDA, no
downloads at build time) into ``$EDGE_SDK_BENCH_CACHE/llama.cpp-<version>`` (default cache:
``~/.cache/edge-sdk-bench``). Nothing of llama.cpp is kept in this repository.

Also here for the benchmarks: GGUF conversion (``convert_hf_to_gguf.py`` with the vendored
``gguf-py``), ``llama-quantize``, ``llama-bench`` (JSON) and :class:`LlamaServer`, which starts
``llama-server`` on a free loopback port and waits for ``/health``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edge_sdk.errors import BackendUnavailableError, EdgeError

if TYPE_CHECKING:
    from typing_extensions import Self

LLAMA_CPP_PYTHON_VERSION = "0.3.36"  # vendors llama.cpp ggml-org/llama.cpp@0c1e57098
TARGETS = ("llama-bench", "llama-server", "llama-quantize")
CMAKE_OPTIONS = (
    "-DCMAKE_BUILD_TYPE=Release",
    "-DGGML_NATIVE=ON",
    "-DGGML_CUDA=OFF",
    "-DBUILD_SHARED_LIBS=OFF",
    "-DLLAMA_BUILD_SERVER=ON",
    "-DLLAMA_BUILD_TOOLS=ON",
    "-DLLAMA_BUILD_TESTS=OFF",
    "-DLLAMA_BUILD_EXAMPLES=OFF",
    "-DLLAMA_OPENSSL=OFF",
    "-DLLAMA_BUILD_UI=OFF",
    "-DLLAMA_USE_PREBUILT_UI=OFF",
)  # no web UI: nothing fetched at build
# x86: -march=native without AMX. In VMs that report AMX (e.g. Firecracker on Sapphire Rapids)
# its tile loads fault: llama-bench dies in ggml_backend_amx_mul_mat
_NO_AMX = "-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
X86_OPTIONS = (f"-DCMAKE_C_FLAGS={_NO_AMX}", f"-DCMAKE_CXX_FLAGS={_NO_AMX}")
STAMP = "edge-sdk-build.json"  # in the build folder: the options it was configured with


class LlamaCppError(EdgeError):
    """Building or running llama.cpp failed."""


@dataclass(frozen=True)
class LlamaCpp:
    """A built llama.cpp: its binaries, converter and the version they came from."""

    root: Path  # the cache folder
    version: str  # llama-cpp-python's version
    commit: str  # the llama.cpp commit it vendors ("unknown" when its changelog does not say)
    bench: Path
    server: Path
    quantize: Path
    convert_script: Path  # convert_hf_to_gguf.py
    gguf_py: Path  # the vendored gguf package's folder (goes on PYTHONPATH)

    def to_json(self) -> dict[str, str]:
        return {key: str(value) for key, value in asdict(self).items()}


def cache_dir(version: str = LLAMA_CPP_PYTHON_VERSION) -> Path:
    base = os.environ.get("EDGE_SDK_BENCH_CACHE") or Path.home() / ".cache" / "edge-sdk-bench"
    return Path(base) / f"llama.cpp-{version}"


def _source(root: Path) -> Path:
    return root / "src" / "vendor" / "llama.cpp"


def _commit(root: Path) -> str:
    changelog = root / "src" / "CHANGELOG.md"
    text = changelog.read_text() if changelog.is_file() else ""
    match = re.search(r"update llama\.cpp to [\w-]+/llama\.cpp@([0-9a-f]+)", text)
    return match.group(1) if match else "unknown"


def _options(root: Path) -> list[str]:
    x86 = platform.machine().lower() in ("x86_64", "amd64")
    return [*CMAKE_OPTIONS, *(X86_OPTIONS if x86 else ()), f"-DLLAMA_BUILD_COMMIT={_commit(root)}"]


def _stamp(root: Path) -> list[str] | None:
    stamp = root / "build" / STAMP
    return json.loads(stamp.read_text()).get("cmake_options") if stamp.is_file() else None


def find(version: str = LLAMA_CPP_PYTHON_VERSION) -> LlamaCpp | None:
    """The cached build of ``version``, or None when it has not been built."""
    root = cache_dir(version)
    bins = root / "build" / "bin"
    src = _source(root)
    if not all((bins / name).is_file() for name in TARGETS) or _stamp(root) != _options(root):
        return None  # unbuilt, half built, or built with other options
    return LlamaCpp(
        root=root,
        version=version,
        commit=_commit(root),
        bench=bins / "llama-bench",
        server=bins / "llama-server",
        quantize=bins / "llama-quantize",
        convert_script=src / "convert_hf_to_gguf.py",
        gguf_py=src / "gguf-py",
    )


def _run(cmd: list[str], log_file: Path | None = None, **kwargs: Any) -> None:
    try:
        if log_file is None:
            subprocess.run(cmd, check=True, **kwargs)
            return
        with log_file.open("a") as out:
            out.write(f"$ {' '.join(cmd)}\n")
            out.flush()
            subprocess.run(cmd, check=True, stdout=out, stderr=subprocess.STDOUT, **kwargs)
    except (OSError, subprocess.CalledProcessError) as exc:
        output = getattr(exc, "stderr", None) or b""
        tail = output[-1000:].decode(errors="replace") if isinstance(output, bytes) else output
        where = f" (log: {log_file})" if log_file else f"\n{tail}" if tail else ""
        raise LlamaCppError(f"{Path(cmd[0]).name} failed: {exc}{where}") from exc


def build(
    version: str = LLAMA_CPP_PYTHON_VERSION, jobs: int = 2, log: Callable[[str], None] = print
) -> LlamaCpp:
    """Download llama-cpp-python's sdist, unpack it and build :data:`TARGETS` (cached)."""
    found = find(version)
    if found is not None:
        return found
    if shutil.which("cmake") is None:
        raise BackendUnavailableError("cmake is not installed: apt-get install cmake g++")
    root = cache_dir(version)
    root.mkdir(parents=True, exist_ok=True)
    log_file = root / "build.log"
    if not (_source(root) / "CMakeLists.txt").is_file():
        log(f"downloading llama-cpp-python=={version} (sdist) ...")
        with tempfile.TemporaryDirectory(dir=root) as tmp:
            _run(
                [
                    sys.executable,
                    "-m",
                    "pip",
                    "download",
                    "--no-deps",
                    "--no-binary",
                    ":all:",
                    f"llama-cpp-python=={version}",
                    "-d",
                    tmp,
                ],
                log_file,
            )
            (archive,) = Path(tmp).glob("llama_cpp_python-*.tar.gz")
            with tarfile.open(archive) as tar:
                tar.extractall(tmp, filter="data")
            shutil.rmtree(root / "src", ignore_errors=True)
            (Path(tmp) / f"llama_cpp_python-{version}").rename(root / "src")
    log(f"building {', '.join(TARGETS)} with {jobs} jobs (log: {log_file}) ...")
    started = time.perf_counter()
    _run(["cmake", "-S", str(_source(root)), "-B", str(root / "build"), *_options(root)], log_file)
    _run(
        [
            "cmake",
            "--build",
            str(root / "build"),
            "--config",
            "Release",
            "-j",
            str(jobs),
            "--target",
            *TARGETS,
        ],
        log_file,
    )
    (root / "build" / STAMP).write_text(json.dumps({"cmake_options": _options(root)}))
    built = find(version)
    if built is None:
        raise LlamaCppError(f"the build finished without {TARGETS} in {root / 'build' / 'bin'}")
    log(f"built llama.cpp {built.commit} in {time.perf_counter() - started:.0f} s")
    return built


def require(version: str = LLAMA_CPP_PYTHON_VERSION) -> LlamaCpp:
    """The cached build, or an error that says how to make it (benchmarks never build silently)."""
    found = find(version)
    if found is None:
        raise BackendUnavailableError(
            f"llama.cpp {version} is not built in {cache_dir(version)}: run "
            "`python benchmarks/llamacpp.py build` (10-20 min on 2 cores, once)"
        )
    return found


# -- models ---------------------------------------------------------------------------------------

_CONVERT_WITH_PRE = """
import runpy, sys
script, pre = sys.argv[1], sys.argv[2]
import conversion.base
conversion.base.TextModel.get_vocab_base_pre = lambda self, tokenizer: pre
sys.argv = [script, *sys.argv[3:]]
runpy.run_path(script, run_name="__main__")
"""


def convert_hf_to_gguf(
    llama: LlamaCpp,
    hf_folder: Path,
    out: Path,
    outtype: str = "f32",
    pre_tokenizer: str | None = None,
) -> Path:
    """An HF folder -> GGUF with the vendored converter (needs torch, transformers, sentencepiece),
    kept when OUT exists. ``pre_tokenizer`` (e.g. ``"gpt-2"``) names the BPE pre-tokenizer of a
    tokenizer the converter does not recognise (it knows published models' by their hash)."""
    if out.is_file():
        return out
    path = [str(llama.convert_script.parent), str(llama.gguf_py), os.environ.get("PYTHONPATH")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, path))}
    tmp = out.with_suffix(".tmp.gguf")
    args = [str(hf_folder), "--outtype", outtype, "--outfile", str(tmp)]
    cmd = (
        [sys.executable, "-c", _CONVERT_WITH_PRE, str(llama.convert_script), pre_tokenizer]
        if pre_tokenizer
        else [sys.executable, str(llama.convert_script)]
    )
    _run([*cmd, *args], env=env, capture_output=True)
    tmp.rename(out)
    return out


def quantize(
    llama: LlamaCpp,
    source: Path,
    out: Path,
    kind: str,
    threads: int = 2,
    requantize: bool = False,
) -> Path:
    """``llama-quantize SOURCE OUT KIND`` (e.g. Q8_0, Q4_0), kept when OUT exists;
    ``requantize``: SOURCE is itself quantized (its dequantized weights are quantized again)."""
    if out.is_file():
        return out
    tmp = out.with_suffix(".tmp.gguf")
    again = ["--allow-requantize"] if requantize else []
    command = [str(llama.quantize), *again, str(source), str(tmp), kind, str(threads)]
    _run(command, capture_output=True)
    tmp.rename(out)
    return out


def bench(
    llama: LlamaCpp,
    model: Path,
    threads: int = 2,
    prompt_tokens: int = 512,
    new_tokens: int = 128,
    repetitions: int = 1,
) -> dict[str, float]:
    """``llama-bench``'s prompt (prefill) and generation (decode) tokens/s, averaged over
    ``repetitions``."""
    cmd = [
        str(llama.bench),
        "-m",
        str(model),
        "-t",
        str(threads),
        "-p",
        str(prompt_tokens),
        "-n",
        str(new_tokens),
        "-r",
        str(repetitions),
        "-o",
        "json",
    ]
    try:
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        stderr = getattr(exc, "stderr", "") or ""
        raise LlamaCppError(f"llama-bench failed on {model}: {exc} {stderr[-500:]}") from exc
    result: dict[str, float] = {}
    for test in json.loads(out):
        key = "prefill_tokens_per_s" if test["n_gen"] == 0 else "decode_tokens_per_s"
        result[key] = float(test["avg_ts"])
    return result


# -- llama-server ---------------------------------------------------------------------------------


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class LlamaServer:
    """``llama-server -m MODEL -np SLOTS -t THREADS -c CONTEXT`` on a free loopback port.

    ``with LlamaServer(llama, model) as server: server.url`` starts it, waits until ``/health``
    answers 200 and stops it on exit.
    """

    def __init__(
        self,
        llama: LlamaCpp,
        model: Path,
        slots: int = 1,
        threads: int = 2,
        context: int = 2048,
        host: str = "127.0.0.1",
        port: int | None = None,
        extra_args: tuple[str, ...] = (),
        log_file: Path | None = None,
    ) -> None:
        self.host, self.port = host, port or free_port(host)
        self.cmd = [
            str(llama.server),
            "-m",
            str(model),
            "-np",
            str(slots),
            "-t",
            str(threads),
            "-c",
            str(context),
            "--host",
            host,
            "--port",
            str(self.port),
            *extra_args,
        ]
        self.log_file = log_file
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout_s: float = 120.0) -> Self:
        out = self.log_file.open("ab") if self.log_file else subprocess.DEVNULL
        try:
            self.process = subprocess.Popen(self.cmd, stdout=out, stderr=subprocess.STDOUT)
        except OSError as exc:
            raise LlamaCppError(f"cannot start llama-server: {exc}") from exc
        finally:
            if self.log_file:
                out.close()  # type: ignore[union-attr]
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise LlamaCppError(
                    f"llama-server exited with {self.process.returncode} "
                    f"before it was ready: {' '.join(self.cmd)}"
                )
            if self.healthy():
                return self
            time.sleep(0.2)
        self.stop()
        raise LlamaCppError(f"llama-server was not healthy after {timeout_s:.0f} s at {self.url}")

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/health", timeout=2) as response:
                return response.status == 200
        except (urllib.error.URLError, OSError):  # 503 while loading, refused before listening
            return False

    def stop(self, timeout_s: float = 10.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "command",
        choices=["build", "where"],
        help="build: download and build (cached); where: print the cached build",
    )
    parser.add_argument(
        "--version",
        default=LLAMA_CPP_PYTHON_VERSION,
        help="llama-cpp-python version whose vendored llama.cpp is built",
    )
    parser.add_argument("--jobs", type=int, default=2, help="parallel compile jobs")
    parser.add_argument("--json", action="store_true", help="print the paths as JSON")
    args = parser.parse_args(argv)
    try:
        llama = (
            build(args.version, args.jobs, lambda s: print(s, file=sys.stderr, flush=True))
            if args.command == "build"
            else require(args.version)
        )
    except EdgeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    info = llama.to_json()
    print(
        json.dumps(info, indent=2)
        if args.json
        else "\n".join(f"{key:<15} {value}" for key, value in info.items())
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
