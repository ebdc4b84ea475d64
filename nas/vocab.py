"""The project's vocabularies, each defined once and imported everywhere else.

Architecture names (macros, block styles, mixers, norms), the measured columns of the campaign
table that objectives and constraints may name (units in the names: ``_m`` = millions, ``_ms`` =
milliseconds, ``_mb`` = MiB), the trial statuses, and the samplers and schedulers a campaign can
use. This module imports nothing from ``nas``: every stage of the pipeline may read it.
"""

from __future__ import annotations

__all__ = [
    "ATTENTION_MIXERS",
    "BLOCKS",
    "COLUMNS",
    "COST_COLUMNS",
    "DEFAULT_SENSE",
    "DW_MIXERS",
    "ERF_COLUMNS",
    "FEATDIV_COLUMNS",
    "FINISHED_STATUSES",
    "GLOBAL_MIXERS",
    "MACROS",
    "METRIC_COLUMNS",
    "MIXERS",
    "NORMS",
    "PROXIES",
    "REVCOL_ALPHAS",
    "SAMPLERS",
    "SCHEDULERS",
    "STAGE_FIELDS",
    "STATUSES",
]

# ---------------------------------------------------------------------- architecture
MACROS = ("plain", "revcol")
BLOCKS = ("convnext", "replk", "container")  # block styles (also stem, downsample and head styles)
NORMS = ("ln", "bn")
# RevCol's alpha: the official raw parameter (|alpha| clamped to >= 1e-3, sign kept, weight decay)
# or nas's bounded one (0.25 + softplus(theta), no decay)
REVCOL_ALPHAS = ("bounded", "official")
MIXERS: dict[str, str] = {
    "static": "depthwise K x K conv on V (static, local affinity)",
    "dynamic": "multi-head softmax self-attention (dynamic, dense affinity)",
    "mixed": "sigmoid-gated blend of attention and a depthwise conv on the same V (Container)",
    "static_global": "learnable N x N token-mixing matrix shared across channels (MLP-Mixer)",
    "container": "the paper's Container: (alpha softmax(QK^T / sqrt(d)) + beta A_static) V per "
    "head on the same V, alpha and beta learnable scalars, A_static a learnable N x N matrix",
}
DW_MIXERS = ("static", "mixed")  # contain a depthwise conv (kernel / small kernel apply)
ATTENTION_MIXERS = ("dynamic", "mixed", "container")  # multi-head attention (head_dim applies)
GLOBAL_MIXERS = ("static_global", "container")  # a learnable N x N matrix: a fixed token grid

# per-stage tuple field of a Candidate -> the singular name used in flat params (stage.<i>.<name>)
STAGE_FIELDS = {
    "depths": "depth",
    "widths": "width",
    "kernels": "kernel",
    "small_kernels": "small_kernel",
    "mixers": "mixer",
    "mlp_ratios": "mlp_ratio",
}

# ---------------------------------------------------------------------- measured columns
# Known before training (constraints on these are checked before anything trains; infeasible,
# never-trained rows have them too).
COST_COLUMNS = (
    "params_m",
    "params_m_deploy",
    "macs_m",
    "macs_m_deploy",
    "latency_ms_p50",
    "latency_ms_p90",
    "latency_rel",  # latency / the reference's, timed in the same rounds (nas.measure.latency)
    "latency_pred_ms",  # predicted by a fitted latency model (nas.measure.latency_model)
    "train_saved_mb",
    "train_peak_mb",
)
# Known after (or during) training.
METRIC_COLUMNS = ("val_acc", "val_loss", "train_loss", "epoch_s", "images_per_s")
COLUMNS = COST_COLUMNS + METRIC_COLUMNS

# Zero-cost proxies (nas.measure.proxies), measured at init; larger is better for each.
PROXIES = ("synflow", "grad_norm", "snip", "naswot")
# ERF high-contribution area ratios (nas.measure.erf), after training; smaller: more concentrated.
ERF_COLUMNS = ("erf_r20", "erf_r30", "erf_r50", "erf_r99")
# Feature diversity per stage (nas.measure.featdiv), after training; 0: collapsed channels.
FEATDIV_COLUMNS = ("featdiv_s0", "featdiv_s1", "featdiv_s2", "featdiv_s3")

DEFAULT_SENSE = {c: "min" for c in COLUMNS} | {"val_acc": "max", "images_per_s": "max"}

# ---------------------------------------------------------------------- campaigns
# stopped: by the scheduler; screened: left out by a funnel's pre-screen (never trained)
STATUSES = ("ok", "stopped", "infeasible", "diverged", "oom", "error", "screened")
# statuses whose work is final: the same run key is never run again (error and oom may be retried)
FINISHED_STATUSES = ("ok", "infeasible", "diverged")
SAMPLERS = ("tpe", "nsga2", "gp", "random")
# hyperband is refused (nas.campaign.runner): Ray's HyperBandScheduler stops nothing in a search
SCHEDULERS = ("asha",)
