"""Draws the README's figures from the Table 3 results: `python docs/figures/make_figures.py`.

* `confusion_table3.png`: confusion matrices (row %) of the student without
  KD and of STMD, all seeds pooled, from the committed
  `results/table3/synthetic/table3.json`. Same as

      stmd plot confusion results/table3/synthetic/table3.json \\
          --rows "Student (no KD),Ours (STMD)" --out docs/figures/confusion_table3.png

* `sleep_graphs.png`: mean sleep graph per stage of the Table 3 teacher and
  the STMD student (seed 0) on two unseen synthetic nights. It needs the
  trained models, which `stmd table 3` leaves under `runs/` (not committed);
  the script prints the equivalent `stmd plot graphs ...` command.
"""

import json
import os
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
TABLE = ROOT / "results" / "table3" / "synthetic" / "table3.json"
OUT = pathlib.Path(__file__).resolve().parent


def model_of(table, row, seed=0):
    (run,) = [r for r in table["runs"] if r["row"] == row and r["seed"] == seed]
    return ROOT / run["model"]


def main():
    from stmd_keras.cli import main as stmd

    os.chdir(ROOT)  # the table's model paths are relative to the repository
    rows = "Student (no KD),Ours (STMD)"
    stmd(["plot", "confusion", str(TABLE.relative_to(ROOT)), "--rows", rows, "--dpi", "80",
          "--title", "Table 3, synthetic ISRUC-III stand-in: 3 seeds pooled",
          "--out", str((OUT / "confusion_table3.png").relative_to(ROOT))])

    table = json.loads(TABLE.read_text())
    teacher, student = model_of(table, "Teacher"), model_of(table, "Ours (STMD)")
    missing = [str(p.relative_to(ROOT)) for p in (teacher, student) if not p.exists()]
    command = ["plot", "graphs", str(teacher.relative_to(ROOT)), str(student.relative_to(ROOT)),
               "--names", "Teacher", "Student (STMD)", "--nights", "2", "--dpi", "80",
               "--title", "Mean sleep graph per stage (2 unseen synthetic nights)",
               "--out", str((OUT / "sleep_graphs.png").relative_to(ROOT))]
    if missing:
        sys.exit(f"No trained models {missing}: run `stmd table 3` first (it writes them under runs/).")
    print("stmd " + " ".join(f'"{a}"' if " " in a else a for a in command))
    stmd(command)


if __name__ == "__main__":
    main()
