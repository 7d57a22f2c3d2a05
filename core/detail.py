"""Scene detail weights: how each coarse band's detail follows the four 10 m bands' in one scene.

A network that takes these weights (graph input ``w60`` for the 60 m bands at 6×, ``w20`` for
the 20 m bands at 2×; metadata ``detail_weights``) adds the weighted 10 m detail to its output,
so it adapts to the scene's own band relations instead of the average relation of its few
training scenes (``models/dsen2-s6x-detail-clouds-d8.md``, ``models/dsen2-t2x-detail-d8.md``).
For each coarse band the weights are the least-squares fit, over the scene's valid pixels at
the coarse grid, between the high-pass parts (image minus its Gaussian blur of
``HIGH_PASS_SIGMA_PX``) of the coarse band and of the 10 m bands degraded to that grid with the
paper's degradation. The fit assumes the relation holds one scale finer (the paper's
self-similarity).

The same fit serves inference (the product's own coarse and 10 m bands), the reduced-scale
evaluation and training (the degraded scene), so the network sees weights made one way.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from dsen2.degradation import degrade, gaussian_blur

HIGH_PASS_SIGMA_PX = 1.0  # at the coarse band's grid
MIN_SAMPLES = 16  # coarse pixels (4 per weight) below which a scene gives no weights (zeros)
FloatArray = npt.NDArray[np.float32]


@dataclass
class DetailFit:
    """Accumulated normal equations of the fit, window by window (the engine reads a product in
    windows; a scene in memory is one window).

    Attributes:
        gram: [fine bands, fine bands] sum of xxᵀ over valid coarse pixels.
        moment: [fine bands, coarse bands] sum of x yᵀ.
        samples: how many coarse pixels were summed.
    """

    fine_bands: int
    coarse_bands: int
    gram: npt.NDArray[np.float64] = field(init=False)
    moment: npt.NDArray[np.float64] = field(init=False)
    samples: int = 0

    def __post_init__(self) -> None:
        self.gram = np.zeros((self.fine_bands, self.fine_bands))
        self.moment = np.zeros((self.fine_bands, self.coarse_bands))

    def add(self, fine: FloatArray, coarse: FloatArray, factor: int) -> None:
        """Add one window: ``fine`` [4, H, W] at the finer grid, ``coarse`` [bands, H/factor,
        W/factor], network units, 0 = no data (such pixels are left out). ``factor`` 1 fits
        two stacks on one grid as they are (a diagnostic: the relation one scale finer)."""
        # band by band: the blur's float64 working copies of a whole stack would be 4× larger
        fine_at_coarse = fine if factor == 1 else np.stack([degrade(band, factor) for band in fine])
        valid = np.all(coarse != 0, axis=0) & _block_all(np.all(fine != 0, axis=0), factor)
        valid = _eroded(valid, int(4 * HIGH_PASS_SIGMA_PX + 0.5))  # the blur's reach (its taps)
        if not valid.any():
            return
        design = _high_pass(fine_at_coarse)[:, valid].astype(np.float64)
        observed = _high_pass(coarse)[:, valid].astype(np.float64)
        self.gram += design @ design.T
        self.moment += design @ observed.T
        self.samples += int(valid.sum())

    def weights(self) -> FloatArray:
        """[coarse bands, fine bands] weights; zeros when too few pixels were valid or the 10 m
        bands' detail is degenerate (the network then injects nothing)."""
        return self.result().values

    def result(self) -> DetailWeights:
        """The weights with how many pixels gave them, and why they are zeros if they are."""
        zeros = np.zeros((self.coarse_bands, self.fine_bands), np.float32)
        if self.samples < MIN_SAMPLES:
            problem = (
                f"only {self.samples} coarse pixels were usable (holding data, away from "
                f"no-data edges), and {MIN_SAMPLES} are needed"
            )
            return DetailWeights(zeros, self.samples, problem)
        try:
            solved = np.linalg.solve(self.gram, self.moment)
        except np.linalg.LinAlgError:
            solved = np.full_like(self.moment, np.nan)
        if not np.all(np.isfinite(solved)):
            problem = "the 10 m bands carry no usable detail there (flat or collinear)"
            return DetailWeights(zeros, self.samples, problem)
        return DetailWeights(np.asarray(solved.T, np.float32), self.samples)


@dataclass(frozen=True)
class DetailWeights:
    """A fit's outcome.

    Attributes:
        values: [coarse bands, fine bands] weights; zeros when the fit failed.
        samples_px: how many coarse pixels the fit summed.
        problem: why ``values`` are zeros, in words for the user; None when they were fitted.
    """

    values: FloatArray
    samples_px: int
    problem: str | None = None


def fit_detail_weights(fine: FloatArray, coarse: FloatArray, factor: int) -> FloatArray:
    """The weights of one scene held in memory (see :class:`DetailFit`)."""
    fit = DetailFit(fine.shape[0], coarse.shape[0])
    fit.add(fine, coarse, factor)
    return fit.weights()


def _high_pass(stack: FloatArray) -> FloatArray:
    return stack - gaussian_blur(stack, HIGH_PASS_SIGMA_PX)


def _eroded(mask: npt.NDArray[np.bool_], radius_px: int) -> npt.NDArray[np.bool_]:
    """``mask`` less every pixel within ``radius_px`` (a square) of a False one: the pixels
    whose high-pass no no-data value reaches. The image edges are mirrored by the blur, so
    they keep their pixels."""
    rows, cols = mask.shape
    reach = range(2 * radius_px + 1)
    padded = np.pad(mask, ((radius_px, radius_px), (0, 0)), mode="edge")
    along_cols = np.logical_and.reduce([padded[shift : shift + rows] for shift in reach])
    padded = np.pad(along_cols, ((0, 0), (radius_px, radius_px)), mode="edge")
    return np.asarray(np.logical_and.reduce([padded[:, shift : shift + cols] for shift in reach]))


def _block_all(mask: npt.NDArray[np.bool_], factor: int) -> npt.NDArray[np.bool_]:
    rows, cols = mask.shape
    blocks = mask.reshape(rows // factor, factor, cols // factor, factor)
    return np.asarray(blocks.all(axis=(1, 3)))
