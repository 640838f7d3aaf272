"""The lever table of a backbone variants file (rows of `backbone_variants.py --task`): per
variant (its `label` where the row has one, else its overrides), how training ended, validation
and test Recall@10 / NDCG@10 (beam 20, every user) and the training minutes, each test number
also as a share of TIGER's published Beauty row.

Usage: python reports/scripts/lever_table.py reports/beauty-backbone-variants-cpu.jsonl
"""

from __future__ import annotations

import json
import sys

from tabulate import tabulate

from benchmark.app.published import published_rows
from tasks import get_task


def lever_rows(path: str) -> list[list[str]]:
    tiger = published_rows(get_task("amazon14-beauty-fragrance-loo"))["TIGER (published)"]
    rows = []
    for line in open(path):
        r = json.loads(line)
        (vr, vn), (tr, tn) = r["valid_b20"], r["test_b20"]
        rows.append([
            r.get("label", r["variant"]), r["backbone"], r["seed"],
            f"{r['epochs']} ({r['stopped_by']})", r["kept_epoch"], f"{vr:.4f}", f"{vn:.4f}",
            f"{tr:.4f} ({tr / tiger['recall@10']:.2f})", f"{tn:.4f} ({tn / tiger['ndcg@10']:.2f})",
            f"{r['train_seconds'] / 60:.1f}",
        ])  # fmt: skip
    return rows


if __name__ == "__main__":
    headers = ["variant", "backbone", "seed", "epochs (ended by)", "kept", "valid R@10",
               "valid N@10", "test R@10 (of TIGER)", "test N@10 (of TIGER)", "minutes"]  # fmt: skip
    print(
        tabulate(lever_rows(sys.argv[1]), headers=headers, tablefmt="github", disable_numparse=True)
    )
