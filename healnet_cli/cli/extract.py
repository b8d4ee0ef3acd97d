"""``healnet extract``: patch features for every tiled slide, with a timm backbone or offline features."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from healnet_cli.cli.common import (
    ConfigOpt,
    DeviceOpt,
    ForceOpt,
    JsonOpt,
    OnErrorOpt,
    PrecisionOpt,
    ShardOpt,
    WorkdirOpt,
    app_state,
    check_on_error,
    cli_errors,
    make_console,
    resolved_options,
)

ORDER = 20

_HELP = {
    "extractor": "Registry name (see --list), timm:<model> or hf-hub:<org>/<repo>.",
    "encoder_arg": "key=value model keyword for timm:/hf-hub: names (repeatable), e.g. init_values=1e-5, "
    "mlp_layer=SwiGLUPacked; output=cls|cls+mean|pooled picks the output.",
    "name": "Features folder name: features/NAME/ (default: the extractor name).",
    "weights": "Local weights: .safetensors, or .pth/.pt/.bin (loaded weights_only).",
    "pretrained": "Download the weights from the Hugging Face hub (online, or from the hub cache); gated models need "
    "`huggingface-cli login`.",
    "random_init": "Random weights (seed 0), for testing; recorded in provenance.",
    "num_workers": "Loader processes reading patches (default from the CPUs this job may use).",
    "compile": "torch.compile the model (pays off on long GPU runs).",
    "export": "none, or clam: also write CLAM-style <slide>.pt (float32 features).",
    "list": "Print the extractor registry and exit.",
}
_WEIGHTS_LABEL = {"any": "--weights | --pretrained | --random-init", "file": "--weights FILE", "none": "none"}


def register(app: typer.Typer) -> None:
    @app.command("extract")
    def extract(
        ctx: typer.Context,
        config: ConfigOpt = None,
        workdir: WorkdirOpt = Path("healnet_work"),
        extractor: Annotated[
            str | None, typer.Option("--extractor", "-e", help=_HELP["extractor"], show_default=False)
        ] = None,
        encoder_arg: Annotated[
            list[str] | None, typer.Option("--encoder-arg", help=_HELP["encoder_arg"], show_default=False)
        ] = None,
        name: Annotated[str | None, typer.Option("--name", help=_HELP["name"], show_default=False)] = None,
        weights: Annotated[Path | None, typer.Option("--weights", help=_HELP["weights"], show_default=False)] = None,
        pretrained: Annotated[bool, typer.Option("--pretrained", help=_HELP["pretrained"])] = False,
        random_init: Annotated[bool, typer.Option("--random-init", help=_HELP["random_init"])] = False,
        batch_size: Annotated[int, typer.Option("--batch-size", help="Patches per forward pass.")] = 64,
        num_workers: Annotated[
            int | None, typer.Option("--num-workers", help=_HELP["num_workers"], show_default=False)
        ] = None,
        device: DeviceOpt = "auto",
        precision: PrecisionOpt = "auto",
        compile: Annotated[bool, typer.Option("--compile", help=_HELP["compile"])] = False,
        dtype: Annotated[str, typer.Option("--dtype", help="Stored feature dtype: float16 or float32.")] = "float16",
        export: Annotated[str, typer.Option("--export", help=_HELP["export"])] = "none",
        force: ForceOpt = False,
        shard: ShardOpt = None,
        on_error: OnErrorOpt = "continue",
        json_output: JsonOpt = False,
        list_extractors: Annotated[bool, typer.Option("--list", help=_HELP["list"])] = False,
    ) -> None:
        """Write one feature matrix per tiled slide to <workdir>/features/<extractor>/.

        Reads the coordinates committed by `healnet tile`, reads each patch at the tile stage's level, resizes it to
        the model's input and encodes it. Fresh slides (same extractor, weights, transform, precision, dtype and
        coordinates) are skipped.

        Weights are checked before any slide is opened; there is never a silent random init. A features folder holds
        one encoder with one set of weights: other weights are refused unless --name (another folder) or --force
        (replace). `healnet extract --list` shows the registry.
        """
        with cli_errors(ctx):
            console = make_console(ctx, json_output=json_output)
            if list_extractors:
                _print_registry(console, json_output)
                return
            from healnet_cli.core.config import write_resolved_config
            from healnet_cli.core.errors import InputError
            from healnet_cli.stages.extract.config import ExtractConfig
            from healnet_cli.stages.extract.run import run_extract

            if not extractor:
                raise InputError(
                    "--extractor is required (e.g. resnet50-trunc, stain-texture, timm:<model>); see --list"
                )
            cfg = ExtractConfig(
                workdir=Path(workdir),
                extractor=extractor,
                encoder_args=tuple(encoder_arg or ()),
                name=name,
                weights=weights,
                pretrained=pretrained,
                random_init=random_init,
                batch_size=batch_size,
                num_workers=num_workers,
                device=device,
                precision=precision,
                compile=compile,
                dtype=dtype,
                export=export,
                force=force,
                shard=shard,
                on_error=check_on_error(on_error),
            )
            result = run_extract(cfg, console=console, debug=app_state(ctx).debug)
            values, sources = resolved_options(ctx)
            write_resolved_config(result.folder, values, command="extract", sources=sources, shard=result.status.shard)
        if result.exit_code != 0:
            raise typer.Exit(result.exit_code)


def _print_registry(console, json_output: bool) -> None:
    from healnet_cli.extractors import list_specs

    rows = [_registry_row(s) for s in list_specs()]
    rows.append(
        {
            "name": "timm:/hf-hub:",
            "dim": None,
            "input_px": None,
            "output": "pooled (--encoder-arg output=...)",
            "precision": "bf16",
            "train_mpp": None,
            "weights": _WEIGHTS_LABEL["any"],
            "licence": "the model's",
            "get_weights": "",
            "description": "any timm architecture or hub config, with --encoder-arg key=value",
        }
    )
    if json_output:
        console.emit_json({"extractors": rows})
        return
    lines = [f"{'name':<15} {'dim':>5} {'input':>6} {'output':<9} {'prec':<5} {'mpp':>4}  {'licence':<19} description"]
    for row in rows:
        dim = "model" if row["dim"] is None else str(row["dim"])
        size = "model" if row["input_px"] is None else f"{row['input_px']}px"
        mpp = "-" if row["train_mpp"] is None else f"{row['train_mpp']:g}"
        lines.append(
            f"{row['name']:<15} {dim:>5} {size:>6} {row['output'].split(' ')[0]:<9} {row['precision']:<5} {mpp:>4}  "
            f"{row['licence']:<19} {row['description']}"
        )
        if row["get_weights"]:
            lines.append(f"{'':<16}{'gated; ' if row['gated'] else ''}weights: {row['get_weights']}")
    print("\n".join(lines), file=console.out, flush=True)


def _registry_row(spec) -> dict:
    return {
        "name": spec.name,
        "dim": spec.dim,
        "input_px": spec.input_px,
        "output": spec.output,
        "precision": spec.precision,
        "train_mpp": spec.train_mpp,
        "weights": _WEIGHTS_LABEL[spec.weights],
        "licence": spec.licence,
        "get_weights": spec.weights_hint,
        "gated": spec.gated,
        "hub_repo": spec.hub_repo,
        "description": spec.description,
    }
