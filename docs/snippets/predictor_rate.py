"""Predictions per second of a fitted latency model over 200 distinct candidates (100 from
spaces/seeds.yaml, 100 from spaces/quickstart.yaml): the first pass in a fresh process (nothing
cached) and the best of 3 later passes."""

import sys, time
import numpy as np
from nas.measure.latency import LatencyProtocol
from nas.measure.latency_fit import predict_candidate
from nas.measure.latency_model import LatencyModel
from nas.space import load_space

cands = []
for path in ("spaces/seeds.yaml", "spaces/quickstart.yaml"):
    samples, _ = load_space(path).sample_distinct(100, np.random.default_rng(0))
    cands += [s.candidate for s in samples]
if sys.argv[1] == "synthetic":  # groups fitted on other candidates' parts, a linear device
    from nas.measure.latency_model import fit_groups
    from nas.measure.latency_parts import candidate_parts

    other = []
    for path in ("spaces/seeds.yaml", "spaces/quickstart.yaml"):
        samples, _ = load_space(path).sample_distinct(40, np.random.default_rng(99))
        other += [s.candidate for s in samples]
    parts = [p for c in other for p in candidate_parts(c, LatencyProtocol(image_size=c.image_size))]
    model = LatencyModel({}, fit_groups([(p, 0.01 + 1e-6 * p.features[0]) for p in parts]))
    model.table = {p.signature: 0.01 for p in parts[::2]}
    import nas.measure.latency_parts as lp

    lp._part.cache_clear()
else:
    model = LatencyModel.load(sys.argv[1])
passes = []
for _ in range(4):
    t0 = time.perf_counter()
    preds = [predict_candidate(model, c, LatencyProtocol(image_size=c.image_size)) for c in cands]
    passes.append(len(cands) / (time.perf_counter() - t0))
print(
    f"first pass {passes[0]:.0f}/s, later passes best {max(passes[1:]):.0f}/s; "
    f"{sum(p.ms is not None for p in preds)} of {len(preds)} with a value"
)
