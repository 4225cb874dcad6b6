"""The macro scale: DOLFINx meshes and forms with no material law of their own."""
