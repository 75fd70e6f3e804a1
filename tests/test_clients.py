"""The exports read by the real client libraries, as a new user would (the `.[clients]` extra;
each test skips when its client is not installed): Hugging Face datasets, torchvision's
ImageFolder, MONAI, nnU-Net v2's integrity check, mlcroissant, webdataset, and a torch
DataLoader over medcurate.torch.Dataset."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from PIL import Image

import medcurate


def test_hugging_face_datasets_gives_splits_features_and_labels(demo, exported, tmp_path, monkeypatch):
    datasets = pytest.importorskip("datasets")
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "cache"))
    ds = datasets.load_dataset(str(exported("fetal_planes_db", "hf")), cache_dir=str(tmp_path / "cache"))
    df = medcurate.load(demo("fetal_planes_db"), curated=True)
    assert {k: len(v) for k, v in ds.items()} == {"train": int((df.split == "train").sum()),
                                                  "validation": int((df.split == "val").sum()),
                                                  "test": int((df.split == "test").sum())}
    info = df.attrs["dataset"]["labels"]["classes"]
    assert ds["train"].features["plane"].names == info["plane"]
    assert ds["train"].features["brain_plane"].names == info["brain_plane"]
    first = ds["train"][0]
    row = df.set_index("case_id").loc[first["case_id"]]
    assert ds["train"].features["plane"].int2str(first["plane"]) == row["plane"]
    assert first["image"].size == (row["width"], row["height"])
    seg = datasets.load_dataset(str(exported("inbreast", "hf")), cache_dir=str(tmp_path / "cache"))
    sample = seg["test"][0]
    assert isinstance(sample["mask"], Image.Image) and sample["mask"].size == sample["image"].size
    assert np.asarray(sample["image"]).max() > 255  # 16-bit mammogram kept


def test_torchvision_imagefolder(demo, exported):
    tv = pytest.importorskip("torchvision")
    folder = exported("fetal_planes_db", "imagefolder")
    ds = tv.datasets.ImageFolder(str(folder / "train"))
    df = medcurate.load(demo("fetal_planes_db"), split="train", curated=True)
    assert len(ds) == len(df) and "images" not in ds.classes and "qc" not in ds.classes
    truth = dict(zip(df["image"].str.split("/").str[-1], df["plane"].astype(str)))
    for path, index in ds.samples:
        assert ds.classes[index] == truth[os.path.basename(path)]


def test_monai_reads_datalists_2d_and_3d(exported):
    pytest.importorskip("monai")
    from monai.data import load_decathlon_datalist
    from monai.transforms import LoadImaged

    load = LoadImaged(keys=["image", "label"], ensure_channel_first=True)
    for dataset, ndim in (("drive", 2), ("acdc", 3)):
        path = exported(dataset, "monai") / "datalist.json"
        training = load_decathlon_datalist(str(path), is_segmentation=True, data_list_key="training")
        assert training and all("fold" in d for d in training)
        item = load(training[0])
        assert item["image"].shape[1:] == item["label"].shape[1:] and item["label"].ndim == ndim + 1
    cls = json.loads((exported("chestxray14", "monai") / "datalist.json").read_text())
    assert all(len(d["label"]) == 15 for d in cls["training"])  # multi-label: one vector each


def test_monai_adapter_with_loadimaged(demo):
    pytest.importorskip("monai")
    from monai.transforms import LoadImaged

    from medcurate import monai as mm

    ds = mm.dataset(demo("inbreast"), split="test", transform=LoadImaged(keys=["image", "label"], ensure_channel_first=True))
    item = ds[0]
    assert item["image"].shape == item["label"].shape and float(item["image"].max()) > 255


@pytest.mark.parametrize("dataset", ["drive", "inbreast", "fetal_head_biometry", "acdc"])
def test_nnunet_verify_dataset_integrity(exported, dataset, tmp_path, monkeypatch):
    pytest.importorskip("nnunetv2")
    for var in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        monkeypatch.setenv(var, str(tmp_path / var))
    from nnunetv2.experiment_planning.verify_dataset_integrity import verify_dataset_integrity

    folder = next(exported(dataset, "nnunet").glob("Dataset*"))
    verify_dataset_integrity(str(folder), num_processes=1)  # raises on any inconsistency


def test_mlcroissant_validates_and_reads_records(demo, exported):
    mlc = pytest.importorskip("mlcroissant")
    for dataset in ("fetal_planes_db", "drive", "acdc"):
        ds = mlc.Dataset(jsonld=str(exported(dataset, "croissant") / "croissant.json"))  # validates
        records = list(ds.records("cases"))
        df = medcurate.load(demo(dataset))
        assert len(records) == len(df)
        assert {r["cases/split"].decode() for r in records} == set(df["split"])
        assert all(isinstance(r["cases/width"], int) for r in records)
        meta = ds.metadata
        assert meta.license and meta.cite_as


def test_webdataset_reads_the_shards(demo, exported):
    wds = pytest.importorskip("webdataset")
    folder = exported("fetal_planes_db", "webdataset")
    samples = list(wds.WebDataset(str(folder / "train-000000.tar"), shardshuffle=False).decode("pil"))
    df = medcurate.load(demo("fetal_planes_db"), split="train", curated=True).set_index("case_id")
    assert len(samples) == len(df)
    for s in samples:
        row = df.loc[s["json"]["case_id"]]
        assert s["cls"] == list(df["plane"].cat.categories).index(row["plane"])
        assert s["png"].size == (row["width"], row["height"])
    seg = list(wds.WebDataset(str(exported("drive", "webdataset") / "test-000000.tar"), shardshuffle=False))
    assert all("mask.png" in s and "png" in s for s in seg)


def test_torch_dataloader_over_the_adapter(demo):
    torch = pytest.importorskip("torch")
    from medcurate.torch import Dataset

    ds = Dataset(demo("chestxray14"), split="train")
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=4)))
    assert batch["label"].dtype == torch.float32 and batch["label"].shape == (4, 15)
    assert batch["image"].dtype == torch.uint8 and batch["image"].shape[1] == 1
    seg = Dataset(demo("inbreast"), split="test")
    s = seg[0]
    raw = np.asarray(Image.open(demo("inbreast") / seg.df.iloc[0]["image"]))
    assert raw.dtype == np.uint16 and s["image"].dtype == torch.int32
    assert int(s["image"].max()) == int(raw.max()) > 255  # 16-bit kept, no saturation or wrap
    assert s["mask"].dtype == torch.int64 and s["mask"].shape == raw.shape and s["label"].dtype == torch.int64
    vol = Dataset(demo("acdc"))[0]
    assert vol["image"].ndim == 4 and vol["mask"].ndim == 3
    loader = torch.utils.data.DataLoader(Dataset(demo("fetal_planes_db"), split="test"), batch_size=1)
    assert sum(1 for _ in loader) == len(medcurate.load(demo("fetal_planes_db"), split="test", curated=True))
