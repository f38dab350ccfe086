"""Multi-block masking: coverage, disjointness, bounds, static shapes, one compilation."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import jepa as jepa_configs
from jepa import masking


def _mask_cfg(**kw):
  cfg = jepa_configs.get_config("default").mask
  cfg.unlock()
  cfg.update(kw)
  return cfg


@pytest.mark.parametrize("grid", [(7, 7), (14, 14)])
def test_coverage_disjoint_and_shapes(grid):
  cfg = _mask_cfg()
  budget = masking.mask_budget(grid, cfg)
  n = grid[0] * grid[1]
  fn = jax.jit(lambda k: masking.sample_masks(k, grid, 256, cfg))
  ctx_hits, tgt_hits = np.zeros(n), np.zeros(n)
  for s in range(2):
    ci, cv, ti, tv = map(np.asarray, fn(jax.random.PRNGKey(s)))
    assert ci.shape == (256, budget.context_tokens) and ci.dtype == np.int32
    assert ti.shape == (256, 4, budget.max_target_tokens) and tv.dtype == np.bool_
    rows = np.arange(256)[:, None]
    ctx_count = np.zeros((256, n))
    np.add.at(ctx_count, (rows, ci), cv)
    tgt_any = np.zeros((256, n), bool)
    tgt_any[np.repeat(rows, ti[:, :, :].reshape(256, -1).shape[1], 1)[tv.reshape(256, -1)],
            ti.reshape(256, -1)[tv.reshape(256, -1)]] = True
    assert ctx_count.max() <= 1  # no duplicate context tokens
    assert not ((ctx_count > 0) & tgt_any).any()  # valid context and valid targets are disjoint
    ctx_hits += ctx_count.sum(0)
    tgt_hits += tgt_any.sum(0)
  # Every patch, last row and column included, is reached by both context and targets.
  assert (ctx_hits > 0).all() and (tgt_hits > 0).all()
  last_row = np.arange(n - grid[1], n)
  last_col = np.arange(grid[1] - 1, n, grid[1])
  assert tgt_hits[last_row].min() > 0 and tgt_hits[last_col].min() > 0
  # No top-heavy context (the official collator's truncation gives a ratio ~3.3).
  hits = ctx_hits.reshape(grid)
  half = grid[0] // 2
  ratio = hits[:half].sum() / hits[grid[0] - half:].sum()
  assert 0.85 < ratio < 1.15, ratio


def test_block_scale_and_aspect_within_bounds():
  cfg = _mask_cfg()
  grid, n = (32, 32), 1024
  u = jax.random.uniform(jax.random.PRNGKey(0), (2000, 4))
  _, (_, _, h, w) = jax.jit(jax.vmap(lambda v: masking._sample_block(v, grid, cfg.target_scale,
                                                                     cfg.target_aspect, n)))(u)
  h, w = np.asarray(h, float), np.asarray(w, float)
  # Sides are rounded: |side - exact| <= 0.5, so area and aspect are within these bounds.
  lo_s, hi_s = cfg.target_scale
  lo_a, hi_a = cfg.target_aspect
  assert ((h - 0.5) * (w - 0.5) <= hi_s * n + 1e-9).all() and ((h + 0.5) * (w + 0.5) >= lo_s * n).all()
  assert ((h - 0.5) / (w + 0.5) <= hi_a).all() and ((h + 0.5) / (w - 0.5) >= lo_a).all()
  # The draws span the range (not stuck at one size).
  area = h * w / n
  assert area.min() < 0.16 and area.max() > 0.19


def test_target_blocks_are_rectangles_with_static_budget():
  cfg = _mask_cfg()
  grid = (7, 7)
  fn = jax.jit(lambda k: masking.sample_masks(k, grid, 64, cfg))
  _, _, ti, tv = map(np.asarray, fn(jax.random.PRNGKey(3)))
  for b in range(64):
    for j in range(4):
      idx = ti[b, j][tv[b, j]]
      r, c = idx // 7, idx % 7
      hh, ww = r.max() - r.min() + 1, c.max() - c.min() + 1
      assert len(idx) == hh * ww  # a full rectangle
      assert idx[0] == r.min() * 7 + c.min()  # first token = top-left corner


def test_budget_exact_max_and_auto_context():
  cfg = _mask_cfg()
  b = masking.mask_budget((7, 7), cfg)
  # Max over scale <= 0.2, aspect in [0.75, 1.5] on 49 patches: 4 x 3 = 12 (e.g. aspect 1.5: h=4, w=3).
  assert b.max_target_tokens == 12
  # 49 * 0.925 * (1 - 0.175)^4 = 20.99
  assert b.context_tokens == 21
  b14 = masking.mask_budget((14, 14), cfg)
  assert b14.max_target_tokens == 42 and b14.context_tokens == 84


def test_single_compilation_over_steps():
  cfg = _mask_cfg()
  traces = []

  @jax.jit
  def step(key):
    traces.append(1)
    ci, cv, ti, tv = masking.sample_masks(key, (7, 7), 8, cfg)
    return cv.sum() + tv.sum()

  for s in range(5):
    step(jax.random.PRNGKey(s)).block_until_ready()
  assert len(traces) == 1


@pytest.mark.parametrize("field,value,msg", [
    ("target_scale", (0.0, 0.2), "target_scale"),
    ("target_scale", (0.15, 1.2), "target_scale"),
    ("context_scale", (0.5, 1.5), "context_scale"),
    ("target_scale", (0.2, 0.3), "leave no context"),
    ("num_target_blocks", 0, "num_target_blocks"),
    ("context_tokens", 99, "context_tokens"),
])
def test_bad_mask_config(field, value, msg):
  cfg = _mask_cfg(**{field: value})
  with pytest.raises(ValueError, match=msg):
    masking.mask_budget((7, 7), cfg)


def test_window_ids_pool_2x2():
  # A 3x3 block at (top=1, left=2) on a 7x7 grid: 2x2 windows -> ids [[0,0,1],[0,0,1],[2,2,3]].
  rows, cols = np.meshgrid(np.arange(1, 4), np.arange(2, 5), indexing="ij")
  idx = np.concatenate([(rows * 7 + cols).ravel(), [0, 0, 0]])
  valid = np.arange(12) < 9
  wid = np.asarray(masking.block_window_ids(jnp.asarray(idx), jnp.asarray(valid), 7, 2))
  np.testing.assert_array_equal(wid, [0, 0, 1, 0, 0, 1, 2, 2, 3, 12, 12, 12])
