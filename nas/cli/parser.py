"""The ``nas`` argument parser: one small function per command, each binding its command body
(``nas.cli.commands``) as ``func``."""

from __future__ import annotations

import argparse

from nas.cli.campaigns import add_campaign, add_quiet, add_resume, cmd_demo, cmd_export, cmd_report
from nas.cli.claims import add_claims
from nas.cli.commands import cmd_bench, cmd_erf, cmd_sample, cmd_validate
from nas.cli.dashboard import add_dashboard
from nas.cli.flags import EPILOG, positive_int
from nas.cli.latency_models import add_latency_model
from nas.cli.measure import cmd_measure
from nas.cli.surrogates import add_replay, add_surrogate
from nas.cli.training import add_pretrain, add_train

__all__ = ["build_parser"]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="nas",
        description="Design-space explorer for modern conv nets (RevCol, RepLKNet, Container, ConvNeXt V2).",
        epilog=EPILOG,
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    for add in (
        _add_validate,
        _add_sample,
        _add_measure,
        add_train,
        add_pretrain,
        _add_erf,
        add_campaign,
        _add_bench,
        add_resume,
        _add_report,
        add_dashboard,
        _add_export,
        add_surrogate,
        add_replay,
        add_claims,
        add_latency_model,
        _add_demo,
    ):
        add(sub)
    _no_abbreviations(p)
    return p


def _no_abbreviations(parser: argparse.ArgumentParser) -> None:
    """Whole flag names only, in every (sub)command: ``--n 32`` must not quietly mean
    ``--name 32``."""
    parser.allow_abbrev = False
    for action in parser._actions:  # noqa: SLF001 - argparse has no public walk
        if isinstance(action, argparse._SubParsersAction):  # noqa: SLF001
            for child in action.choices.values():
                _no_abbreviations(child)


def _add_validate(sub) -> None:
    """``nas validate``."""
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


def _add_sample(sub) -> None:
    """``nas sample``."""
    s = sub.add_parser(
        "sample",
        help="sample distinct candidates from a space",
        epilog=EPILOG,
        description="Print N distinct valid candidates (id and choices). The same seed gives the same output.",
    )
    s.add_argument("space", help="design-space YAML file")
    s.add_argument(
        "-n",
        type=positive_int,
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
    s.add_argument(
        "--constraints",
        action="store_true",
        help="keep only candidates inside the space's params/MACs constraints (fast analytic cost); "
        "reports the acceptance rate and how the constraints shift each choice's frequency",
    )
    s.set_defaults(func=cmd_sample)


def _add_latency_flags(m) -> None:
    """``nas measure``'s latency switch and its relative and predicted latency flags."""
    m.add_argument(
        "--no-latency", action="store_true", help="skip timing (params, MACs, memory only)"
    )
    m.add_argument(
        "--reference",
        default=None,
        metavar="PATH",
        help="candidate YAML timed in the same rounds as each candidate (latency_rel); default: "
        "the space's base candidate for a space target, none for a candidate; off: none",
    )
    m.add_argument(
        "--predict-latency",
        default=None,
        metavar="MODEL",
        help="also predict latency_pred_ms with a latency model (nas latency-model fit)",
    )


def _add_measure(sub) -> None:
    """``nas measure``."""
    m = sub.add_parser(
        "measure",
        help="measure params, MACs, latency and training memory of candidates",
        epilog=EPILOG,
        description="TARGET is a candidate/preset YAML, or a space YAML (then -n N --seed S candidates). "
        "One row per candidate: params/MACs in training and deploy form, deploy-form latency "
        "(eval, inference_mode, warm-up >= 10 iters and >= 1 s, 30 timed runs), bytes saved for backward.",
    )
    m.add_argument("target", help="candidate (preset) YAML or design-space YAML")
    m.add_argument(
        "-n",
        type=positive_int,
        default=1,
        metavar="N",
        help="candidates to sample from a space (default 1)",
    )
    m.add_argument("--seed", type=int, default=0, help="sampling seed for a space (default 0)")
    m.add_argument(
        "--json", action="store_true", help="one JSON object per candidate (exact key names)"
    )
    m.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    m.add_argument("--batch", type=positive_int, default=1, help="latency batch (default 1)")
    m.add_argument(
        "--throughput-batch",
        type=positive_int,
        default=None,
        metavar="B",
        help="also time batch B and report images/s",
    )
    m.add_argument(
        "--image-size",
        type=positive_int,
        default=None,
        metavar="S",
        help="input size (default: the candidate's)",
    )
    m.add_argument(
        "--threads",
        type=positive_int,
        default=1,
        help="CPU threads, pinned while timing (default 1)",
    )
    m.add_argument(
        "--dtype",
        choices=("float32", "bfloat16", "float16"),
        default="float32",
        help="autocast dtype on CUDA (default float32)",
    )
    m.add_argument(
        "--nchw",
        action="store_true",
        help="time in NCHW instead of the default channels_last layout",
    )
    _add_latency_flags(m)
    _add_featdiv_flags(m)
    m.set_defaults(func=cmd_measure)


def _add_featdiv_flags(m) -> None:
    """``nas measure``'s flags of what is measured beside costs: proxies, feature diversity."""
    m.add_argument("--proxies", action="store_true", help="zero-cost proxies at init (64 digits)")
    m.add_argument(
        "--feature-diversity",
        action="store_true",
        help="per-stage feature diversity (ConvNeXt V2's channel cosine distance, featdiv_s<i>) "
        "on --images validation images of --dataset",
    )
    m.add_argument("--weights", default=None, help="weights for --feature-diversity (default: init)")  # fmt: skip
    m.add_argument("--images", type=positive_int, default=16, help="images for --feature-diversity (default 16)")  # fmt: skip
    m.add_argument("--dataset", default="digits", help="data set for --feature-diversity (default digits)")  # fmt: skip
    m.add_argument("--data-path", default=None, help="data folder for cifar10/imagefolder (or NAS_DATA)")  # fmt: skip


def _add_erf(sub) -> None:
    """``nas erf``."""
    e = sub.add_parser(
        "erf",
        help="effective receptive field of one candidate (RepLKNet sec. 5)",
        epilog=EPILOG,
        description="Gradient of the central output of the last stage w.r.t. the input, over a "
        "batch of images: prints erf_r20/r30/r50/r99 and writes the map as a PNG.",
    )
    e.add_argument("target", help="candidate (preset) YAML")
    e.add_argument("--weights", default=None, help="weights for nas.load_weights (default: init)")
    e.add_argument("--images", type=positive_int, default=16, help="images (default 16)")
    e.add_argument("--dataset", default="digits", help="digits | cifar10 | imagefolder | synthetic (default digits)")  # fmt: skip
    e.add_argument("--data-path", default=None, help="data folder for cifar10/imagefolder (or NAS_DATA)")  # fmt: skip
    e.add_argument("--image-size", type=positive_int, default=64, help="input size (default 64)")
    e.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    e.add_argument("--out", default=None, help="PNG path (default <candidate>.erf.png)")
    e.set_defaults(func=cmd_erf)


def _add_bench(sub) -> None:
    """``nas bench``."""
    b = sub.add_parser(
        "bench",
        help="performance benchmarks (ratios measured side by side)",
        epilog=EPILOG,
        description="Run a benchmark; prints its figures and, last, its ratio(s) against the target(s); "
        "writes results/bench/NAME.json. Names: cost, latency, reparam, revcol, kernels, grn, trainer, campaign, surrogate, report, gpu (the CUDA check; skips without a GPU), all.",
    )
    b.add_argument(
        "name",
        help="cost | latency | reparam | revcol | kernels | grn | trainer | campaign | surrogate | report | gpu | all",
    )
    b.add_argument(
        "--quick", action="store_true", help="small sizes (CI smoke run, a couple of minutes)"
    )
    b.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    b.set_defaults(func=cmd_bench)


def _add_report(sub) -> None:
    """``nas report``."""
    rp = sub.add_parser(
        "report",
        help="Pareto fronts, EDFs, ablation effects of a campaign (HTML, Markdown, CSV, PNG)",
        epilog=EPILOG,
        description="Write report.html (self-contained), report.md, pareto.csv and plots/*.png "
        "into the campaign folder.",
    )
    rp.add_argument("folder", help="campaign folder, e.g. results/quickstart")
    rp.add_argument(
        "--objectives",
        metavar="COL:SENSE,...",
        help="objectives of the front, e.g. val_acc:max,macs_m:min (default: the campaign's)",
    )
    rp.add_argument(
        "--budget",
        action="append",
        metavar="EXPR",
        help="a budget such as 'latency_ms_p50<=2' (repeatable): the report names the best "
        "trial within all budgets",
    )
    rp.set_defaults(func=cmd_report)


def _add_export(sub) -> None:
    """``nas export``."""
    e = sub.add_parser(
        "export",
        help="export chosen trials: candidate YAML, deploy weights, row, rebuild snippet",
        epilog=EPILOG,
        description="Writes OUT/<trial_id>/{candidate.yaml, deploy.pt or RETRAIN.md, row.json, README.md}.",
    )
    e.add_argument("folder", help="campaign folder, e.g. results/quickstart")
    pick = e.add_mutually_exclusive_group(required=True)
    pick.add_argument("--trial", action="append", metavar="ID", help="a trial id (repeatable)")
    pick.add_argument("--pareto", action="store_true", help="every member of the Pareto front")
    pick.add_argument(
        "--best-under",
        action="append",
        metavar="EXPR",
        help="the best trial within budgets such as 'latency_ms_p50<=2' (repeatable)",
    )
    e.add_argument(
        "--objectives",
        metavar="COL:SENSE,...",
        help="objectives for --pareto/--best-under (default: the campaign's)",
    )
    e.add_argument("--out", required=True, help="output folder")
    e.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing export of a chosen trial (refused otherwise)",
    )
    e.add_argument(
        "--format",
        choices=("nas", "timm"),
        default="nas",
        help="timm: also timm.pt + timm.json (timm.create_model(name, **kwargs) loads it strictly)",
    )
    e.set_defaults(func=cmd_export)


def _add_demo(sub) -> None:
    """``nas demo``."""
    d = sub.add_parser(
        "demo",
        help="run the quick-start campaign on the embedded digits data set",
        epilog=EPILOG,
        description="A survey campaign over spaces/quickstart.yaml (digits, 32x32) on a local Ray; "
        "writes its report and prints where it is.",
    )
    d.add_argument(
        "--space", default="spaces/quickstart.yaml", help="space (default spaces/quickstart.yaml)"
    )
    d.add_argument(
        "--runner", default="runners/local.yaml", help="runner profile (default runners/local.yaml)"
    )
    d.add_argument("--name", default="quickstart", help="campaign name (default quickstart)")
    d.add_argument("-n", type=positive_int, default=8, metavar="N", help="candidates (default 8)")
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--results", default="results", help="results root (default results)")
    add_quiet(d)
    d.set_defaults(func=cmd_demo)
