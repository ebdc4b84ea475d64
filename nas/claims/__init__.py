"""Claims as campaigns: each space of ``spaces/claims/`` is an ablation whose ``claims:`` block
names the effects that would confirm a paper's claim; ``run_claims`` runs them as ordinary
ablation campaigns (resumable: a rerun skips the finished trials) and reports each with its
verdicts (``nas.report.claims``)."""

from nas.claims.run import CLAIMS_DIR, ClaimRun, claim_spaces, run_claims

__all__ = ["CLAIMS_DIR", "ClaimRun", "claim_spaces", "run_claims"]
