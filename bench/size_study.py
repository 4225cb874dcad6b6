"""RVE-size study: variance of the apparent conductivity of random disk cells against δ/ε.

Theory for periodized random cells: variance ∝ (ε/δ)^d. Marked as a study (minutes), not a test.

    OMP_NUM_THREADS=1 python bench/size_study.py [--realizations 16] [--json bench/results/size_study.json]
"""

import argparse
import json
from pathlib import Path

import hmm_fenics as hf


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--realizations", type=int, default=16)
    parser.add_argument("--json")
    args = parser.parse_args()
    spec = hf.RVESpec("random", 2, fraction=0.3, count=4, mesh_size=0.04, min_gap=0.02)
    conduction = {"matrix": hf.Conductivity(1.0), "inclusion": hf.Conductivity(10.0)}
    study = hf.size_study(
        spec,
        hf.Diffusion(2),
        conduction,
        scales=[1.0, 1.5, 2.0, 3.0],
        realizations=args.realizations,
    )
    for r, n, m, v in zip(study.ratios, study.counts, study.means, study.variances, strict=True):
        print(f"δ/ε = {r:5.2f}  disks {n:3d}  mean k {m:.5f}  variance {v:.3e}")
    print(f"fitted exponent p in variance ∝ (ε/δ)^p: {study.exponent:.2f} (theory: d = 2)")
    if args.json:
        data = {k: getattr(study, k).tolist() for k in ("ratios", "counts", "means", "variances")}
        data["exponent"] = study.exponent
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(data, indent=2) + "\n")


if __name__ == "__main__":
    main()
