"""``nas claims``: run the claim spaces (``spaces/claims/``) as ablation campaigns and print each
claim's effect, interval and verdict."""

from __future__ import annotations

from nas.cli.flags import EPILOG


def cmd_claims(args) -> int:
    from nas.claims import claim_spaces, run_claims
    from nas.space import load_space

    paths = claim_spaces(args.names, args.root)
    if args.list:
        for path in paths:
            claims = load_space(path).claims
            names = ", ".join(c.name for c in claims.effects) if claims else "no claims: block"
            print(f"{path.stem}: {names}")
        return 0
    runs = run_claims(paths, results=args.results, runner_path=args.runner, seed=args.seed,
                      progress=not args.quiet, retrain=args.retrain)  # fmt: skip
    for run in runs:
        print(f"{run.name}: {run.folder} ({run.budget}; {run.wall_s:.0f} s)")
        for r in run.table.itertuples():
            half = (r.ci_high - r.ci_low) / 2
            print(
                f"  {r.claim}: {r.metric} {r.treatment} vs {r.control}: "
                f"{r.effect:+.4f} +- {half:.4f} ({r.interval}, n={r.n}; expect {r.expect}) "
                f"-> {r.verdict}" + (f" ({r.reason})" if r.reason else "")
            )
    return 0


def add_claims(sub) -> None:
    """``nas claims``."""
    c = sub.add_parser(
        "claims",
        help="run the seeds' claims as ablation campaigns, each with a verdict",
        epilog=EPILOG,
        description="Each space under spaces/claims/ (or each NAME) runs as an ablation "
        "campaign results/claims-<space> (a rerun continues it); its report gains a Claims "
        "section: the effect with its 95%% interval and reproduced / contradicted / "
        "inconclusive at this budget.",
    )
    c.add_argument(
        "names", nargs="*", metavar="NAME", help="claim spaces (file stems; default all)"
    )
    c.add_argument("--root", default="spaces/claims", help="folder of claim spaces (default spaces/claims)")  # fmt: skip
    c.add_argument("--list", action="store_true", help="list the claim spaces and their claims")
    c.add_argument("--runner", default=None, help="runner profile YAML (default: a local Ray)")
    c.add_argument("--results", default="results", help="results root folder (default results)")
    c.add_argument("--seed", type=int, default=0, help="first seed (default 0)")
    c.add_argument("--retrain", action="store_true", help="re-run trials already in the tables")
    c.add_argument("--quiet", action="store_true", help="no progress lines")
    c.set_defaults(func=cmd_claims)
