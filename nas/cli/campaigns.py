"""Command bodies of the campaign commands: survey / search / ablate, resume, demo, report and
export. Each takes the parsed arguments, calls the library and prints."""

from __future__ import annotations

from pathlib import Path

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
        n=args.n,
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
