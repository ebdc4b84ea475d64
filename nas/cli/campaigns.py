"""Command bodies of the campaign commands: survey / search / ablate, resume, demo, report and
export. Each takes the parsed arguments, calls the library and prints."""

from __future__ import annotations

from pathlib import Path

from nas.cli.flags import EPILOG, positive_int
from nas.errors import UserError


def _print_table_summary(folder) -> None:
    from nas.campaign.table import read_table

    df = read_table(folder)
    counts = df["status"].value_counts().to_dict() if len(df) else {}
    print(
        f"{folder / 'trials.parquet'}: {len(df)} trials ({', '.join(f'{v} {k}' for k, v in counts.items())})"
    )
    cols = [
        c
        for c in (
            "trial_id",
            "candidate_id",
            "status",
            "val_acc",
            "params_m",
            "macs_m",
            "latency_ms_p50",
            "epochs",
        )
        if c in df
    ]
    if len(df):
        if "val_acc" in df:
            df = df.sort_values("val_acc", ascending=False, na_position="last")
        print(df[cols].to_string(index=False, float_format=lambda v: f"{v:.4g}"))


def cmd_campaign(args) -> int:
    from nas.campaign import run_campaign
    from nas.campaign.funnel import parse_funnel

    for path, what in ((args.space, "space"), (args.runner, "runner")):
        if path is not None and not Path(path).is_file():
            raise UserError(f"{path}: no such file (the {what})")
    overrides = {"epochs": args.epochs} if args.epochs else {}
    funnel = parse_funnel(
        getattr(args, "prescreen", None), getattr(args, "keep", None), getattr(args, "by", None)
    )
    if funnel and args.mode == "survey" and args.n is not None:
        raise UserError(
            f"-n: a survey funnel trains the --keep {funnel.keep} best of --prescreen "
            f"{funnel.prescreen} screened candidates; drop -n {args.n}"
        )
    axes = (
        [a.strip() for a in args.axes.split(",") if a.strip()]
        if getattr(args, "axes", None)
        else None
    )
    folder = run_campaign(
        args.mode,
        args.space,
        name=args.name,
        progress=not args.quiet,
        runner_path=args.runner,
        n=args.n or 8,
        seed=args.seed,
        results=args.results,
        baseline=getattr(args, "baseline", None),
        axes=axes,
        seeds=getattr(args, "seeds", 1),
        factorial=getattr(args, "factorial", False),
        retrain=args.retrain,
        train_overrides=overrides,
        funnel=funnel,
    )
    _print_table_summary(folder)
    return 0


def cmd_resume(args) -> int:
    from nas.campaign import resume_campaign

    folder = resume_campaign(args.folder, progress=not args.quiet, experiment=args.experiment)
    _print_table_summary(folder)
    return 0


def cmd_demo(args) -> int:
    """The quick-start job: a survey campaign over spaces/quickstart.yaml on the digits data."""
    from nas.campaign import run_campaign
    from nas.space import load_space

    space = load_space(args.space)
    runner = args.runner if Path(args.runner).is_file() else None
    print(
        f"[1/2] {args.space}: space {space.name!r}, {int(space.cardinality()):,} parameter points, "
        f"data {space.data.get('dataset', 'digits')} at {space.base.image_size}x{space.base.image_size}",
        flush=True,
    )
    print(
        f"[2/2] survey campaign {args.name!r}: {args.n} candidates inside {dict(space.constraints)}, "
        f"{space.train.get('epochs', 6)} epochs each, on a local Ray (this takes a few minutes)",
        flush=True,
    )
    folder = run_campaign(
        "survey",
        args.space,
        name=args.name,
        progress=not args.quiet,
        runner_path=runner,
        n=args.n,
        seed=args.seed,
        results=args.results,
    )
    _print_table_summary(folder)
    from nas.report.render import write_report

    write_report(folder)
    print(f"\ncampaign table: {folder / 'trials.parquet'} (and trials.csv)")
    print(f"report: {folder / 'report.html'} (and report.md, pareto.csv, plots/)")
    return 0


def cmd_report(args) -> int:
    """Pareto front, hypervolume, EDFs, ablation effects and cost attribution of a campaign."""
    from nas.report.render import write_report

    report = write_report(args.folder, objectives=args.objectives, budgets=args.budget or ())
    print(report.summary)
    for s in report.sections:
        figures = f", {len(s.figures)} plot(s)" if s.figures else ""
        state = f"not drawn: {s.unavailable}" if s.unavailable else f"ok{figures}"
        print(f"  {s.title}: {state}")
    print(f"report: {report.folder / 'report.html'} (and report.md, pareto.csv, plots/)")
    return 0


def cmd_export(args) -> int:
    """Candidate YAML, deploy weights and row of the chosen trials."""
    from nas.report import parse_objectives
    from nas.report.export import export_candidates

    objectives = parse_objectives(args.objectives) if args.objectives else None
    folders = export_candidates(
        args.folder,
        args.out,
        trial=args.trial or (),
        pareto=args.pareto,
        best_under=args.best_under or (),
        objectives=objectives,
        overwrite=args.overwrite,
        timm=args.format == "timm",
    )
    for dest in folders:
        weights = "deploy.pt" if (dest / "deploy.pt").exists() else "no weights (see RETRAIN.md)"
        if (dest / "timm.pt").exists():
            weights += ", timm.pt + timm.json"
        elif (dest / "TIMM.md").exists():
            weights += ", no timm export (see TIMM.md)"
        print(f"{dest}: candidate.yaml, {weights}, row.json, README.md")
    return 0


# ---------------------------------------------------------------------- flags
def add_campaign(sub) -> None:
    """``nas survey|search|ablate``: the three campaign modes share their flags."""
    for mode, text in (
        (
            "survey",
            "N distinct constrained random candidates (design-space population, feeds EDFs)",
        ),
        ("search", "Optuna search (TPE/NSGA-II/GP/random) over the space's objectives"),
        ("ablate", "one-factor-at-a-time toggles around a baseline, R seeds each"),
    ):
        c = sub.add_parser(
            mode,
            help=text,
            epilog=EPILOG,
            description=f"{text}. Each trial: fast cost + constraints, "
            "measurement (deploy form), short training; one row per trial in results/CAMPAIGN/trials.parquet.",
        )
        c.add_argument("space", help="design-space YAML file")
        c.add_argument(
            "--runner",
            default=None,
            help="runner profile YAML (default: a local Ray on this machine, as runners/local.yaml)",
        )
        c.add_argument(
            "--name",
            required=True,
            help="campaign name: results go to RESULTS/NAME (runs with one name grow one table)",
        )
        c.add_argument(
            "-n",
            type=positive_int,
            default=None,
            metavar="N",
            help="trials (survey/search; default 8; a survey funnel trains --keep K instead)",
        )
        c.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
        c.add_argument("--results", default="results", help="results root folder (default results)")
        c.add_argument(
            "--epochs", type=positive_int, default=None, help="override the space's train.epochs"
        )
        c.add_argument(
            "--retrain",
            action="store_true",
            help="re-run work already in the table (same candidate, seed and budget)",
        )
        if mode == "ablate":
            _add_ablate_flags(c)
        else:
            _add_funnel_flags(c)
        add_quiet(c)
        c.set_defaults(func=cmd_campaign, mode=mode)


def _add_funnel_flags(c) -> None:
    """A funnel: screen N candidates by fast costs and zero-cost proxies, train the K best."""
    c.add_argument(
        "--prescreen", type=positive_int, default=None, metavar="N",
        help="screen N candidates (analytic params/MACs, zero-cost proxies at init) before training",
    )  # fmt: skip
    c.add_argument(
        "--keep", type=positive_int, default=None, metavar="K",
        help="train the K best screened candidates (a search starts from them)",
    )  # fmt: skip
    c.add_argument(
        "--by", default=None, metavar="EXPR",
        help="what 'best' means, larger is better: e.g. synflow, naswot, -macs_m, snip / params_m",
    )  # fmt: skip


def _add_ablate_flags(c) -> None:
    """The flags only ``nas ablate`` has."""
    c.add_argument(
        "--baseline",
        default=None,
        help="baseline candidate/preset YAML (default: the space's base)",
    )
    c.add_argument(
        "--axes",
        default=None,
        help="comma-separated dimensions to toggle (default: every top-level choice)",
    )
    c.add_argument(
        "--seeds",
        type=positive_int,
        default=1,
        metavar="R",
        help="seeds per point (default 1)",
    )
    c.add_argument(
        "--factorial",
        action="store_true",
        help="full factorial over the axes instead of one-at-a-time",
    )


def add_resume(sub) -> None:
    """``nas resume``."""
    r = sub.add_parser(
        "resume",
        help="continue an interrupted campaign",
        epilog=EPILOG,
        description="Tuner.restore of the campaign's last experiment: finished trials are not re-run.",
    )
    r.add_argument("folder", help="campaign folder, e.g. results/quickstart")
    r.add_argument(
        "--experiment",
        default=None,
        metavar="PATH_OR_URI",
        help="the Ray experiment to restore, when campaign.json's lies outside the campaign "
        "folder and the runner's storage (refused otherwise)",
    )
    add_quiet(r)
    r.set_defaults(func=cmd_resume)


def add_quiet(p) -> None:
    p.add_argument(
        "--quiet",
        action="store_true",
        help="no progress lines (by default one line per finished trial and a summary, on stderr)",
    )
