#!/usr/bin/env python
"""Time InVEST SDR's "slope + LS + RUSLE" steps (the peer of ``benchmarks/terrain_ls.py --peer-python``).

Needs natcap.invest (3.20.2 measured) and GDAL's Python bindings, which have no wheels for Linux: see
docs/performance.md for how they were built. Not run by the tests; no lpqlc import.

Runs natcap.invest's own SDR functions, in the order and with the arguments
that natcap/invest/sdr/sdr.py::execute uses them (flow_dir_algorithm='D8'):

    pygeoprocessing.routing.fill_pits((dem, 1), filled)
    pygeoprocessing.calculate_slope((filled, 1), slope)
    pygeoprocessing.routing.flow_dir_d8((filled, 1), flow_dir)
    pygeoprocessing.routing.flow_accumulation_d8((flow_dir, 1), flow_acc)
    [optional, only with --tfa: pygeoprocessing.routing.extract_streams_d8]
    sdr._calculate_ls_factor(flow_acc, slope, l_max, ls)
    cp = C * P                         (pygeoprocessing.raster_map; stands in
                                        for sdr._calculate_cp, which maps a
                                        LULC raster through a table)
    sdr._calculate_rkls(ls, R, K, stream, rkls)
    pygeoprocessing.raster_map(sdr.usle_op, [rkls, cp], usle)

All outputs are GeoTIFFs written by pygeoprocessing with its default creation
options (tiled 256x256, LZW, BIGTIFF), i.e. exactly as the peer writes them.

Input preparation (NOT timed, reported as prep_s): every input is copied to
<out>/inputs/ with NaN (or its declared nodata) replaced by float32 max, which
is the nodata value SDR's own masking step (pygeoprocessing.raster_map with
_mask_single_raster_op) gives float32 inputs.  With --mutual-mask, SDR's own
mutual-mask step (_create_mutual_mask_op / _mask_single_raster_op over all five
inputs) is applied too, as sdr.execute does (not timed either).

Streams: sdr._calculate_rkls needs a stream raster and sets RKLS to nodata on
stream pixels.  By default an all-zero stream raster (uint8, nodata 255, same
format as extract_streams_d8 output) is made during prep, so that
USLE = R*K*LS*C*P on every valid pixel.  With --tfa N, streams are extracted
with extract_streams_d8(flow_threshold=N) inside the timed section, as SDR does.

l_max: InVEST's _calculate_ls_factor has no slope-length cap in metres; its
l_max parameter caps the (unitless) L factor.  Default here is 122, the value
in InVEST's sample SDR datastack.  Use --l-max to change.
"""
import argparse
import json
import os
import resource
import shutil
import sys
import time

import numpy
import pygeoprocessing
import pygeoprocessing.routing
from osgeo import gdal

import natcap.invest
from natcap.invest.sdr import sdr

gdal.UseExceptions()

FLOAT32_MAX = float(numpy.finfo(numpy.float32).max)


def _cpu():
    s = resource.getrusage(resource.RUSAGE_SELF)
    c = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (s.ru_utime + s.ru_stime), (c.ru_utime + c.ru_stime)


def _vm_hwm_mb():
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith('VmHWM:'):
                return int(line.split()[1]) / 1024.0
    return float('nan')


def _threads():
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith('Threads:'):
                return int(line.split()[1])
    return -1


def _child_pids():
    """PIDs of direct children of this process (via /proc)."""
    me = os.getpid()
    kids = []
    try:
        with open(f'/proc/{me}/task/{me}/children') as f:
            kids = [int(x) for x in f.read().split()]
    except OSError:
        pass
    return kids


def _prep_raster(src_path, dst_path):
    """Copy src to dst as float32, NaN/declared nodata -> float32 max."""
    src_nodata = pygeoprocessing.get_raster_info(src_path)['nodata'][0]

    def op(a):
        a = a.astype(numpy.float32, copy=False)
        bad = ~numpy.isfinite(a)
        if src_nodata is not None and not numpy.isnan(src_nodata):
            bad |= numpy.isclose(a, src_nodata)
        out = a.copy()
        out[bad] = FLOAT32_MAX
        return out

    pygeoprocessing.raster_calculator(
        [(src_path, 1)], op, dst_path, gdal.GDT_Float32, FLOAT32_MAX)


def _ls_sum(ls_path):
    nodata = pygeoprocessing.get_raster_info(ls_path)['nodata'][0]
    total = 0.0
    n_valid = 0
    n_nonfinite = 0
    for _, block in pygeoprocessing.iterblocks((ls_path, 1)):
        block = block.astype(numpy.float64)
        valid = numpy.ones(block.shape, dtype=bool)
        if nodata is not None:
            valid &= ~pygeoprocessing.array_equals_nodata(block, nodata)
        n_nonfinite += int(numpy.count_nonzero(valid & ~numpy.isfinite(block)))
        total += float(numpy.nansum(block[valid]))
        n_valid += int(numpy.count_nonzero(valid & numpy.isfinite(block)))
    return total, n_valid, n_nonfinite


def main():
    import_hwm_mb = _vm_hwm_mb()  # baseline after imports (numpy, GDAL, invest)
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--dem', required=True)
    p.add_argument('--r', required=True)
    p.add_argument('--k', required=True)
    p.add_argument('--c', required=True)
    p.add_argument('--p', required=True)
    p.add_argument('--out', required=True)
    p.add_argument('--l-max', type=float, default=122.0,
                   help='InVEST l_max (cap on the unitless L factor); '
                        'default 122 (InVEST sample datastack)')
    p.add_argument('--tfa', type=float, default=None,
                   help='threshold flow accumulation: if given, extract '
                        'streams with extract_streams_d8 (timed) and mask '
                        'RKLS on streams as SDR does; default: no streams')
    p.add_argument('--mutual-mask', action='store_true',
                   help="apply SDR's mutual nodata mask over all inputs "
                        "(untimed prep)")
    args = p.parse_args()

    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    inp = os.path.join(out, 'inputs')
    inter = os.path.join(out, 'intermediate_outputs')
    os.makedirs(inp, exist_ok=True)
    os.makedirs(inter, exist_ok=True)

    # file names as in SDR's file registry
    f = {
        'dem': os.path.join(inp, 'dem.tif'),
        'r': os.path.join(inp, 'erosivity.tif'),
        'k': os.path.join(inp, 'erodibility.tif'),
        'c': os.path.join(inp, 'usle_c.tif'),
        'p': os.path.join(inp, 'usle_p.tif'),
        'zero_stream': os.path.join(inp, 'no_stream.tif'),
        'pit_filled_dem': os.path.join(inter, 'pit_filled_dem.tif'),
        'slope': os.path.join(inter, 'slope.tif'),
        'flow_direction': os.path.join(inter, 'flow_direction.tif'),
        'flow_accumulation': os.path.join(inter, 'flow_accumulation.tif'),
        'stream': os.path.join(out, 'stream.tif'),
        'ls': os.path.join(inter, 'ls.tif'),
        'cp': os.path.join(inter, 'cp.tif'),
        'rkls': os.path.join(out, 'rkls.tif'),
        'usle': os.path.join(out, 'usle.tif'),
    }
    # remove stale outputs so every run recomputes
    for k, path in f.items():
        if os.path.exists(path):
            os.remove(path)

    # ---------------- untimed preparation ----------------
    prep_t0 = time.perf_counter()
    for key, src in (('dem', args.dem), ('r', args.r), ('k', args.k),
                     ('c', args.c), ('p', args.p)):
        _prep_raster(os.path.abspath(src), f[key])
    if args.mutual_mask:
        mask_path = os.path.join(inp, 'mask.tif')
        keys = ('dem', 'r', 'k', 'c', 'p')
        pygeoprocessing.raster_map(
            op=sdr._create_mutual_mask_op,
            rasters=[f[k] for k in keys], target_path=mask_path,
            target_nodata=0)
        for k in keys:
            masked = f[k].replace('.tif', '_masked.tif')
            pygeoprocessing.raster_map(
                op=sdr._mask_single_raster_op,
                rasters=[f[k], mask_path], target_path=masked)
            f[k] = masked
    if args.tfa is None:
        pygeoprocessing.new_raster_from_base(
            f['dem'], f['zero_stream'], gdal.GDT_Byte, [255],
            fill_value_list=[0])
        stream_path = f['zero_stream']
    else:
        stream_path = f['stream']
    prep_s = time.perf_counter() - prep_t0

    # ---------------- timed steps ----------------
    steps = []
    children_seen = set()
    threads_max = _threads()

    def run(name, func, *a, **kw):
        nonlocal threads_max
        c0s, c0c = _cpu()
        w0 = time.perf_counter()
        func(*a, **kw)
        w1 = time.perf_counter()
        c1s, c1c = _cpu()
        children_seen.update(_child_pids())
        threads_max = max(threads_max, _threads())
        steps.append({'step': name, 'wall_s': round(w1 - w0, 4),
                      'cpu_s': round((c1s - c0s) + (c1c - c0c), 4),
                      'child_cpu_s': round(c1c - c0c, 4)})

    cpu0_self, cpu0_child = _cpu()
    wall0 = time.perf_counter()

    run('fill_pits', pygeoprocessing.routing.fill_pits,
        (f['dem'], 1), f['pit_filled_dem'], working_dir=out)
    run('slope', pygeoprocessing.calculate_slope,
        (f['pit_filled_dem'], 1), f['slope'])
    run('flow_dir_d8', pygeoprocessing.routing.flow_dir_d8,
        (f['pit_filled_dem'], 1), f['flow_direction'], working_dir=out)
    run('flow_accumulation_d8', pygeoprocessing.routing.flow_accumulation_d8,
        (f['flow_direction'], 1), f['flow_accumulation'])
    if args.tfa is not None:
        run('extract_streams_d8', pygeoprocessing.routing.extract_streams_d8,
            flow_accum_raster_path_band=(f['flow_accumulation'], 1),
            flow_threshold=args.tfa,
            target_stream_raster_path=f['stream'])
    run('ls_factor', sdr._calculate_ls_factor,
        f['flow_accumulation'], f['slope'], args.l_max, f['ls'])
    run('cp', pygeoprocessing.raster_map,
        op=numpy.multiply, rasters=[f['c'], f['p']], target_path=f['cp'])
    run('rkls', sdr._calculate_rkls,
        f['ls'], f['r'], f['k'], stream_path, f['rkls'])
    run('usle', pygeoprocessing.raster_map,
        op=sdr.usle_op, rasters=[f['rkls'], f['cp']], target_path=f['usle'])

    wall_s = time.perf_counter() - wall0
    cpu1_self, cpu1_child = _cpu()
    cpu_s = (cpu1_self - cpu0_self) + (cpu1_child - cpu0_child)
    child_cpu_s = cpu1_child - cpu0_child
    peak_mb = _vm_hwm_mb()

    # ---------------- untimed reporting ----------------
    ls_sum, ls_valid, ls_nonfinite = _ls_sum(f['ls'])
    # remove pygeoprocessing's leftover temp dirs, if any
    for name in os.listdir(out):
        full = os.path.join(out, name)
        if os.path.isdir(full) and name not in ('inputs',
                                                'intermediate_outputs'):
            shutil.rmtree(full, ignore_errors=True)

    result = {
        'cpu_s': round(cpu_s, 4),
        'wall_s': round(wall_s, 4),
        'peak_mb': round(peak_mb, 1),
        'peak_mb_after_imports': round(import_hwm_mb, 1),
        'ls_sum': ls_sum,
        'version': natcap.invest.__version__,
        # extra diagnostics
        'pygeoprocessing': pygeoprocessing.__version__,
        'gdal': gdal.__version__,
        'numpy': numpy.__version__,
        'l_max': args.l_max,
        'tfa': args.tfa,
        'ls_valid_px': ls_valid,
        'ls_nonfinite_px': ls_nonfinite,
        'child_cpu_s': round(child_cpu_s, 4),
        'child_pids_seen': sorted(children_seen),
        'threads_max': threads_max,
        'prep_s': round(prep_s, 4),
        'steps': steps,
    }
    print(json.dumps(result))
    return 0


if __name__ == '__main__':
    sys.exit(main())
