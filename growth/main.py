"""python -m growth.main --config configs/growth.py:quick --workdir runs/growth"""
from common import cli
from growth import train

if __name__ == "__main__":
  cli.run(train.train_and_evaluate)
