"""python -m jepa.main --config configs/jepa.py:quick --workdir runs/jepa"""
from common import cli
from jepa import train

if __name__ == "__main__":
  cli.run(train.train_and_evaluate)
