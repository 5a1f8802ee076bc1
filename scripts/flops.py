"""The matmul work of a whole run, per stage, and the floor it sets on this machine.

    python scripts/flops.py recipes/quickstart.yaml [key=value ...]
    python scripts/flops.py recipes/quickstart.yaml --walls runs/quickstart   # + achieved fraction of peak

Runs the recipe in this process into a fresh temporary `output_dir` (models from the model cache, prepared
first if they are not), every stage unit inside `torch.utils.flop_counter.FlopCounterMode`, and prints for each
unit the FLOPs of its matrix products (mm, addmm, bmm, baddbmm: forward, backward and the heads' Newton
solves alike; 2 FLOPs per multiply-add) and the seconds they need at this machine's fp32 `torch.mm` peak
(measured as `bench.py --peak` does, 2048 x 2048 with the run's torch threads, before and after the run:
the larger; float64 and bf16 peaks are printed beside it). The sum is a floor for the run's wall time in
fp32 at 100% of the peak, before any elementwise work, data handling, model preparation or Python: what no
kernel tuning can beat without less work or lower precision.

The counted run's own wall times are not reported (the counter adds Python work to every aten op).
`--walls RUN_DIR` reads a normal run's per-stage wall times from RUN_DIR's results.json (the same recipe,
run with `w2s run`) and adds each stage's achieved GFLOP/s and fraction of the fp32 peak.
Attention inside torch's fused CPU sdpa kernel is not in torch's FLOP table and is not counted, so the
floor is conservative (for SmolLM2 scoring with packed queries that kernel took 16% of the time measured
with torch's profiler; matrix products took 74%).
"""

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import mm_peak  # noqa: E402  (the same peak measurement as bench.py --peak)


def count(recipe_path: str, overrides: list[str]) -> dict[str, float]:
    """FLOPs of each stage unit of the recipe, run into a fresh temporary output_dir."""
    from pipeline.config.loading import load_recipe
    from pipeline.runner import Runner
    from pipeline.stages.base import label

    flops: dict[str, float] = {}
    real = Runner.run_stage

    def counted(self, stage, unit):
        with FlopCounterMode(display=False) as counter:
            result = real(self, stage, unit)
        flops[label(self.recipe, stage.name, unit)] = counter.get_total_flops()
        return result

    os.environ.setdefault("W2S_NO_PROGRESS", "1")  # as `w2s run --no-progress`: the stage lines only
    with tempfile.TemporaryDirectory(prefix="w2s-flops-") as out:
        recipe = load_recipe(recipe_path, [*overrides, f"output_dir={out}"])
        Runner.run_stage = counted
        try:
            Runner(recipe, progress=False).run()
        finally:
            Runner.run_stage = real
    return flops


def walls(run_dir: Path) -> dict[str, float]:
    """Per-unit wall seconds of a finished run (its results.json, as in its report's Run table)."""
    from pipeline.errors import UserError

    if not (run_dir / "results.json").is_file():
        raise UserError(f"--walls {run_dir}: no results.json there",
                        "pass a finished run's folder, e.g. runs/quickstart")
    stages = json.loads((run_dir / "results.json").read_text())["stages"]
    return {name: float(t["wall_time_s"]) for name, t in stages.items() if t.get("wall_time_s") is not None}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("recipe")
    ap.add_argument("overrides", nargs="*", help="key=value overrides, as for w2s run")
    ap.add_argument("--walls", type=Path, help="a finished run of the same recipe: adds achieved fractions of peak")
    ap.add_argument("--json", type=Path, help="also write the numbers to this file")
    a = ap.parse_args(argv)
    from pipeline.config.loading import load_recipe

    load_recipe(a.recipe, a.overrides)  # a bad recipe or a wrong folder fails at once, not after the peaks
    wall = walls(a.walls) if a.walls else {}
    dtypes = {"fp32": torch.float32, "float64": torch.float64, "bf16": torch.bfloat16}
    before = {k: mm_peak(d) for k, d in dtypes.items()}
    flops = count(a.recipe, a.overrides)
    peaks = {k: max(before[k], mm_peak(d)) for k, d in dtypes.items()}  # the peak drifts: the larger of two
    peak = peaks["fp32"]
    print(f"torch.mm peak, {torch.get_num_threads()} threads: "
          + ", ".join(f"{k} {v / 1e9:.0f} GFLOP/s" for k, v in peaks.items()))
    head = f"{'stage':34s} {'GFLOP':>9s} {'s at peak':>10s}"
    print(head + (f" {'wall s':>8s} {'GFLOP/s':>8s} {'of peak':>8s}" if wall else ""))
    for name, f in flops.items():
        line = f"{name:34s} {f / 1e9:9.0f} {f / peak:10.1f}"
        if name in wall and wall[name] > 0:
            line += f" {wall[name]:8.1f} {f / wall[name] / 1e9:8.1f} {f / wall[name] / peak:8.0%}"
        print(line)
    total = sum(flops.values())
    line = f"{'total':34s} {total / 1e9:9.0f} {total / peak:10.1f}"
    w = sum(wall.get(n, 0.0) for n in flops)  # 0 when --walls names a run of another recipe
    if w > 0:
        line += f" {w:8.1f} {total / w / 1e9:8.1f} {total / w / peak:8.0%}"
    print(line)
    if a.json:
        a.json.write_text(json.dumps({"peaks_flop_s": peaks, "threads": torch.get_num_threads(),
                                      "stage_flops": flops, "stage_wall_s": wall}, indent=1))
    return 0


if __name__ == "__main__":
    from pipeline.errors import UserError

    try:
        sys.exit(main())
    except UserError as e:  # a bad recipe or override: the message w2s run gives, exit code 2
        print(f"flops.py: error: {e}", file=sys.stderr)
        sys.exit(2)
