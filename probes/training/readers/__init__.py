"""Log readers: each returns a normalized `Series` (step -> loss, grad_norm, learning_rate, epoch, eval
metrics, plus run metadata). `read_log` picks the reader by name; a folder (mlruns/, a W&B run) may hold
several runs, so it returns (path, Series) pairs."""

from __future__ import annotations

from pathlib import Path

from probes.training.series import Series


def read_log(path: Path, overrides: dict[str, str] | None = None) -> list[tuple[Path, Series]]:
    name = path.name.lower()
    if path.is_dir():
        if path.parent.name == "wandb" or ((path / "files").is_dir() and any(path.glob("*.wandb"))):
            from probes.training.readers.wandb import read_wandb_run

            return [(path, read_wandb_run(path, overrides))]
        from probes.training.readers.mlflow import read_mlflow_run, run_dirs

        runs = run_dirs(path)
        if not runs:
            s = Series(format="mlflow")
            s.problem("doc", "", "no MLflow run folders (meta.yaml + metrics/) found")
            return [(path, s)]
        return [(r, read_mlflow_run(r, overrides)) for r in runs]
    if name.startswith("events.out.tfevents"):
        from probes.training.readers.tfevents import read_tfevents

        return [(path, read_tfevents(path, overrides))]
    if name.endswith(".jsonl"):
        from probes.training.readers.jsonl import read_jsonl

        return [(path, read_jsonl(path, overrides))]
    if name.endswith((".csv", ".tsv")):
        from probes.training.readers.csvlog import read_csv

        return [(path, read_csv(path, overrides))]
    from probes.training.readers.hf import read_trainer_state

    return [(path, read_trainer_state(path, overrides))]
