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
    "extractor": "Registry name (see --list) or timm:<model>.",
    "weights": "Local weights: .safetensors, or .pth/.pt/.bin (loaded weights_only).",
    "pretrained": "timm's hub weights (online, or from the hub cache).",
    "random_init": "Random weights (seed 0), for testing; recorded in provenance.",
    "num_workers": "Loader processes reading patches (default from the CPUs this job may use).",
    "compile": "torch.compile the model (pays off on long GPU runs).",
    "export": "none, or clam: also write CLAM-style <slide>.pt (float32 features).",
    "list": "Print the extractor registry and exit.",
}
_WEIGHTS_LABEL = {"any": "--weights | --pretrained | --random-init", "file": "--weights FILE (gated)", "none": "none"}


def register(app: typer.Typer) -> None:
    @app.command("extract")
    def extract(
        ctx: typer.Context,
        config: ConfigOpt = None,
        workdir: WorkdirOpt = Path("healnet_work"),
        extractor: Annotated[str | None, typer.Option("--extractor", "-e", help=_HELP["extractor"], show_default=False)] = None,
        weights: Annotated[Path | None, typer.Option("--weights", help=_HELP["weights"], show_default=False)] = None,
        pretrained: Annotated[bool, typer.Option("--pretrained", help=_HELP["pretrained"])] = False,
        random_init: Annotated[bool, typer.Option("--random-init", help=_HELP["random_init"])] = False,
        batch_size: Annotated[int, typer.Option("--batch-size", help="Patches per forward pass.")] = 64,
        num_workers: Annotated[int | None, typer.Option("--num-workers", help=_HELP["num_workers"], show_default=False)] = None,
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

        Reads the coordinates committed by `healnet tile`, reads each patch at the tile stage's level, resizes it to the model's input and encodes it. Fresh slides (same extractor, weights, transform, precision, dtype and coordinates) are skipped.

        Weights are checked before any slide is opened; there is never a silent random init. `healnet extract --list` shows the registry.
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
                raise InputError("--extractor is required (e.g. resnet50-trunc, stain-texture, timm:<model>); see --list")
            cfg = ExtractConfig(
                workdir=Path(workdir),
                extractor=extractor,
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

    specs = list_specs()
    rows = [
        {
            "name": s.name,
            "dim": s.dim,
            "input_px": s.input_px,
            "weights": _WEIGHTS_LABEL[s.weights],
            "description": s.description,
        }
        for s in specs
    ]
    rows.append(
        {
            "name": "timm:<model>",
            "dim": None,
            "input_px": None,
            "weights": _WEIGHTS_LABEL["any"],
            "description": "any timm architecture, pooled (dim and input from the model)",
        }
    )
    if json_output:
        console.emit_json({"extractors": rows})
        return
    lines = [f"{'name':<16} {'dim':>5} {'input':>6}  {'weights':<42} description"]
    for row in rows:
        dim = "model" if row["dim"] is None else str(row["dim"])
        size = "model" if row["input_px"] is None else f"{row['input_px']}px"
        lines.append(f"{row['name']:<16} {dim:>5} {size:>6}  {row['weights']:<42} {row['description']}")
    print("\n".join(lines), file=console.out, flush=True)
