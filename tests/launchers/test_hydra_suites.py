"""Hydra's own launcher test suites, for every birealnet launcher, plus plugin discovery."""

import subprocess
import sys
import textwrap
import time

import pytest
from hydra.core.plugins import Plugins
from hydra.plugins.launcher import Launcher
from hydra.test_utils.launcher_common_tests import IntegrationTestSuite, LauncherTestSuite
from hydra_plugins.birealnet_launchers.device_pool_launcher import DevicePoolLauncher
from hydra_plugins.birealnet_launchers.msrun_launcher import MsrunLauncher
from hydra_plugins.birealnet_launchers.rank_table_launcher import RankTableLauncher

LAUNCHERS = ["rank_table", "msrun", "device_pool"]


def test_discovery() -> None:
    found = [x.__name__ for x in Plugins.instance().discover(Launcher)]
    for launcher in (RankTableLauncher, MsrunLauncher, DevicePoolLauncher):
        assert launcher.__name__ in found


def test_info_plugins_lists_them_and_stays_light(tmp_path) -> None:
    """`--info plugins` finds the launchers; the plugin scan imports no mindspore, cloudpickle, psutil."""
    app = tmp_path / "app.py"
    app.write_text(
        textwrap.dedent("""
            import sys
            import hydra

            @hydra.main(version_base=None, config_path=None)
            def main(cfg):
                pass

            if __name__ == "__main__":
                main()
                heavy = ("mindspore", "cloudpickle", "psutil")
                print("heavy imports:", [m for m in heavy if m in sys.modules])
        """)
    )
    start = time.monotonic()
    done = subprocess.run(
        [sys.executable, str(app), "--info", "plugins"], capture_output=True, text=True, check=True
    )
    elapsed = time.monotonic() - start
    for name in ("RankTableLauncher", "MsrunLauncher", "DevicePoolLauncher"):
        assert name in done.stdout
    assert "heavy imports: []" in done.stdout
    assert elapsed < 10


@pytest.mark.usefixtures("with_rank_table")
@pytest.mark.parametrize("launcher_name, overrides", [("rank_table", [])])
class TestRankTableLauncher(LauncherTestSuite):
    """Two ranks per job from a rank table the test wrote (RANK_TABLE_FILE); the task touches no device."""


@pytest.mark.parametrize("launcher_name, overrides", [("device_pool", [])])
class TestDevicePoolLauncher(LauncherTestSuite):
    pass


@pytest.mark.slow
@pytest.mark.parametrize("launcher_name, overrides", [("msrun", [])])
class TestMsrunLauncher(LauncherTestSuite):
    """Two msrun workers (and msrun's scheduler) on loopback per job."""


def integration(launcher: str) -> dict:
    return {
        "defaults": [
            {"override hydra/launcher": launcher},
            {"override hydra/hydra_logging": "hydra_debug"},
            {"override hydra/job_logging": "disabled"},
        ]
    }


@pytest.mark.usefixtures("with_rank_table")
@pytest.mark.parametrize(
    "task_launcher_cfg, extra_flags",
    [(integration("rank_table"), ["-m"])],
)
class TestRankTableLauncherIntegration(IntegrationTestSuite):
    pass


@pytest.mark.parametrize(
    "task_launcher_cfg, extra_flags",
    [(integration("device_pool"), ["-m"])],
)
class TestDevicePoolLauncherIntegration(IntegrationTestSuite):
    pass


@pytest.mark.slow
@pytest.mark.parametrize(
    "task_launcher_cfg, extra_flags",
    [(integration("msrun"), ["-m"])],
)
class TestMsrunLauncherIntegration(IntegrationTestSuite):
    pass
