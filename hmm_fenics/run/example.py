"""The annotated example run file: every key with its default and a comment.

``hmm-fenics run --example`` prints it; the README holds a copy and the docs build the
run-file reference from it (tests check both, and that the parsers accept every key).
"""

EXAMPLE = """\
# FE² of a glass/epoxy plate with a hole: the fibre cell answers every macro quadrature point.
[macro]
geometry = "plate-with-hole"   # rectangle | box | plate-with-hole | l-shape | file
mesh_size = 0.05               # macro element size H (at most about 2e6 cells)
L = 1.0                        # lengths: L (x1), H (x2), W (x3), R (hole radius)
R = 0.25
# H = 1.0                      # x2 length (rectangle, plate-with-hole, l-shape, box)
# W = 1.0                      # x3 length (box)
# path = "part.msh"            # geometry = "file": a gmsh mesh with named boundary groups
degree = 1                     # Lagrange degree of the macro field
quadrature_degree = 2          # micro problems sit at these points; ≥ 2 for degree 2

[dirichlet]                    # boundary name = value; elasticity: one entry per component
left = [0.0, "free"]           # "free" leaves a component unconstrained
bottom = ["free", 0.0]
right = [0.01, "free"]

[neumann]                      # boundary name = flux (diffusion) or traction (elasticity)
# top = [0.0, 0.0]

[loading]                      # prescribed values and source × a load factor in time
steps = 1                      # steps per path segment (or [N1, N2, ...]); or dt = 0.1
# dt = 0.1                     # instead of steps: each segment in steps of at most dt
# path = [[0, 0], [1, 1], [2, 0], [3, -1]]  # (time, factor): load, unload, reverse
#                              #   (default [[0, 0], [1, 1]]: a ramp)
# max_cuts = 6                 # a failed step is retried with dt halved, at most this often
# source = [0.0, 0.0]          # body source / force

[rve]                          # the micro cell: every key of a cell file
kind = "inclusion"             # 2D: inclusion | square-array | hex-array | checkerboard |
#                              #   laminate | random; 3D: inclusion | cubic-array | fibers |
#                              #   laminate | random; both: file | image
dim = 2                        # 2 | 3
fraction = 0.4                 # inclusion (or pore) fraction, in (0, 1)
mesh_size = 0.03               # default: shortest cell edge / 50 (2D), / 16 (3D)
# refine = 2.0                 # element size at interfaces: mesh_size / refine
# cell = [1.0, 1.0]            # box lengths (default unit; hex-array: 1 × √3)
# shape = "disk"               # disk | ellipse (2D); sphere | ellipsoid (3D): default the first
# aspect = 1.0                 # ellipse/spheroid axis ratio a/b ≥ 1
# angle = 0.0                  # major axis from x1, degrees
# center = [0.5, 0.5]          # inclusion centre (default: the cell centre)
# n = 1                        # square-array: inclusions per direction
# lattice = "simple"           # cubic-array: simple | bcc | fcc; fibers: square | hex
#                              #   (default: the first)
# count = 10                   # random: number of inclusions
# radius_spread = 0.0          # random: coefficient of variation of the radii
# min_gap = 0.03               # random: clearance (default: one mesh size, less while the
#                              #   packing jams)
# seed = 0                     # random: seed of the packing
# path = "cell.msh"            # file: a gmsh mesh; image: .png/.tif (2D), .npy (labels)
# voxel_size = 0.01            # image: edge length of one pixel/voxel (no default)
# mesh = "voxel"               # image: voxel | simplex (default voxel)
# labels = { matrix = 0, inclusion = 1 }  # image: phase = pixel value(s)

[physics]
kind = "elasticity"            # diffusion | elasticity
plane = "strain"               # 2D elasticity: strain | stress
degree = 1                     # Lagrange degree of the micro field

[materials.matrix]             # k (diffusion) or E, nu (elasticity); a power law adds
E = 3.0                        # p, g0 (diffusion) or eps0, n (elasticity)
nu = 0.35                      # law = "j2": + sigma_y, H_iso, H_kin; law = "maxwell": +
                               #   prony = [[E_1, tau_1], ...]; 3D or plane strain only;
                               #   void = true alone: the phase is a pore

[materials.inclusion]
E = 70.0
nu = 0.2

[micro]
model = "cell"                 # cell: the cell answers each point | effective: C_hom everywhere
period = 0.01                  # the RVE's edge in macro length units (epsilon), for checks
bc = "periodic"                # micro BC: periodic | dirichlet | neumann | oversampling
# oversampling = 3             # bc = "oversampling": window of 3 (odd) periods per axis

# Fewer micro solves, same answers (the defaults are the measured best; only for the cells
# they apply to):
# shortcut = true              # J2/Maxwell cells: a point whose elastic trial does not
#                              #   flow is answered by one solve with the elastic factor
#                              #   (built and kept either way: it derives the committed
#                              #   fluctuation a Newton starts from; Maxwell: the glassy one)
# linear_solver = "direct"     # J2/Maxwell cells' micro Newton: direct (refactor every
#                              #   step) | krylov (CG preconditioned by the elastic factor)
# predict = true               # power-law cells: a point's fluctuation is predicted from
#                              #   its last state and accepted if it meets the micro tolerance
# tangent_reuse = 1e-3         # ... and within this relative distance of the state where its
#                              #   tangent was formed, that tangent is reused (0: never)

# medium = "medium.py:a"       # sampled medium: the cell at x is the window x + delta (-1/2,
#                              #   1/2)^d of a(x) or a(x, epsilon) (x: (dim, n) -> (n,) > 0)
#                              #   scaling [materials.matrix]; [rve] then holds dim only.
#                              #   "rve": windows of the [rve] cell's periodic medium
# epsilon = 0.01               # the medium's period (macro units; [rve]'s L1 is one period)
# delta = 0.02                 # the window edge (delta/epsilon periods, any real number)
# cells_per_epsilon = 16       # a(x) media: structured elements per period

# [micro.graded]               # the RVE varies with the macro position
# parameter = "fraction"       # fraction | aspect | angle
# axis = "x"                   # x | y | z
# start = [0.0, 0.2]           # (position, value) ...
# end = [1.0, 0.5]             # ... linear in between, constant outside
# step = 0.05                  # values rounded to multiples of step: one cell per value
#                              #   (at most 100 values between start and end)

[solver]
rtol = 1e-10                   # macro Newton: |R| <= max(atol, rtol |R0|)
atol = 1e-12
max_iterations = 25
schedule = "owner"             # owner: each rank its points | balanced: by measured cost

[petsc]                        # PETSc options, prefixed by the solver they go to
hmm_macro_pc_type = "lu"
hmm_micro_pc_type = "cholesky"

[output]
fields = "xdmf"                # xdmf | vtx | none: macro solution and flux/stress
snapshots = "peak"             # micro fields at: "peak" (highest flux) | [[x, y], ...] | []
png = true                     # 2D: pictures of the macro field and of one RVE (and, with
#                              #   steps, curve.png: load-displacement; plastic_zone.png)
# curve = ["right", 0]         # the boundary and component of curve.png (default: the
#                              #   first Dirichlet boundary with a non-zero value)
"""
