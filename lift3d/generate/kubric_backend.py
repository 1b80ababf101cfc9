"""Kubric renderer of a :class:`~lift3d.generate.layout.SceneLayout`: Blender Cycles path tracing through kubric.

Same input and output as the fast backend (:func:`lift3d.generate.fast_backend.render_views`): the layout made by
:func:`~lift3d.generate.layout.make_layout` (objects, poses after physics, room box, cameras, intrinsics) in, a
:class:`~lift3d.generate.views.RenderedViews` out (RGB, depth along the optical axis in metres, ground-truth
instance ids equal to the layout's ``instance_id``, ground-truth semantics). Only the shading differs.

What kubric does here and what lift3d does itself:

* kubric: the scene (resolution, frames), the perspective camera (one keyframe per view, so all views render in
  one ``Blender.render`` call), the sun light, the ambient / HDRI world, Cycles set-up, the EXR render passes
  and their post-processing (``z`` = distance to the image plane, cryptomatte object ids), and optionally the
  physics (``KubricConfig.physics = "kubric"``: kubric's PyBullet simulator on URDFs of the convex hulls).
* lift3d (through ``bpy``): the object and room meshes. kubric's ``FileBasedObject`` importer calls
  ``bpy.ops.import_scene.obj`` and ``mesh.use_auto_smooth``, both removed in Blender 4.x, and
  ``kb.PrincipledBSDFMaterial`` looks up the ``Specular`` input that Blender 4 renamed, so meshes and their
  Blender-4.2 Principled materials are built directly. Each procedural mesh is subdivided until its triangles
  are small (``KubricConfig.texture_resolution``) and its solid texture (the same
  :func:`~lift3d.generate.textures.evaluate_texture` as the fast backend) is stored as a per-vertex colour; the
  room's floor, walls and ceiling get image textures baked from the same environment styles.

Lighting mirrors the fast backend: one sun with the environment's direction and colour (strength ``pi * light``
so that a white Lambertian surface facing it has the fast backend's radiance) and a uniform world of the ambient
colour (or ``hdri_path``). The room is visible to camera rays only, so it neither blocks nor reflects light: the
sun and the world light the objects and the floor through walls and ceiling, as in the fast backend. Objects cast
shadows. Colour management is Blender's ``Standard`` view (plain sRGB).

Requires the optional ``generate`` extra: kubric-nightly (installed without its dependencies), bpy==4.2.23,
tensorflow-cpu, OpenEXR, tifffile and kubric's small runtime dependencies (see ``docs/messy-rooms-format.md``).
"""

from __future__ import annotations

import importlib.util
import math
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np

from lift3d.generate.classes import layout_classes, semantic_from_instances
from lift3d.generate.config import MessyRoomsConfig, PhysicsConfig
from lift3d.generate.layout import SceneLayout, room_quads
from lift3d.generate.mesh import Mesh
from lift3d.generate.textures import ENVIRONMENTS, OPEN_ENVIRONMENTS, environment_albedo, evaluate_texture
from lift3d.generate.views import RenderedViews
from lift3d.geometry.cameras import matrix_to_quat_wxyz, quat_wxyz_to_matrix

BACKGROUND_ID = 0
OBJECT_CLASS = 1
SENSOR_WIDTH_MM = 36.0
"""Blender sensor width (kubric's default); the focal length in mm follows from fx (only their ratio matters)."""
BPY_VERSION = (4, 2)
"""Blender release the backend is written for (bpy 5.x breaks kubric's renderer; bpy 4.2 is the tested one)."""
INSTALL_HINT = (
    'pip install "lift3d[generate]" && pip install --no-deps kubric-nightly==2023.12.27 (Python 3.11; '
    "`make test` does both; see docs/messy-rooms-format.md)"
)
RUNTIME_MODULES = (
    "bpy",
    "kubric",
    "tensorflow",
    "OpenEXR",
    "Imath",
    "pyquaternion",
    "munch",
    "traitlets",
    "etils",
    "singledispatchmethod",
    "png",
    "trimesh",
    "sklearn",
    "tifffile",
)
"""Modules that ``import kubric`` and its Blender renderer / PyBullet simulator need at run time."""
OBJECT_NAME = "lift3d_instance_{:05d}"
"""Blender name of the object with instance id ``k``; cryptomatte hashes this name."""


class KubricUnavailable(ImportError):
    """The optional ``generate`` extra (kubric, bpy 4.2, ...) is missing or broken."""


def missing_dependencies() -> List[str]:
    """Names of the modules of :data:`RUNTIME_MODULES` that cannot be found (without importing anything)."""
    return [m for m in RUNTIME_MODULES if importlib.util.find_spec(m) is None]


def _bpy_version_problem() -> Optional[str]:
    from importlib.metadata import PackageNotFoundError, version

    try:
        v = version("bpy")
    except PackageNotFoundError:
        return None  # a Blender-bundled bpy has no distribution metadata; trust it
    parts = tuple(int(x) for x in v.split(".")[:2] if x.isdigit())
    if parts != BPY_VERSION:
        return (
            f"bpy {v} is installed but the kubric backend needs bpy 4.2 (bpy 5.x breaks kubric's renderer): "
            "pip install bpy==4.2.23. Or use backend='fast'."
        )
    return None


def check_available() -> None:
    """Raise :class:`KubricUnavailable` (with the install command) unless the kubric backend can run here."""
    missing = missing_dependencies()
    if missing:
        raise KubricUnavailable(
            f"The kubric backend needs the modules {missing}, which are not installed. Install "
            f"the optional extra: {INSTALL_HINT}. Or use backend='fast'."
        )
    problem = _bpy_version_problem()
    if problem:
        raise KubricUnavailable(problem)


def _import_kubric():
    """Import kubric, its Blender renderer and bpy (slow: tensorflow and Blender load, ~5 s)."""
    check_available()
    import logging
    import os

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # kubric imports tensorflow for tf.io.gfile only
    try:
        import bpy
        import kubric as kb
        from kubric.renderer.blender import Blender
    except Exception as err:  # broken installs raise all sorts of errors; name the fix
        raise KubricUnavailable(
            f"Importing kubric / bpy failed ({type(err).__name__}: {err}). Reinstall the "
            f"optional extra: {INSTALL_HINT}."
        ) from err
    logging.getLogger("kubric").setLevel(logging.WARNING)
    return kb, Blender, bpy


# --------------------------------------------------------------------------------------------------------------
# Geometry helpers (pure numpy, tested without Blender)
# --------------------------------------------------------------------------------------------------------------


def subdivision_level(mesh: Mesh, size: float, texture_resolution: float, max_triangles: int) -> int:
    """Number ``n`` of parts each edge is cut into (every triangle becomes ``n**2`` triangles).

    ``n = ceil(longest_edge * texture_resolution / size)``, at least 1 and at most
    ``floor(sqrt(max_triangles / num_triangles))``.
    """
    v = mesh.vertices[mesh.triangles]  # [T, 3, 3]
    longest = max(float(np.linalg.norm(v[:, i] - v[:, (i + 1) % 3], axis=1).max()) for i in range(3))
    n = math.ceil(longest * texture_resolution / size - 1e-9)
    cap = int(math.floor(math.sqrt(max_triangles / max(len(mesh.triangles), 1))))
    return max(1, min(n, cap))


def subdivide(
    vertices: np.ndarray, triangles: np.ndarray, normals: np.ndarray, n: int
) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cut every triangle into ``n**2`` congruent triangles (a barycentric grid), same orientation.

    Grid point ``(i, j)`` (``i + j <= n``) of triangle ``(a, b, c)`` is ``a + i/n (b - a) + j/n (c - a)``; its
    normal is the barycentric blend of the corner normals, renormalised. Vertices are not shared between the
    original triangles (as smooth shading uses the blended normals, the look does not change). Shapes:
    ``[V, 3], [T, 3], [V, 3] -> [T * P, 3], [T * n**2, 3], [T * P, 3]`` with ``P = (n + 1)(n + 2) / 2``.
    """
    ij = np.array([(i, j) for j in range(n + 1) for i in range(n + 1 - j)], dtype=np.int64)  # [P, 2]
    index = {tuple(p): k for k, p in enumerate(ij.tolist())}
    tris = []
    for j in range(n):
        for i in range(n - j):
            tris.append((index[(i, j)], index[(i + 1, j)], index[(i, j + 1)]))
            if i + j < n - 1:
                tris.append((index[(i + 1, j)], index[(i + 1, j + 1)], index[(i, j + 1)]))
    local = np.asarray(tris, dtype=np.int64)  # [n^2, 3]
    w = np.column_stack([n - ij[:, 0] - ij[:, 1], ij[:, 0], ij[:, 1]]).astype(np.float64) / n  # [P, 3]
    corners = vertices[triangles]  # [T, 3, 3]
    out_v = np.einsum("pk,tkd->tpd", w, corners).reshape(-1, 3)
    nrm = np.einsum("pk,tkd->tpd", w, normals[triangles]).reshape(-1, 3)
    nrm /= np.maximum(np.linalg.norm(nrm, axis=1, keepdims=True), 1e-12)
    P = len(ij)
    out_t = (local[None, :, :] + (np.arange(len(triangles)) * P)[:, None, None]).reshape(-1, 3)
    return out_v, out_t, nrm


def camera_focal_mm(fx: float, width: int, sensor_width_mm: float = 36.0) -> float:
    """Blender focal length (mm) of a pinhole with ``fx`` pixels on a ``width``-pixel, horizontally fitted
    sensor: ``f_mm = fx * sensor_width / width``."""
    return fx * sensor_width_mm / width


def bake_quad_texture(
    environment: str, corners: np.ndarray, surface: int, texels_per_metre: float, max_side: int = 4096
) -> np.ndarray:
    """Linear-RGB image ``[h, w, 3]`` of the environment albedo on a room quad (row 0 at ``v = 0``, i.e. Blender's
    bottom-up pixel order). Texel ``(i, j)`` samples ``a + (i + 0.5)/w (b - a) + (j + 0.5)/h (d - a)``."""
    a, b, _, d = corners
    w = int(min(max_side, max(2, round(np.linalg.norm(b - a) * texels_per_metre))))
    h = int(min(max_side, max(2, round(np.linalg.norm(d - a) * texels_per_metre))))
    u = (np.arange(w) + 0.5) / w
    v = (np.arange(h) + 0.5) / h
    uu, vv = np.meshgrid(u, v)  # [h, w]
    pts = a + uu.reshape(-1, 1) * (b - a) + vv.reshape(-1, 1) * (d - a)
    rgb = environment_albedo(environment, pts, np.full(len(pts), surface))
    return rgb.reshape(h, w, 3)


# --------------------------------------------------------------------------------------------------------------
# Blender scene building
# --------------------------------------------------------------------------------------------------------------


def _principled(bpy, name: str, roughness: float, specular: float):
    """A Blender-4.2 Principled BSDF material (returns the material and its BSDF node)."""
    mat = bpy.data.materials.new(name)
    mat.use_nodes = True
    bsdf = mat.node_tree.nodes["Principled BSDF"]
    bsdf.inputs["Roughness"].default_value = roughness
    bsdf.inputs["Specular IOR Level"].default_value = specular  # 'Specular' before Blender 4.0
    bsdf.inputs["Metallic"].default_value = 0.0
    return mat, bsdf


def _mesh_object(
    bpy,
    name: str,
    vertices: np.ndarray,
    triangles: np.ndarray,
    normals: Optional[np.ndarray] = None,
    uvs: Optional[np.ndarray] = None,
):
    """A Blender mesh object from triangles (``vertices [V, 3]``, ``triangles [T, 3]``), linked to the scene."""
    me = bpy.data.meshes.new(name)
    me.vertices.add(len(vertices))
    me.vertices.foreach_set("co", vertices.astype(np.float32).ravel())
    me.loops.add(3 * len(triangles))
    me.loops.foreach_set("vertex_index", triangles.astype(np.int32).ravel())
    me.polygons.add(len(triangles))
    me.polygons.foreach_set("loop_start", np.arange(0, 3 * len(triangles), 3, dtype=np.int32))
    me.polygons.foreach_set("loop_total", np.full(len(triangles), 3, dtype=np.int32))
    if uvs is not None:
        layer = me.uv_layers.new(name="UVMap")
        layer.data.foreach_set("uv", uvs[triangles.ravel()].astype(np.float32).ravel())
    me.update(calc_edges=True)
    me.validate(clean_customdata=False)
    if normals is not None:
        me.shade_smooth()
        me.normals_split_custom_set_from_vertices(normals.astype(np.float32))
    obj = bpy.data.objects.new(name, me)
    obj.rotation_mode = "QUATERNION"
    bpy.context.scene.collection.objects.link(obj)
    return obj


def _add_image_textured_object(bpy, obj, mesh: Mesh, kcfg):
    """A Google Scanned Objects mesh (``assets = PATH``): one vertex per triangle corner (so UV seams stay sharp)
    with the mesh's smooth normals, its UVs and its texture image (sRGB, bilinear) as the Principled base colour."""
    t = mesh.triangles
    corners = np.arange(3 * len(t)).reshape(-1, 3)
    uvs = None if mesh.corner_uvs is None else mesh.corner_uvs.reshape(-1, 2)
    bobj = _mesh_object(
        bpy,
        OBJECT_NAME.format(obj.instance_id),
        mesh.vertices[t].reshape(-1, 3),
        corners,
        normals=mesh.normals[t].reshape(-1, 3),
        uvs=uvs,
    )
    mat, bsdf = _principled(bpy, f"material_{obj.instance_id:05d}", kcfg.roughness, kcfg.specular)
    if mesh.texture_image is None or uvs is None:
        bsdf.inputs["Base Color"].default_value = (0.5**2.2,) * 3 + (1.0,)  # gso.UNTEXTURED_ALBEDO, linear
    else:
        h, w, _ = mesh.texture_image.shape
        image = bpy.data.images.new(f"texture_{obj.instance_id:05d}", width=w, height=h, alpha=False)
        # Blender stores the bottom row first; byte images are sRGB and converted to linear when sampled
        rgba = np.concatenate([mesh.texture_image[::-1] / 255.0, np.ones((h, w, 1))], axis=2)
        image.pixels.foreach_set(rgba.astype(np.float32).ravel())
        image.pack()
        tex = mat.node_tree.nodes.new("ShaderNodeTexImage")
        tex.image = image
        tex.interpolation = "Linear"
        mat.node_tree.links.new(tex.outputs["Color"], bsdf.inputs["Base Color"])
    bobj.data.materials.append(mat)
    return bobj


def _add_layout_object(bpy, obj, kcfg) -> None:
    """One placed object: subdivided mesh, per-vertex texture colours, Principled material, pose."""
    mesh = obj.mesh()
    if obj.asset.texture is None:  # image-textured (GSO) mesh: no subdivision, UVs + image texture
        bobj = _add_image_textured_object(bpy, obj, mesh, kcfg)
        bobj.location = [float(x) for x in obj.translation]
        bobj.rotation_quaternion = matrix_to_quat_wxyz(obj.rotation, w_nonnegative=False)
        return
    size = obj.asset.size
    n = subdivision_level(mesh, size, kcfg.texture_resolution, kcfg.max_triangles_per_object)
    v, t, nrm = subdivide(mesh.vertices, mesh.triangles, mesh.normals, n)
    albedo = np.clip(evaluate_texture(obj.asset.texture, v / size), 0.0, 1.0)  # linear RGB [V, 3]
    bobj = _mesh_object(bpy, OBJECT_NAME.format(obj.instance_id), v, t, normals=nrm)
    attr = bobj.data.color_attributes.new(name="albedo", type="FLOAT_COLOR", domain="POINT")
    rgba = np.concatenate([albedo, np.ones((len(albedo), 1))], axis=1).astype(np.float32)
    attr.data.foreach_set("color", rgba.ravel())
    mat, bsdf = _principled(bpy, f"material_{obj.instance_id:05d}", kcfg.roughness, kcfg.specular)
    node = mat.node_tree.nodes.new("ShaderNodeAttribute")
    node.attribute_name = "albedo"
    mat.node_tree.links.new(node.outputs["Color"], bsdf.inputs["Base Color"])
    bobj.data.materials.append(mat)
    bobj.location = [float(x) for x in obj.translation]
    bobj.rotation_quaternion = matrix_to_quat_wxyz(obj.rotation, w_nonnegative=False)


def _add_room(bpy, layout: SceneLayout, environment: str, kcfg) -> None:
    """The closed room box, one textured quad per face, visible to camera rays only (it casts no shadow and
    passes the sun's and the world's light through, as in the fast backend)."""
    for k, (corners, surface) in enumerate(room_quads(layout.room_min, layout.room_max)):
        img_rgb = bake_quad_texture(environment, corners, surface, kcfg.room_texels_per_metre)
        h, w, _ = img_rgb.shape
        image = bpy.data.images.new(f"room_{k}", width=w, height=h, float_buffer=True, alpha=False)
        pixels = np.concatenate([img_rgb, np.ones((h, w, 1))], axis=2).astype(np.float32)
        image.pixels.foreach_set(pixels.ravel())
        image.pack()
        uv = np.array([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
        tris = np.array([[0, 1, 2], [0, 2, 3]])
        bobj = _mesh_object(bpy, f"room_{k}", corners, tris, uvs=uv)
        mat, bsdf = _principled(bpy, f"room_material_{k}", 1.0, 0.0)
        tex = mat.node_tree.nodes.new("ShaderNodeTexImage")
        tex.image = image
        tex.interpolation = "Closest"
        mat.node_tree.links.new(tex.outputs["Color"], bsdf.inputs["Base Color"])
        bobj.data.materials.append(mat)
        for ray in ("diffuse", "glossy", "shadow", "transmission", "volume_scatter"):
            setattr(bobj, f"visible_{ray}", False)


def _settings(bpy, kcfg) -> None:
    scene = bpy.context.scene
    scene.view_settings.view_transform = "Standard"  # plain sRGB (Blender 4's default AgX changes colours)
    scene.view_settings.look = "None"
    scene.render.image_settings.color_depth = "8"
    scene.cycles.use_adaptive_sampling = False
    scene.cycles.max_bounces = kcfg.max_bounces
    scene.render.use_persistent_data = True


# --------------------------------------------------------------------------------------------------------------
# Physics through kubric's PyBullet simulator (KubricConfig.physics = "kubric")
# --------------------------------------------------------------------------------------------------------------


def hull_urdf(name: str, mesh_file: str, mass: float) -> str:
    """URDF text of a rigid body whose collision shape is the convex hull in ``mesh_file`` (pybullet recomputes
    the inertia from the shape when it loads the file)."""
    return (
        f'<?xml version="1.0"?>\n<robot name="{name}">\n  <link name="base">\n'
        f'    <inertial><origin xyz="0 0 0"/><mass value="{mass:.9g}"/>'
        f'<inertia ixx="1" ixy="0" ixz="0" iyy="1" iyz="0" izz="1"/></inertial>\n'
        f'    <collision><origin xyz="0 0 0"/><geometry><mesh filename="{mesh_file}"/></geometry></collision>\n'
        f"  </link>\n</robot>\n"
    )


def _write_obj(path: Path, vertices: np.ndarray) -> None:
    from scipy.spatial import ConvexHull

    faces = ConvexHull(vertices).simplices
    lines = [f"v {x:.9g} {y:.9g} {z:.9g}" for x, y, z in vertices]
    lines += [f"f {a + 1} {b + 1} {c + 1}" for a, b, c in faces]
    path.write_text("\n".join(lines) + "\n")


def settle_with_kubric(
    meshes: List[Mesh],
    rotations: List[np.ndarray],
    centres: np.ndarray,
    physics: PhysicsConfig,
    progress: Optional[Callable[[int, int], None]] = None,
) -> Tuple[List[np.ndarray], np.ndarray, int, float, bool]:
    """Drop and settle the objects with kubric's PyBullet simulator; same contract as
    :func:`lift3d.generate.layout.settle` (pass it as ``make_layout(cfg, settle_fn=settle_with_kubric)``).

    Every object is a ``kb.FileBasedObject`` whose URDF holds its convex hull (mass = density * hull volume); the
    floor is a static ``kb.Cube`` with its top face at z = 0. kubric sets mass, friction and restitution; the
    rolling / spinning friction and damping of :class:`PhysicsConfig` are set on the same pybullet bodies. The
    simulation runs for ``max_seconds`` in one ``PyBullet.run`` call (a kubric frame = ``check_every_steps``
    steps; ``min_seconds`` and early stopping do not apply); ``settled`` says whether every object was at rest in
    the last frame.
    """
    check_available()
    import os

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import kubric as kb
    import pybullet as pb
    from kubric.simulator.pybullet import PyBullet

    step_rate = int(round(1.0 / physics.time_step))
    steps_per_frame = max(1, int(physics.check_every_steps))
    if step_rate % steps_per_frame:
        raise ValueError(
            f"kubric physics needs 1/time_step ({step_rate}) to be a multiple of check_every_steps ({steps_per_frame})."
        )
    max_frames = int(math.ceil(physics.max_seconds / physics.time_step / steps_per_frame))
    with tempfile.TemporaryDirectory(prefix="lift3d_kubric_physics_") as tmp:
        tmp = Path(tmp)
        scene = kb.Scene(
            frame_start=0,
            frame_end=max_frames,
            frame_rate=step_rate // steps_per_frame,
            step_rate=step_rate,
            gravity=(0.0, 0.0, -9.81),
        )
        sim = PyBullet(scene, scratch_dir=tmp)
        floor = kb.Cube(
            name="floor",
            scale=(100.0, 100.0, 1.0),
            position=(0.0, 0.0, -1.0),
            static=True,
            friction=min(1.0, physics.lateral_friction),
            restitution=physics.restitution,
        )
        scene += floor
        objects = []
        for i, (mesh, R, c) in enumerate(zip(meshes, rotations, centres)):
            _write_obj(tmp / f"hull_{i}.obj", mesh.hull_vertices)
            (tmp / f"object_{i}.urdf").write_text(
                hull_urdf(f"object_{i}", str(tmp / f"hull_{i}.obj"), physics.density * mesh.hull_volume)
            )
            obj = kb.FileBasedObject(
                name=f"object_{i}",
                simulation_filename=str(tmp / f"object_{i}.urdf"),
                render_filename=None,
                position=tuple(float(x) for x in c),
                quaternion=matrix_to_quat_wxyz(R, w_nonnegative=False),
                mass=physics.density * mesh.hull_volume,
                friction=min(1.0, physics.lateral_friction),
                restitution=physics.restitution,
            )
            scene += obj
            objects.append(obj)
        client = sim.physics_client
        for body in [floor] + objects:
            extra = (
                {}
                if body is floor
                else {"linearDamping": physics.linear_damping, "angularDamping": physics.angular_damping}
            )
            pb.changeDynamics(
                body.linked_objects[sim],
                -1,
                rollingFriction=physics.rolling_friction,
                spinningFriction=physics.spinning_friction,
                physicsClientId=client,
                **extra,
            )
        if progress is not None:
            progress(0, max_frames * steps_per_frame)
        # one run over all frames: kubric resets every body to its last recorded frame after a run, so running
        # in chunks would undo each chunk's final steps
        animation, _ = sim.run(frame_start=0, frame_end=max_frames)
        if progress is not None:
            progress(max_frames * steps_per_frame, max_frames * steps_per_frame)
        rest = np.ones(max_frames + 1, dtype=bool)
        for o in objects:
            lin = np.linalg.norm(np.asarray(animation[o]["velocity"]), axis=1)
            ang = np.linalg.norm(np.asarray(animation[o]["angular_velocity"]), axis=1)
            rest &= (lin <= physics.rest_linear_speed) & (ang <= physics.rest_angular_speed)
        settled = bool(rest[-1])
        out_R, out_c = [], np.zeros((len(objects), 3))
        for i, o in enumerate(objects):
            w, x, y, z = o.quaternion
            out_R.append(quat_wxyz_to_matrix((w, x, y, z), normalize=False))
            out_c[i] = o.position
        steps = max_frames * steps_per_frame
        # Disconnect now and mark kubric's client wrapper as closed: its destructor would otherwise disconnect the
        # same client id whenever the garbage collector gets to it, by then possibly another caller's connection.
        pb.disconnect(physicsClientId=client)
        sim._physics_client._client = -1
    return out_R, out_c, steps, steps * physics.time_step, settled


# --------------------------------------------------------------------------------------------------------------
# Public entry points
# --------------------------------------------------------------------------------------------------------------


def render_views_kubric(
    layout: SceneLayout, cfg: MessyRoomsConfig, progress: Optional[Callable[[int, int], None]] = None
) -> RenderedViews:
    """Render every camera of ``layout`` with kubric + Blender Cycles. See the module docstring.

    Returns the same :class:`RenderedViews` as the fast backend: ``rgb [V, H, W, 3]`` uint8, ``depth [V, H, W]``
    float32 (distance along the optical axis, m), ``instance [V, H, W]`` uint16 (the layout's ``instance_id``,
    0 = room) and ``semantic [V, H, W]`` uint8 (the scene's classes,
    :func:`~lift3d.generate.classes.semantic_from_instances`). Views are rendered
    ``KubricConfig.views_per_render_call`` at a time; ``progress(done_views, num_views)`` is called after each call.
    """
    if cfg.environment not in ENVIRONMENTS:
        raise ValueError(f"Unknown environment {cfg.environment!r}; expected one of {sorted(ENVIRONMENTS)}.")
    if cfg.environment in OPEN_ENVIRONMENTS:
        raise ValueError(
            f"The kubric backend renders closed rooms only; environment {cfg.environment!r} needs --backend fast."
        )
    K = layout.intrinsics
    if abs(K.fx - K.fy) > 1e-6 * K.fx or abs(K.cx - K.width / 2) > 1e-6 or abs(K.cy - K.height / 2) > 1e-6:
        raise ValueError(
            f"The kubric backend renders square pixels with a centred principal point; got fx={K.fx}, "
            f"fy={K.fy}, cx={K.cx}, cy={K.cy} for {K.width}x{K.height}."
        )
    if cfg.hdri_path is not None and not Path(cfg.hdri_path).is_file():
        raise FileNotFoundError(
            f"hdri_path {cfg.hdri_path} does not exist; give an equirectangular .hdr/.exr "
            "file or leave hdri_path unset."
        )
    kb, Blender, bpy = _import_kubric()
    kcfg = cfg.kubric
    V, W, H = layout.num_views, K.width, K.height
    style = ENVIRONMENTS[cfg.environment]
    if progress is not None:
        progress(0, V)

    with tempfile.TemporaryDirectory(prefix="lift3d_kubric_") as scratch:
        scene = kb.Scene(resolution=(W, H), frame_start=1, frame_end=V)
        renderer = Blender(
            scene,
            scratch_dir=Path(scratch),
            samples_per_pixel=kcfg.samples_per_pixel,
            use_denoising=kcfg.use_denoising,
            adaptive_sampling=False,
            verbose=kcfg.verbose,
        )
        _settings(bpy, kcfg)

        # camera: one keyframe per view (Blender cameras look down -z with +y up: OpenGL axes, as layout's c2w)
        camera = kb.PerspectiveCamera(
            name="camera",
            focal_length=camera_focal_mm(K.fx, W, SENSOR_WIDTH_MM),
            sensor_width=SENSOR_WIDTH_MM,
            min_render_distance=0.01,
            max_render_distance=1000.0,
        )
        scene += camera
        scene.camera = camera
        for v in range(V):
            c2w = layout.camera_to_world[v]
            camera.position = tuple(float(x) for x in c2w[:3, 3])
            camera.quaternion = matrix_to_quat_wxyz(c2w[:3, :3], w_nonnegative=False)
            camera.keyframe_insert("position", v + 1)
            camera.keyframe_insert("quaternion", v + 1)

        # light: sun from the environment's direction, strength pi * light (radiance = albedo * light * cos)
        az, el = math.radians(style.light_azimuth_deg), math.radians(style.light_elevation_deg)
        to_light = np.array([math.cos(el) * math.cos(az), math.cos(el) * math.sin(az), math.sin(el)])
        peak = max(style.light_color)
        sun = kb.DirectionalLight(
            name="sun",
            color=kb.Color(*(c / peak for c in style.light_color)),
            intensity=math.pi * peak,
            position=tuple(10.0 * to_light),
            look_at=(0, 0, 0),
        )
        scene += sun
        if cfg.hdri_path is not None:
            renderer._set_ambient_light_hdri(str(cfg.hdri_path), strength=kcfg.hdri_strength)
        else:
            scene.ambient_illumination = kb.Color(*style.ambient_color)
        scene.background = kb.Color(*style.ambient_color)

        for obj in layout.objects:
            _add_layout_object(bpy, obj, kcfg)
        _add_room(bpy, layout, cfg.environment, kcfg)

        # cryptomatte hash of an object's name -> instance id (room and background -> 0)
        from kubric.renderer.blender_utils import mm3hash

        hashes = {mm3hash(OBJECT_NAME.format(o.instance_id)): o.instance_id for o in layout.objects}

        def instance_ids(layers: Dict[str, np.ndarray], _scene) -> np.ndarray:
            crypto = layers["segmentation_indices"][..., 0]
            out = np.zeros(crypto.shape, np.uint16)
            for h, k in hashes.items():
                out[crypto == h] = k
            return out

        renderer.post_processors["lift3d_instance"] = instance_ids
        out = RenderedViews(
            np.zeros((V, H, W, 3), np.uint8),
            np.zeros((V, H, W), np.float32),
            np.zeros((V, H, W), np.uint16),
            np.zeros((V, H, W), np.uint8),
        )
        step = max(1, int(kcfg.views_per_render_call))
        for first in range(0, V, step):
            views = list(range(first, min(V, first + step)))
            data = renderer.render(frames=[v + 1 for v in views], return_layers=("rgba", "z", "lift3d_instance"))
            for sub in ("exr", "images"):  # kubric post-processes every file in its scratch folders
                shutil.rmtree(Path(scratch) / sub, ignore_errors=True)
            rgba = data["rgba"]
            if rgba.dtype == np.uint16:
                rgba = np.round(rgba.astype(np.float64) / 257.0).astype(np.uint8)
            out.rgb[views] = rgba[..., :3]
            out.depth[views] = data["z"][..., 0]
            out.instance[views] = data["lift3d_instance"]
            if progress is not None:
                progress(views[-1] + 1, V)
    out.semantic[:] = semantic_from_instances(layout, layout_classes(layout, cfg), out.instance)
    if not np.isfinite(out.depth).all() or (out.depth <= 0).any() or (out.depth > 1e6).any():
        warnings.warn("Some kubric depth pixels saw no surface (the room box should close the scene).", stacklevel=2)
    return out
