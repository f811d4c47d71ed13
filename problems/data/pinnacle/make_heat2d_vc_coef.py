"""Write heat2d_vc_coef.dat: our instance of the coefficient of PINNacle's Heat 2d-VC task.

PINNacle (Hao et al. 2024; repository i207M/PINNacle, MIT licence) reads the coefficient
a(x, y) of its class Heat2D_VaryingCoef (src/pde/heat.py) from ref/heat_2d_coef_256.dat,
a file kept in Git LFS and not available here. The class names its generator in a comment
(src/pde/heat.py, line 24):

    generate_heat_2d_coef(N_res=256, alpha=4, bbox=bbox[0:4])      # bbox = [0, 1, 0, 1]

and that function (src/utils/random.py, lines 10-38 fftind, 41-83 gaussian_random_field,
100-111 generate_heat_2d_coef) does the following, which this script repeats step by step
with numpy alone and a fixed seed (PINNacle draws from numpy's global generator without a
seed, so its field cannot be reproduced; ours is another draw from the same distribution):

1. Wavenumbers: k = mgrid[:N, :N] - int((N + 1)/2), fft-shifted over all axes, so each
   axis runs 0, 1, ..., N/2 - 1, -N/2, ..., -1 (integers; N = 256).
2. Amplitude: (kx^2 + ky^2 + 1e-10)^(-alpha/4) = |k|^(-alpha/2) = |k|^-2 for alpha = 4,
   set to 0 at k = 0 (no mean mode). The power spectrum is therefore |k|^-4.
3. Noise: a complex Gaussian array, real part N(0, 1) drawn first, then the imaginary part
   N(0, 1) (two calls of normal(size=(N, N)), in that order).
4. Field: g = Re(ifft2(noise * amplitude)), then g <- (g - mean g) / std g (mean 0 and
   standard deviation 1 over the N^2 values).
5. Coefficient: a = exp(g) (log-normal, a > 0).
6. Points: x = linspace(0, 1, N), y = linspace(0, 1, N), xx, yy = meshgrid(x, y) (numpy's
   default 'xy' indexing), so the value g[i, j] sits at (x_j, y_i); rows are written in
   that order (y slowest), columns x, y, a. Note that the field is periodic with period
   N grid steps while the N points span [0, 1] with both ends included, as in PINNacle.

Every column is written with 6 significant digits (x and y to within 5e-7 of j/255;
each grid line prints the same in every row, so the file reads back as a tensor grid).
PINNacle interpolates a by nearest neighbour (scipy.interpolate.griddata,
method='nearest'); see heat2d_vc.yaml for the interpolation our file uses and why.

Run from anywhere: ``python problems/data/pinnacle/make_heat2d_vc_coef.py``; it writes the
file beside itself and prints its SHA-256. The output is deterministic for a given numpy
(the legacy RandomState stream is frozen by numpy's compatibility policy).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

N_RES = 256  # grid points per axis (PINNacle: N_res=256)
ALPHA = 4.0  # power-law exponent (PINNacle: alpha=4)
BBOX = (0.0, 1.0, 0.0, 1.0)  # PINNacle: bbox[0:4] of Heat2D_VaryingCoef
SEED = 20240101  # ours: PINNacle's draw is unseeded
OUT = Path(__file__).resolve().parent / "heat2d_vc_coef.dat"


def fftind(size: int) -> np.ndarray:
    """PINNacle's fftind: the fft-shifted integer wavenumbers, shape (2, size, size)."""
    k_ind = np.mgrid[:size, :size] - int((size + 1) / 2)
    return np.fft.fftshift(k_ind)  # all axes, as scipy.fftpack.fftshift does


def gaussian_random_field(rng: np.random.RandomState, alpha: float, size: int) -> np.ndarray:
    """PINNacle's gaussian_random_field(alpha, size, flag_normalize=True)."""
    k_idx = fftind(size)
    amplitude = np.power(k_idx[0] ** 2 + k_idx[1] ** 2 + 1e-10, -alpha / 4.0)
    amplitude[0, 0] = 0
    noise = rng.normal(size=(size, size)) + 1j * rng.normal(size=(size, size))
    gfield = np.fft.ifft2(noise * amplitude).real
    gfield = gfield - np.mean(gfield)
    return gfield / np.std(gfield)


def main() -> None:
    rng = np.random.RandomState(SEED)
    a = np.exp(gaussian_random_field(rng, ALPHA, N_RES))
    x = np.linspace(BBOX[0], BBOX[1], N_RES)
    y = np.linspace(BBOX[2], BBOX[3], N_RES)
    xx, yy = np.meshgrid(x, y)
    lines = [
        "# Our instance of the coefficient a(x, y) of PINNacle's Heat2D_VaryingCoef",
        "# (not PINNacle's own draw): a = exp(g), g a Gaussian random field with power",
        f"# spectrum |k|^-4 (alpha = {ALPHA:g}), normalised to mean 0 and std 1, on a "
        f"{N_RES} x {N_RES} grid of [0, 1]^2;",
        f"# numpy RandomState seed {SEED}. Written by make_heat2d_vc_coef.py (beside this file).",
        "# x y a",
    ]
    body = "\n".join(
        f"{xi:.6g} {yi:.6g} {ai:.6g}"
        for xi, yi, ai in zip(xx.ravel(), yy.ravel(), a.ravel(), strict=True)
    )
    data = ("\n".join(lines) + "\n" + body + "\n").encode("ascii")
    OUT.write_bytes(data)
    print(f"{OUT.name}: {N_RES**2} points, a in [{a.min():.4g}, {a.max():.4g}], "
          f"{len(data)} bytes, sha256 {hashlib.sha256(data).hexdigest()}")


if __name__ == "__main__":
    main()
