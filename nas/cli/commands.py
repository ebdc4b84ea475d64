"""Command bodies of the single-candidate and space commands: validate, sample, measure, train,
bench. Each takes the parsed arguments, calls the library and prints; bad input raises
``UserError`` (the CLI prints it as one line, exit 2)."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

from nas.cli.flags import output_file
from nas.errors import UserError


def cmd_validate(args) -> int:
    import numpy as np

    from nas.space import CandidateError, load_space

    space = load_space(args.space)
    size = space.cardinality()
    probe = None
    if args.probe > 0:  # before anything is printed: a space that fails here is not "valid"
        space.sample_distinct(1, np.random.default_rng(0))  # fails loudly if nothing is valid
        rng, probe = np.random.default_rng(0), 0
        for _ in range(args.probe):
            try:
                space.to_sample(space.sample_params(rng))
                probe += 1
            except CandidateError:
                pass
    print(
        f"{args.space}: valid space {space.name!r} ({space.stages} stages, {len(space.dims)} dimensions)"
    )
    for line in space.describe():
        print(f"  {line}")
    print(
        f"cardinality: {'infinite (float range)' if math.isinf(size) else f'{int(size):,}'} parameter points"
    )
    if space.objectives:
        print("objectives: " + ", ".join(f"{k} ({v})" for k, v in space.objectives.items()))
    if space.constraints:
        print(
            "constraints: "
            + ", ".join(f"{k} in [{lo}, {hi}]" for k, (lo, hi) in space.constraints.items())
        )
    if probe is not None:
        print(f"probe: {probe}/{args.probe} random points are valid candidates")
    return 0


def _sample_rows(space, samples) -> list[dict]:
    """One row per sample: id, then every non-helper dimension in space order (None if inactive)."""
    names = [d.name for d in space.dims if not d.name.startswith("vars.")]
    return [{"id": s.id, **{n: s.params.get(n) for n in names}} for s in samples]


def _cell(v) -> str:
    return (
        "-"
        if v is None
        else json.dumps(v, separators=(",", ":"))
        if isinstance(v, (list, bool))
        else str(v)
    )


def cmd_sample(args) -> int:
    import numpy as np

    from nas.space import load_space

    space = load_space(args.space)
    accept, seen = None, []
    if args.constraints:
        from nas.measure.cost import fast_constraint_check

        if not space.constraints:
            raise UserError(
                f"{args.space}: constraints: --constraints given but the space declares none"
            )
        check = fast_constraint_check(space.constraints, source=f"{args.space}: constraints")

        def accept(sample) -> bool:
            seen.append(sample.params)
            return check(sample.candidate)

    samples, stats = space.sample_distinct(args.n, np.random.default_rng(args.seed), accept=accept)
    rows = _sample_rows(space, samples)
    if args.format == "json":
        for s, row in zip(samples, rows):
            print(
                json.dumps(
                    {
                        "id": row["id"],
                        "params": {k: v for k, v in row.items() if k != "id"},
                        "candidate": s.candidate.to_dict(),
                        "train": s.train,
                        "pretrain": s.pretrain,
                    },
                    sort_keys=True,
                )
            )
    else:
        import pandas as pd

        df = pd.DataFrame([{k: _cell(v) for k, v in row.items()} for row in rows])
        text = df.to_csv(index=False) if args.format == "csv" else df.to_string(index=False)
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    if args.constraints:
        from nas.measure.cost import frequency_shift

        rate = len(samples) / max(len(seen), 1)
        print(
            f"# constraints {space.constraints}: accepted {len(samples)} of {len(seen)} valid distinct candidates ({rate:.1%})",
            file=sys.stderr,
        )
        for key, value, p_all, p_acc in frequency_shift(
            seen, [s.params for s in samples], min_delta=0.05
        )[:12]:
            print(f"#   {key}={json.dumps(value)}: {p_all:.0%} -> {p_acc:.0%}", file=sys.stderr)
    print(
        f"# {len(samples)} distinct candidates from {stats['draws']} draws "
        f"({stats['invalid']} invalid, {stats['duplicate']} duplicates)",
        file=sys.stderr,
    )
    return 0


def _targets(path: str, n: int, seed: int, *, with_base: bool = False):
    """A candidate YAML gives one candidate; a space YAML gives n sampled ones. ``with_base``:
    (candidates, the space's base candidate or None for a candidate YAML)."""
    import numpy as np
    import yaml

    from nas.space import load_space
    from nas.space.candidate import CandidateError, load_candidate

    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text()) if p.is_file() else None
    except (yaml.YAMLError, OSError, UnicodeDecodeError):
        data = None  # load_space / load_candidate report it with the file name
    if isinstance(data, dict) and ("space" in data or "data" in data or "objectives" in data):
        space = load_space(p)
        samples, _ = space.sample_distinct(n, np.random.default_rng(seed))
        found = [s.candidate for s in samples]
        return (found, space.base) if with_base else found
    if not p.is_file():
        raise UserError(f"{path}: no such file")
    try:
        found = [load_candidate(p)]
    except CandidateError as e:
        raise UserError(str(e)) from None
    return (found, None) if with_base else found


def fit_to_data(candidate, *, dataset: str, image_size: int, seed: int, path: str | None = None):
    """(the candidate at the data set's classes and ``image_size``, the data splits with the
    candidate's input channels): what ``nas train``, ``nas pretrain`` and ``nas erf`` run on."""
    from nas.space.candidate import Candidate
    from nas.train.data import DataConfig, load_data

    cfg = {"dataset": dataset, "image_size": image_size, "seed": seed}
    cfg |= {"path": path} if path else {}
    data = load_data(DataConfig.from_dict(cfg, source="data")).with_channels(candidate.in_chans)
    fitted = Candidate.from_params(
        {"num_classes": data.num_classes, "image_size": image_size}, base=candidate
    )
    return fitted, data


def fit_target(args):
    """``fit_to_data`` of the command's one target, from its data flags (``--dataset``,
    ``--image-size``, ``--seed``, ``--data-path``)."""
    (candidate,) = _targets(args.target, 1, args.seed)
    return fit_to_data(
        candidate,
        dataset=args.dataset,
        image_size=args.image_size,
        seed=args.seed,
        path=args.data_path,
    )


def cmd_bench(args) -> int:
    from nas.bench import BENCHES, format_result, run_bench
    from nas.device import resolve_device

    if args.name not in BENCHES:
        raise UserError(
            f"bench: unknown benchmark {args.name!r}; expected one of {sorted(BENCHES)}"
        )
    device = str(resolve_device(args.device))
    result = run_bench(args.name, quick=args.quick, device=device)
    results = result if args.name == "all" else {args.name: result}
    for name, res in results.items():
        for line in format_result(name, res):
            print(line)
    return 0


def cmd_erf(args) -> int:
    """Effective receptive field of one candidate on a batch of the data set's images."""
    import torch

    from nas.measure.erf import erf_map, erf_ratios
    from nas.models.build import build_model
    from nas.models.weights import load_weights

    out = output_file(args.out or Path(args.target).with_suffix(".erf.png").name)
    candidate, data = fit_target(args)
    torch.manual_seed(args.seed)
    model = build_model(candidate)
    if args.weights:
        fmt = load_weights(model, args.weights)
        print(f"weights: {args.weights} ({fmt})")
    images, _ = next(data.batches("val", args.images, generator=None, device="cpu"))
    contribution = erf_map(model, images)
    ratios = erf_ratios(contribution)
    print(
        f"{args.target}: candidate {candidate.id}, {len(images)} images of {data.name} at "
        f"{args.image_size}x{args.image_size}, {'given' if args.weights else 'initial'} weights"
    )
    print("  ".join(f"{k}={v:.4f}" for k, v in ratios.items()))
    _erf_png(contribution, out, f"ERF of {candidate.id} ({len(images)} images)")
    print(f"map: {out}")
    return 0


def _erf_png(contribution, out: Path, title: str) -> None:
    """The contribution map, log-scaled (log10(1 + x / max * 1e3)), as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from nas.measure.erf import log_scaled

    scaled = log_scaled(contribution.double().numpy())
    fig, ax = plt.subplots(figsize=(4, 4))
    image = ax.imshow(scaled, cmap="viridis")
    fig.colorbar(image, ax=ax, label="log10(1 + 1000 x contribution / max)")
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100, bbox_inches="tight")
    plt.close(fig)
