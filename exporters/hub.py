"""Hugging Face hub ids (``owner/name``) to a local snapshot folder, through ``huggingface_hub``.

The hub's own cache is used as it is: ``HF_HOME`` / ``HF_HUB_CACHE`` choose where it lives,
``HF_TOKEN`` (or ``hf auth login``) authenticates gated and private models, and
``HF_HUB_OFFLINE=1`` reads the cache only. Nothing here overrides them. Only the files an
export reads are fetched (config, safetensors weights, tokenizer, chat template), and only from
the repository's top level.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edge_sdk._optional import require
from edge_sdk.cli_support import Progress
from edge_sdk.errors import ConfigError, UnsupportedModelError

if TYPE_CHECKING:
    from edge_sdk.exporters.checkpoint import LoadedModel

__all__ = ["HUB_FILES", "is_hub_id", "load_hub_model", "resolve_hub_model"]

HUB_FILES = (
    "config.json",
    "generation_config.json",
    "*.safetensors",
    "*.safetensors.index.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "chat_template.jinja",
    "special_tokens_map.json",
)

# owner/name as the hub spells it: word characters, '-' and '.', neither part starting with '.'
# or '-', no '--' or '..' (the hub's own rules), at most 96 characters.
_HUB_ID = re.compile(r"[A-Za-z0-9_][\w.-]*/[A-Za-z0-9_][\w.-]*")
# a name ending like a checkpoint file is a path the user mistyped, not a model repository
_FILE_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt", ".gguf", ".json", ".safetensors", ".onnx")
_TRUE = {"1", "ON", "YES", "TRUE"}


def is_hub_id(text: str) -> bool:
    """Whether ``text`` reads as a hub model id (``owner/name``), by its syntax alone."""
    return (
        len(text) <= 96
        and _HUB_ID.fullmatch(text) is not None
        and ".." not in text
        and "--" not in text
        and not text.endswith((".", "-"))
        and not text.lower().endswith(_FILE_SUFFIXES)
    )


def resolve_hub_model(
    repo_id: str, revision: str | None = None, progress: Progress | None = None
) -> Path:
    """Return the local snapshot folder of ``repo_id`` at ``revision``, downloading what is missing.

    ``revision`` is a branch, tag or commit (default: ``main``). ``progress``: plain lines on its
    stream, and the hub's download bars when stderr is a terminal (nothing when quiet); ``None``
    leaves the hub's own bars as they are. Every failure is a :class:`~edge_sdk.ConfigError` (a
    repository without safetensors: :class:`~edge_sdk.UnsupportedModelError`) that says what to do.
    """
    require("huggingface_hub", f"edge-export {repo_id} (a Hugging Face hub id)")
    from huggingface_hub import constants, snapshot_download

    offline = (
        bool(constants.HF_HUB_OFFLINE) or os.environ.get("HF_HUB_OFFLINE", "").upper() in _TRUE
    )  # also when set after the import
    where = repo_id + (f" (revision {revision})" if revision else "")
    _note(
        progress,
        f"{where}: "
        + (
            "local Hugging Face cache only (HF_HUB_OFFLINE)"
            if offline
            else "resolving on the Hugging Face hub"
        )
        + f", cache {constants.HF_HUB_CACHE}",
    )
    kwargs: dict[str, Any] = {
        "revision": revision,
        "allow_patterns": list(HUB_FILES),
        "ignore_patterns": ["*/*"],
        "local_files_only": offline,
    }
    if progress is not None and (progress.quiet or not getattr(sys.stderr, "isatty", bool)()):
        kwargs["tqdm_class"] = _silent_bar()  # the hub's bars on a terminal only, as ours
    handled: tuple[type[BaseException], ...] = (OSError, ValueError, *_network_errors())
    try:
        folder = Path(snapshot_download(repo_id, **kwargs))
    except handled as exc:
        error = _translate(exc, repo_id, revision, offline, constants.HF_HUB_CACHE)
        if error is None:
            raise
        raise error from exc
    _check_folder(folder, repo_id, revision, offline)
    files = [f for f in folder.iterdir() if f.is_file()]
    size = sum(f.stat().st_size for f in files)
    _note(progress, f"{where}: commit {folder.name}, {len(files)} files, {size / 1e6:.1f} MB")
    return folder


def load_hub_model(
    repo_id: str, revision: str | None = None, progress: Progress | None = None
) -> LoadedModel:
    """Resolve ``repo_id`` (:func:`resolve_hub_model`) and load it as a Hugging Face folder.

    The model's source is recorded as ``hf://owner/name@<commit>``, its name as ``name``.
    """
    from edge_sdk.exporters.checkpoint import load_source  # torch: only when a model is loaded
    from edge_sdk.exporters.sources import open_hub_model

    return load_source(open_hub_model(repo_id, revision, progress))


def _note(progress: Progress | None, text: str) -> None:
    if progress is not None and not progress.quiet:
        progress.stream.write(f"      {text}\n")
        progress.stream.flush()


def _silent_bar() -> type:
    from huggingface_hub.utils.tqdm import tqdm

    class SilentBar(tqdm):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs["disable"] = True
            super().__init__(*args, **kwargs)  # type: ignore[no-untyped-call]  # tqdm: untyped

    return SilentBar


def _check_folder(folder: Path, repo_id: str, revision: str | None, offline: bool) -> None:
    if (folder / "config.json").is_file() and any(folder.glob("*.safetensors")):
        return
    at = f" at {revision}" if revision else ""
    if offline:  # a cache filled by something that fetched less (e.g. a config only)
        raise ConfigError(
            f"the cached snapshot of {repo_id}{at} ({folder}) has no config.json with "
            "*.safetensors weights, and HF_HUB_OFFLINE=1 forbids fetching them: run once online, "
            "or pass a local model folder"
        )
    raise UnsupportedModelError(
        f"{repo_id}{at} has no config.json with *.safetensors weights at its top level: "
        "edge-export reads transformers models saved as safetensors (for a GGUF-only repository, "
        "download the .gguf file and pass its path)"
    )


def _network_errors() -> tuple[type[BaseException], ...]:
    """Transport errors of the HTTP clients huggingface_hub has loaded (httpx2 in 2.x, requests
    in 0.x), which are not all ``OSError``."""
    found: list[type[BaseException]] = [ConnectionError, TimeoutError]
    for module, name in (
        ("httpx2", "TransportError"),
        ("httpx", "TransportError"),
        ("requests", "RequestException"),
    ):
        error = getattr(sys.modules.get(module), name, None)
        if isinstance(error, type) and issubclass(error, BaseException):
            found.append(error)
    return tuple(found)


def _translate(
    exc: BaseException, repo_id: str, revision: str | None, offline: bool, cache: str
) -> ConfigError | None:
    """One line that says what happened and what to do, or ``None`` for an error we do not know."""
    try:
        errors = importlib.import_module("huggingface_hub.errors")
    except ImportError:  # huggingface_hub < 0.24 kept them in utils
        errors = importlib.import_module("huggingface_hub.utils")
    rev = revision or "main"
    page = f"https://huggingface.co/{repo_id}"
    login = "run `hf auth login` or set HF_TOKEN"
    keep = "or download the model folder elsewhere and pass its path"
    incomplete = getattr(errors, "IncompleteSnapshotError", None)
    if incomplete is not None and isinstance(exc, incomplete):
        return ConfigError(
            f"the cached snapshot of {repo_id} (revision {rev}) is incomplete (an "
            f"interrupted download?): run once online to complete it, {keep}"
        )
    if isinstance(exc, errors.LocalEntryNotFoundError):
        if offline:
            return ConfigError(
                f"{repo_id} (revision {rev}) is neither a local path nor in the local Hugging Face "
                f"cache ({cache}), and HF_HUB_OFFLINE=1 forbids downloading: run once online, "
                f"point HF_HUB_CACHE at a cache that holds it, {keep}"
            )
        cause = exc.__cause__
        if isinstance(cause, errors.HfHubHTTPError) and _status(cause) in (401, 403):
            return _translate(cause, repo_id, revision, offline, cache)  # refused, not unreachable
        return ConfigError(
            f"{repo_id} (revision {rev}) is neither a local path nor in the local Hugging Face "
            f"cache, and the hub is unreachable ({_cause(exc)}): check the network (or "
            f"HF_ENDPOINT) and run again, {keep}"
        )
    if isinstance(exc, errors.GatedRepoError):
        return ConfigError(
            f"{repo_id} is a gated model: accept its conditions on {page}, then {login}"
        )
    if isinstance(exc, errors.RepositoryNotFoundError):
        return ConfigError(
            f"{repo_id} is not a model on the Hugging Face hub, or it is private: "
            f"check the id (and that no local folder of that name was meant), "
            f"or {login}"
        )
    if isinstance(exc, errors.RevisionNotFoundError):
        return ConfigError(
            f"{repo_id} has no revision {rev!r}: give a branch, tag or commit that "
            f"exists (see {page}/commits/main)"
        )
    if isinstance(exc, errors.HfHubHTTPError):
        status = _status(exc)
        if status in (401, 403):
            return ConfigError(
                f"the Hugging Face hub refused access to {repo_id} (HTTP {status}): "
                f"{login}, with a token that may read it"
            )
        return ConfigError(
            f"the Hugging Face hub answered HTTP {status} for {repo_id} "
            f"({_first_line(exc)}): try again later, {keep}"
        )
    if isinstance(exc, getattr(errors, "HFValidationError", ())):
        return ConfigError(f"{repo_id!r} is not a valid Hugging Face hub id ({_first_line(exc)})")
    if isinstance(exc, _network_errors()):
        return ConfigError(
            f"network failure while fetching {repo_id} ({_first_line(exc)}): run "
            f"again (finished files stay in the cache), {keep}"
        )
    if isinstance(exc, OSError):
        return ConfigError(
            f"fetching {repo_id} failed: {_first_line(exc)} (cache "
            f"{cache}: set HF_HUB_CACHE to a writable folder "
            f"with free space, {keep})"
        )
    return None


def _status(exc: BaseException) -> int | None:
    status = getattr(getattr(exc, "response", None), "status_code", None)
    return status if isinstance(status, int) else None


def _cause(exc: BaseException) -> str:
    cause = exc.__cause__ or exc.__context__
    return _first_line(cause) if cause is not None else "no connection"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
