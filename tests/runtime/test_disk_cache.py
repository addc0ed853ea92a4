"""The runtime's cache on disk: real entries from loading the demo bundles, small synthetic ones
for the LRU order, and ``edge-cache`` as a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edge_sdk.errors import ConfigError
from edge_sdk.runtime import load
from edge_sdk.runtime.disk_cache import (
    MB,
    EntryLease,
    cache_entries,
    clear_cache,
    default_cache_dir,
    enforce_cap,
    max_cache_bytes,
)


def _files_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def _entry(root: Path, kind: str, name: str, mb: float, age_s: float) -> Path:
    """A synthetic entry of ``mb`` MB last used ``age_s`` seconds ago."""
    folder = root / kind / name
    folder.mkdir(parents=True)
    (folder / "blob").write_bytes(b"\0" * int(mb * MB))
    stamp = time.time() - age_s
    os.utime(folder, (stamp, stamp))
    return folder


def _ids(root: Path) -> set[str]:
    return {e.id for e in cache_entries(root)}


def test_every_test_has_its_own_empty_cache(edge_sdk_cache_dir: Path) -> None:
    assert default_cache_dir() == edge_sdk_cache_dir
    assert edge_sdk_cache_dir != Path.home() / ".cache" / "edge-sdk"
    assert cache_entries() == []


def test_a_load_writes_one_entry_held_while_the_session_lives(demo_bundle_int8: Path) -> None:
    with load(demo_bundle_int8, "ort-cpu", threads=1) as gen:
        assert gen.generate("Once", max_new_tokens=3).stats.new_tokens == 3
        (entry,) = cache_entries()
        assert entry.kind == "ort" and entry.name.startswith("demo-int8-") and entry.in_use
        assert entry.size_bytes == _files_size(entry.path) > 1_000_000
        assert abs(entry.last_used - time.time()) < 60
    (entry,) = cache_entries()
    assert not entry.in_use


def test_a_hit_reuses_the_entry_and_marks_its_use(demo_bundle_int8: Path) -> None:
    with load(demo_bundle_int8, "ort-cpu", threads=1):
        pass
    (entry,) = cache_entries()
    data = entry.path / "model.data"
    inode = data.stat().st_ino
    os.utime(entry.path, (1_000_000_000, 1_000_000_000))
    with load(demo_bundle_int8, "ort-cpu", threads=1) as gen:
        assert gen.generate("Once", max_new_tokens=2).stats.new_tokens == 2
    (again,) = cache_entries()
    assert again.path == entry.path and data.stat().st_ino == inode  # read, not rewritten
    assert again.last_used > time.time() - 60


def test_clear_keeps_only_the_entry_a_session_holds(
    demo_bundle_int8: Path, demo_bundle_fp32: Path
) -> None:
    with load(demo_bundle_fp32, "ort-cpu", threads=1):
        pass
    with load(demo_bundle_int8, "ort-cpu", threads=1) as gen:
        removed, kept = clear_cache()
        assert [e.name.split("-")[1] for e in removed] == ["fp32"]
        assert [e.name.split("-")[1] for e in kept] == ["int8"]
        assert gen.generate("Once", max_new_tokens=2).stats.new_tokens == 2
    removed, kept = clear_cache()
    assert len(removed) == 1 and kept == [] and cache_entries() == []


def test_clear_by_id_and_an_unknown_id(tmp_path: Path) -> None:
    _entry(tmp_path, "ort", "a", 0.1, 30)
    _entry(tmp_path, "trt", "b", 0.1, 20)
    removed, _ = clear_cache(tmp_path, ["trt/b"])
    assert [e.id for e in removed] == ["trt/b"] and _ids(tmp_path) == {"ort/a"}
    with pytest.raises(ConfigError, match="not in the cache: ort/zzz"):
        clear_cache(tmp_path, ["ort/zzz"])


def test_eviction_is_least_recently_used_first(tmp_path: Path) -> None:
    for name, age in (("old", 400), ("mid", 300), ("new", 200)):
        _entry(tmp_path, "ort", name, 1, age)
    _entry(tmp_path, "trt", "engine", 1, 100)
    written = _entry(tmp_path, "ort", "written", 1, 0)
    evicted = enforce_cap(tmp_path, keep=written, max_bytes=int(3.5 * MB))
    assert [e.id for e in evicted] == ["ort/old", "ort/mid"]
    assert _ids(tmp_path) == {"ort/new", "trt/engine", "ort/written"}
    assert [e.id for e in cache_entries(tmp_path)] == ["ort/written", "trt/engine", "ort/new"]


def test_eviction_spares_the_entry_just_written_and_one_in_use(tmp_path: Path) -> None:
    held = _entry(tmp_path, "ort", "held", 1, 500)
    written = _entry(tmp_path, "ort", "written", 1, 400)  # older than others: still kept
    _entry(tmp_path, "trt", "other", 1, 300)
    lease = EntryLease(held)
    try:
        evicted = enforce_cap(tmp_path, keep=written, max_bytes=MB // 2)
    finally:
        lease.release()
    assert [e.id for e in evicted] == ["trt/other"]
    assert _ids(tmp_path) == {"ort/held", "ort/written"}  # over the cap: nothing else may go


def test_a_lease_in_another_process_is_respected(tmp_path: Path) -> None:
    held = _entry(tmp_path, "ort", "held", 0.1, 100)
    code = (
        "import sys; from pathlib import Path; from edge_sdk.runtime.disk_cache import "
        "use_entry; lease = use_entry(Path(sys.argv[1])); print('held', flush=True); "
        "sys.stdin.read()"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", code, str(held)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None and child.stdout.readline() == "held\n"
        assert cache_entries(tmp_path)[0].in_use
        assert clear_cache(tmp_path) == ([], cache_entries(tmp_path))
    finally:
        child.communicate("", timeout=30)
    assert [e.id for e in clear_cache(tmp_path)[0]] == ["ort/held"]


def test_the_cap_applies_after_a_load_writes_an_entry(
    demo_bundle_int8: Path, edge_sdk_cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _entry(edge_sdk_cache_dir, "ort", "older", 1, 200)
    _entry(edge_sdk_cache_dir, "trt", "newer", 1, 100)
    monkeypatch.setenv("EDGE_SDK_CACHE_MAX_MB", "4")  # the demo entry (2.6 MB) and one more
    with load(demo_bundle_int8, "ort-cpu", threads=1):
        pass
    assert {e.id.split("-")[0] for e in cache_entries()} == {"ort/demo", "trt/newer"}
    assert sum(e.size_bytes for e in cache_entries()) <= 4 * MB


def test_crashed_writes_are_swept_and_ones_in_progress_are_not(tmp_path: Path) -> None:
    stale = _entry(tmp_path, "ort", ".demo-int8-0123.crashed", 0.1, 3600)
    fresh = _entry(tmp_path, "ort", ".demo-int8-0123.writing", 0.1, 0)
    assert cache_entries(tmp_path) == []
    clear_cache(tmp_path)
    assert not stale.exists() and fresh.exists()


def test_the_cap_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EDGE_SDK_CACHE_MAX_MB", raising=False)
    assert max_cache_bytes() == 2048 * MB
    monkeypatch.setenv("EDGE_SDK_CACHE_MAX_MB", "0")
    assert max_cache_bytes() is None
    monkeypatch.setenv("EDGE_SDK_CACHE_MAX_MB", "0.5")
    assert max_cache_bytes() == MB // 2
    for bad in ("lots", "-1", "inf", "nan"):
        monkeypatch.setenv("EDGE_SDK_CACHE_MAX_MB", bad)
        with pytest.raises(ConfigError, match="EDGE_SDK_CACHE_MAX_MB"):
            max_cache_bytes()


def _edge_cache(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edge_sdk.runtime.cache_cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_edge_cache_lists_and_clears_real_entries(
    demo_bundle_int8: Path, edge_sdk_cache_dir: Path
) -> None:
    with load(demo_bundle_int8, "ort-cpu", threads=1):
        held = _edge_cache("list", "--json")
    listed = json.loads(held.stdout)
    assert listed["cache_dir"] == str(edge_sdk_cache_dir) and listed["max_bytes"] == 2048 * MB
    (entry,) = listed["entries"]
    assert entry["in_use"] and entry["size_bytes"] == listed["total_bytes"]
    text = _edge_cache("list")
    assert text.returncode == 0 and entry["id"] in text.stdout and "in use" not in text.stdout
    assert f"1 entry, {entry['size_bytes'] / 1e6:.1f} MB of 2048.0 MB" in text.stdout
    cleared = _edge_cache("clear")
    assert cleared.returncode == 0 and f"removed {entry['id']}" in cleared.stdout
    assert cache_entries() == []


def test_edge_cache_errors_are_one_line(tmp_path: Path) -> None:
    unknown = _edge_cache("clear", "ort/nothing", "--cache-dir", str(tmp_path))
    assert unknown.returncode == 1 and unknown.stderr.count("\n") == 1
    assert unknown.stderr.startswith("edge-cache: error: not in the cache: ort/nothing")
    assert _edge_cache().returncode == 2
