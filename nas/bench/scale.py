"""`nas bench scale`: what a campaign's fixed costs do as it grows to thousands of trials.

A survey and a two-objective TPE search (``params_m`` min, ``macs_m`` max: both measured, known
before training) of ``n`` trials on a local Ray, whose trials skip training (``train: {epochs:
0}``: measure only). Figures as functions of the trial count k (at ``marks``):

* ``wall_per_trial_s``: driver wall time per trial around trial k: the spread of the finish times
  of the ``window`` trials that end at trial k, divided by ``window`` (the table's ``finished_at``).
* ``rss_mb``: the driver's resident memory, ``state_kb``: the experiment's own files (the
  experiment state, the searcher state: the top level of Tune's experiment folder),
  ``table_kb``: the campaign table's files: sampled every second in the driver, read at the moment
  trial k finished.
* ``suggest_ms`` (search): one suggestion (``ask`` and the define-by-run space) with the first
  k finished trials of the campaign's own study (its journal file) in an in-memory study: the
  median of ``asks`` suggestions, for nas's TPE (multivariate, grouped: ``nas.campaign.search``),
  Optuna's default TPE (independent per parameter with several objectives) and NSGA-II.
* ``resume_s``: ``nas resume`` of the finished campaign (restore, nothing left to run), and
  ``grow_first_trial_s``: growing the finished survey by a few trials (``nas survey`` with the
  same name): from the call to the start of its first new trial.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from pathlib import Path

from nas.bench.common import ROOT, target

__all__ = ["bench", "bench_scale"]

SPACE = """
name: scale
base: {base}
data: {{dataset: synthetic, image_size: 32}}
train: {{epochs: 0}}
objectives: {{params_m: min, macs_m: max}}
sampler: {sampler}
space:
  width: {{int: [8, 48]}}
  depths: {{choice: [[1, 1, 1, 1], [1, 1, 2, 1], [1, 2, 2, 1]]}}
  grn: {{choice: [true, false]}}
  stage:
    kernel: {{choice: [3, 5, 7]}}
"""
RUNNER = "max_concurrent: 2\ncpus_per_trial: 1\nlatency: off\nobject_store_mb: 128\n"
COLUMNS = ("trials", "wall_per_trial_s", "rss_mb", "state_kb", "table_kb")


class _Sampler(threading.Thread):
    """Every ``period`` s: (time, driver RSS in MiB, experiment files in KiB, table in KiB)."""

    def __init__(self, folder: Path, period: float = 1.0):
        super().__init__(daemon=True)
        self.folder, self.period, self.samples = folder, period, []
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(self.period):
            self.sample()
        self.sample()  # one after the campaign: every mark has a sample taken after it

    def sample(self) -> None:
        rss = _rss_mb()
        self.samples.append((time.time(), rss, _state_kb(self.folder), _table_kb(self.folder)))


def _rss_mb() -> float | None:
    """This process's resident memory (Linux ``/proc``; None elsewhere)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def _files_kb(folder: Path, pattern: str) -> float:
    return sum(p.stat().st_size for p in folder.glob(pattern) if p.is_file()) / 1024


def _state_kb(folder: Path) -> float:
    return sum(_files_kb(d, "*") for d in (folder / "ray").glob("*") if d.is_dir())


def _table_kb(folder: Path) -> float:
    return _files_kb(folder, "trials.*")


def _curve(df, samples: list, marks: list[int], window: int) -> list[dict]:
    """One record per mark: the time per trial over the ``window`` trials that finished before
    trial ``k``, and the first sample taken after trial ``k`` finished (the files then hold its
    row, unless the sample fell in the instant between its finish and its table write); for the
    campaign's last trial, the sample taken after the campaign ended."""
    ends = sorted(float(t) for t in df["finished_at"])
    out = []
    for k in (m for m in marks if m <= len(ends)):
        w = min(window, k - 1)
        at = ends[k - 1]
        after = [s for s in samples if s[0] >= at][:1] or samples[-1:]
        if k == len(ends):  # the last trial: the sample taken once the campaign had ended
            after = samples[-1:]
        _, rss, state, table = after[0] if after else (at, None, None, None)
        per = (at - ends[k - 1 - w]) / w if w else None
        out.append(dict(trials=k, wall_per_trial_s=per, rss_mb=rss, state_kb=state, table_kb=table))
    return out


def _campaign(mode: str, tmp: Path, n: int, marks: list[int], window: int) -> tuple[dict, Path]:
    from nas.campaign import run_campaign
    from nas.campaign.table import read_table

    space = tmp / f"{mode}.yaml"
    base = ROOT / "spaces/presets/convnextv2_atto.yaml"
    space.write_text(SPACE.format(base=base, sampler="tpe"))
    folder = tmp / mode
    folder.mkdir()
    sampler = _Sampler(folder)
    sampler.start()
    t0 = time.perf_counter()
    try:
        run_campaign(
            mode, str(space), name=mode, runner_path=str(tmp / "runner.yaml"), n=n, seed=0,
            results=str(tmp), progress=True,
        )  # fmt: skip
    finally:
        sampler.done.set()
        sampler.join()
    wall = time.perf_counter() - t0
    df = read_table(folder)
    statuses = df["status"].value_counts().to_dict()
    curve = _curve(df, sampler.samples, marks, window)
    figures = {"trials": len(df), "wall_s": wall, "statuses": statuses, "curve": curve}
    # measure only: no row trained or has an accuracy; every row has its measured costs
    figures |= {"epochs_max": int(df["epochs"].max()), "val_acc_rows": int(df["val_acc"].count())}
    figures["costs_missing"] = int(df[["params_m", "macs_m"]].isna().any(axis=1).sum())
    return figures, folder


def suggest_times(folder: Path, marks: list[int], *, asks: int = 5) -> tuple[list[dict], dict]:
    """Milliseconds per suggestion of nas's TPE, Optuna's default TPE and NSGA-II, with the first
    k finished trials of the campaign's study (see the module docstring); and the count of the
    study's trials by state."""
    import optuna

    from nas.campaign.search import _DefineByRun, _optuna_storage, make_sampler
    from nas.campaign.table import campaign_space

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = _optuna_storage(folder)
    (summary,) = optuna.get_all_study_summaries(storage)
    old = optuna.load_study(study_name=summary.study_name, storage=storage)
    done = [t for t in old.trials if t.state.is_finished()]
    states: dict[str, int] = {}
    for t in done:
        states[t.state.name] = states.get(t.state.name, 0) + 1
    space = _DefineByRun(campaign_space(folder))
    out = []
    samplers = {
        "tpe": lambda: make_sampler("tpe", 0),  # nas's: multivariate, grouped
        "tpe_optuna_default": lambda: optuna.samplers.TPESampler(seed=0),
        "nsga2": lambda: make_sampler("nsga2", 0),
    }
    for name, make in samplers.items():
        study = optuna.create_study(directions=old.directions, sampler=make())
        have = 0
        for k in (m for m in marks if m <= len(done)):
            study.add_trials(done[have:k])
            have = k
            times = []
            for _ in range(asks):
                t0 = time.perf_counter()
                trial = study.ask()
                space(trial)
                times.append(time.perf_counter() - t0)
                study.tell(trial, state=optuna.trial.TrialState.FAIL)  # ignored by the sampler
            out.append({"sampler": name, "trials": k, "suggest_ms": 1e3 * sorted(times)[asks // 2]})
    return out, states


def _resume_and_grow(tmp: Path, folder: Path, n: int, more: int) -> dict:
    from nas.campaign import resume_campaign, run_campaign
    from nas.campaign.table import read_table

    t0 = time.perf_counter()
    resume_campaign(folder, progress=False)
    resume_s = time.perf_counter() - t0
    started = time.time()
    run_campaign(
        "survey", str(tmp / "survey.yaml"), name="survey", runner_path=str(tmp / "runner.yaml"),
        n=n + more, seed=0, results=str(tmp), progress=False,
    )  # fmt: skip
    df = read_table(folder)
    new = df[df["started_at"] >= started]
    first = float(new["started_at"].min()) - started if len(new) else None
    return {"resume_s": resume_s, "grow_first_trial_s": first, "grown_rows": len(df)}


def bench_scale(*, n: int = 2000, marks: list[int] | None = None, window: int = 50) -> dict:
    """The survey and the search of ``n`` measure-only trials, the suggestion times and the
    resume figures (see the module docstring)."""
    import ray

    from nas.campaign import init_ray
    from nas.campaign.runner import Runner

    marks = sorted(set(marks or [100, 500, 1000, 2000]) | {n})
    marks = [m for m in marks if m <= n]
    started_ray = not ray.is_initialized()
    if started_ray:
        init_ray(Runner(num_cpus=2, object_store_mb=128))
    try:
        with tempfile.TemporaryDirectory() as name:
            tmp = Path(name)
            (tmp / "runner.yaml").write_text(RUNNER)
            survey, folder = _campaign("survey", tmp, n, marks, window)
            search, search_folder = _campaign("search", tmp, n, marks, window)
            search["suggest"], search["optuna_states"] = suggest_times(search_folder, marks)
            survey |= _resume_and_grow(tmp, folder, n, more=2)
    finally:
        if started_ray:
            ray.shutdown()
    return {"n": n, "marks": marks, "window": window, "survey": survey, "search": search}


def _at(curve: list[dict], key: str, k: int):
    return next((c[key] for c in curve if c["trials"] == k), None)


def bench(*, quick: bool, device: str = "cpu") -> dict:
    """``nas bench scale``: 2,000 trials (quick: 300) and the issue's targets."""
    n = 300 if quick else 2000
    marks = [50, 100, 200, 300] if quick else [100, 500, 1000, 2000]
    res = bench_scale(n=n, marks=marks)
    targets = []
    for mode in ("survey", "search"):
        curve = res[mode]["curve"]
        first, last = _at(curve, "wall_per_trial_s", 100), _at(curve, "wall_per_trial_s", n)
        ratio = last / first if first and last else None
        text = f"{mode}: wall per trial at trial {n} / at trial 100 <= 2"
        targets.append(target(f"{mode}_wall_growth", ratio, text, ratio is not None and ratio <= 2))
    grow = res["survey"]["grow_first_trial_s"]
    text = f"growing the finished {n}-trial survey: its first new trial starts within 60 s"
    targets.append(target("grow_first_trial_s", grow, text, grow is not None and grow <= 60))
    text = f"nas resume of the finished {n}-trial survey (nothing left to run), within 60 s"
    resume = res["survey"]["resume_s"]
    targets.append(target("resume_s", resume, text, resume <= 60))
    for name in ("tpe", "tpe_optuna_default", "nsga2"):
        ms = next((s["suggest_ms"] for s in res["search"]["suggest"]
                   if s["sampler"] == name and s["trials"] == n), None)  # fmt: skip
        targets.append(target(f"{name}_suggest_ms_at_{n}", ms, "information; no target", None))
    notes = [f"cpu_count {os.cpu_count()}; trials skip training (train.epochs: 0)"]
    return {"figures": res, "targets": targets, "notes": notes}
