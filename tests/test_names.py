"""Each public name means one thing, and modules do not borrow each other's private helpers."""

import ast
from pathlib import Path

import hmm_fenics
from hmm_fenics.rve import packing, periodic, spec

PACKAGE = Path(hmm_fenics.__file__).parent


def test_periodic_images_and_shapes_have_one_meaning_each():
    # node matching of a periodic mesh vs translated copies of an inclusion
    assert hasattr(periodic, "periodic_images") and not hasattr(packing, "periodic_images")
    assert hasattr(packing, "translated_copies")
    # every shape of a spec vs the shapes a random packing can place
    assert hasattr(spec, "SHAPES") and not hasattr(packing, "SHAPES")
    for dim, shapes in packing.RANDOM_SHAPES.items():
        assert set(shapes) <= set(spec.SHAPES[dim])


def test_micro_modules_import_no_private_names():
    borrowed = []
    for path in sorted((PACKAGE / "micro").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("hmm_fenics"):
                borrowed += [f"{path.name}: {a.name}" for a in node.names if a.name.startswith("_")]
    assert not borrowed
