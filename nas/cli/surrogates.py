"""``nas surrogate fit`` and ``nas replay``: their flags and command bodies (the logic lives in
``nas.surrogate``)."""

from __future__ import annotations

from nas.cli.flags import EPILOG, positive_int

__all__ = ["add_replay", "add_surrogate"]


def _names(text: str) -> list[str]:
    return [p.strip() for p in text.split(",") if p.strip()]


def add_surrogate(sub) -> None:
    """``nas surrogate fit``."""
    s = sub.add_parser(
        "surrogate",
        help="models of a survey's measured targets (for nas replay)",
        epilog=EPILOG,
        description="nas surrogate fit RESULTS/SURVEY: one scikit-learn model per target, chosen "
        "by cross-validation, with its held-out Kendall tau, Spearman rho and RMSE; writes "
        "RESULTS/SURVEY/surrogate/.",
    )
    actions = s.add_subparsers(dest="action", metavar="ACTION", required=True)
    f = actions.add_parser(
        "fit",
        help="fit and assess the models of a survey",
        epilog=EPILOG,
        description="Fit one model per target on the survey's finished rows (features: the "
        "sampled params and the analytic params/MACs); params and MACs are computed, never "
        "modelled. Writes surrogate/{model.json, schema.json, quality.json, held_out.csv}; model.json is the recipe (model, settings, seed, rows) from which the models are fitted again when read (no pickle).",
    )
    f.add_argument("folder", help="survey campaign folder, e.g. results/quickstart")
    f.add_argument(
        "--target",
        type=_names,
        default=None,
        metavar="COL,...",
        help="columns to model (default: the space's objectives and constraints that the "
        "analytic path does not give)",
    )
    f.add_argument("--seed", type=int, default=0, help="cross-validation seed (default 0)")
    f.set_defaults(func=cmd_surrogate_fit)


def add_replay(sub) -> None:
    """``nas replay``."""
    r = sub.add_parser(
        "replay",
        help="run the campaign's samplers against a survey's surrogate (no training)",
        epilog=EPILOG,
        description="Each sampler proposes --trials candidates from the space as a nas search "
        "would, answered by the surrogate, --repeats seeds each, one Ray task per sampler and "
        "seed. Writes RESULTS/SURVEY/replay/: replay.csv, curves.csv, summary.json, report.md, "
        "report.html (anytime hypervolume, best feasible value, when each sampler beats random).",
    )
    r.add_argument("folder", help="survey campaign folder with a fitted surrogate/")
    r.add_argument(
        "--samplers",
        type=_names,
        default=["random", "tpe", "nsga2", "gp"],
        metavar="NAME,...",
        help="samplers to replay (default random,tpe,nsga2,gp)",
    )
    r.add_argument("--trials", type=positive_int, default=30, help="proposals per run (default 30)")
    r.add_argument(
        "--repeats", type=positive_int, default=10, help="seeds per sampler (default 10)"
    )
    r.add_argument("--seed", type=int, default=0, help="first seed (default 0)")
    r.add_argument(
        "--runner",
        default=None,
        help="runner profile YAML (default: a local Ray on this machine, as runners/local.yaml)",
    )
    r.set_defaults(func=cmd_replay)


def cmd_surrogate_fit(args) -> int:
    from nas.surrogate.features import ANALYTIC
    from nas.surrogate.fit import fit_surrogate

    surrogate = fit_surrogate(args.folder, args.target, seed=args.seed)
    print(f"{args.folder}/surrogate: {surrogate.rows} survey rows; held-out quality (nested CV):")
    for target, q in surrogate.quality.items():
        lo, hi = q["kendall_tau_ci95"]
        print(
            f"  {target}: {q['model']} {q['settings']}: Kendall tau {q['kendall_tau']:.3f} "
            f"[{lo:.2f}, {hi:.2f}], Spearman rho {q['spearman_rho']:.3f}, RMSE {q['rmse']:.4g}, "
            f"R^2 {q['r2']:.2f}"
        )
    print(f"  {', '.join(ANALYTIC)}: computed exactly (analytic), not modelled")
    return 0


def cmd_replay(args) -> int:
    from pathlib import Path

    from nas.errors import UserError
    from nas.surrogate.replay import run_replay

    if args.runner is not None and not Path(args.runner).is_file():
        raise UserError(f"{args.runner}: no such file (the runner)")
    result = run_replay(
        args.folder,
        args.samplers,
        trials=args.trials,
        repeats=args.repeats,
        seed=args.seed,
        runner_path=args.runner,
    )
    print(result.report.summary)
    print(f"report: {result.folder / 'report.html'} (and report.md, replay.csv, curves.csv)")
    return 0
