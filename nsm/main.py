"""python -m nsm.main --config configs/nsm.py:quick --config.domain=causal --workdir runs/nsm_causal"""
from common import cli
from nsm import train

if __name__ == "__main__":
  cli.run(train.train_and_evaluate)
