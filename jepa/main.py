"""python -m jepa.main --config configs/jepa.py:quick --workdir runs/jepa"""
from common import cli
from jepa import train

if __name__ == "__main__":
  cli.run(train.train_and_evaluate, host_tuning=True)  # see common/runtime.py and README: 1.1-1.7x
