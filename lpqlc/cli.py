"""The ``lpqlc`` command. Logging is configured here only; modules use ``logging.getLogger(__name__)``."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from lpqlc import __version__
from lpqlc.errors import LpqlcError
from lpqlc.plan import plan_command
from lpqlc.quarter import Quarter, parse_quarters
from lpqlc.regen.cli import app as regen_app

app = typer.Typer(
    name="lpqlc",
    help="Quarterly land cover and RUSLE soil erosion from STAC archives (LP-QLC10), on Dask.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
stack_app = typer.Typer(help="The local data plane: SeaweedFS (S3), PostgreSQL/pgstac, STAC API.", no_args_is_help=True)
app.add_typer(stack_app, name="stack")
k8s_app = typer.Typer(help="Kubernetes manifests rendered from a pipeline config.", no_args_is_help=True)
app.add_typer(k8s_app, name="k8s")
app.add_typer(regen_app, name="regen")
app.command("plan")(plan_command)
console = Console(stderr=True)
out = Console()

DEFAULT_STACK_DIR = Path(".stack")
DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "pipelines" / "sample.yaml"


def _version(value: bool) -> None:
    if value:
        out.print(f"lpqlc {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    verbose: Annotated[int, typer.Option("--verbose", "-v", count=True, help="More logging (-v, -vv).")] = 0,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")] = False,
) -> None:
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # dask.distributed configures its own INFO handlers; keep them at the chosen level
    for name in ("distributed", "distributed.scheduler", "distributed.nanny", "distributed.core", "distributed.http.proxy"):
        logging.getLogger(name).setLevel(level)


def _quarters(spec: str, option: str) -> list[Quarter]:
    try:
        return parse_quarters(spec)
    except ValueError as exc:
        raise LpqlcError(f"{option}: {exc}") from None


def _progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[last]}"),
        console=console,
    )


def _ticker(bar: Progress, label: str, prefix: str = "") -> Callable[[str, int, int], None]:
    """A new bar task and the ``progress(stage, done, total)`` callback that drives it."""
    task = bar.add_task(label, total=None, last="")

    def tick(stage: str, done: int, total: int) -> None:
        bar.update(task, description=f"{prefix}{stage}", completed=done, total=total, last="")

    return tick


# ------------------------------------------------------------------------------------------ config
@app.command("check-config")
def check_config(config: Annotated[Path, typer.Argument(help="Pipeline YAML.")]) -> None:
    """Validate a pipeline YAML and print its resolved settings."""
    from lpqlc.config import load_config

    cfg = load_config(config)
    out.print_json(cfg.model_dump_json(exclude={"science"}))
    out.print(f"[green]{config}: valid[/] ({len(cfg.quarters)} quarters, {cfg.quarters[0]}–{cfg.quarters[-1]})")


# ------------------------------------------------------------------------------------------- stack
@stack_app.command("up")
def stack_up(
    dir: Annotated[Path, typer.Option("--dir", help="Where the servers keep data, logs and state.")] = DEFAULT_STACK_DIR,
    s3_port: Annotated[int | None, typer.Option(help="S3 port (default: a free one).")] = None,
    pg_port: Annotated[int | None, typer.Option(help="PostgreSQL port (default: a free one).")] = None,
    api_port: Annotated[int | None, typer.Option(help="STAC API port (default: a free one).")] = None,
    bucket: Annotated[str, typer.Option(help="Bucket created on the S3 server.")] = "lpqlc",
) -> None:
    """Start SeaweedFS, PostgreSQL + pgstac and stac-fastapi-pgstac on 127.0.0.1."""
    from lpqlc.stack import LocalStack

    stack = LocalStack(dir)
    with console.status("starting SeaweedFS, PostgreSQL/pgstac and the STAC API…"):
        stack.up(s3_port=s3_port, pg_port=pg_port, api_port=api_port, bucket=bucket)
    _print_status(stack)


@stack_app.command("status")
def stack_status(
    dir: Annotated[Path, typer.Option("--dir", help="The stack's folder.")] = DEFAULT_STACK_DIR,
) -> None:
    """Print each service's endpoint, whether it answers, and its log."""
    from lpqlc.stack import LocalStack

    stack = LocalStack(dir)
    if stack.load_state() is None:
        console.print(f"no stack in {dir.absolute()}: start one with `lpqlc stack up --dir {dir}`")
        raise typer.Exit(1)
    if not _print_status(stack):
        raise typer.Exit(1)


@stack_app.command("down")
def stack_down(
    dir: Annotated[Path, typer.Option("--dir", help="The stack's folder.")] = DEFAULT_STACK_DIR,
    purge: Annotated[bool, typer.Option(help="Also delete the servers' data.")] = False,
) -> None:
    """Stop every service of the stack (keeping its data unless --purge)."""
    from lpqlc.stack import LocalStack

    known = LocalStack(dir).down(purge=purge)
    out.print("stopped" + (" and purged" if purge else "") if known else f"no stack was running in {dir}")


def _print_status(stack: object) -> bool:
    from lpqlc.stack import LocalStack

    assert isinstance(stack, LocalStack)
    st = stack.load_state()
    assert st is not None
    status = stack.service_status(st)
    out.print(f"lpqlc stack in {stack.dir}", soft_wrap=True)
    for name, s in status.items():
        state = "[green]up[/]" if s["up"] else "[red]down[/]"
        out.print(f"  {name:32} {state:4}  {s['endpoint']}  (log: {s['log']})", soft_wrap=True)
    out.print(f"bucket: s3://{st.bucket}    client settings: source {stack.dir / 'env.sh'}", soft_wrap=True)
    return all(s["up"] for s in status.values())


# --------------------------------------------------------------------------------- sample archive
@app.command("sample-archive")
def sample_archive(
    out_url: Annotated[str, typer.Option("--out", help="Local path or s3://bucket/prefix.")],
    stac_api: Annotated[str | None, typer.Option("--stac-api", help="Also upsert the items into this STAC API.")] = None,
    seed: Annotated[int, typer.Option(help="Random seed (same seed → byte-identical items).")] = 42,
    start: Annotated[str, typer.Option(help="First quarter.")] = "2000Q1",
    end: Annotated[str, typer.Option(help="Last quarter.")] = "2024Q4",
    size: Annotated[int, typer.Option(help="World size in 10 m pixels (multiple of 6).")] = 384,
    endpoint_url: Annotated[str | None, typer.Option(help="S3 endpoint (default: $AWS_ENDPOINT_URL).")] = None,
    import_xrspatial: Annotated[
        bool, typer.Option("--import-xrspatial", help="Also import the real Sentinel-2 bands shipped with xarray-spatial.")
    ] = False,
    workers: Annotated[int, typer.Option(help="Threads writing scenes.")] = 2,
    flavour: Annotated[
        str, typer.Option(help="Item shape: earth-search (Earth Search v1) or planetary-computer.")
    ] = "earth-search",
) -> None:
    """Generate the deterministic offline sample archive (COGs + static STAC catalog + truth maps)."""
    from lpqlc.sample.archive import SampleSpec, generate
    from lpqlc.storage import Store

    try:
        spec = SampleSpec(seed=seed, size=size, start=Quarter.parse(start), end=Quarter.parse(end), flavour=flavour)
    except ValueError as exc:
        raise LpqlcError(f"sample-archive: {exc}") from None
    with _progress() as bar:
        task = bar.add_task("sample archive", total=None, last="")
        archive = generate(
            out_url,
            spec,
            store=Store.from_settings(endpoint_url),
            stac_api=stac_api,
            workers=workers,
            import_xrspatial=import_xrspatial,
            progress=lambda item_id: bar.update(task, advance=1, last=item_id),
        )
    out.print_json(json.dumps({"catalog": archive.catalog, "truth": archive.truth, "items": archive.summary()}))


# -------------------------------------------------------------------------------------- composite
@app.command("composite")
def composite(
    config: Annotated[Path, typer.Option(help="Pipeline YAML.")],
    quarter: Annotated[str, typer.Option(help="Quarter to composite, e.g. 2021Q3 (several: 2021Q3,2021Q4).")],
    out_url: Annotated[str, typer.Option("--out", help="Output folder: local path or s3://bucket/prefix.")],
) -> None:
    """Quarterly median composite (bands, clear count, NDVI, FVC) as COGs with a quicklook PNG."""
    from lpqlc.cluster import open_client
    from lpqlc.composite.run import run_composite
    from lpqlc.config import load_config

    cfg = load_config(config)
    qs = _quarters(quarter, "--quarter")
    with open_client(cfg.cluster) as client, _progress() as bar:
        for q in qs:
            run = run_composite(cfg, q, out_url, client=client, progress=_ticker(bar, f"{q} composite", f"{q} "))
            for line in run.report.lines():
                console.print(line, soft_wrap=True, markup=False)
            out.print(f"{q}: {len(run.tiles)} tile(s), layers {', '.join(run.layers)} under {run.prefix}", soft_wrap=True)
            if run.quicklook:
                out.print(f"quicklook: {run.quicklook}", soft_wrap=True)


# ---------------------------------------------------------------------------------------- erosion
@app.command("erosion")
def erosion(
    config: Annotated[Path, typer.Option(help="Pipeline YAML.")],
    quarters: Annotated[str, typer.Option(help="Quarters, e.g. 2021Q1,2021Q2 or 2021Q1:2022Q4 (4 of a year → annual).")],
    out_url: Annotated[str, typer.Option("--out", help="Output folder: local path or s3://bucket/prefix.")],
    landcover: Annotated[str, typer.Option(help="Land-cover raster per quarter: a path/URL template with {quarter}.")],
    composites: Annotated[
        str | None, typer.Option(help="Folder of `lpqlc composite` outputs (default OUT/composites; made if missing).")
    ] = None,
    factors: Annotated[bool, typer.Option("--factors", help="Also write the R, K, LS, C and P layers.")] = False,
) -> None:
    """Quarterly and annual RUSLE erosion and grades as COGs, a CSV summary per subregion, PNG plots."""
    from lpqlc.cluster import open_client
    from lpqlc.config import load_config
    from lpqlc.erosion.run import run_erosion

    cfg = load_config(config)
    qs = _quarters(quarters, "--quarters")
    with open_client(cfg.cluster) as client, _progress() as bar:
        tick = _ticker(bar, "erosion")
        run = run_erosion(cfg, qs, out_url, landcover=landcover, composites=composites, factors=factors,
                          client=client, progress=tick)  # fmt: skip
    out.print(f"erosion of {len(run.quarters)} quarter(s), {len(run.years)} full year(s), {len(run.tiles)} tile(s) "
              f"under {run.prefix}", soft_wrap=True)  # fmt: skip
    out.print(f"summary: {run.summary_csv}", soft_wrap=True)
    for p in run.plots:
        out.print(f"plot: {p}", soft_wrap=True)


from lpqlc.analysis.scenario_cli import scenario as _scenario  # noqa: E402

app.command("scenario")(_scenario)


# ------------------------------------------------------------------------------------ model
@app.command("train")
def train_cmd(
    config: Annotated[Path, typer.Option(help="Pipeline YAML (science.ccts holds the hyper-parameters).")],
    out_url: Annotated[str, typer.Option("--out", help="Folder for checkpoints and loss logs (path or s3://).")],
    stages: Annotated[str, typer.Option(help="CCTS stages, in order.")] = "contrastive,supervised,refine",
    composites: Annotated[str | None, typer.Option(help="Composites folder (default STORAGE/composites; made if missing).")] = None,
    device: Annotated[str | None, typer.Option(help="cpu or cuda (default: cuda when present).")] = None,
) -> None:
    """Train the CCTS model (HRFormer) on the composites; resumes from its checkpoints."""
    from lpqlc.cluster import open_client
    from lpqlc.config import load_config
    from lpqlc.model.jobs import train_job

    cfg = load_config(config)
    names = tuple(s.strip() for s in stages.split(",") if s.strip())
    with open_client(cfg.cluster) as client, _progress() as bar:
        task = bar.add_task("train", total=None, last="")

        def tick(stage: str, epoch: int, epochs: int, loss: float) -> None:
            bar.update(task, description=f"{stage}", completed=epoch, total=epochs, last=f"loss {loss:.4f}")

        res = train_job(cfg, names, out_url, composites=composites, device=device, client=client, progress=tick)
    out.print(f"checkpoint: {res.checkpoint} (trained on {res.device})", soft_wrap=True)


@app.command("evaluate")
def evaluate_cmd(
    model: Annotated[str, typer.Option(help="Checkpoint path or s3:// URL.")],
    config: Annotated[Path, typer.Option(help="Pipeline YAML.")],
    quarters: Annotated[str, typer.Option(help="Quarters to score, e.g. 2022Q1:2022Q4.")],
    truth: Annotated[str | None, typer.Option(help="Reference rasters: a template with {quarter}.")] = None,
    points: Annotated[str | None, typer.Option(help="Reference points CSV: x, y (lon/lat), time, class.")] = None,
    report: Annotated[str | None, typer.Option(help="Write the report JSON here.")] = None,
    composites: Annotated[str | None, typer.Option(help="Composites folder (default STORAGE/composites).")] = None,
    device: Annotated[str | None, typer.Option(help="cpu or cuda.")] = None,
) -> None:
    """Accuracy (OA, Kappa, FWIoU, confusion, PA/UA/IoU) and the flip rate on unchanged pixels."""
    from lpqlc.cluster import open_client
    from lpqlc.config import load_config
    from lpqlc.model.evaluate import format_breakdown, format_table
    from lpqlc.model.jobs import evaluate_job, write_report

    cfg = load_config(config)
    qs = _quarters(quarters, "--quarters")
    with open_client(cfg.cluster) as client:
        rep = evaluate_job(cfg, model, qs, truth=truth, points=points, composites=composites, device=device, client=client)
    out.print(format_table(rep.overall, rep.names), markup=False, highlight=False)
    out.print("OA per quarter: " + ", ".join(f"{q} {v:.4f}" for q, v in rep.per_quarter.items()), soft_wrap=True)
    out.print(f"flip rate on truly unchanged pixels: {rep.flip_rate:.4f} ({rep.flip_pixels} pixel-steps)")
    for era, e in rep.per_era.items():  # per sensor era (pixel size in metres)
        out.print(f"{era} m era: OA {e['overall'].oa:.4f}  Kappa {e['overall'].kappa:.4f}  FWIoU {e['overall'].fwiou:.4f}  flip rate {e['flip_rate_unchanged']:.4f}")
    scopes = {f"{k} m era": e["overall"] for k, e in rep.per_era.items()} | rep.quarters  # OA … PA/UA/IoU
    out.print(format_breakdown(scopes, rep.names), markup=False, highlight=False, soft_wrap=True)
    if report:
        write_report(rep, report, cfg.store)
        out.print(f"report: {report}", soft_wrap=True)


@app.command("classify")
def classify_cmd(
    config: Annotated[Path, typer.Option(help="Pipeline YAML.")],
    model: Annotated[str, typer.Option(help="Checkpoint path or s3:// URL.")],
    quarters: Annotated[str, typer.Option(help="Quarters, e.g. 2016Q1:2024Q4.")],
    out_url: Annotated[str, typer.Option("--out", help="Output folder: local path or s3://bucket/prefix.")],
    composites: Annotated[str | None, typer.Option(help="Composites folder (default STORAGE/composites; made if missing).")] = None,
    probabilities: Annotated[bool, typer.Option("--probabilities", help="Also write per-class probabilities.")] = False,
) -> None:
    """Chunk-wise inference on Dask (model once per worker, GPU workers when present) and the
    5-quarter temporal refinement: raw and refined class COGs plus confidence."""
    from lpqlc.classify.run import run_classify
    from lpqlc.cluster import open_client
    from lpqlc.config import load_config

    cfg = load_config(config)
    qs = _quarters(quarters, "--quarters")
    with open_client(cfg.cluster) as client, _progress() as bar:
        tick = _ticker(bar, "classify")
        run = run_classify(cfg, model, qs, out_url, composites=composites, client=client,
                           probabilities=probabilities, progress=tick)  # fmt: skip
    out.print(f"classified {len(run.quarters)} quarter(s) on {'GPU' if run.gpu else 'CPU'} workers: "
              f"{run.prefix}/raw, {run.prefix}/refined", soft_wrap=True)  # fmt: skip


# ------------------------------------------------------------------------------------- whole chain
def _print_summary(summary: object) -> None:
    for line in summary.lines():  # type: ignore[attr-defined]
        out.print(line, soft_wrap=True, markup=False, highlight=False)


def _finish(summary: Any) -> None:
    """Print a run's summary and its catalog; exit 1 when a unit failed."""
    _print_summary(summary)
    out.print(f"catalog: {summary.outputs['catalog']}", soft_wrap=True)
    if summary.failures:
        raise typer.Exit(1)


@app.command("run")
def run_cmd(
    config: Annotated[Path, typer.Option(help="Pipeline YAML.")],
    quarters: Annotated[str | None, typer.Option(help="Quarters (default: the configured period), e.g. 2021Q1:2022Q4.")] = None,
    model: Annotated[str | None, typer.Option(help="Land-cover checkpoint (default: model.checkpoint of the config).")] = None,
) -> None:
    """The whole chain: composite → classify → refine → publish land cover → erosion → publish erosion,
    then the catalog, its kerchunk datacubes and stac-geoparquet, and the STAC API when configured."""
    from lpqlc.cluster import open_client
    from lpqlc.config import load_config
    from lpqlc.pipeline import run_pipeline

    cfg = load_config(config)
    qs = _quarters(quarters, "--quarters") if quarters else None
    with open_client(cfg.cluster) as client, _progress() as bar:
        tick = _ticker(bar, "run")
        summary = run_pipeline(cfg, qs, model=model, client=client, progress=tick)
    _finish(summary)


@app.command("update")
def update_cmd(
    config: Annotated[Path, typer.Option(help="Pipeline YAML.")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the plan only.")] = False,
    model: Annotated[str | None, typer.Option(help="Land-cover checkpoint (default: model.checkpoint of the config).")] = None,
    rescan: Annotated[bool, typer.Option("--rescan", help="Search every quarter of the period (reprocessing campaigns).")] = False,
) -> None:
    """Bring the published products up to date: find new quarters and quarters whose source items
    changed (from the catalog's own lineage), print the plan, then redo and republish only those."""
    from lpqlc.cluster import open_client
    from lpqlc.config import load_config
    from lpqlc.update import plan_update, record_empty, run_update

    cfg = load_config(config)
    with _progress() as bar:
        plan = plan_update(cfg, progress=_ticker(bar, "plan"), rescan=rescan)
    out.print("plan:", soft_wrap=True)
    for line in plan.lines():
        out.print(f"  {line}", soft_wrap=True, markup=False, highlight=False)
    if dry_run:
        return
    if plan.empty:
        record_empty(cfg, plan)  # the next plan asks only for what changed since this one searched
        return
    with open_client(cfg.cluster) as client, _progress() as bar:
        tick = _ticker(bar, "update")
        summary = run_update(cfg, plan, model=model, client=client, progress=tick)
    _finish(summary)


@app.command("search")
def search_cmd(
    target: Annotated[str, typer.Argument(help="A static catalog (catalog.json, local or s3://) or a STAC API URL.")],
    collection: Annotated[str | None, typer.Option(help="Collection id(s), comma-separated (default: all).")] = None,
    bbox: Annotated[str | None, typer.Option(help="west,south,east,north in degrees.")] = None,
    datetime: Annotated[str | None, typer.Option(help="Instant or interval, e.g. 2021-07-01/2021-09-30.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many items.")] = 100,
) -> None:
    """Search published (or source) items by collection, bbox and datetime; prints one line per item."""
    from lpqlc.publish.search import search_items

    box = None
    if bbox:
        try:
            w, s_, e, n = (float(v) for v in bbox.split(","))
        except ValueError:
            raise LpqlcError(f"--bbox {bbox!r}: expected west,south,east,north") from None
        box = (w, s_, e, n)
    cols = [c.strip() for c in collection.split(",")] if collection else None
    items = search_items(target, collections=cols, bbox=box, datetime=datetime, limit=limit)
    for it in items:
        assets = ", ".join(f"{k}={a.get_absolute_href() or a.href}" for k, a in it.assets.items())
        out.print(f"{it.id}  {it.properties.get('datetime')}  v{it.properties.get('version', '?')}  {assets}",
                  soft_wrap=True, markup=False, highlight=False)  # fmt: skip
    console.print(f"{len(items)} item(s)")


@app.command("datacube")
def datacube_cmd(
    url: Annotated[str, typer.Argument(help="A datacube index (…/<collection>/datacube-10m.json), local or s3://.")],
    endpoint_url: Annotated[str | None, typer.Option(help="S3 endpoint (default: AWS_ENDPOINT_URL).")] = None,
    years: Annotated[str | None, typer.Option(help="Only these years, e.g. 2020:2024 (downloads only their references).")] = None,
) -> None:
    """Open a product's kerchunk datacube lazily and print it, with the lines that open it in Python."""
    from lpqlc.publish.datacube import open_datacube, parse_years
    from lpqlc.storage import Store

    ds = open_datacube(url, Store.from_settings(endpoint_url), years=parse_years(years))
    out.print(str(ds), markup=False, highlight=False, soft_wrap=True)
    out.print("open it in Python:", soft_wrap=True)
    out.print(f"  from lpqlc.publish.datacube import open_datacube; ds = open_datacube({url!r})", soft_wrap=True,
              markup=False, highlight=False)  # fmt: skip


# -------------------------------------------------------------------------------------------- k8s
@k8s_app.command("render")
def k8s_render(
    config: Annotated[Path, typer.Option(help="Pipeline YAML (its cluster.kubernetes section shapes the cluster).")],
    gpu: Annotated[bool, typer.Option("--gpu", help="Add the GPU worker group.")] = False,
    out_dir: Annotated[Path | None, typer.Option("--out", help="Write one file per object here instead of printing.")] = None,
) -> None:
    """Print (or write) the manifests: namespace, RBAC, ConfigMap, DaskCluster, autoscaler, CronJob, Job."""
    import yaml

    from lpqlc.config import load_config
    from lpqlc.k8s import render, render_yaml

    cfg = load_config(config)
    objs = render(cfg, config.read_text(), gpu=gpu)
    if out_dir is None:
        sys.stdout.write(render_yaml(objs))
        return
    out_dir.mkdir(parents=True, exist_ok=True)
    for o in objs:
        name = f"{o['kind'].lower()}-{o['metadata']['name']}.yaml"
        (out_dir / name).write_text(yaml.safe_dump(o, sort_keys=False))
        out.print(str(out_dir / name), soft_wrap=True)


# ------------------------------------------------------------------------------------------- demo
@app.command("demo")
def demo(
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for the archive, the model, the products and the report.")] = Path("lpqlc-demo"),
    config: Annotated[Path, typer.Option(help="Pipeline YAML (its catalog and storage are replaced by the demo's).")] = DEFAULT_CONFIG,
    quarters: Annotated[str, typer.Option(help="Quarters to produce and publish, e.g. 2020Q3:2021Q4.")] = "2020Q3:2021Q4",
    start: Annotated[str, typer.Option(help="First quarter of the sample archive.")] = "2019Q1",
    end: Annotated[str, typer.Option(help="Last quarter of the sample archive.")] = "2022Q4",
    seed: Annotated[int, typer.Option(help="Sample archive seed.")] = 42,
    epochs: Annotated[str | None, typer.Option(help="CCTS epochs per stage, e.g. contrastive=1,supervised=6,refine=2.")] = None,
) -> None:
    """Offline main job on the embedded default: sample archive → small CCTS model → composite →
    classify → refine → publish → erosion → publish → report, on a local Dask cluster."""
    from lpqlc.demo import DEMO_EPOCHS, run_demo
    from lpqlc.sample.archive import SampleSpec

    qs = parse_quarters(quarters)
    spec = SampleSpec(seed=seed, start=Quarter.parse(start), end=Quarter.parse(end))
    outside = [str(q) for q in qs if not spec.start <= q <= spec.end]
    if outside:
        raise LpqlcError(f"--quarters {','.join(outside)} lie outside the archive's {spec.start}–{spec.end}")
    sched = dict(DEMO_EPOCHS)
    if epochs:
        try:
            sched.update({k.strip(): int(v) for k, v in (p.split("=") for p in epochs.split(","))})
        except ValueError:
            raise LpqlcError(f"--epochs {epochs!r}: expected stage=n pairs, e.g. supervised=6") from None
    with _progress() as bar:
        tick = _ticker(bar, "demo")
        res = run_demo(config, out_dir, spec, qs, epochs=sched, progress=tick)
    table = Table(title="lpqlc demo")
    table.add_column("what")
    table.add_column("value")
    for cid, n in res.archive.summary().items():
        table.add_row(f"source items in {cid}", str(n))
    table.add_row("model", res.model)
    for cid, c in sorted(res.summary.items.items()):
        table.add_row(f"published {cid}", f"{sum(c.values())} items")
    out.print(table)
    _print_summary(res.summary)
    for p in res.quicklooks:
        out.print(f"quicklook: {p}", soft_wrap=True)
    for p in res.report.files:
        out.print(f"report: {p}", soft_wrap=True)
    out.print(f"report: {res.report.markdown}", soft_wrap=True)
    out.print(f"analyses: {res.analysis.out}/analysis.md", soft_wrap=True)
    for name, why in res.analysis.skipped.items():
        out.print(f"analysis skipped: {name}: {why}", soft_wrap=True, markup=False, highlight=False)
    cat = res.summary.outputs["catalog"]
    out.print(f"published catalog: {cat}", soft_wrap=True)
    first = res.summary.quarters[0] if res.summary.quarters else qs[0]
    out.print(f"search it: lpqlc search {cat} --collection {res.config.publish.collection_prefix}-landcover "
              f"--datetime {first.start:%Y-%m-%d}/{first.end:%Y-%m-%d}", soft_wrap=True, markup=False, highlight=False)  # fmt: skip
    if res.summary.failures:
        raise typer.Exit(1)


from lpqlc.analysis.cli import analyse  # noqa: E402  (the command lives in its module)

app.command("analyse")(analyse)


def main() -> None:
    """Console entry point: errors of ours print as one clear line and exit 2."""
    try:
        app()
    except LpqlcError as exc:
        console.print(f"[bold red]error:[/] {exc}")
        sys.exit(2)


if __name__ == "__main__":
    main()
