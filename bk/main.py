"""python -m bk.main --config configs/bk.py:quick --workdir runs/bk"""
from common import cli
from bk import train

if __name__ == "__main__":
  cli.run(train.train_and_evaluate)
