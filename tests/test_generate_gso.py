"""lift3d.generate.gso: Google Scanned Objects from a local folder (``assets=PATH``), on a tiny synthetic GSO-style
folder written by the test (a cube and a flat box, both UV-mapped onto a 4x4 texture with one colour per quadrant)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import open3d as o3d
import pytest
from PIL import Image

from lift3d.generate.assets import build_mesh, sample_asset
from lift3d.generate.config import MessyRoomsConfig
from lift3d.generate.fast_backend import render_views
from lift3d.generate.gso import GSOError, discover_objects, interpolate_uv, read_obj, sample_texture_image
from lift3d.generate.layout import SceneLayout, make_layout
from lift3d.generate.mesh import AssetSpec
from lift3d.generate.textures import srgb_to_linear

# quadrants of the 4x4 texture (2x2 texels each), as seen in the image: top-left, top-right, bottom-left, bottom-right
QUAD_COLOURS = {"tl": (255, 0, 0), "tr": (0, 255, 0), "bl": (0, 0, 255), "br": (255, 255, 0)}
# (u0, v0) of each quadrant in OBJ texture space (v up): bottom-left quadrant = u, v in [0, 0.5]
QUAD_UV0 = {"bl": (0.0, 0.0), "br": (0.5, 0.0), "tl": (0.0, 0.5), "tr": (0.5, 0.5)}


def _texture() -> np.ndarray:
    img = np.zeros((4, 4, 3), np.uint8)
    img[:2, :2], img[:2, 2:] = QUAD_COLOURS["tl"], QUAD_COLOURS["tr"]
    img[2:, :2], img[2:, 2:] = QUAD_COLOURS["bl"], QUAD_COLOURS["br"]
    return img


def _write_box(folder: Path, dims, negative_indices: bool) -> None:
    """A box OBJ whose 6 quad faces map to the *interior* of one texture quadrant each (u, v within 1/8 .. 3/8 of
    the quadrant's origin: between texel centres, so bilinear look-ups never mix quadrants)."""
    (folder / "meshes").mkdir(parents=True)
    (folder / "materials" / "textures").mkdir(parents=True)
    Image.fromarray(_texture()).save(folder / "materials" / "textures" / "texture.png")
    (folder / "meshes" / "material.mtl").write_text(
        "newmtl material_0\nKd 1 1 1\nmap_Kd ../materials/textures/texture.png\n"
    )
    corners = np.array([[x, y, z] for x in (-0.5, 0.5) for y in (-0.5, 0.5) for z in (-0.5, 0.5)]) * dims
    faces = [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)]
    lines = ["# synthetic GSO-style box", "mtllib material.mtl"]
    lines += [f"v {x:.6f} {y:.6f} {z:.6f}" for x, y, z in corners]
    order = ["tl", "tr", "bl", "br", "tl", "tr"]
    for q in order:
        u0, v0 = QUAD_UV0[q]
        for du, dv in ((0.125, 0.125), (0.375, 0.125), (0.375, 0.375), (0.125, 0.375)):
            lines.append(f"vt {u0 + du} {v0 + dv}")
    lines.append("usemtl material_0")
    for f, face in enumerate(faces):
        if negative_indices:  # relative indices: -8 is the first vertex, -24 the first vt
            lines.append("f " + " ".join(f"{c - 8}/{4 * f + k - 24}" for k, c in enumerate(face)))
        else:
            lines.append("f " + " ".join(f"{c + 1}/{4 * f + k + 1}" for k, c in enumerate(face)))
    (folder / "meshes" / "model.obj").write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def gso_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("gso")
    _write_box(root / "Cube", np.array([1.0, 1.0, 1.0]), negative_indices=False)
    _write_box(root / "Flat_Box", np.array([1.0, 0.7, 0.4]), negative_indices=True)
    (root / "not_an_object").mkdir()  # a folder without meshes/model.obj is ignored
    return root


def test_discover_and_read(gso_root):
    assert [p.name for p in discover_objects(gso_root)] == ["Cube", "Flat_Box"]
    for name in ("Cube", "Flat_Box"):
        v, t, uv, tex = read_obj(gso_root / name / "meshes" / "model.obj")
        assert v.shape == (8, 3) and t.shape == (12, 3) and uv.shape == (12, 3, 2)
        assert tex == (gso_root / name / "materials" / "textures" / "texture.png").resolve()
        # both triangles of a quad lie in the same quadrant's interior
        assert np.all((uv % 0.5 >= 0.125 - 1e-9) & (uv % 0.5 <= 0.375 + 1e-9))


def test_mesh_is_rescaled_and_centred_like_procedural_assets(gso_root):
    spec = AssetSpec("gso", 0.2, {"path": str(gso_root / "Flat_Box"), "name": "Flat_Box"}, None)
    m = build_mesh(spec)
    extent = m.vertices.max(0) - m.vertices.min(0)
    np.testing.assert_allclose(extent, [0.2, 0.14, 0.08], atol=1e-9)  # largest extent = size, proportions kept
    np.testing.assert_allclose(m.vertices.mean(0), 0.0, atol=1e-9)  # a box's hull centroid is its centre
    assert m.hull_volume == pytest.approx(0.2 * 0.14 * 0.08)
    assert m.texture_image.shape == (4, 4, 3) and m.corner_uvs.shape == (12, 3, 2)
    assert spec.to_dict()["texture"] is None and AssetSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec


def test_texture_lookup_hand_values():
    img = _texture()
    lin = lambda c: srgb_to_linear(np.asarray(c) / 255.0)  # noqa: E731
    # texel centres: (col + 0.5) / 4, v = 1 - (row + 0.5) / 4
    uv = np.array([[0.125, 0.875], [0.875, 0.875], [0.125, 0.125], [0.875, 0.125], [0.5, 0.875]])
    out = sample_texture_image(img, uv)
    np.testing.assert_allclose(out[:4], [lin(QUAD_COLOURS[q]) for q in ("tl", "tr", "bl", "br")], atol=1e-12)
    np.testing.assert_allclose(out[4], 0.5 * (lin(QUAD_COLOURS["tl"]) + lin(QUAD_COLOURS["tr"])), atol=1e-12)


def test_barycentric_convention_matches_open3d():
    """open3d's primitive_uvs (b1, b2) weight the corners as (1 - b1 - b2, b1, b2): interpolating the corner
    *positions* with interpolate_uv's weights must give the hit point."""
    tri = np.array([[0.0, 0.0, 0.0], [2.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(o3d.core.Tensor(tri.astype(np.float32)), o3d.core.Tensor(np.array([[0, 1, 2]], np.uint32)))
    hits = np.array([[0.5, 0.25], [1.2, 0.3], [0.1, 0.8]])
    rays = np.concatenate([np.c_[hits, np.ones(3)], np.tile([0.0, 0.0, -1.0], (3, 1))], 1).astype(np.float32)
    bary = scene.cast_rays(o3d.core.Tensor(rays))["primitive_uvs"].numpy().astype(np.float64)
    got = interpolate_uv(np.repeat(tri[None, :, :2], 3, axis=0), bary)
    np.testing.assert_allclose(got, hits, atol=1e-5)


def test_sampling_is_deterministic_and_uses_the_folder(gso_root):
    a = [sample_asset(np.random.default_rng(3), (0.1, 0.2), str(gso_root)) for _ in range(2)]
    specs = [sample_asset(rng, (0.1, 0.2), str(gso_root)) for rng in [np.random.default_rng(3)] for _ in range(20)]
    assert a[0] == a[1]
    assert {s.kind for s in specs} == {"gso"} and {s.params["name"] for s in specs} == {"Cube", "Flat_Box"}
    assert all(0.1 <= s.size <= 0.2 for s in specs)


def test_missing_or_empty_folder_gives_a_clear_error(tmp_path):
    missing = tmp_path / "nope"
    with pytest.raises(GSOError, match="not a folder") as err:
        sample_asset(np.random.default_rng(0), (0.1, 0.2), str(missing))
    assert str(missing) in str(err.value)
    (tmp_path / "empty" / "some_object").mkdir(parents=True)
    with pytest.raises(GSOError, match="no Google Scanned Objects") as err:
        discover_objects(tmp_path / "empty")
    assert str(tmp_path / "empty") in str(err.value)


def test_missing_texture_names_the_file(tmp_path):
    _write_box(tmp_path / "Broken", np.ones(3), negative_indices=False)
    (tmp_path / "Broken" / "materials" / "textures" / "texture.png").unlink()
    with pytest.raises(GSOError, match="texture.png"):
        read_obj(tmp_path / "Broken" / "meshes" / "model.obj")


@pytest.fixture(scope="module")
def gso_scene(gso_root):
    cfg = MessyRoomsConfig(
        num_objects=3,
        num_views=2,
        resolution=32,
        seed=1,
        assets=str(gso_root),
        object_size_range=(0.25, 0.35),
        rgb_supersampling=1,
    )
    layout = make_layout(cfg)
    return cfg, layout, render_views(layout, cfg)


def test_layout_holds_gso_specs_and_is_reproducible(gso_scene, gso_root):
    cfg, layout, _ = gso_scene
    assert len(layout.objects) >= 1
    assert all(
        o.asset.kind == "gso" and Path(o.asset.params["path"]).parent == gso_root.resolve() for o in layout.objects
    )
    again = make_layout(cfg)
    assert json.dumps(again.to_dict()["objects"]) == json.dumps(layout.to_dict()["objects"])
    back = SceneLayout.from_dict(json.loads(json.dumps(layout.to_dict())))
    assert [o.asset for o in back.objects] == [o.asset for o in layout.objects]


def test_rendered_object_pixels_take_their_colours_from_the_texture(gso_scene):
    """Shading multiplies the albedo per channel, so a face textured pure red renders with G = B = 0 exactly (and
    R > 0 thanks to the ambient light); every object pixel must show one of the texture's 4 channel patterns.
    Procedural solid textures never give exact zeros, so this fails unless the texture is used."""
    _, _, views = gso_scene
    patterns = {tuple(np.asarray(c) > 0) for c in QUAD_COLOURS.values()}
    obj = views.instance > 0
    assert obj.sum() >= 20  # the objects are visible
    rgb = views.rgb[obj]
    seen = {tuple(p) for p in (rgb > 0)}
    assert seen <= patterns, f"object pixels with channel patterns {seen - patterns} are not from the texture"
    assert len(seen) >= 2  # several faces (quadrants) are visible


def _kubric_missing() -> bool:
    from lift3d.generate.kubric_backend import missing_dependencies

    return bool(missing_dependencies())


@pytest.mark.skipif(_kubric_missing(), reason="optional extra lift3d[generate] (kubric, bpy 4.2) not installed")
def test_kubric_backend_renders_gso_objects_with_their_texture(gso_scene):
    """Cycles adds indirect light and anti-aliasing, so no exact zeros: instead each object pixel's nearest texture
    colour (by chromaticity r, g, b / (r + g + b)) must be the one the fast backend shows there (same UV mapping),
    for most pixels (edges differ by anti-aliasing)."""
    from lift3d.generate.kubric_backend import render_views_kubric

    cfg, layout, fast = gso_scene
    assert all(o.asset.kind == "gso" for o in layout.objects)
    kcfg = MessyRoomsConfig(**{**vars(cfg), "backend": "kubric"})
    kcfg.kubric.samples_per_pixel = 8
    views = render_views_kubric(layout, kcfg)
    obj = (views.instance > 0) & (fast.instance > 0)
    assert obj.sum() >= 20
    refs = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [0.5, 0.5, 0]])

    def nearest(rgb):
        chroma = rgb.astype(np.float64) / np.maximum(rgb.sum(1, keepdims=True), 1.0)
        return np.linalg.norm(chroma[:, None] - refs[None], axis=2).argmin(1)

    same = nearest(views.rgb[obj]) == nearest(fast.rgb[obj])
    assert same.mean() > 0.8, f"only {same.mean():.0%} of object pixels show the fast backend's texture colour"
    assert len(np.unique(nearest(views.rgb[obj]))) >= 2
