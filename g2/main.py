"""g2 learner entry point: python -m g2.main --config configs/g2.py:quick --workdir runs/g2."""
from common import cli
from g2 import train

if __name__ == "__main__":
  cli.run(train.train_and_evaluate)
