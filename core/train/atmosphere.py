"""Simulated top-of-atmosphere patches: surface reflectance (L2A) turned into what a sensor above
a random atmosphere would see (L1C-like), as a training augmentation.

Per band, TOA = path reflectance + transmittance × surface, a first-order (single-scattering)
model with textbook constants, nothing fitted to a scene:

- Rayleigh optical depth τ_R(λ) = 0.008569 λ⁻⁴ (1 + 0.0113 λ⁻² + 0.00013 λ⁻⁴), λ in µm
  (Hansen and Travis 1974);
- aerosol optical depth τ_A(λ) = τ_550 (λ / 0.55 µm)^−1.3 (Ångström), τ_550 ~ U(0, 0.5);
- air mass m = 1/cos θ_sun + 1/cos θ_view ~ U(2, 3.5);
- path reflectance (m / 8) (τ_R + 0.3 τ_A): Rayleigh's phase function near 1, aerosols'
  back-scattered share about 0.3;
- transmittance exp(−(m / 2)(τ_R + τ_A)): half the extinction is forward scattering that still
  reaches the sensor; B9 (945 nm, the water-vapour band) is further multiplied by a water-vapour
  transmittance ~ U(0.05, 0.8), dry desert to monsoon.

Each patch gets its own atmosphere; the same (path, transmittance) of a band applies to its
input grid and, for the coarse bands, to the target, so every pair stays a valid pair (the
degradation is linear and keeps constants). L1C patches can be drawn too: a second atmosphere
on top of the first is a hazier one.
"""

from __future__ import annotations

import torch

from dsen2.bands import BANDS_BY_GRID, BY_NAME

REFLECTANCE_DN = 10000.0  # the networks' units: reflectance × 10000
AEROSOL_DEPTH_550 = (0.0, 0.5)
AIR_MASS = (2.0, 3.5)
WATER_VAPOUR_TRANSMITTANCE_B9 = (0.05, 0.8)
ANGSTROM_EXPONENT = 1.3
AEROSOL_BACKSCATTER = 0.3


def rayleigh_depth(wavelength_um: torch.Tensor) -> torch.Tensor:
    """Rayleigh optical depth of a standard atmosphere at sea level."""
    inverse_sq = wavelength_um**-2
    return 0.008569 * inverse_sq**2 * (1 + 0.0113 * inverse_sq + 0.00013 * inverse_sq**2)


_WAVELENGTH_UM = {
    role: torch.tensor([BY_NAME[name].central_wavelength_nm / 1000 for name in names])
    for role, names in BANDS_BY_GRID.items()
}
_RAYLEIGH_DEPTH = {role: rayleigh_depth(wavelength) for role, wavelength in _WAVELENGTH_UM.items()}


def random_atmosphere(
    batch: dict[int, torch.Tensor],
    target: torch.Tensor,
    scale: int,
    probability: float,
    generator: torch.Generator,
) -> tuple[dict[int, torch.Tensor], torch.Tensor]:
    """Put a random atmosphere over each patch with ``probability`` (else leave it as it is).

    ``batch`` holds the network inputs by grid role (1: B2 B3 B4 B8, 2: the 20 m bands, 6: B1
    B9) and ``target`` the bands of role ``scale``, all in DN.
    """
    patches = len(target)
    chosen = (torch.rand(patches, generator=generator) < probability).float()
    aerosol = _uniform(patches, AEROSOL_DEPTH_550, generator) * chosen
    air_mass = _uniform(patches, AIR_MASS, generator) * chosen  # 0: no atmosphere at all
    water_vapour = 1 - (1 - _uniform(patches, WATER_VAPOUR_TRANSMITTANCE_B9, generator)) * chosen

    maps = {role: _path_and_transmittance(role, aerosol, air_mass, water_vapour) for role in batch}

    def apply(role: int, tensor: torch.Tensor) -> torch.Tensor:
        path, transmittance = maps[role]
        return path.to(tensor) + transmittance.to(tensor) * tensor

    return {role: apply(role, t) for role, t in batch.items()}, apply(scale, target)


def _path_and_transmittance(
    role: int, aerosol: torch.Tensor, air_mass: torch.Tensor, water_vapour: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Each patch's path reflectance (DN) and transmittance for the bands of grid ``role``,
    shaped [patches, bands, 1, 1]."""
    wavelength, rayleigh = _WAVELENGTH_UM[role][None, :], _RAYLEIGH_DEPTH[role][None, :]
    aerosol_depth = aerosol[:, None] * (wavelength / 0.55) ** -ANGSTROM_EXPONENT
    path = air_mass[:, None] / 8 * (rayleigh + AEROSOL_BACKSCATTER * aerosol_depth)
    transmittance = torch.exp(-air_mass[:, None] / 2 * (rayleigh + aerosol_depth))
    if "B9" in BANDS_BY_GRID[role]:
        transmittance[:, BANDS_BY_GRID[role].index("B9")] *= water_vapour
    return path[..., None, None] * REFLECTANCE_DN, transmittance[..., None, None]


def _uniform(count: int, bounds: tuple[float, float], generator: torch.Generator) -> torch.Tensor:
    low, high = bounds
    return torch.rand(count, generator=generator) * (high - low) + low
