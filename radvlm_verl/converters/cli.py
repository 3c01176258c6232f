"""``radvlm-verl convert <dataset> ...``: the dataset converters on the command line.

``add_convert_commands(subparsers)`` registers ``convert`` and its per-dataset subcommands on an
argparse subparsers object; ``run_convert(args)`` runs the parsed command and returns the exit
status (0 written, 1 nothing to write, 2 bad input, refused leakage or bad options; the message names the problem).
``main(argv)`` is the same command as a standalone program (the ``data_preprocess/`` scripts).

Every flag maps onto the field of the same name of the dataset module's ``Options``.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from radvlm_verl.boxes.formats import BOX_FORMATS, DEFAULT_BOX_FORMAT
from radvlm_verl.converters.errors import ConversionError
from radvlm_verl.converters.row_builder import THINKING_MODES
from radvlm_verl.converters.rows import DEFAULT_MAX_PIXELS, DEFAULT_MIN_PIXELS
from radvlm_verl.converters.splits import SPLITS


def _csv_list(value: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in value.split(",") if v.strip())


def _add_common(p: argparse.ArgumentParser, *, grounding: bool = True, report: bool = True) -> None:
    g = p.add_argument_group("output and prompts (all datasets)")
    g.add_argument("--out-dir", type=Path, required=True, help="folder for train/val/test.parquet")
    g.add_argument("--thinking", choices=THINKING_MODES, default="off",
                   help="off: instruct prompts; suffix: append ' /think' (RadVLM-Thinking); "
                   "native: no suffix, thinking flag set (Qwen3-VL-Thinking)")
    g.add_argument("--system-prompt", default=None, help="optional system message for every row")
    if report:
        g.add_argument("--style-constraint", action="store_true",
                       help="append the one-paragraph report instruction (base models)")
    if grounding:
        g.add_argument("--box-format", choices=BOX_FORMATS, default=DEFAULT_BOX_FORMAT,
                       help="the box format the model answers in (ground truth stays normalised [0,1])")
        g.add_argument("--box-hint", action="store_true", help="append the box-format instruction to grounding prompts")
    g.add_argument("--min-pixels", type=int, default=DEFAULT_MIN_PIXELS)
    g.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS)
    g.add_argument("--embed-images", action="store_true",
                   help="store image bytes in the parquet (portable; paths are the default: bytes cost host memory)")
    g.add_argument("--eval-files", type=Path, nargs="*", default=(),
                   help="converted evaluation parquet files whose patients the train split must not contain")
    g.add_argument("--allow-leakage", action="store_true", help="write the train split even if it overlaps")
    g.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    g.add_argument("--limit", type=int, default=None, help="convert only the first N input records")


def _add_window(p: argparse.ArgumentParser) -> None:
    p.add_argument("--image-out-dir", type=Path, default=None,
                   help="where 8-bit copies of 16-bit/DICOM/RGBA images go (default <out-dir>/images)")
    p.add_argument("--window", choices=("minmax", "percentile", "dicom"), default="minmax",
                   help="intensity window for 16-bit and DICOM images")


def _dataset_parser(sub, name: str, module: Any, help: str, *, splits: Sequence[str] | None = SPLITS,
                    window: bool = False, grounding: bool = True, report: bool = True) -> argparse.ArgumentParser:
    """The subcommand of one dataset (its module docstring as description) with the shared flags;
    the caller adds the dataset's own flags."""
    p = sub.add_parser(name, help=help, description=module.__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.set_defaults(_module=module)
    if splits is not None:
        p.add_argument("--splits", type=_csv_list, default=tuple(splits), help="splits to write, e.g. train,val")
    if window:
        _add_window(p)
    _add_common(p, grounding=grounding, report=report)
    return p


def _mimic_cxr(sub) -> argparse.ArgumentParser:
    from radvlm_verl.converters import mimic_cxr as m

    p = _dataset_parser(sub, "mimic-cxr", m, "MIMIC-CXR-JPG reports (findings/impression), official split, frontal views",
                        grounding=False)
    p.add_argument("--mimic-root", type=Path, required=True, help="MIMIC-CXR-JPG root (files/ and the CSVs)")
    p.add_argument("--reports", type=Path, required=True,
                   help="mimic_cxr_sectioned.csv, the raw report tree, or a folder of <study_id>.txt")
    p.add_argument("--metadata", type=Path, default=None)
    p.add_argument("--split-csv", type=Path, default=None)
    p.add_argument("--sections", type=_csv_list, default=m.SECTIONS, help="fallback order, e.g. findings,impression")
    p.add_argument("--views", type=_csv_list, default=("PA", "AP"))
    return p


def _chexpert_plus(sub) -> argparse.ArgumentParser:
    from radvlm_verl.converters import chexpert_plus as m

    p = _dataset_parser(sub, "chexpert-plus", m, "CheXpert Plus reports, frontal views", window=True, grounding=False)
    p.add_argument("--csv-path", type=Path, required=True, help="df_chexpert_plus_240401.csv")
    p.add_argument("--image-root", type=Path, required=True, help="folder that path_to_image is relative to")
    p.add_argument("--sections", type=_csv_list, default=m.SECTIONS)
    p.add_argument("--val-fraction", type=float, default=0.0, help="patients moved from train to val")
    return p


def _iu_xray(sub) -> argparse.ArgumentParser:
    from radvlm_verl.converters import iu_xray as m

    p = _dataset_parser(sub, "iu-xray", m, "IU X-ray / Open-i reports (public test set)", splits=None, window=True,
                        grounding=False)
    p.add_argument("--reports-dir", type=Path, required=True, help="ecgen-radiology/ with the XML reports")
    p.add_argument("--image-dir", type=Path, required=True, help="folder of the PNGs")
    p.add_argument("--projections", type=Path, default=None, help="indiana_projections.csv (frontal filter)")
    p.add_argument("--split-name", default="test", help="split for every row; 'none' for hash-based fractions")
    p.add_argument("--val-fraction", type=float, default=0.0)
    p.add_argument("--test-fraction", type=float, default=0.0)
    p.add_argument("--sections", type=_csv_list, default=m.SECTIONS)
    return p


def _ms_cxr(sub) -> argparse.ArgumentParser:
    from radvlm_verl.converters import ms_cxr as m

    p = _dataset_parser(sub, "ms-cxr", m, "MS-CXR phrase grounding on MIMIC-CXR images", report=False)
    p.add_argument("--csv-path", type=Path, required=True, help="MS_CXR_Local_Alignment_v1.1.0.csv")
    p.add_argument("--mimic-root", type=Path, required=True)
    p.add_argument("--split-source", choices=("mimic", "ms-cxr"), default="mimic")
    p.add_argument("--mimic-split-csv", type=Path, default=None)
    return p


def _vindr_cxr(sub) -> argparse.ArgumentParser:
    from radvlm_verl.converters import vindr_cxr as m

    p = _dataset_parser(sub, "vindr-cxr", m, "VinDr-CXR abnormality grounding/detection (DICOM, reader fusion)",
                        splits=("train", "test"), window=True, report=False)
    p.add_argument("--vindr-root", type=Path, required=True, help="folder with annotations/, train/, test/")
    p.add_argument("--image-dir", type=Path, default=None, help="pre-converted <image_id>.png at original size")
    p.add_argument("--tasks", type=_csv_list, default=m.TASKS)
    p.add_argument("--val-fraction", type=float, default=0.0)
    p.add_argument("--iou-thr", type=float, default=m.FUSION_IOU, help="weighted-box-fusion IoU threshold")
    return p


def _chest_imagenome(sub) -> argparse.ArgumentParser:
    from radvlm_verl.converters import chest_imagenome as m

    p = _dataset_parser(sub, "chest-imagenome", m, "Chest ImaGenome anatomy grounding on MIMIC-CXR images",
                        report=False)
    p.add_argument("--imagenome-root", type=Path, required=True, help="folder with silver_dataset/")
    p.add_argument("--mimic-root", type=Path, required=True)
    p.add_argument("--split-source", choices=("mimic", "imagenome"), default="mimic")
    p.add_argument("--mimic-split-csv", type=Path, default=None)
    p.add_argument("--regions-per-image", type=int, default=1, help="0 = every region")
    p.add_argument("--regions", type=_csv_list, default=(), help="keep only these bbox_names")
    p.add_argument("--views", type=_csv_list, default=("PA", "AP"), help="ViewPosition values kept")
    return p


def _padchest_gr(sub) -> argparse.ArgumentParser:
    from radvlm_verl.converters import padchest_gr as m

    p = _dataset_parser(sub, "padchest-gr", m, "PadChest-GR grounded reports (16-bit PNG)", window=True)
    p.add_argument("--json-path", type=Path, required=True, help="grounded_reports_20240819.json")
    p.add_argument("--master-table", type=Path, required=True, help="master_table.csv")
    p.add_argument("--image-dir", type=Path, required=True, help="folder of the 16-bit PNGs")
    p.add_argument("--tasks", type=_csv_list, default=m.DEFAULT_TASKS, help=",".join(m.TASKS))
    p.add_argument("--extra-boxes", choices=("ignore", "add", "fuse"), default="ignore",
                   help="second reader's boxes: ignore (as RadVLM), add to the first's, or fuse (WBF)")
    p.add_argument("--padchest-csv", type=Path, default=None,
                   help="PADCHEST_chest_x_ray_images_labels_160K_01.02.19.csv: keep frontal views only")
    p.add_argument("--views", type=_csv_list, default=m.FRONTAL_PROJECTIONS, help="Projection values kept")
    return p


def _radvlm_json(sub) -> argparse.ArgumentParser:
    from radvlm_verl.converters import radvlm_json as m

    p = _dataset_parser(sub, "radvlm-json", m, "RadVLM instruction JSON (LLaVA style), every task and turn",
                        splits=None, grounding=False, report=False)
    p.add_argument("json_path", type=Path)
    p.add_argument("--image-root", type=Path, default=None, help="folder image paths are relative to")
    p.add_argument("--val-size", type=int, default=128, help="validation rows, drawn by patient")
    p.add_argument("--split-name", default=None, help="write every row to this split instead")
    p.add_argument("--tasks", type=_csv_list, default=m.RL_TASKS)
    p.add_argument("--skip-missing-images", action="store_true")
    return p


def _check_leakage(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("check-leakage", help="report patients shared by train files and evaluation files")
    p.add_argument("--train", type=Path, nargs="+", required=True)
    p.add_argument("--eval", type=Path, nargs="+", required=True)
    p.set_defaults(_module=None)
    return p


DATASET_COMMANDS: dict[str, Callable[[Any], argparse.ArgumentParser]] = {
    "mimic-cxr": _mimic_cxr,
    "chexpert-plus": _chexpert_plus,
    "iu-xray": _iu_xray,
    "ms-cxr": _ms_cxr,
    "vindr-cxr": _vindr_cxr,
    "chest-imagenome": _chest_imagenome,
    "padchest-gr": _padchest_gr,
    "radvlm-json": _radvlm_json,
}


def _add_dataset_commands(convert: argparse.ArgumentParser) -> None:
    sub = convert.add_subparsers(dest="dataset", required=True, metavar="DATASET")
    for register in DATASET_COMMANDS.values():
        register(sub)
    _check_leakage(sub)


def add_convert_commands(subparsers) -> argparse.ArgumentParser:
    """Register ``convert <dataset> ...`` on ``subparsers``; ``run_convert`` runs the result."""
    convert = subparsers.add_parser(
        "convert", help="convert a CXR dataset release to verl parquet",
        description="Convert a CXR dataset from its public release layout to verl parquet "
        "(one subcommand per dataset; see docs/datasets.md).",
    )
    _add_dataset_commands(convert)
    convert.set_defaults(_run=run_convert)
    return convert


def options_from_args(module: Any, args: argparse.Namespace) -> Any:
    """The module's ``Options`` from parsed flags of the same names (lists become tuples)."""
    values = {}
    for f in dataclasses.fields(module.Options):
        if hasattr(args, f.name):
            value = getattr(args, f.name)
            values[f.name] = tuple(value) if isinstance(value, list) else value
    if "split_name" in values and isinstance(values["split_name"], str) and values["split_name"].lower() == "none":
        values["split_name"] = None
    return module.Options(**values)


def run_convert(args: argparse.Namespace) -> int:
    """Run a parsed ``convert`` command; print the summary (stdout) or the error (stderr)."""
    from radvlm_verl.converters.leakage import find_leakage

    try:
        if args.dataset == "check-leakage":
            problems = find_leakage(args.train, args.eval)
            for problem in problems:
                print(f"leakage: {problem}", file=sys.stderr)
            if not problems:
                print("no patient of the train files appears in the evaluation files")
            return 1 if problems else 0
        module = args._module
        options = options_from_args(module, args)
        if module.__name__.endswith("radvlm_json"):
            summary = module.convert(args.json_path, args.out_dir, options)
        else:
            summary = module.convert(args.out_dir, options)
    except (ConversionError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(summary.format())
    if not sum(summary.written.values()):
        print("error: no rows written: every input row was dropped (reasons above)", file=sys.stderr)
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``convert`` as a program of its own: ``main(["mimic-cxr", "--mimic-root", ...])``."""
    parser = argparse.ArgumentParser(prog="radvlm-verl convert", description="Convert a CXR dataset to verl parquet.")
    _add_dataset_commands(parser)
    return run_convert(parser.parse_args(argv))
