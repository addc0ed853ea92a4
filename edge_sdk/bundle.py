"""The bundle: a self-describing directory with an ONNX model, its tokenizer and a manifest.

Layout::

    bundle/
      manifest.json     format, model config, I/O names and shapes, precision, accuracy,
                        files (size + SHA-256), exporting environment
      model.onnx        (+ model.onnx.data for large models)
      tokenizer.json

Bundles are written atomically (:class:`BundleWriter` fills a temporary sibling directory and
renames it into place), so an interrupted export never leaves a half-written bundle behind.
:func:`load_bundle` checks the manifest's schema and, by default, every file's SHA-256.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from types import TracebackType
from typing import Any

from edge_sdk.chat_template import ChatTemplate
from edge_sdk.config import ModelConfig
from edge_sdk.errors import BundleError, EdgeError
from edge_sdk.manifest import Manifest
from edge_sdk.owned_dirs import OWNER_FILE, make_owned_dir, remove_stale

__all__ = [
    "BUNDLE_FORMAT",
    "BUNDLE_FORMAT_VERSION",
    "INT8_QDQ_PRECISIONS",
    "MANIFEST_NAME",
    "Bundle",
    "BundleWriter",
    "file_record",
    "load_bundle",
    "prepare_target",
    "remove_stale_siblings",
]

BUNDLE_FORMAT = "edge-sdk-bundle"
BUNDLE_FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
#: Precisions whose graph carries int8 Q/DQ scales, so TensorRT's INT8 kernels apply to them.
INT8_QDQ_PRECISIONS = frozenset({"int8", "w8a8"})
_REQUIRED_KEYS = ("format", "format_version", "model", "graph", "tokenizer", "precision", "files")
_HASH_CHUNK = 1 << 20


def file_record(path: Path) -> dict[str, Any]:
    """Size and SHA-256 of one file, as the manifest stores them."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_HASH_CHUNK):
            digest.update(chunk)
    return {"size": path.stat().st_size, "sha256": digest.hexdigest()}


@dataclass(frozen=True)
class Bundle:
    """A loaded, verified bundle: its directory and its manifest.

    ``manifest`` is the JSON as stored; :attr:`spec` is the same, typed and checked
    (:class:`~edge_sdk.manifest.Manifest`).
    """

    path: Path
    manifest: dict[str, Any]

    @cached_property
    def spec(self) -> Manifest:
        """The typed manifest (checked when the bundle is loaded or written)."""
        try:
            return Manifest.from_dict(self.manifest)
        except BundleError as exc:
            raise BundleError(f"bundle {self.path}: {exc}") from exc

    @property
    def config(self) -> ModelConfig:
        """The model's configuration."""
        return ModelConfig.from_dict(self.manifest["model"]["config"])

    @property
    def onnx_path(self) -> Path:
        """The ONNX graph file."""
        return self.path / str(self.manifest["graph"]["file"])

    @property
    def tokenizer_path(self) -> Path:
        """The tokenizer file (``tokenizers`` JSON)."""
        return self.path / str(self.manifest["tokenizer"]["file"])

    @property
    def chat_template(self) -> ChatTemplate:
        """The model's chat template, or the plain fallback when the bundle has none."""
        return ChatTemplate.from_bundle(self.path, self.manifest)

    @property
    def precision(self) -> str:
        """Precision name, e.g. ``"int8"`` or ``"fp32"``."""
        return str(self.manifest["precision"]["name"])

    @property
    def graph(self) -> dict[str, Any]:
        """Graph description: file, opset, inputs, outputs (names, dtypes, shapes), KV layout."""
        return dict(self.manifest["graph"])

    @property
    def max_sequence_length(self) -> int:
        """Longest context (prompt + generated tokens) the export was made and checked for."""
        return int(self.manifest["graph"]["max_sequence_length"])

    def verify(self) -> None:
        """Check every file listed in the manifest against its size and SHA-256."""
        for name, expected in self.manifest["files"].items():
            path = self.path / name
            if not path.is_file():
                raise BundleError(f"bundle {self.path} is missing {name}; export it again")
            if path.stat().st_size != expected["size"]:
                raise BundleError(
                    f"bundle file {path} has {path.stat().st_size} bytes, the manifest says "
                    f"{expected['size']}: the bundle is corrupted or was changed; export it again"
                )
            if file_record(path)["sha256"] != expected["sha256"]:
                raise BundleError(
                    f"bundle file {path} does not match its SHA-256 in the manifest: the bundle "
                    "is corrupted or was changed; export it again"
                )


def load_bundle(path: str | os.PathLike[str], verify: bool = True) -> Bundle:
    """Load a bundle directory, check its manifest and (unless ``verify=False``) its file hashes."""
    root = Path(path)
    manifest_path = root / MANIFEST_NAME
    if not root.is_dir():
        raise BundleError(f"{root} is not a bundle directory (run edge-export to make one)")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise BundleError(f"{root} has no {MANIFEST_NAME}: it is not an edge-sdk bundle") from exc
    except (OSError, ValueError) as exc:
        raise BundleError(f"cannot read {manifest_path}: {exc}") from exc
    _check_schema(manifest, manifest_path)
    bundle = Bundle(root, manifest)
    bundle.spec  # noqa: B018 - validates every record's types
    try:
        bundle.config  # noqa: B018 - validates the stored config
    except EdgeError as exc:
        raise BundleError(f"{manifest_path} holds an invalid model config: {exc}") from exc
    for role, name in (
        ("graph", manifest["graph"]["file"]),
        ("tokenizer", manifest["tokenizer"]["file"]),
    ):
        if name not in manifest["files"]:
            raise BundleError(f"{manifest_path}: the {role} file {name} is not listed under files")
    if verify:
        bundle.verify()
    return bundle


def _check_schema(manifest: Any, where: Path) -> None:
    if not isinstance(manifest, dict) or manifest.get("format") != BUNDLE_FORMAT:
        raise BundleError(f"{where} is not an edge-sdk bundle manifest")
    version = manifest.get("format_version")
    if version != BUNDLE_FORMAT_VERSION:
        raise BundleError(
            f"{where} has bundle format version {version!r}; this edge-sdk reads version "
            f"{BUNDLE_FORMAT_VERSION}. Export the model again with this edge-sdk, or install the "
            "edge-sdk release that wrote it"
        )
    missing = [key for key in _REQUIRED_KEYS if key not in manifest]
    if missing:
        raise BundleError(f"{where} lacks the keys {', '.join(missing)}")
    files = manifest["files"]
    if not isinstance(files, dict) or not all(
        isinstance(rec, dict)
        and isinstance(rec.get("size"), int)
        and isinstance(rec.get("sha256"), str)
        for rec in files.values()
    ):
        raise BundleError(f"{where}: 'files' must map names to {{size, sha256}}")
    for name in files:
        if Path(name).is_absolute() or ".." in Path(name).parts:
            raise BundleError(f"{where}: file name {name!r} points outside the bundle")


class BundleWriter:
    """Fill a temporary directory, then :meth:`commit` it to ``target`` in one rename.

    Use as a context manager: on an exception (or Ctrl-C) the temporary directory is removed and
    ``target`` is untouched. An existing bundle at ``target`` is replaced; any other existing,
    non-empty directory or file is refused so that nothing of the user's is lost. The temporary
    directory (``.NAME.XXXX.tmp`` beside ``target``) names its owner process, and those of a
    writer that was killed (SIGKILL, the OOM killer) are removed when the next one starts
    (:mod:`edge_sdk.owned_dirs`).
    """

    def __init__(self, target: str | os.PathLike[str]) -> None:
        self.target = prepare_target(target, create=True)
        try:
            self.dir = make_owned_dir(self.target.parent, f".{self.target.name}.", ".tmp")
        except OSError as exc:
            raise _unwritable(self.target.parent, exc) from exc
        self._committed = False

    def __enter__(self) -> BundleWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not self._committed:
            shutil.rmtree(self.dir, ignore_errors=True)

    def commit(self, manifest: dict[str, Any]) -> Bundle:
        """Hash every file in the directory, write the manifest, and move it to ``target``."""
        files = sorted(
            p
            for p in self.dir.rglob("*")
            if p.is_file() and p.name != MANIFEST_NAME and p != self.dir / OWNER_FILE
        )
        manifest = dict(manifest)
        manifest["format"] = BUNDLE_FORMAT
        manifest["format_version"] = BUNDLE_FORMAT_VERSION
        manifest["files"] = {p.relative_to(self.dir).as_posix(): file_record(p) for p in files}
        _check_schema(manifest, self.dir / MANIFEST_NAME)
        Manifest.from_dict(manifest)  # an exporter's mistake fails here, not at load
        manifest_path = self.dir / MANIFEST_NAME
        manifest_path.write_text(
            json.dumps(manifest, indent=2, sort_keys=False) + "\n", encoding="utf-8"
        )
        for path in [*files, manifest_path]:
            _fsync(path)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(self.dir, 0o777 & ~umask)  # mkdtemp made it private
        (self.dir / OWNER_FILE).unlink(missing_ok=True)
        _replace_dir(self.dir, self.target)
        self._committed = True
        return Bundle(self.target, manifest)


def prepare_target(target: str | os.PathLike[str], create: bool = False) -> Path:
    """Check that a bundle can be written at ``target`` (its absolute path, returned) before any
    work: not a file nor a foreign folder, below a folder files can be created in (the nearest
    existing one; ``create``: the parent itself, made now). Leftovers of a killed writer beside
    it are removed. Each problem is one :class:`BundleError` line."""
    path = Path(os.path.abspath(target))
    _refuse_foreign(path)
    existing = path.parent
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise BundleError(
            f"cannot write the bundle {path}: {existing} is a file, not a folder; choose "
            "another output directory"
        )
    if create:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise BundleError(
                f"cannot create the folder {path.parent} ({exc.strerror or exc}); choose "
                "another output directory"
            ) from exc
        existing = path.parent
    if existing == path.parent:
        remove_stale_siblings(path)
    try:  # what the writer will do first: a folder beside the target (or where it will be)
        shutil.rmtree(make_owned_dir(existing, f".{path.name}.", ".tmp"))
    except OSError as exc:
        raise _unwritable(existing, exc) from exc
    return path


def _unwritable(folder: Path, exc: OSError) -> BundleError:
    return BundleError(
        f"cannot create files in {folder} ({exc.strerror or exc}); choose another output directory"
    )


def remove_stale_siblings(target: Path) -> list[Path]:
    """Remove the hidden folders (``.NAME.XXXX.tmp`` / ``.old``) that a killed writer of
    ``target`` left beside it; the removed. A live writer's are kept."""
    name = glob.escape(target.name)
    return [
        *remove_stale(target.parent, f".{name}.*.tmp"),
        *remove_stale(target.parent, f".{name}.*.old"),
    ]


def _refuse_foreign(target: Path) -> None:
    if target.is_file():
        raise BundleError(f"{target} is a file; choose another output directory")
    if target.is_dir() and any(target.iterdir()) and not (target / MANIFEST_NAME).is_file():
        raise BundleError(
            f"{target} exists and is not an edge-sdk bundle; choose another output directory "
            "(edge-sdk only replaces bundles)"
        )


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _replace_dir(source: Path, target: Path) -> None:
    if not target.exists():
        os.rename(source, target)
        return
    old = make_owned_dir(target.parent, f".{target.name}.", ".old")
    os.rename(target, old / "bundle")
    os.rename(source, target)
    shutil.rmtree(old, ignore_errors=True)
