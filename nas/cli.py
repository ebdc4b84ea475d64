"""The ``nas`` command line. Thin: parsing, printing and exit codes; the logic lives in ``nas``.

Exit codes: 0 success, 2 bad input (one line on stderr, no traceback), 1 an unexpected failure.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from nas.errors import UserError

EPILOG = (
    "Docs: README.md (YAML reference, CLI reference). Bad input exits with code 2 and one line."
)


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return args.func(args) or 0
    except UserError as e:
        print(f"nas {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"nas {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="nas",
        description="Design-space explorer for modern conv nets (RevCol, RepLKNet, Container, ConvNeXt V2).",
        epilog=EPILOG,
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    v = sub.add_parser(
        "validate",
        help="check a design-space YAML and print its dimensions",
        epilog=EPILOG,
        description="Parse SPACE.yaml, print its dimensions, conditions and cardinality. Exit 0 if valid, 2 if not.",
    )
    v.add_argument("space", help="design-space YAML file")
    v.add_argument(
        "--probe",
        type=int,
        default=200,
        metavar="N",
        help="draw N random points to report the share that are valid candidates (default 200; 0 = skip)",
    )
    v.set_defaults(func=cmd_validate)

    s = sub.add_parser(
        "sample",
        help="sample distinct candidates from a space",
        epilog=EPILOG,
        description="Print N distinct valid candidates (id and choices). The same seed gives the same output.",
    )
    s.add_argument("space", help="design-space YAML file")
    s.add_argument(
        "-n",
        type=_positive_int,
        default=10,
        metavar="N",
        help="number of distinct candidates (default 10)",
    )
    s.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    s.add_argument(
        "--format",
        choices=("table", "json", "csv"),
        default="table",
        help="output format (default table)",
    )
    s.set_defaults(func=cmd_sample)

    d = sub.add_parser(
        "demo", help="run the quick-start job on the embedded digits data set", epilog=EPILOG
    )
    d.add_argument(
        "--space",
        default="spaces/quickstart.yaml",
        help="space to use (default spaces/quickstart.yaml)",
    )
    d.add_argument("-n", type=_positive_int, default=6, metavar="N", help="candidates (default 6)")
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--out", default="results/demo", help="output folder (default results/demo)")
    d.set_defaults(func=cmd_demo)
    return p


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


# ---------------------------------------------------------------------- commands
def cmd_validate(args) -> int:
    import numpy as np

    from nas.space import load_space

    space = load_space(args.space)
    print(
        f"{args.space}: valid space {space.name!r} ({space.stages} stages, {len(space.dims)} dimensions)"
    )
    for line in space.describe():
        print(f"  {line}")
    size = space.cardinality()
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
    if args.probe > 0:
        _, stats = space.sample_distinct(
            1, np.random.default_rng(0)
        )  # fails loudly if nothing is valid
        rng, valid = np.random.default_rng(0), 0
        for _ in range(args.probe):
            try:
                space.to_sample(space.sample_params(rng))
                valid += 1
            except UserError:
                pass
        print(f"probe: {valid}/{args.probe} random points are valid candidates")
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
    samples, stats = space.sample_distinct(args.n, np.random.default_rng(args.seed))
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
                    },
                    sort_keys=True,
                )
            )
    else:
        import pandas as pd

        df = pd.DataFrame([{k: _cell(v) for k, v in row.items()} for row in rows])
        text = df.to_csv(index=False) if args.format == "csv" else df.to_string(index=False)
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    print(
        f"# {len(samples)} distinct candidates from {stats['draws']} draws "
        f"({stats['invalid']} invalid, {stats['duplicate']} duplicates)",
        file=sys.stderr,
    )
    return 0


def cmd_demo(args) -> int:
    import numpy as np

    from nas.space import load_space

    space = load_space(args.space)
    print(
        f"[1/2] {args.space}: valid space {space.name!r}, {int(space.cardinality()):,} parameter points"
    )
    samples, stats = space.sample_distinct(args.n, np.random.default_rng(args.seed))
    rows = _sample_rows(space, samples)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    import pandas as pd

    table = pd.DataFrame([{k: _cell(v) for k, v in row.items()} for row in rows])
    table.to_csv(out / "candidates.csv", index=False)
    print(f"[2/2] sampled {len(samples)} distinct candidates ({stats['draws']} draws):")
    print(table[["id", "macro", "width", "depths", "grn"]].to_string(index=False))
    print(f"\nwrote {out / 'candidates.csv'}")
    print(
        "NOTE: this demo stops after sampling: building, measuring, training and campaigns are not implemented yet."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
