"""Entry point: `python run.py [group=option ...] [key=value ...]`; see README.md."""

import hydra
from omegaconf import DictConfig

from birealnet_exp.config import register_configs

register_configs()


@hydra.main(config_path="conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> float:
    """Run `cfg.task`; returns the best val top-1 (what sweepers maximise)."""
    from birealnet_exp.tasks import main as task  # heavy imports only once a job really runs

    return task(cfg)


if __name__ == "__main__":
    main()
