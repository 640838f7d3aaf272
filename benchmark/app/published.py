"""Published figures on the exact data and protocol some standard tasks reproduce, printed beside
ours by `tracer-bench train --sasrec` so that the backbone can be set beside a paper's table.
Keyed by the pinned checksum of the interaction file and the split protocol; only figures whose
source is given are listed."""

from __future__ import annotations

from tasks.spec import TaskSpec

BEAUTY_2014 = "sha256:ee5a1dbca3c8fb7651322f5b04f7a3965da655d01f6e80d366e4d60ac116b08c"
# TIGER (Rajput et al., NeurIPS 2023), Table 1: Amazon Beauty (S3-Rec's 5-core split), leave-one-
# out, full ranking over the catalogue
PUBLISHED: dict[tuple[str, str], dict[str, dict[str, float]]] = {
    (BEAUTY_2014, "leave-one-out"): {
        "TIGER (published)": {"recall@10": 0.0648, "ndcg@10": 0.0384},
        "SASRec (published in TIGER)": {"recall@10": 0.0605, "ndcg@10": 0.0318},
    },
}


def published_rows(spec: TaskSpec) -> dict[str, dict[str, float]]:
    """The published rows for this task's data and protocol ({} when none)."""
    for checksum in spec.dataset.checksums.values():
        rows = PUBLISHED.get((checksum, spec.split.protocol))
        if rows:
            return rows
    return {}
