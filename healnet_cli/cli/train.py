"""``healnet train``: cross-validated multimodal survival training into a run folder."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from healnet_cli.cli.common import (
    ConfigOpt,
    DeviceOpt,
    JsonOpt,
    PrecisionOpt,
    WorkdirOpt,
    cli_errors,
    json_result,
    make_console,
    resolved_options,
)

ORDER = 40


def register(app: typer.Typer) -> None:
    @app.command("train")
    def train(
        ctx: typer.Context,
        config: ConfigOpt = None,
        modalities: Annotated[
            str,
            typer.Option("--modalities", "-m", help="Comma-separated: wsi and/or omics tables (rna, cnv, mut, ...)."),
        ] = "",
        model: Annotated[
            str,
            typer.Option(
                "--model",
                help="healnet, ehpal, abmil, snn, concat, late, coxnet or cox-clinical (clinical covariates only).",
            ),
        ] = "healnet",
        workdir: WorkdirOpt = Path("healnet_work"),
        out: Annotated[
            Path | None,
            typer.Option("--out", "-o", help="Run folder [default: <workdir>/runs/<--name>].", show_default=False),
        ] = None,
        name: Annotated[
            str | None,
            typer.Option(
                "--name",
                help=(
                    "Run name: the run folder is <workdir>/runs/NAME unless --out is given [default: "
                    "<model>-<modalities>-<timestamp>]."
                ),
                show_default=False,
            ),
        ] = None,
        extractor: Annotated[
            str | None,
            typer.Option("--extractor", help="Features folder for wsi (default: the only one).", show_default=False),
        ] = None,
        splits: Annotated[
            Path | None,
            typer.Option(
                "--splits",
                help="Folder of splits_K.csv files (train/val columns; val = test patients).",
                show_default=False,
            ),
        ] = None,
        folds: Annotated[
            int, typer.Option("--folds", help="Number of stratified folds when --splits is not given.")
        ] = 5,
        fold: Annotated[
            int | None,
            typer.Option(
                "--fold",
                help="Train only fold K (SLURM arrays); predictions are gathered when all folds exist.",
                show_default=False,
            ),
        ] = None,
        gather: Annotated[
            bool,
            typer.Option("--gather", help="Only gather fold predictions of --out into predictions.parquet + summary."),
        ] = False,
        require_all: Annotated[
            bool, typer.Option("--require-all", help="Keep only patients with every requested modality.")
        ] = False,
        n_bins: Annotated[
            int, typer.Option("--n-bins", help="Discrete survival bins (quantiles of uncensored training times).")
        ] = 4,
        alpha: Annotated[
            float,
            typer.Option("--alpha", help="Extra weight on uncensored NLL terms (0 = plain likelihood; 0.4 = HEALNet)."),
        ] = 0.4,
        loss: Annotated[str, typer.Option("--loss", help="nll (discrete-time) or cox (partial likelihood).")] = "nll",
        epochs: Annotated[int, typer.Option("--epochs", help="Maximum epochs per fold.")] = 50,
        batch_size: Annotated[int, typer.Option("--batch-size", help="Patients per batch.")] = 32,
        lr: Annotated[
            float, typer.Option("--lr", help="Peak AdamW learning rate (linear warm-up, cosine decay).")
        ] = 5e-4,
        weight_decay: Annotated[
            float, typer.Option("--weight-decay", help="AdamW decoupled weight decay on layer weights.")
        ] = 1e-2,
        warmup_epochs: Annotated[
            int, typer.Option("--warmup-epochs", help="Epochs of linear warm-up (no early stopping during them).")
        ] = 2,
        patience: Annotated[
            int, typer.Option("--patience", help="Epochs without inner-validation improvement before stopping.")
        ] = 10,
        monitor: Annotated[
            str,
            typer.Option(
                "--monitor", help="Early-stopping criterion on the inner validation set: loss (NLL/Cox) or cindex."
            ),
        ] = "loss",
        val_fraction: Annotated[
            float,
            typer.Option("--val-fraction", help="Share of each fold's training patients held out for early stopping."),
        ] = 0.15,
        l1: Annotated[
            float, typer.Option("--l1", help="L1 penalty on layer weights (not norms, biases, latents).")
        ] = 0.0,
        modality_dropout: Annotated[
            float,
            typer.Option(
                "--modality-dropout", help="Per-sample probability of dropping a present modality in training."
            ),
        ] = 0.0,
        max_patches: Annotated[
            int | None,
            typer.Option("--max-patches", help="Random patches per training bag (evaluation uses whole bags)."),
        ] = 4096,
        top_k: Annotated[
            int | None,
            typer.Option(
                "--top-k",
                help=(
                    "Keep the k highest-variance training features per omics modality (clinical keeps all covariates)."
                ),
                show_default=False,
            ),
        ] = None,
        clip: Annotated[float, typer.Option("--clip", help="Clip z-scored omics to ±clip SD (0 = off).")] = 5.0,
        grad_accum: Annotated[int, typer.Option("--grad-accum", help="Batches per optimiser step.")] = 1,
        device: DeviceOpt = "auto",
        precision: PrecisionOpt = "auto",
        seed: Annotated[
            int, typer.Option("--seed", help="Seed of folds, inner validation, initialisation and batching.")
        ] = 0,
        ensemble: Annotated[
            int,
            typer.Option(
                "--ensemble",
                help=(
                    "Networks per fold (seeds and inner-validation draws differ); their hazards are averaged. "
                    "Ignored by coxnet and cox-clinical."
                ),
            ),
        ] = 3,
        resume: Annotated[
            bool,
            typer.Option(
                "--resume",
                help="Continue an interrupted run in --out from the last finished epoch (same run-defining options).",
            ),
        ] = False,
        refit_all: Annotated[
            bool,
            typer.Option(
                "--refit-all",
                help=(
                    "After the folds, also train one model on all patients (epochs: median of the folds' "
                    "early-stopping epochs) for `healnet predict --model refit`."
                ),
            ),
        ] = False,
        compile: Annotated[
            bool,
            typer.Option(
                "--compile",
                help=(
                    "Train through torch.compile (needs a C++ compiler on CPU; the first steps compile for a minute "
                    "or more)."
                ),
            ),
        ] = False,
        hparam: Annotated[
            list[str] | None,
            typer.Option("--hparam", help="Model hyper-parameter KEY=VALUE (repeatable).", show_default=False),
        ] = None,
        json_output: JsonOpt = False,
    ) -> None:
        """Train a survival model per cross-validation fold and write a run folder.

        Writes run.json, config.yaml, env.json, labels.parquet, cohort.json, splits.csv,
        fold_<k>/{checkpoint.pt, history.jsonl, predictions.parquet}, predictions.parquet and
        summary.{json,csv} under --out (and refit/ with --refit-all).
        """
        import os

        # Before torch (and its OpenMP runtime) loads: idle OpenMP threads sleep instead of spinning.
        # Spinning threads made small-model CPU training ~40x slower on shared (oversubscribed) nodes.
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        from healnet_cli.core.errors import InputError
        from healnet_cli.core.workspace import Workspace
        from healnet_cli.stages.train.config import TrainConfig, parse_hparams
        from healnet_cli.stages.train.run import gather_run, run_train

        with cli_errors(ctx):
            console = make_console(ctx, json_output=json_output)
            if gather:
                if out is not None:
                    folder = Path(out)
                elif name is not None:
                    folder = Workspace.at(workdir).runs_dir / name
                else:
                    raise InputError("--gather needs the run: --out RUN_FOLDER or --name NAME (<workdir>/runs/NAME)")
                code, summary = gather_run(folder, console)
            else:
                mods = [m.strip() for m in modalities.split(",") if m.strip()]
                if not mods:
                    raise InputError("--modalities is required, e.g. --modalities rna or --modalities wsi,rna")
                cfg = TrainConfig(
                    modalities=mods,
                    model=model,
                    workdir=Path(workdir),
                    out=out,
                    name=name,
                    extractor=extractor,
                    splits=splits,
                    folds=folds,
                    fold=fold,
                    require_all=require_all,
                    n_bins=n_bins,
                    alpha=alpha,
                    loss=loss,
                    epochs=epochs,
                    batch_size=batch_size,
                    lr=lr,
                    weight_decay=weight_decay,
                    warmup_epochs=warmup_epochs,
                    patience=patience,
                    monitor=monitor,
                    val_fraction=val_fraction,
                    l1=l1,
                    modality_dropout=modality_dropout,
                    max_patches=max_patches,
                    top_k=top_k,
                    clip=clip,
                    grad_accum=grad_accum,
                    device=device,
                    precision=precision,
                    seed=seed,
                    ensemble=ensemble,
                    resume=resume,
                    refit_all=refit_all,
                    compile=compile,
                    hparams=parse_hparams(hparam),
                )
                values, sources = resolved_options(ctx)
                code, summary = run_train(cfg, console, options=values, sources=sources)
            if json_output:
                console.emit_json(json_result(summary, code))
        if code != 0:
            raise typer.Exit(code)
