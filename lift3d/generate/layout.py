"""Scene layout of a Messy Rooms scene: objects dropped and settled with physics, a room, and the cameras.

The layout is renderer-independent: the fast backend (open3d ray casting) and the kubric backend render the same
:class:`SceneLayout` (same object specs and poses after physics, same room box and cameras) for the same seed.

Randomness: one ``numpy.random.default_rng(cfg.seed)`` consumed in a fixed order: (1) asset specs of all objects,
(2) spawn poses, (3) cameras. Physics (pybullet, DIRECT mode, single thread) is deterministic and draws nothing.

World frame: z up, the floor is the plane z = 0, the floor region holding the objects is the square
``[-L, L]^2`` with ``L = cfg.floor_half_side``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np

from lift3d.generate.assets import build_mesh, sample_asset
from lift3d.generate.config import MessyRoomsConfig, PhysicsConfig
from lift3d.generate.mesh import AssetSpec, Mesh
from lift3d.generate.textures import CEILING, FLOOR, WALL
from lift3d.geometry.cameras import matrix_to_quat_xyzw, quat_xyzw_to_matrix

ProgressFn = Callable[[int, int], None]
"""``progress(done, total)`` callback."""


@dataclass
class CameraIntrinsics:
    """Pinhole intrinsics shared by all views (pixels)."""

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int


@dataclass
class PlacedObject:
    """An object at rest: ``x_world = rotation @ x_local + translation`` for mesh points ``x_local``."""

    instance_id: int
    """Ground-truth instance id, 1..N (0 is the background)."""
    asset: AssetSpec
    """What the object is (mesh and texture are rebuilt from this)."""
    rotation: np.ndarray
    """``[3, 3]`` object-to-world rotation."""
    translation: np.ndarray
    """``[3]`` world position of the object's local origin (its convex hull's centroid), metres."""

    def mesh(self) -> Mesh:
        return build_mesh(self.asset)

    def world_vertices(self) -> np.ndarray:
        """``[V, 3]`` mesh vertices in world coordinates."""
        return self.mesh().vertices @ self.rotation.T + self.translation


@dataclass
class PhysicsReport:
    """What the drop-and-settle simulation did."""

    steps: int
    simulated_seconds: float
    settled: bool
    """True if every object came to rest before ``max_seconds``."""
    num_removed: int
    """Objects deleted because they ended outside the floor region."""
    wall_seconds: Optional[float] = None
    """Wall-clock time of the simulation (s). A measurement, not part of the scene: ``layout.json`` leaves it out,
    so that a scene's files depend on its configuration only (None when read back from ``layout.json``)."""


@dataclass
class SceneLayout:
    """Everything a renderer needs except shading: objects, floor, room and cameras."""

    objects: List[PlacedObject]
    floor_half_side: float
    """Objects were spawned over the square ``[-L, L]^2`` (m)."""
    room_min: np.ndarray
    """``[3]`` lower corner of the closed room box (floor at z = 0)."""
    room_max: np.ndarray
    """``[3]`` upper corner of the room box (walls and ceiling)."""
    camera_to_world: np.ndarray
    """``[V, 4, 4]`` camera-to-world matrices, OpenGL axes (x right, y up, looking down -z)."""
    intrinsics: CameraIntrinsics
    seed: int
    physics: Optional[PhysicsReport] = None

    @property
    def num_views(self) -> int:
        return len(self.camera_to_world)

    def to_dict(self) -> Dict:
        """JSON-serialisable form (written as ``layout.json`` next to ``transforms.json``; the physics' wall time is
        left out, so the same configuration gives the same bytes)."""
        return {
            "seed": self.seed,
            "floor_half_side": self.floor_half_side,
            "room_min": self.room_min.tolist(),
            "room_max": self.room_max.tolist(),
            "intrinsics": vars(self.intrinsics),
            "camera_to_world": self.camera_to_world.tolist(),
            "objects": [
                {
                    "instance_id": o.instance_id,
                    "asset": o.asset.to_dict(),
                    "rotation": o.rotation.tolist(),
                    "translation": o.translation.tolist(),
                }
                for o in self.objects
            ],
            "physics": None
            if self.physics is None
            else {k: v for k, v in vars(self.physics).items() if k != "wall_seconds"},
        }

    @staticmethod
    def from_dict(d: Dict) -> "SceneLayout":
        objects = [
            PlacedObject(
                o["instance_id"],
                AssetSpec.from_dict(o["asset"]),
                np.asarray(o["rotation"], float),
                np.asarray(o["translation"], float),
            )
            for o in d["objects"]
        ]
        return SceneLayout(
            objects,
            float(d["floor_half_side"]),
            np.asarray(d["room_min"], float),
            np.asarray(d["room_max"], float),
            np.asarray(d["camera_to_world"], float),
            CameraIntrinsics(**d["intrinsics"]),
            int(d["seed"]),
            None if d.get("physics") is None else PhysicsReport(**d["physics"]),
        )


# --------------------------------------------------------------------------------------------------------------
# Spawning and physics
# --------------------------------------------------------------------------------------------------------------


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    """Uniformly random rotation ``[3, 3]`` (normalised 4D Gaussian = uniform unit quaternion)."""
    q = rng.normal(size=4)
    return quat_xyzw_to_matrix(q / np.linalg.norm(q), normalize=False)


def spawn_poses(
    rng: np.random.Generator,
    meshes: List[Mesh],
    floor_half_side: float,
    spawn_height: float,
    gap: float = 0.005,
    tries: int = 100,
) -> Tuple[List[np.ndarray], np.ndarray]:
    """Place objects without overlap above the floor (bounding spheres kept apart by ``gap``).

    Each object gets a uniform random orientation and a centre uniform over the floor square (shrunk by its
    radius) at a height in ``[r, r + spawn_height]``; a candidate that overlaps an earlier object is redrawn. When
    ``tries`` draws fail, the height range of that object is raised by its diameter and drawing continues.
    Returns rotations (list of ``[3, 3]``) and centres ``[N, 3]``.
    """
    radii = np.array([np.linalg.norm(m.hull_vertices, axis=1).max() for m in meshes])
    rotations, centres = [], np.zeros((len(meshes), 3))
    for i, r in enumerate(radii):
        rotations.append(random_rotation(rng))
        half = max(floor_half_side - r, 1e-3)
        lift = 0.0
        while True:
            cand = np.column_stack(
                [
                    rng.uniform(-half, half, tries),
                    rng.uniform(-half, half, tries),
                    r + lift + rng.uniform(0.0, spawn_height, tries),
                ]
            )
            if i == 0:
                centres[0] = cand[0]
                break
            dist = np.linalg.norm(cand[:, None, :] - centres[None, :i, :], axis=2)  # [tries, i]
            ok = np.all(dist > radii[None, :i] + r + gap, axis=1)
            if ok.any():
                centres[i] = cand[int(np.argmax(ok))]
                break
            lift += 2.0 * r
    return rotations, centres


def settle(
    meshes: List[Mesh],
    rotations: List[np.ndarray],
    centres: np.ndarray,
    physics: PhysicsConfig,
    progress: Optional[ProgressFn] = None,
) -> Tuple[List[np.ndarray], np.ndarray, int, float, bool]:
    """Drop the objects on the floor plane z = 0 and simulate until all rest (or ``max_seconds``).

    Collision shapes are the meshes' convex hulls; mass = density * hull volume. Returns final rotations, final
    centres ``[N, 3]``, steps taken, simulated seconds and whether everything came to rest.
    """
    import pybullet as p

    cid = p.connect(p.DIRECT)
    try:
        kw = {"physicsClientId": cid}
        p.setGravity(0.0, 0.0, -9.81, **kw)
        p.setTimeStep(physics.time_step, **kw)
        plane = p.createCollisionShape(p.GEOM_PLANE, **kw)
        floor = p.createMultiBody(0.0, plane, **kw)
        p.changeDynamics(
            floor,
            -1,
            lateralFriction=physics.lateral_friction,
            restitution=physics.restitution,
            rollingFriction=physics.rolling_friction,
            spinningFriction=physics.spinning_friction,
            **kw,
        )
        bodies = []
        for mesh, R, c in zip(meshes, rotations, centres):
            shape = p.createCollisionShape(p.GEOM_MESH, vertices=mesh.hull_vertices.tolist(), **kw)
            body = p.createMultiBody(
                physics.density * mesh.hull_volume,
                shape,
                basePosition=c.tolist(),
                baseOrientation=matrix_to_quat_xyzw(R, w_nonnegative=False).tolist(),
                **kw,
            )
            p.changeDynamics(
                body,
                -1,
                lateralFriction=physics.lateral_friction,
                restitution=physics.restitution,
                rollingFriction=physics.rolling_friction,
                spinningFriction=physics.spinning_friction,
                linearDamping=physics.linear_damping,
                angularDamping=physics.angular_damping,
                activationState=p.ACTIVATION_STATE_ENABLE_SLEEPING,
                **kw,
            )
            bodies.append(body)
        max_steps = int(np.ceil(physics.max_seconds / physics.time_step))
        min_steps = int(np.ceil(physics.min_seconds / physics.time_step))
        steps, settled = 0, False
        while steps < max_steps:
            p.stepSimulation(**kw)
            steps += 1
            if steps % physics.check_every_steps == 0:
                if progress is not None:
                    progress(steps, max_steps)
                if steps >= min_steps and _all_at_rest(p, bodies, physics, kw):
                    settled = True
                    break
        if progress is not None:
            progress(max_steps, max_steps)
        out_R, out_c = [], np.zeros((len(bodies), 3))
        for i, body in enumerate(bodies):
            pos, quat = p.getBasePositionAndOrientation(body, **kw)
            out_R.append(quat_xyzw_to_matrix(np.asarray(quat), normalize=False))
            out_c[i] = pos
        return out_R, out_c, steps, steps * physics.time_step, settled
    finally:
        p.disconnect(cid)


def _all_at_rest(p, bodies: List[int], physics: PhysicsConfig, kw: Dict) -> bool:
    for body in bodies:
        lin, ang = p.getBaseVelocity(body, **kw)
        if np.linalg.norm(lin) > physics.rest_linear_speed or np.linalg.norm(ang) > physics.rest_angular_speed:
            return False
    return True


# --------------------------------------------------------------------------------------------------------------
# Cameras and room
# --------------------------------------------------------------------------------------------------------------


def look_at(position: np.ndarray, target: np.ndarray, up: np.ndarray = np.array([0.0, 0.0, 1.0])) -> np.ndarray:
    """Camera-to-world ``[4, 4]`` in OpenGL axes for a camera at ``position`` looking at ``target``."""
    forward = target - position
    forward = forward / np.linalg.norm(forward)
    right = np.cross(forward, up)
    right = right / np.linalg.norm(right)
    true_up = np.cross(right, forward)
    c2w = np.eye(4)
    c2w[:3, 0], c2w[:3, 1], c2w[:3, 2], c2w[:3, 3] = right, true_up, -forward, position
    return c2w


def sample_cameras(rng: np.random.Generator, cfg: MessyRoomsConfig) -> np.ndarray:
    """Inward-facing cameras on a dome-shaped shell (Contrastive Lift, section 4). Returns ``[V, 4, 4]`` camera-to-world.

    Per view: a look-at point uniform in the square of half side ``cfg.lookat_half_side`` (height
    ``lookat_height``), so that the views of large scenes cover their whole floor; a
    distance ``d(N) * U(1 - j, 1 + j)`` with ``d(N) = base_camera_distance * sqrt(N / reference_num_objects)``; an
    elevation with ``sin(elevation)`` uniform in the configured range (uniform area on the dome); an azimuth uniform
    in ``[0, 2 pi)``. The camera sits at ``target + distance * (cos el cos az, cos el sin az, sin el)``.
    """
    d = cfg.camera_distance
    lo, hi = np.sin(np.deg2rad(cfg.camera_elevation_deg[0])), np.sin(np.deg2rad(cfg.camera_elevation_deg[1]))
    out = np.zeros((cfg.num_views, 4, 4))
    for v in range(cfg.num_views):
        x, y = rng.uniform(-cfg.lookat_half_side, cfg.lookat_half_side, size=2)
        target = np.array([x, y, cfg.lookat_height])
        dist = d * rng.uniform(1.0 - cfg.camera_distance_jitter, 1.0 + cfg.camera_distance_jitter)
        el = np.arcsin(rng.uniform(lo, hi))
        az = rng.uniform(0.0, 2.0 * np.pi)
        position = target + dist * np.array([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)])
        out[v] = look_at(position, target)
    return out


def room_box(cfg: MessyRoomsConfig) -> Tuple[np.ndarray, np.ndarray]:
    """Closed room ``(min [3], max [3])`` that contains the floor region and every possible camera position."""
    d_max = cfg.camera_distance * (1.0 + cfg.camera_distance_jitter)
    el_lo, el_hi = np.deg2rad(cfg.camera_elevation_deg[0]), np.deg2rad(cfg.camera_elevation_deg[1])
    half = max(cfg.lookat_half_side + d_max * np.cos(el_lo), cfg.floor_half_side) + cfg.room_margin
    height = cfg.lookat_height + d_max * np.sin(el_hi) + cfg.room_margin
    return np.array([-half, -half, 0.0]), np.array([half, half, height])


def make_intrinsics(cfg: MessyRoomsConfig) -> CameraIntrinsics:
    """Square pinhole camera, ``f = base_focal_length * resolution * d(N) / base_camera_distance``, centred."""
    f = cfg.focal_length_px
    return CameraIntrinsics(f, f, cfg.resolution / 2.0, cfg.resolution / 2.0, cfg.resolution, cfg.resolution)


# --------------------------------------------------------------------------------------------------------------
# Public entry point
# --------------------------------------------------------------------------------------------------------------


SettleFn = Callable[
    [List[Mesh], List[np.ndarray], np.ndarray, PhysicsConfig, Optional[ProgressFn]],
    Tuple[List[np.ndarray], np.ndarray, int, float, bool],
]
"""Signature of :func:`settle` (and of the kubric backend's ``settle_with_kubric``)."""


def make_layout(
    cfg: MessyRoomsConfig, progress: Optional[ProgressFn] = None, settle_fn: Optional[SettleFn] = None
) -> SceneLayout:
    """Sample assets, spawn them without overlap, settle them with pybullet, drop strays, and sample cameras.

    ``progress(done, total)`` is called with simulation steps. Same ``cfg`` (seed included) -> same layout.
    ``settle_fn`` replaces :func:`settle` (same arguments and results), e.g. by kubric's PyBullet simulator.
    """
    t0 = time.perf_counter()
    rng = np.random.default_rng(cfg.seed)
    specs = [sample_asset(rng, cfg.object_size_range, cfg.assets) for _ in range(cfg.num_objects)]
    meshes = [build_mesh(s) for s in specs]
    L = cfg.floor_half_side
    rotations, centres = spawn_poses(rng, meshes, L, cfg.physics.spawn_height)
    rotations, centres, steps, sim_s, settled = (settle_fn or settle)(meshes, rotations, centres, cfg.physics, progress)
    margin = cfg.physics.off_floor_margin
    keep = (np.abs(centres[:, :2]) <= L + margin).all(axis=1) & (centres[:, 2] > -0.01)
    objects = [PlacedObject(k + 1, specs[i], rotations[i], centres[i]) for k, i in enumerate(np.flatnonzero(keep))]
    cameras = sample_cameras(rng, cfg)
    room_min, room_max = room_box(cfg)
    report = PhysicsReport(steps, sim_s, settled, int((~keep).sum()), time.perf_counter() - t0)
    return SceneLayout(objects, L, room_min, room_max, cameras, make_intrinsics(cfg), cfg.seed, report)


def room_quads(lo: np.ndarray, hi: np.ndarray) -> List[Tuple[np.ndarray, int]]:
    """The room box as 6 inward-facing quads ``([4, 3] corners a, b, c, d, surface)``; texture ``u`` runs a->b and
    ``v`` runs a->d."""
    x0, y0, z0 = lo
    x1, y1, z1 = hi
    q = [
        ([x0, y0, z0], [x1, y0, z0], [x1, y1, z0], [x0, y1, z0], FLOOR),
        ([x0, y0, z1], [x0, y1, z1], [x1, y1, z1], [x1, y0, z1], CEILING),
        ([x0, y0, z0], [x0, y1, z0], [x0, y1, z1], [x0, y0, z1], WALL),
        ([x1, y0, z0], [x1, y0, z1], [x1, y1, z1], [x1, y1, z0], WALL),
        ([x0, y0, z0], [x0, y0, z1], [x1, y0, z1], [x1, y0, z0], WALL),
        ([x0, y1, z0], [x1, y1, z0], [x1, y1, z1], [x0, y1, z1], WALL),
    ]
    return [(np.asarray(c[:4], dtype=np.float64), c[4]) for c in q]
