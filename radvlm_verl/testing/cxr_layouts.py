"""Synthetic CXR dataset releases in their real layouts, for the converter tests and benchmark.

Every id is fake (``p99...``, ``fake-0001``), every sentence invented, every image generated
(grayscale gradients with noise; non-square, 16-bit, RGBA and DICOM variants). Nothing here is,
or is derived from, credentialed data. Column names follow the public releases exactly.
"""

from __future__ import annotations

import csv
import errno
import gzip
import io
import json
import os
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

# --- images ----------------------------------------------------------------------------------


def gradient(width: int, height: int, *, low: float = 0, high: float = 255, seed: int = 0) -> np.ndarray:
    """A float image: a diagonal ramp from ``low`` to ``high`` plus mild noise."""
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:height, 0:width]
    ramp = (xs / max(width - 1, 1) + ys / max(height - 1, 1)) / 2
    img = low + (high - low) * ramp + rng.normal(0, (high - low) * 0.01, size=ramp.shape)
    return np.clip(img, low, high)


def write_image(path: Path, width: int, height: int, *, kind: str = "L", seed: int = 0) -> Path:
    """Write a synthetic image: ``L`` (8-bit; JPEG or PNG by suffix), ``I;16``, ``RGBA`` or ``P``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "I;16":
        # 12-bit values stored in 16 bits, like PadChest: naive RGB conversion saturates them.
        Image.fromarray(gradient(width, height, low=800, high=3800, seed=seed).astype(np.uint16)).save(path)
    elif kind == "RGBA":
        grey = gradient(width, height, seed=seed).astype(np.uint8)
        rgba = np.stack([grey, grey, grey, np.full_like(grey, 255)], axis=-1)
        Image.fromarray(rgba, mode="RGBA").save(path)
    elif kind == "P":
        Image.fromarray(gradient(width, height, seed=seed).astype(np.uint8), mode="L").convert("P").save(path)
    else:
        Image.fromarray(gradient(width, height, seed=seed).astype(np.uint8), mode="L").save(path)
    return path


def write_dicom(path: Path, width: int, height: int, *, monochrome1: bool = False, seed: int = 0,
                window: tuple[float, float] | None = None, slope: float = 1.0, intercept: float = 0.0) -> Path:
    """A tiny uncompressed 16-bit DICOM (needs pydicom), with fixed UIDs for reproducible bytes."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage

    uid = "1.2.826.0.1.3680043.8.498." + str(1000 + seed)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.SOPInstanceUID = uid
    ds.Modality = "DX"
    ds.Rows, ds.Columns = height, width
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME1" if monochrome1 else "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    if slope != 1.0 or intercept != 0.0:
        ds.RescaleSlope, ds.RescaleIntercept = slope, intercept
    if window is not None:
        ds.WindowCenter, ds.WindowWidth = window
    ds.PixelData = gradient(width, height, low=100, high=4000, seed=seed).astype(np.uint16).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def write_csv(path: Path, header: Sequence[str], rows: Iterable[Sequence]) -> Path:
    """CSV (gzipped when the name ends in .gz)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    opener = (lambda: io.TextIOWrapper(gzip.GzipFile(path, "wb", mtime=0), encoding="utf-8", newline="")) \
        if path.suffix == ".gz" else (lambda: path.open("w", encoding="utf-8", newline=""))
    with opener() as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path


# --- MIMIC-CXR-JPG ---------------------------------------------------------------------------

MIMIC_METADATA_HEADER = (
    "dicom_id", "subject_id", "study_id", "PerformedProcedureStepDescription", "ViewPosition", "Rows", "Columns",
    "StudyDate", "StudyTime", "ProcedureCodeSequence_CodeMeaning", "ViewCodeSequence_CodeMeaning",
    "PatientOrientationCodeSequence_CodeMeaning",
)


@dataclass
class MimicImage:
    dicom_id: str
    subject_id: str
    study_id: str
    view: str = "PA"
    width: int = 96
    height: int = 128
    split: str | None = "train"  # None: absent from the split file
    findings: str = "The lungs are clear. No pleural effusion."
    impression: str = "No acute cardiopulmonary process."
    has_report: bool = True
    has_image: bool = True


def mimic_relpath(img: MimicImage) -> str:
    return f"files/p{img.subject_id[:2]}/p{img.subject_id}/s{img.study_id}/{img.dicom_id}.jpg"


def raw_report(findings: str, impression: str) -> str:
    """A raw MIMIC-style report: header lines, wrapped FINDINGS/IMPRESSION sections."""
    parts = ["                                 FINAL REPORT", " EXAMINATION:  CHEST (PA AND LAT)", "",
             " INDICATION:  ___ with cough.", ""]
    if findings:
        parts += [" FINDINGS:", " ", " " + findings.replace(". ", ".\n "), ""]
    if impression:
        parts += [" IMPRESSION:", " ", " " + impression]
    return "\n".join(parts) + "\n"


@dataclass
class MimicLayout:
    root: Path
    sectioned_csv: Path
    raw_reports: Path
    images: list[MimicImage] = field(default_factory=list)


def write_mimic(root: Path, images: Iterable[MimicImage], *, gz: bool = True, shared_image: Path | None = None,
                seed: int = 0) -> MimicLayout:
    """MIMIC-CXR-JPG tree + metadata/split CSVs + sectioned CSV + raw report tree, in one pass.

    ``shared_image``: hard-link every image to this file (fast large layouts for benchmarks).
    """
    root = Path(root)
    suffix = ".gz" if gz else ""
    meta_path = root / f"mimic-cxr-2.0.0-metadata.csv{suffix}"
    split_path = root / f"mimic-cxr-2.0.0-split.csv{suffix}"
    sectioned = root / "mimic_cxr_sectioned.csv"
    raw_root = root / "reports"
    kept: list[MimicImage] = []
    seen_studies: set[str] = set()
    root.mkdir(parents=True, exist_ok=True)

    def opener(path: Path):
        if path.suffix == ".gz":
            return io.TextIOWrapper(gzip.GzipFile(path, "wb", mtime=0, compresslevel=1), encoding="utf-8", newline="")
        return path.open("w", encoding="utf-8", newline="")

    with opener(meta_path) as fm, opener(split_path) as fs, sectioned.open("w", encoding="utf-8", newline="") as fr:
        wm, ws, wr = csv.writer(fm), csv.writer(fs), csv.writer(fr)
        wm.writerow(MIMIC_METADATA_HEADER)
        ws.writerow(("dicom_id", "study_id", "subject_id", "split"))
        wr.writerow(("study", "impression", "findings", "last_paragraph", "comparison"))
        for n, img in enumerate(images):
            wm.writerow((img.dicom_id, img.subject_id, img.study_id, "CHEST (PA AND LAT)", img.view, img.height,
                         img.width, "21800101", "120000.000", "Chest 2V", "postero-anterior", "Erect"))
            if img.split is not None:
                ws.writerow((img.dicom_id, img.study_id, img.subject_id, img.split))
            if img.has_report and img.study_id not in seen_studies:
                seen_studies.add(img.study_id)
                last = img.impression or img.findings
                wr.writerow((f"s{img.study_id}", img.impression, img.findings, last, ""))
                txt = raw_root / "files" / f"p{img.subject_id[:2]}" / f"p{img.subject_id}" / f"s{img.study_id}.txt"
                txt.parent.mkdir(parents=True, exist_ok=True)
                txt.write_text(raw_report(img.findings, img.impression), encoding="utf-8")
            if img.has_image:
                path = root / mimic_relpath(img)
                if shared_image is not None:
                    path.parent.mkdir(parents=True, exist_ok=True)
                    if not path.exists():
                        try:
                            os.link(shared_image, path)
                        except OSError as exc:  # a file system's hard-link limit (ext4: 65000): copy, relink
                            if exc.errno != errno.EMLINK:
                                raise
                            shutil.copyfile(shared_image, path)
                            shared_image = path
                else:
                    write_image(path, img.width, img.height, seed=seed + n)
            if shared_image is None:
                kept.append(img)
    return MimicLayout(root, sectioned, raw_root, kept)


def mimic_test_images() -> list[MimicImage]:
    """A small MIMIC layout exercising every drop reason (see the converter tests)."""
    return [
        MimicImage("fake-0001", "99000001", "59000001", "PA", 96, 128, "train",
                   "Heart size is normal.\nNo focal consolidation.", "No acute process."),
        MimicImage("fake-0002", "99000001", "59000001", "LATERAL", 128, 96, "train"),
        MimicImage("fake-0003", "99000002", "59000002", "AP", 120, 80, "validate", "",
                   "Small left pleural effusion."),
        MimicImage("fake-0004", "99000003", "59000003", "PA", 64, 64, "test", "", ""),
        MimicImage("fake-0005", "99000004", "59000004", "PA", 64, 64, "train", has_image=False),
        MimicImage("fake-0006", "99000005", "59000005", "PA", 64, 64, None),
        MimicImage("fake-0007", "99000006", "59000006", "PA", 64, 64, "train", has_report=False),
        MimicImage("fake-0008", "99000007", "59000007", "PA", 100, 90, "test",
                   "Mild cardiomegaly. Lungs are clear.", "Cardiomegaly."),
        MimicImage("fake-0009", "99000007", "59000007", "AP", 90, 100, "test",
                   "Mild cardiomegaly. Lungs are clear.", "Cardiomegaly."),
    ]


# --- CheXpert Plus ---------------------------------------------------------------------------

CHEXPERT_PLUS_HEADER = (
    "path_to_image", "path_to_dcm", "frontal_lateral", "ap_pa", "deid_patient_id", "patient_report_date_order",
    "report", "section_narrative", "section_clinical_history", "section_history", "section_comparison",
    "section_technique", "section_procedure_comments", "section_findings", "section_impression",
    "section_end_of_impression", "section_summary", "section_accession_number", "age", "sex", "race",
    "ethnicity", "interpreter_needed", "insurance_type", "recent_bmi", "deceased", "split",
)


def write_chexpert_plus(root: Path, rows: Iterable[dict]) -> Path:
    """``df_chexpert_plus_240401.csv`` + images under ``root``; each dict: path, view, patient,
    findings, impression, split, and image kind (``L``, ``RGBA``, ``I;16`` or None for missing)."""
    out = []
    for n, r in enumerate(rows):
        if r.get("kind") is not None:
            # JPEG holds only 8-bit L/RGB: other kinds are the PNG release's files (same path, .png)
            target = root / r["path"] if r["kind"] == "L" else (root / r["path"]).with_suffix(".png")
            write_image(target, r.get("width", 80), r.get("height", 100), kind=r["kind"], seed=n)
        values = dict.fromkeys(CHEXPERT_PLUS_HEADER, "")
        values.update(path_to_image=r["path"], path_to_dcm=r["path"].replace(".jpg", ".dcm"),
                      frontal_lateral=r.get("view", "Frontal"), ap_pa="PA", deid_patient_id=r["patient"],
                      report="invented full text", section_findings=r.get("findings", ""),
                      section_impression=r.get("impression", ""),
                      section_end_of_impression="Signed by a fake radiologist.", split=r["split"], age="60")
        out.append([values[c] for c in CHEXPERT_PLUS_HEADER])
    return write_csv(root / "df_chexpert_plus_240401.csv", CHEXPERT_PLUS_HEADER, out)


# --- IU X-ray --------------------------------------------------------------------------------


def iu_xml(uid: str, findings: str | None, impression: str | None, image_ids: Sequence[str]) -> str:
    sections = "".join(
        f'<AbstractText Label="{label}">{text}</AbstractText>'
        for label, text in (("COMPARISON", "None."), ("INDICATION", "XXXX-year-old with cough."),
                            ("FINDINGS", findings), ("IMPRESSION", impression))
        if text is not None
    )
    images = "".join(f'<parentImage id="{i}"><caption>Xray Chest PA and Lateral</caption></parentImage>'
                     for i in image_ids)
    return (f'<?xml version="1.0" encoding="utf-8"?>\n<eCitation><meta type="rr"/><uId id="{uid}"/>'
            f'<MedlineCitation><Article><Abstract>{sections}</Abstract></Article></MedlineCitation>'
            f'<MeSH><major>normal</major></MeSH>{images}</eCitation>\n')


# --- MS-CXR ----------------------------------------------------------------------------------

MS_CXR_HEADER = ("dicom_id", "category_name", "label_text", "path", "x", "y", "w", "h", "image_width",
                 "image_height", "split")


# --- VinDr-CXR -------------------------------------------------------------------------------

VINDR_HEADER = ("image_id", "rad_id", "class_name", "x_min", "y_min", "x_max", "y_max")


# --- Chest ImaGenome -------------------------------------------------------------------------


def scene_graph(dicom_id: str, regions: dict[str, tuple[float, float, float, float]], width: int, height: int) -> dict:
    """A ``*_SceneGraph.json`` body: ``regions`` maps bbox_name -> original-pixel xyxy."""
    objects = []
    for name, (x1, y1, x2, y2) in regions.items():
        sx, sy = 224 / width, 224 / height
        objects.append({
            "object_id": f"{dicom_id}_{name}", "x1": round(x1 * sx), "y1": round(y1 * sy), "x2": round(x2 * sx),
            "y2": round(y2 * sy), "width": round((x2 - x1) * sx), "height": round((y2 - y1) * sy),
            "bbox_name": name, "synsets": ["C0000000"], "name": name.title(),
            "original_x1": x1, "original_y1": y1, "original_x2": x2, "original_y2": y2,
            "original_width": width, "original_height": height,
        })
    return {"image_id": dicom_id, "viewpoint": "PA", "gender": "F", "objects": objects}


def write_json(path: Path, value) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, indent=1), encoding="utf-8")
    return path


# --- every converter at once -----------------------------------------------------------------


def convert_every_dataset(root: Path, **options) -> dict[str, Path]:
    """Run every converter on a one- or two-image synthetic layout under ``root``.

    ``options`` (``embed_images``, ``box_format``, ``thinking``, ...) go to every converter
    (RadVLM JSON keeps its own questions, so it gets no box options). Returns
    ``{command name: the parquet file written}``. Needs pydicom (VinDr's DICOMs).
    """
    from radvlm_verl.converters import (
        chest_imagenome,
        chexpert_plus,
        iu_xray,
        mimic_cxr,
        ms_cxr,
        padchest_gr,
        radvlm_json,
        vindr_cxr,
    )

    root = Path(root)
    common = {"progress": False, **options}
    out = {}
    mimic = write_mimic(root / "mimic", [MimicImage("fake-1", "99000001", "59000001", width=90, height=120),
                                         MimicImage("fake-2", "99000002", "59000002", width=120, height=90)])
    mimic_cxr.convert(root / "o_mimic", mimic_cxr.Options(mimic_root=mimic.root, reports=mimic.sectioned_csv,
                                                          **common))
    out["mimic-cxr"] = root / "o_mimic" / "train.parquet"

    cx = root / "chexpert"
    csv_path = write_chexpert_plus(cx, [dict(path="train/patient90001/study1/view1_frontal.jpg", patient="p1",
                                             split="train", findings="Lungs clear.", kind="I;16")])
    chexpert_plus.convert(root / "o_cx", chexpert_plus.Options(csv_path=csv_path, image_root=cx, **common))
    out["chexpert-plus"] = root / "o_cx" / "train.parquet"

    (root / "iu").mkdir(parents=True, exist_ok=True)
    (root / "iu" / "1.xml").write_text(iu_xml("CXR1", "Normal heart.", None, ["CXR1_1_IM-0001-1001"]))
    write_image(root / "iupng" / "CXR1_1_IM-0001-1001.png", 70, 60)
    iu_xray.convert(root / "o_iu", iu_xray.Options(reports_dir=root / "iu", image_dir=root / "iupng", **common))
    out["iu-xray"] = root / "o_iu" / "test.parquet"

    ms = write_csv(root / "ms.csv", MS_CXR_HEADER, [("fake-1", "Edema", "Mild edema",
                                                     "files/p99/p99000001/s59000001/fake-1.jpg",
                                                     10, 10, 40, 50, 90, 120, "train")])
    ms_cxr.convert(root / "o_ms", ms_cxr.Options(csv_path=ms, mimic_root=mimic.root, **common))
    out["ms-cxr"] = root / "o_ms" / "train.parquet"

    silver = root / "ig" / "silver_dataset"
    write_json(silver / "scene_graph" / "fake-1_SceneGraph.json",
               scene_graph("fake-1", {"right lung": (5, 5, 40, 100)}, 90, 120))
    header = ("", "subject_id", "study_id", "dicom_id", "path", "ViewPosition")
    write_csv(silver / "splits" / "train.csv", header, [(0, "99000001", "59000001", "fake-1", "x.dcm", "PA")])
    write_csv(silver / "splits" / "valid.csv", header, [])
    write_csv(silver / "splits" / "test.csv", header, [])
    chest_imagenome.convert(root / "o_ig", chest_imagenome.Options(imagenome_root=root / "ig", mimic_root=mimic.root,
                                                                   **common))
    out["chest-imagenome"] = root / "o_ig" / "train.parquet"

    write_dicom(root / "vindr" / "train" / "fakev.dicom", 80, 64, monochrome1=True)
    write_csv(root / "vindr" / "annotations" / "annotations_train.csv", VINDR_HEADER, [
        ("fakev", "R1", "Cardiomegaly", 20, 30, 60, 50), ("fakev", "R2", "Cardiomegaly", 22, 30, 60, 52)])
    vindr_cxr.convert(root / "o_vindr", vindr_cxr.Options(vindr_root=root / "vindr", splits=("train",), **common))
    out["vindr-cxr"] = root / "o_vindr" / "train.parquet"

    write_image(root / "pc" / "fake_img.png", 100, 80, kind="I;16")
    write_csv(root / "master.csv", ("StudyID", "ImageID", "PatientID", "split"), [("s", "fake_img.png", "pp", "train")])
    gj = write_json(root / "gr.json", [{"StudyID": "s", "ImageID": "fake_img.png", "findings": [
        {"sentence_en": "Right effusion.", "boxes": [[0.5, 0.6, 0.9, 0.9]]}]}])
    padchest_gr.convert(root / "o_pc", padchest_gr.Options(json_path=gj, master_table=root / "master.csv",
                                                           image_dir=root / "pc", tasks=("phrase_grounding", "report"),
                                                           **common))
    out["padchest-gr"] = root / "o_pc" / "train.parquet"

    (root / "r.json").write_text(json.dumps([{"id": "mscxr-train1_0", "image": "iupng/CXR1_1_IM-0001-1001.png",
                                              "conversations": [{"from": "human", "value": "<image>\nWhere?"},
                                                                {"from": "gpt", "value": "[0.1, 0.2, 0.3, 0.4]"}]}]))
    json_options = {k: v for k, v in common.items() if k not in ("box_format", "box_hint", "style_constraint")}
    radvlm_json.convert(root / "r.json", root / "o_rj", radvlm_json.Options(split_name="train", **json_options))
    out["radvlm-json"] = root / "o_rj" / "train.parquet"
    return out
