"""Triple generators for the three NSM domains, in `legacy` and `v2` label modes.

All randomness comes from one `np.random.Generator`; no Python set iteration or `hash()`, so the
data are identical across processes and PYTHONHASHSEED values.

legacy (the original generators' label rules, nsm_growth.md §1.2):
  planning: label = 1 iff problem_idx % 100 < 50; the size tier is also a function of idx % 100,
            so the label is a function of graph size (a size threshold gets ~88%).
  causal:   one graph per triple (2 nodes, 1 edge); label = scenario outcome (effectiveness > 0.6);
            4 of the 11 predicates leak it (ceiling ~70.6%, majority ~58%).
  kg:       one graph per triple; label = 1 iff the triple's index < len/2 after shuffling: noise
            (ceiling 50%).
v2 (leak-free; classes balanced; node/edge counts per type independent of the label; `hops` is
the reasoning-depth knob, 0 = the domain default):
  planning: valid(plan) iff every goal-required action is executed by a plan step and every
            `requires` prerequisite of an executed action is executed at an earlier step.
            Negatives: two prerequisite-linked actions swapped, or a required action replaced by
            an unrequired one at the same step (counts unchanged). Rule ceiling 100%.
  causal:   one graph per scenario without outcome/response edges; 2-4 treatments with 1-2
            mechanisms each, a mechanism is a chain treatment -causes-> effect (-leads_to->
            effect)^(L-1) -treats-> symptom with L in 1..hops (default 12); 2-4 confounders each
            block one effect. label = 1 iff some mechanism of the taken treatment reaches the
            patient's symptom and none of its effects is blocked by the patient's condition.
            Ceiling 100%.
  kg:       query triple head -query_r-> tail inside a small world whose places form a
            hierarchy city -located_in-> region (-part_of-> region)^(hops-2) -part_of-> country
            (hops default 3). label = 1 iff nationality = born_in . (location chain) /
            resident_of = lives_in . (location chain) holds. Negatives use the type-consistent
            country reached by the other path. Ceiling 100%.
  chains:   kinship-style compositional relation chains (v2 only). A tree of people; the query
            head and tail are joined by a k-hop path (k uniform in 1..hops, default 3), each edge
            labelled by an element of the non-abelian group S3 (so order matters, as "mother's
            brother" != "brother's mother") in a random direction (a reversed edge carries the
            inverse), among 6-12 distractor people attached by random relations. A query edge
            head -query_q-> tail asks for q; label = 1 iff q is the composition of the path's
            relations. Negatives: q uniform over the 5 other elements. `chains_at_depth`
            makes the length-generalisation sets (fixed k up to 10).
"""
from __future__ import annotations

import numpy as np

from nsm.graphs import Sample

ACTIONS = ("move_to", "pick_up", "put_down", "stack", "unstack", "push", "pull", "open", "close",
           "toggle")
PLANNING_PREDICATES = ("at_location", "contains") + ACTIONS + (
    "requires", "achieve", "decomposes_to", "has_capability", "enables", "executes", "next")
PLANNING_KINDS = ("robot", "loc", "obj", "act", "goal", "cap", "step")
# tier -> (locations, objects, actions, dep_prob, capabilities, goal depth); ranges inclusive.
_TIERS = {0: ((3, 5), (3, 6), (5, 8), 0.2, (2, 3), (2, 3)),
          1: ((5, 8), (6, 10), (8, 12), 0.3, (3, 5), (3, 4)),
          2: ((8, 12), (10, 15), (12, 16), 0.4, (4, 6), (4, 5))}

CAUSAL_PREDICATES = ("taken_by", "has_symptom", "symptom_reduced", "symptom_persists",
                     "has_condition", "causes", "treats", "responds_to", "resistant_to",
                     "confounds", "mediates", "blocks", "leads_to")
CAUSAL_KINDS = ("patient", "symptom", "treatment", "effect", "confounder", "response")

_KG_L1 = ("born_in", "born_on", "died_in", "studied_at", "works_at", "won", "known_for",
          "member_of", "founded", "married_to", "child_of", "citizen_of", "lives_in",
          "located_in", "capital_of", "part_of", "near", "adjacent_to", "borders",
          "flows_through", "created", "authored", "composed", "designed", "directed", "invented",
          "discovered", "related_to", "influenced_by", "collaborated_with", "headquartered_in")
_KG_L2 = ("instance_of", "subclass_of", "typically_has", "has_property", "associated_with",
          "category_of", "requires_concept", "enables_concept")
KG_QUERIES = ("query_nationality", "query_resident_of")
KG_PREDICATES = _KG_L1 + _KG_L2 + KG_QUERIES
KG_KINDS = ("person", "city", "country", "org", "concept", "award", "date", "work", "category",
            "region")

# S3 as permutations of (0, 1, 2); element i of CHAIN_GROUP is relation rel_i.
CHAIN_GROUP = ((0, 1, 2), (1, 0, 2), (0, 2, 1), (2, 1, 0), (1, 2, 0), (2, 0, 1))
CHAIN_PREDICATES = (tuple(f"rel_{i}" for i in range(6)) + tuple(f"query_{i}" for i in range(6)))
CHAIN_KINDS = ("person",)
# causal 12: a node of a mechanism chain of L effects needs about (L + 3) / 2 message-passing hops
# to see the patient's treatment, symptom and blocked effect, so NSM's depth 6 covers L <= 9; at
# hops 9 the flat R-GCN still reached 99.7% (nsm/README.md), at 12 chains of L >= 10 exceed it.
DEFAULT_HOPS = {"causal": 12, "kg": 3, "chains": 3, "planning": 0}


def group_compose(a: int, b: int) -> int:
  """Index of 'a then b' in CHAIN_GROUP: (a then b)(i) = b(a(i))."""
  pa, pb = CHAIN_GROUP[a], CHAIN_GROUP[b]
  return CHAIN_GROUP.index(tuple(pb[pa[i]] for i in range(3)))


def group_inverse(a: int) -> int:
  return next(b for b in range(6) if group_compose(a, b) == 0)


def _r(rng, lo_hi):
  return int(rng.integers(lo_hi[0], lo_hi[1] + 1))


def _conf(rng, mode):
  return float(rng.uniform(0.8, 1.0)) if mode == "legacy" else 1.0


def _planning_problem(rng, tier, mode):
  """One planning problem (without plan). Returns (triples, kinds, actions, deps, required)."""
  (nl, no, na, dep, nc, nd) = _TIERS[tier]
  c = lambda: _conf(rng, mode)  # noqa: E731
  locs = [f"loc_{i}" for i in range(_r(rng, nl))]
  objs = [f"obj_{i}" for i in range(_r(rng, no))]
  acts = [f"act_{i}" for i in range(_r(rng, na))]
  caps = [f"cap_{i}" for i in range(_r(rng, nc))]
  goals = [f"goal_{i}" for i in range(_r(rng, nd))]
  kinds = {"robot_0": "robot"}
  kinds.update({x: x.split("_")[0] for x in locs + objs + acts + caps + goals})
  triples = []
  for o in objs:
    loc = locs[rng.integers(len(locs))]
    triples.append((o, "at_location", loc, c()))
    if rng.random() < 0.5:
      triples.append((loc, "contains", o, c()))
  for a in acts:
    kind = ACTIONS[rng.integers(len(ACTIONS))]
    target = locs[rng.integers(len(locs))] if kind == "move_to" else objs[rng.integers(len(objs))]
    triples.append((a, kind, target, c()))
  deps = []  # (a, b): action a requires action b (b must come first)
  for j in range(1, len(acts)):
    if rng.random() < dep:
      deps.append((acts[j], acts[rng.integers(j)]))
      triples.append((deps[-1][0], "requires", deps[-1][1], c()))
  triples.append(("robot_0", "achieve", goals[0], c()))
  for g0, g1 in zip(goals[:-1], goals[1:]):
    triples.append((g0, "decomposes_to", g1, c()))
  required = []
  for g in goals:
    for a in rng.choice(acts, size=min(len(acts), _r(rng, (1, 2))), replace=False):
      triples.append((g, "requires", str(a), c()))
      if a not in required:
        required.append(str(a))
    triples.append((g, "requires", caps[rng.integers(len(caps))], c()))
  for cp in caps:
    triples.append(("robot_0", "has_capability", cp, c()))
  for a in acts:
    triples.append((caps[rng.integers(len(caps))], "enables", a, c()))
  return triples, kinds, acts, deps, required


def _closure(actions, deps):
  out = list(actions)
  changed = True
  while changed:
    changed = False
    for a, b in deps:
      if a in out and b not in out:
        out.append(b)
        changed = True
  return out


def _topological(rng, scheduled, deps):
  order, left = [], list(scheduled)
  while left:
    ready = [a for a in left if not any(x == a and y in left for x, y in deps)]
    pick = ready[rng.integers(len(ready))]
    order.append(pick)
    left.remove(pick)
  return order


def planning(mode, num_graphs, rng, hops=0):
  if hops:
    raise ValueError(f"config.data.hops={hops} is invalid for planning: allowed 0 (no depth knob)")
  samples = []
  labels = rng.permutation(np.arange(num_graphs) % 2)
  idx = 0
  while len(samples) < num_graphs:
    if mode == "legacy":
      tier = 0 if idx % 100 < 40 else (1 if idx % 100 < 80 else 2)
      triples, kinds, *_ = _planning_problem(rng, tier, mode)
      samples.append(Sample(triples, int(idx % 100 < 50), kinds))
      idx += 1
      continue
    y = int(labels[len(samples)])
    triples, kinds, acts, deps, required = _planning_problem(rng, int(rng.integers(3)), mode)
    scheduled = _closure(required, deps)
    for _ in range(int(rng.integers(0, 3))):
      free = [a for a in acts if a not in scheduled]
      if len(free) > 1:
        scheduled = _closure(scheduled + [free[rng.integers(len(free))]], deps)
    plan = _topological(rng, scheduled, deps)
    if not y:
      swaps = [(a, b) for a, b in deps if a in plan and b in plan]
      free = [a for a in acts if a not in plan]
      kinds_ok = [k for k, ok in (("swap", swaps), ("replace", free)) if ok]
      if not kinds_ok:
        continue  # no corruption possible: redraw (rare; the label is fixed beforehand)
      if kinds_ok[rng.integers(len(kinds_ok))] == "swap":
        a, b = swaps[rng.integers(len(swaps))]
        ia, ib = plan.index(a), plan.index(b)
        plan[ia], plan[ib] = b, a
      else:
        r = plan.index(required[rng.integers(len(required))])
        plan[r] = free[rng.integers(len(free))]
    steps = [f"step_{k}" for k in range(len(plan))]
    for k, (s, a) in enumerate(zip(steps, plan)):
      triples.append((s, "executes", a, 1.0))
      if k + 1 < len(steps):
        triples.append((s, "next", steps[k + 1], 1.0))
    kinds.update({s: "step" for s in steps})
    values = {s: (k + 1) / 20.0 for k, s in enumerate(steps)}
    samples.append(Sample(triples, y, kinds, values=values))
  return samples


def causal(mode, num_graphs, rng, hops=0):
  samples = []
  if mode == "legacy":
    i = 0
    while len(samples) < num_graphs:
      p, s = f"patient_{i}", f"symptom_{i % 8}"
      t = int(rng.integers(8))
      tr, ef = f"treatment_{t}", f"effect_{t}"
      eff = rng.uniform(0.2, 0.9)
      cf = None
      if rng.random() < 0.3:
        cf = f"confounder_{rng.integers(5)}"
        eff = float(np.clip(eff + rng.choice([-0.2, 0.2]), 0.1, 0.95))
      y = int(eff > 0.6)
      c = lambda: _conf(rng, mode)  # noqa: E731
      tri = [(tr, "taken_by", p, c()), (p, "has_symptom", s, c()),
             (p, "symptom_reduced" if y else "symptom_persists", s, c())]
      if cf:
        tri.append((p, "has_condition", cf, c()))
      tri += [(tr, "causes", ef, c()), (ef, "treats", s, c()),
              (p, "responds_to" if y else "resistant_to", tr, c())]
      if cf:
        tri.append((cf, "confounds", f"{tr}_response", c()))
        if rng.random() < 0.5:
          tri.append((cf, "mediates", ef, c()))
      kinds = {p: "patient", s: "symptom", tr: "treatment", ef: "effect", f"{tr}_response": "response"}
      if cf:
        kinds[cf] = "confounder"
      for t3 in tri:
        samples.append(Sample([t3], y, {e: kinds[e] for e in (t3[0], t3[2])}))
      i += 1
    return samples[:num_graphs]
  hops = hops or DEFAULT_HOPS["causal"]
  labels = rng.permutation(np.arange(num_graphs) % 2)
  for y in labels:
    n_sym, n_treat, n_conf = _r(rng, (2, 4)), _r(rng, (2, 4)), _r(rng, (2, 4))
    # Structure (drawn before the label-conditioned targets, so counts carry no label signal):
    # mechanism m belongs to treatment owner[m] and is a chain of length[m] effects.
    owner = np.repeat(np.arange(n_treat), [_r(rng, (1, 2)) for _ in range(n_treat)])
    length = rng.integers(1, hops + 1, size=len(owner))
    first = np.concatenate([[0], np.cumsum(length)[:-1]])  # effect ids of chain m: first..+length
    n_eff = int(length.sum())
    for _ in range(1000):
      treats = rng.integers(n_sym, size=len(owner))  # symptom 0 is the patient's
      blocks = rng.integers(n_eff, size=n_conf)  # confounder 0 is the patient's condition
      rule = any(owner[m] == 0 and treats[m] == 0
                 and not first[m] <= blocks[0] < first[m] + length[m] for m in range(len(owner)))
      if int(rule) == y:
        break
    else:
      raise RuntimeError("causal v2: could not sample a scenario with the requested label")
    tri = [("treatment_0", "taken_by", "patient_0", 1.0), ("patient_0", "has_symptom", "symptom_0", 1.0),
           ("patient_0", "has_condition", "confounder_0", 1.0)]
    for m in range(len(owner)):
      chain = [f"effect_{first[m] + j}" for j in range(length[m])]
      tri.append((f"treatment_{owner[m]}", "causes", chain[0], 1.0))
      tri += [(a, "leads_to", b, 1.0) for a, b in zip(chain[:-1], chain[1:])]
      tri.append((chain[-1], "treats", f"symptom_{treats[m]}", 1.0))
    tri += [(f"confounder_{k}", "blocks", f"effect_{blocks[k]}", 1.0) for k in range(n_conf)]
    tri = [tri[i] for i in rng.permutation(len(tri))]  # node order carries no signal
    # Distractor symptoms/treatments that no edge mentions still exist as entities.
    kinds = {"patient_0": "patient"}
    kinds.update({f"symptom_{k}": "symptom" for k in range(n_sym)})
    kinds.update({f"treatment_{k}": "treatment" for k in range(n_treat)})
    kinds.update({f"effect_{k}": "effect" for k in range(n_eff)})
    kinds.update({f"confounder_{k}": "confounder" for k in range(n_conf)})
    samples.append(Sample(tri, int(y), kinds))
  return samples


def _kg_places(rng, hops):
  """Location tree: returns (triples, country of every city) for cities -> ... -> countries."""
  nctry = _r(rng, (2, 3))
  level = [f"country_{i}" for i in range(nctry)]
  country = {c: i for i, c in enumerate(level)}
  tri = []
  for depth in range(hops - 1):  # region levels, from the top down
    below = []
    for parent in level:
      for _ in range(_r(rng, (1, 2))):
        name = f"region_{depth}_{len(below)}"
        below.append(name)
        country[name] = country[parent]
        tri.append((name, "part_of", parent, 1.0))
    level = below
  ncity = _r(rng, (4, 7))
  city_ctry = np.zeros(ncity, np.int64)
  for c in range(ncity):
    parent = level[rng.integers(len(level))]
    city_ctry[c] = country[parent]
    tri.append((f"city_{c}", "located_in", parent, 1.0))
  return tri, city_ctry


def kg(mode, num_graphs, rng, hops=0):
  if mode == "legacy":
    return _kg_legacy(num_graphs, rng)
  hops = hops or DEFAULT_HOPS["kg"]
  samples = []
  labels = rng.permutation(np.arange(num_graphs) % 2)
  while len(samples) < num_graphs:
    y = int(labels[len(samples)])
    npers, norg = _r(rng, (4, 7)), _r(rng, (1, 3))
    tri, city_ctry = _kg_places(rng, hops)
    ncity = len(city_ctry)
    if len(np.unique(city_ctry)) < 2:
      continue
    born, lives = rng.integers(ncity, size=npers), rng.integers(ncity, size=npers)
    h = int(rng.integers(npers))
    other = [c for c in range(ncity) if city_ctry[c] != city_ctry[born[h]]]
    lives[h] = other[rng.integers(len(other))]  # the corrupted tail is reachable by the other path
    for p in range(npers):
      tri += [(f"person_{p}", "born_in", f"city_{born[p]}", 1.0),
              (f"person_{p}", "lives_in", f"city_{lives[p]}", 1.0),
              (f"person_{p}", "works_at", f"org_{rng.integers(norg)}", 1.0)]
    tri += [(f"org_{o}", "headquartered_in", f"city_{rng.integers(ncity)}", 1.0) for o in range(norg)]
    q = int(rng.integers(2))
    true_c = city_ctry[born[h]] if q == 0 else city_ctry[lives[h]]
    false_c = city_ctry[lives[h]] if q == 0 else city_ctry[born[h]]
    tail = f"country_{true_c if y else false_c}"
    tri.append((f"person_{h}", KG_QUERIES[q], tail, 1.0))
    tri = [tri[i] for i in rng.permutation(len(tri))]
    kinds = {}
    for s_, _, o, _ in tri:
      kinds[s_], kinds[o] = s_.split("_")[0], o.split("_")[0]
    samples.append(Sample(tri, y, kinds, roles={f"person_{h}": ("query_head",), tail: ("query_tail",)}))
  return samples


def chains_at_depth(num_graphs, rng, hops_lo, hops_hi):
  """Relation-chain samples with path length k uniform in [hops_lo, hops_hi] (balanced labels)."""
  samples = []
  for y in rng.permutation(np.arange(num_graphs) % 2):
    k = _r(rng, (hops_lo, hops_hi))
    n_extra = _r(rng, (6, 12))
    tri = []

    def link(a, b, rel):  # a -rel-> b, stored in a random direction (reverse = inverse relation)
      if rng.random() < 0.5:
        tri.append((f"person_{a}", f"rel_{rel}", f"person_{b}", 1.0))
      else:
        tri.append((f"person_{b}", f"rel_{group_inverse(rel)}", f"person_{a}", 1.0))

    rels = rng.integers(6, size=k)
    composed = 0
    for i, rel in enumerate(rels):  # path person_0 -> person_1 -> ... -> person_k
      link(i, i + 1, int(rel))
      composed = group_compose(composed, int(rel))
    for j in range(k + 1, k + 1 + n_extra):  # distractors hang off the tree: no shortcut paths
      link(int(rng.integers(j)), j, int(rng.integers(6)))
    q = composed if y else int(rng.choice([e for e in range(6) if e != composed]))
    tri.append(("person_0", f"query_{q}", f"person_{k}", 1.0))
    # Shuffle triples and rename people so neither node order nor ids reveal the path.
    names = rng.permutation(k + 1 + n_extra)
    ren = lambda e: f"person_{names[int(e.split('_')[1])]}"  # noqa: E731
    tri = [(ren(a), p, ren(b), c) for a, p, b, c in (tri[i] for i in rng.permutation(len(tri)))]
    kinds = {f"person_{i}": "person" for i in range(k + 1 + n_extra)}
    samples.append(Sample(tri, int(y), kinds, roles={ren("person_0"): ("query_head",),
                                                     ren(f"person_{k}"): ("query_tail",)}))
  return samples


def chains(mode, num_graphs, rng, hops=0):
  if mode != "v2":
    raise ValueError(f"config.data.mode={mode!r} is invalid for chains: allowed v2")
  return chains_at_depth(num_graphs, rng, 1, hops or DEFAULT_HOPS["chains"])


def _kg_legacy(num_graphs, rng):
  ents = {"person": 40, "city": 20, "country": 8, "org": 15, "concept": 15, "award": 6,
          "work": 20, "category": 6}
  pick = lambda k: f"{k}_{rng.integers(ents[k])}"  # noqa: E731
  facts = []
  for p in range(ents["person"]):
    person = f"person_{p}"
    facts += [(person, "born_in", pick("city")), (person, "born_on", f"date_{rng.integers(1800, 2025)}"),
              (person, "studied_at", pick("org")), (person, "works_at", pick("org")),
              (person, "known_for", pick("concept")), (person, "created", pick("work"))]
    if rng.random() < 0.5:
      facts.append((person, "won", pick("award")))
  for c in range(ents["city"]):
    facts += [(f"city_{c}", "located_in", pick("country")), (f"city_{c}", "near", pick("city"))]
  for k in range(ents["concept"]):
    facts += [(f"concept_{k}", "instance_of", pick("category")), (f"concept_{k}", "related_to", pick("concept"))]
  kinds_list = list(ents)
  while len(facts) < num_graphs:  # padded with random L1 facts between random entities
    facts.append((pick(kinds_list[rng.integers(len(kinds_list))]), _KG_L1[rng.integers(len(_KG_L1))],
                  pick(kinds_list[rng.integers(len(kinds_list))])))
  facts = [facts[i] for i in rng.permutation(len(facts))][:num_graphs]
  samples = []
  for i, (s, p, o) in enumerate(facts):
    samples.append(Sample([(s, p, o, _conf(rng, "legacy"))], int(i < len(facts) / 2),
                          {s: s.split("_")[0], o: o.split("_")[0]}))
  return samples


DOMAINS = {
    "planning": (planning, PLANNING_PREDICATES, PLANNING_KINDS),
    "causal": (causal, CAUSAL_PREDICATES, CAUSAL_KINDS),
    "kg": (kg, KG_PREDICATES, KG_KINDS),
    "chains": (chains, CHAIN_PREDICATES, CHAIN_KINDS),
}
