"""``healnet import-features``: bring patch features made by TRIDENT, CLAM, STAMP or slideflow."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from healnet_cli.cli.common import (
    ConfigOpt,
    ForceOpt,
    JsonOpt,
    OnErrorOpt,
    ShardOpt,
    WorkdirOpt,
    app_state,
    check_on_error,
    cli_errors,
    make_console,
    resolved_options,
)

ORDER = 21

_HELP = {
    "source": "The other tool's features folder (TRIDENT features_<encoder>/ or its job folder, CLAM feat_dir, "
    "STAMP <extractor>-<hash>/, slideflow bags folder).",
    "format": "trident, clam, stamp or slideflow.",
    "encoder": "Encoder name: a preset (uni, uni2-h, ...) or the tool's own (uni_v1); required for CLAM.",
    "name": "Features folder name: features/NAME/ (default: the encoder name).",
    "mpp": "Patch µm/px, for sources that do not record it.",
    "patch_size": "Patch size in pixels, for sources that do not record it.",
    "slide_mpp": "Level-0 µm/px of slides not in --slides-csv (STAMP µm and slideflow centre coordinates need it).",
    "slides_csv": "CSV with slide_id, case_id (patient) and optional mpp columns (STAMP's FILENAME/PATIENT work too).",
    "coords_dir": "Folder of separate coordinate files: CLAM patches/, TRIDENT patches/ (for .pt features).",
    "dtype": "Stored feature dtype: float16 or float32.",
}


def register(app: typer.Typer) -> None:
    @app.command("import-features")
    def import_features(
        ctx: typer.Context,
        source: Annotated[Path, typer.Argument(help=_HELP["source"], show_default=False)],
        config: ConfigOpt = None,
        workdir: WorkdirOpt = Path("healnet_work"),
        format: Annotated[str | None, typer.Option("--format", "-f", help=_HELP["format"], show_default=False)] = None,
        encoder: Annotated[
            str | None, typer.Option("--encoder", "-e", help=_HELP["encoder"], show_default=False)
        ] = None,
        name: Annotated[str | None, typer.Option("--name", help=_HELP["name"], show_default=False)] = None,
        mpp: Annotated[float | None, typer.Option("--mpp", help=_HELP["mpp"], show_default=False)] = None,
        patch_size: Annotated[
            int | None, typer.Option("--patch-size", help=_HELP["patch_size"], show_default=False)
        ] = None,
        slide_mpp: Annotated[
            float | None, typer.Option("--slide-mpp", help=_HELP["slide_mpp"], show_default=False)
        ] = None,
        slides_csv: Annotated[
            Path | None, typer.Option("--slides-csv", help=_HELP["slides_csv"], show_default=False)
        ] = None,
        coords_dir: Annotated[
            Path | None, typer.Option("--coords-dir", help=_HELP["coords_dir"], show_default=False)
        ] = None,
        dtype: Annotated[str, typer.Option("--dtype", help=_HELP["dtype"])] = "float16",
        force: ForceOpt = False,
        shard: ShardOpt = None,
        on_error: OnErrorOpt = "continue",
        json_output: JsonOpt = False,
    ) -> None:
        """Write one feature matrix per slide of another tool's features to <workdir>/features/<name>/.

        Reads TRIDENT/CLAM .h5 (and .pt), STAMP .h5 and slideflow .pt + .index.npz files without unpickling, converts
        coordinates to level-0 pixels (STAMP µm and slideflow tile centres need the slide mpp: --slides-csv mpp column
        or --slide-mpp), and records the source, encoder, dimension, patch size and mpp. `healnet cohort` and `healnet
        train --extractor NAME` use them like extracted features.

        A slide in the wrong format, with differing feature/coordinate row counts, NaN/inf features, or another
        dimension or encoder than the rest of the import fails with the reason; the others are imported (exit 3).
        Reruns skip slides already imported with the same options.
        """
        with cli_errors(ctx):
            from healnet_cli.core.config import write_resolved_config
            from healnet_cli.core.errors import InputError
            from healnet_cli.stages.import_features.config import ImportConfig
            from healnet_cli.stages.import_features.run import run_import

            console = make_console(ctx, json_output=json_output)
            if not format:
                raise InputError("--format is required: one of trident, clam, stamp, slideflow")
            cfg = ImportConfig(
                workdir=Path(workdir),
                source=Path(source),
                format=format.strip().lower(),
                encoder=encoder,
                name=name,
                mpp=mpp,
                patch_size=patch_size,
                slide_mpp=slide_mpp,
                slides_csv=slides_csv,
                coords_dir=coords_dir,
                dtype=dtype,
                force=force,
                shard=shard,
                on_error=check_on_error(on_error),
            )
            result = run_import(cfg, console=console, debug=app_state(ctx).debug)
            values, sources = resolved_options(ctx)
            write_resolved_config(result.folder, values, command="import-features", sources=sources)
        if result.exit_code != 0:
            raise typer.Exit(result.exit_code)
