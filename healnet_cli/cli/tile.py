"""``healnet tile``: slides -> tissue masks and patch coordinates at a physical resolution."""

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

ORDER = 10


def register(app: typer.Typer) -> None:
    @app.command("tile")
    def tile(
        ctx: typer.Context,
        slides: Annotated[
            list[Path] | None,
            typer.Argument(help="Slide files or folders (searched recursively).", show_default=False),
        ] = None,
        config: ConfigOpt = None,
        workdir: WorkdirOpt = Path("healnet_work"),
        slides_csv: Annotated[
            Path | None,
            typer.Option(
                "--slides-csv", help="CSV with columns path, optional case_id, optional mpp.", show_default=False
            ),
        ] = None,
        mpp: Annotated[float, typer.Option("--mpp", help="Target resolution of the patches (µm/px; 0.5 ≈ 20×).")] = 0.5,
        patch_size: Annotated[int, typer.Option("--patch-size", help="Patch side in pixels at --mpp.")] = 256,
        overlap: Annotated[
            int, typer.Option("--overlap", help="Overlap of neighbouring patches in pixels at --mpp.")
        ] = 0,
        min_tissue: Annotated[
            float, typer.Option("--min-tissue", help="Keep patches whose tissue fraction is at least this.")
        ] = 0.5,
        min_area: Annotated[
            float, typer.Option("--min-area", help="Drop tissue pieces (and fill holes) smaller than this, in µm².")
        ] = 10_000.0,
        mpp_csv: Annotated[
            Path | None,
            typer.Option(
                "--mpp-csv", help="CSV with columns slide_id, mpp: overrides the slides' own mpp.", show_default=False
            ),
        ] = None,
        default_mpp: Annotated[
            float | None,
            typer.Option(
                "--default-mpp", help="mpp for slides whose metadata has none (else they fail).", show_default=False
            ),
        ] = None,
        seg_mpp: Annotated[
            float, typer.Option("--seg-mpp", help="Resolution of the tissue segmentation (µm/px, about 8-16).")
        ] = 16.0,
        export: Annotated[
            list[str] | None,
            typer.Option(
                "--export",
                help="Extra outputs: clam (CLAM .h5), geojson (QuPath tissue contours); comma-separated.",
                show_default=False,
            ),
        ] = None,
        force: ForceOpt = False,
        shard: ShardOpt = None,
        on_error: OnErrorOpt = "continue",
        json_output: JsonOpt = False,
    ) -> None:
        """Find tissue and lay a patch grid at a physical resolution on each slide.

        Writes <workdir>/tiles/<slide_id>.parquet (level-0 coordinates + tissue fraction), a QC image
        <slide_id>.qc.png, a thumbnail and a status table. Slides already tiled with the same options
        are skipped. Exit codes: 0 all done, 3 some slides failed, 2 bad input.
        """
        with cli_errors(ctx):
            from healnet_cli.cli.common import require_paths
            from healnet_cli.core.errors import InputError
            from healnet_cli.stages.tile.config import TileConfig, parse_exports
            from healnet_cli.stages.tile.run import run

            console = make_console(ctx, json_output=json_output)
            if not slides and slides_csv is None:
                raise InputError("no slides given; pass slide files or folders, or --slides-csv FILE")
            require_paths(list(slides or []), "slide path(s)")
            cfg = TileConfig(
                slides=tuple(slides or ()),
                workdir=Path(workdir),
                slides_csv=slides_csv,
                mpp=mpp,
                patch_size=patch_size,
                overlap=overlap,
                min_tissue=min_tissue,
                min_area=min_area,
                mpp_csv=mpp_csv,
                default_mpp=default_mpp,
                seg_mpp=seg_mpp,
                export=parse_exports(export),
                force=force,
                shard=shard,
                on_error=check_on_error(on_error),
            )
            values, sources = resolved_options(ctx)
            values["export"] = list(cfg.export)
            code = run(cfg, console=console, debug=app_state(ctx).debug, resolved=values, sources=sources)
        if code != 0:
            raise typer.Exit(code)
