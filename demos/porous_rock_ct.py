# # Porous rock from a micro-CT image: choose the RVE size, then FE²
#
# Users of porous rock and bone bring a segmented micro-CT image, not a periodic cell. How
# large a window of it is representative? This demo answers it with the RVE-size selector,
# then runs FE² heat conduction with the chosen window as the cell.
#
# 1. **The image.** A synthetic micro-CT-like picture, generated here deterministically and
#    shipped as `meshes/porous_rock_ct.png` (128 × 128 pixels of 1 µm): overlapping random
#    disks of radius 3 to 7 pixels (a Boolean model; pores = the union, porosity about 0.21,
#    periodic wrap), then 3% of the pixels flipped (acquisition noise) and removed again with a
#    3 × 3 median filter, as a segmentation would. Grains have grey level 200, pores 40; the
#    pores are water-filled (k = 0.6 against k = 3 for the grains).
# 2. **The RVE size.** Centred crops of k·w pixels (w = 16 for `--size small`) are homogenized
#    under Dirichlet (D), Neumann (N) and periodic (P) conditions; the smallest whose gap
#    ‖D − N‖₂/‖P‖₂ is below the tolerance is the cell (`hmm-fenics rve-size`).
# 3. **FE².** A 2 × 1 slab, T = 1 on the left, T = 0 on the right, insulated top and bottom,
#    every macro quadrature point answered by the chosen crop (`demos/porous_rock_ct.toml`,
#    whose cell is the whole image when run on its own).
#
# Run: `python demos/porous_rock_ct.py` or `mpirun -n 2 python demos/porous_rock_ct.py --size small`.

# +
import argparse
from pathlib import Path

from mpi4py import MPI

import numpy as np
from demo_support import HERE, arguments, check, execute, finish, load, within
from scipy import ndimage

import hmm_fenics as hf
from hmm_fenics.parallel.collective import on_one_rank
from hmm_fenics.run.fields import check_output_folder
from hmm_fenics.rve.pixels import read_pixels
from hmm_fenics.studies.rve_size import format_selection, relative_gap, select_rve_size

SIZES = {"small": (0.1, 16, 0.05), "medium": (0.05, 8, 0.05)}  # macro H, crop step (px), tol
IMAGE = HERE.parent / "meshes" / "porous_rock_ct.png"
GRAIN, PORE = 200, 40  # grey levels of the segmented image
# -

# ## The synthetic micro-CT image


# +
def micro_ct(n=128, porosity=0.22, radius=5.0, noise=0.03, seed=2026):
    """Grey levels a[i1, i2] (x1 first) of a segmented Boolean model of pores, denoised."""
    rng = np.random.default_rng(seed)
    count = round(-np.log(1 - porosity) * n * n / (np.pi * radius**2))  # Boolean model
    centres = rng.uniform(0, n, size=(count, 2))
    radii = radius * rng.uniform(0.6, 1.4, size=count)
    x = np.arange(n) + 0.5
    X1, X2 = np.meshgrid(x, x, indexing="ij")
    pore = np.zeros((n, n), dtype=bool)
    for (c1, c2), r in zip(centres, radii, strict=True):
        d1 = (X1 - c1 + n / 2) % n - n / 2  # periodic wrap
        d2 = (X2 - c2 + n / 2) % n - n / 2
        pore |= d1 * d1 + d2 * d2 < r * r
    noisy = pore ^ (rng.random((n, n)) < noise)
    clean = ndimage.median_filter(noisy.astype(np.uint8), size=3, mode="wrap").astype(bool)
    return np.where(clean, PORE, GRAIN).astype(np.uint8), pore


def write_png(labels, path):
    """The picture shown upright: rows from the top (x2 high) down, columns along x1."""
    from PIL import Image

    Image.fromarray(np.ascontiguousarray(labels.T[::-1])).save(path, optimize=True)


args = arguments("porous_rock_ct", "Porous rock from a micro-CT image: RVE size, then FE²")
H, step, tol = SIZES[args.size]
comm = MPI.COMM_WORLD
output = Path(args.output)
check_output_folder(comm, output, args.overwrite)
labels, noise_free = micro_ct()
# the shipped file; regenerate it by deleting it. Rank 0 decides for all: ranks that looked
# at different moments (one writing, another checking) would disagree and hang on_one_rank.
if comm.bcast(not IMAGE.exists() if comm.rank == 0 else None, root=0):
    on_one_rank(comm, lambda: write_png(labels, IMAGE))
shipped = read_pixels(IMAGE)
# -

# ## The RVE size: centred crops until Dirichlet and Neumann agree to `tol`

# +
config = load("porous_rock_ct", {"macro": {"mesh_size": H}})
cell = config.cell
selection = select_rve_size(cell, tol, max_size=min(shipped.shape) // step, step=step, comm=comm)
if comm.rank == 0 and not args.quiet:
    print(format_selection(selection))
if not selection.met:
    raise SystemExit(f"no window met tol {tol}: {selection.advice()}")
chosen = selection.windows[selection.chosen]
m = chosen.pixels
corner = [(n - m) // 2 for n in shipped.shape]
crop = shipped[corner[0] : corner[0] + m, corner[1] : corner[1] + m]
crop_path = (output / "cell.npy").resolve()
on_one_rank(comm, lambda: np.save(crop_path, crop.astype(np.int32)))
crop_spec = hf.RVESpec(
    "image", 2, path=str(crop_path), voxel_size=1.0, labels={"matrix": GRAIN, "pore": PORE}
)
# -

# ## FE² with the chosen crop as the cell

# +
run_args = argparse.Namespace(**{**vars(args), "output": str(output / "fe2"), "overwrite": True})
config = load(
    "porous_rock_ct",
    {"macro": {"mesh_size": H}, "rve": {"path": str(crop_path)}},
)
results = execute(config, run_args)
K = np.asarray(results["effective_tensor"])
# -

# ## Checks
#
# *The chosen window.* Its Dirichlet, Neumann and periodic tensors are recomputed here from the
# crop written to `OUTPUT/cell.npy` (an independent mesh and solve): the gap must be below
# `tol`, and the window one step smaller must not meet it (the smallest δ). The Hill–Mandel
# residual of the cell is round-off.
#
# *The slab.* For a constant tensor K the heat flow Q through an L × H slab with ΔT across it
# and insulated top and bottom has exact bounds from the two variational principles: the
# linear temperature is admissible, Q ≤ K11 ΔT H/L; the uniform flux along x1 is admissible,
# Q ≥ ΔT H/(L (K⁻¹)₁₁) = (K11 − K12²/K22) ΔT H/L. The finite-element solution obeys both (its
# energy lies between the exact one and that of the linear field, which it contains). So the FE²
# flow equals the closed form K11 ΔT H/L to within the bracket's width K12²/(K11 K22).

# +
materials = {name: cell.materials[name] for name in ("matrix", "pore")}
tensors = {
    bc: hf.homogenize(crop_spec, cell.physics, materials, bc=bc) for bc in ("dirichlet", "neumann")
}
periodic = hf.homogenize(crop_spec, cell.physics, materials)
gap, _ = relative_gap(tensors["dirichlet"].tensor, tensors["neumann"].tensor, periodic.tensor)
height, length = config.macro.lengths["H"], config.macro.lengths["L"]
upper = K[0, 0] * height / length
lower = height / (length * np.linalg.inv(K)[0, 0])
bracket = K[0, 1] ** 2 / (K[0, 0] * K[1, 1])
q_fe2 = -results["reactions"]["right"][0]  # the flux the cold edge takes out
left, right = results["reactions"]["left"][0], results["reactions"]["right"][0]
smaller = selection.windows[selection.chosen - 1].gap if selection.chosen > 0 else np.inf
checks = [
    check(
        "shipped image = the generator's output (pixels differing)",
        float(np.sum(shipped != labels)),
        0.0,
        0.0,
        False,
    ),
    within("chosen window: gap ‖D − N‖/‖P‖ (recomputed) ≤ tol", gap, 0.0, tol),
    check("recomputed gap = the selector's", gap, chosen.gap, 1e-10),
    within("the window one step smaller does not meet tol", smaller, tol, np.inf),
    check("cell: Hill–Mandel residual", periodic.hill_mandel_residual, 0.0, 1e-10, False),
    check(
        "FE² tensor = the selector's periodic tensor of the crop",
        float(np.abs(K - chosen.periodic).max()),
        0.0,
        1e-10 * np.abs(K).max(),
        False,
    ),
    within(
        "FE² heat flow within the exact slab bounds",
        q_fe2,
        lower * (1 - 1e-10),
        upper * (1 + 1e-10),
    ),
    check(
        "FE² heat flow = K11 ΔT H/L (to the bracket width K12²/(K11 K22))",
        q_fe2,
        upper,
        bracket + 1e-10,
    ),
    check("conservation: flux in = flux out", left + right, 0.0, 1e-10 * abs(left), relative=False),
]
# -

# ## A picture: the image with the windows tried, and the gap against δ


# +
def picture(path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    fig, (left_ax, right_ax) = plt.subplots(1, 2, figsize=(10, 4.4))
    n1, n2 = shipped.shape
    left_ax.imshow(shipped.T, origin="lower", cmap="gray", extent=(0, n1, 0, n2), vmin=0, vmax=255)
    for w in selection.windows:
        c1, c2 = ((n - w.pixels) // 2 for n in shipped.shape)
        best = w is chosen
        left_ax.add_patch(
            Rectangle(
                (c1, c2),
                w.pixels,
                w.pixels,
                fill=False,
                lw=2.5 if best else 0.8,
                color="tab:red" if best else "tab:orange",
            )
        )
    left_ax.set_title(f"micro-CT image, windows tried (chosen: {m} px, red)")
    left_ax.set_xlabel("x₁ [µm]")
    left_ax.set_ylabel("x₂ [µm]")
    sizes = [w.lengths[0] for w in selection.windows]
    for name, key in (("Dirichlet", "dirichlet"), ("periodic", "periodic"), ("Neumann", "neumann")):
        right_ax.plot(
            sizes, [np.trace(getattr(w, key)) / 2 for w in selection.windows], "o-", label=name
        )
    right_ax.set_xlabel("window δ [µm]")
    right_ax.set_ylabel("apparent conductivity trace/2 [W/(m K)]")
    gap_ax = right_ax.twinx()
    gap_ax.semilogy(sizes, [w.gap for w in selection.windows], "k--s", label="gap ‖D − N‖/‖P‖")
    gap_ax.axhline(tol, color="k", lw=0.8, ls=":")
    gap_ax.set_ylabel("gap (dashed), tol (dotted)")
    right_ax.legend(loc="upper center", fontsize="small")
    right_ax.set_title("bounds and gap against the window size")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


on_one_rank(comm, lambda: picture(output / "rve_size.png"))
summary = (
    f"Porous rock (micro-CT {shipped.shape[0]} × {shipped.shape[1]} px, porosity "
    f"{np.mean(shipped == PORE):.3f}): the selector chose a window of {m} px (δ = {chosen.lengths[0]:g} µm, "
    f"gap {chosen.gap:.3g} ≤ {tol:g}) after {len(selection.windows)} windows, {selection.seconds:.1f} s\n"
    f"  K = [[{K[0, 0]:.4f}, {K[0, 1]:.4f}], [{K[1, 0]:.4f}, {K[1, 1]:.4f}]] W/(m K)\n"
    f"  heat flow through the slab {q_fe2:.6f}, bounds [{lower:.6f}, {upper:.6f}]"
)
results |= {
    "rve_size": selection.to_dict(),
    "chosen_pixels": m,
    "porosity": float(np.mean(shipped == PORE)),
    "denoising_changed": float(np.mean((labels == PORE) != noise_free)),
    "heat_flow": q_fe2,
    "heat_flow_bounds": [lower, upper],
    "gap_recomputed": gap,
}
finish(results, checks, args, summary)
# -
