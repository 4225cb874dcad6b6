"""Representative volume elements: gmsh geometry, periodic meshes, the periodic dof map."""
