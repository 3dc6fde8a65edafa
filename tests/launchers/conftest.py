"""Launcher tests: the plugin importable here and in every subprocess, a rank table, a process check."""

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

REPO = Path(__file__).resolve().parents[2]
PLUGIN_ROOT = REPO / "multirun_launchers"
# importable in this process even when the project is not installed; launcher_testing sits beside this file
for _path in (str(REPO), str(PLUGIN_ROOT), str(Path(__file__).resolve().parent)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

from hydra_plugins.birealnet_launchers import rank_table as rt  # noqa: E402
from launcher_testing import DEVICE_IPS  # noqa: E402


@pytest.fixture(autouse=True)
def plugin_on_pythonpath(monkeypatch: pytest.MonkeyPatch) -> None:
    """Subprocesses (Hydra apps, rank processes) find the plugin whether or not the project is installed."""
    parts = [str(REPO), str(PLUGIN_ROOT)] + [
        p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p
    ]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(dict.fromkeys(parts)))
    for name in ("RANK_TABLE_FILE", "RANK_ID", "RANK_SIZE", "DEVICE_ID", "MS_ROLE"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(autouse=True)
def fresh_hydra_version_base() -> Iterator[None]:
    """Hydra's launcher suites expect a fresh process's version base (no version_base: chdir=True), but
    compose() elsewhere in the session (initialize_config_dir(version_base="1.3")) sets it process-wide."""
    from hydra.version import VersionBase

    saved = VersionBase.instance()
    fresh = VersionBase.__new__(VersionBase)  # VersionBase() would return the singleton itself
    fresh.__init__()
    VersionBase.set_instance(fresh)
    yield
    VersionBase.set_instance(saved)


@pytest.fixture(scope="session")
def rank_table_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A one-server, two-device rank table written the way hccl_tools writes it."""
    table = rt.build_rank_table([0, 1], DEVICE_IPS, server_id="10.0.0.1")
    return rt.write_rank_table(table, tmp_path_factory.mktemp("rank_table") / "rank_table_2pcs.json")


@pytest.fixture
def with_rank_table(rank_table_file: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """RANK_TABLE_FILE exported, as on an Ascend server: the rank_table launcher's default source."""
    monkeypatch.setenv("RANK_TABLE_FILE", str(rank_table_file))
    return rank_table_file


@pytest.fixture
def no_stray_processes() -> Iterator[None]:
    """Fail if a test leaves any process running that was started from this one."""
    me = psutil.Process()
    before = {p.pid for p in me.children(recursive=True)}
    yield
    stray = [
        p for p in me.children(recursive=True) if p.pid not in before and p.status() != psutil.STATUS_ZOMBIE
    ]
    for p in stray:
        p.kill()
    assert not stray, f"processes left behind: {[(p.pid, p.cmdline()) for p in stray]}"
