"""Configuration of the Messy Rooms scene generator (Contrastive Lift (Bhalgat et al., NeurIPS 2023), Sec. 4 and
appendix A).

One dataclass, :class:`MessyRoomsConfig`, drives every stage: asset sampling, layout and physics, cameras,
rendering, the simulated 2D segmenter and the writer. Every field carries a docstring so that ``--help`` of the
CLI is the documentation.

Scaling rules (Contrastive Lift, Sec. 4), with ``N = num_objects``:

* floor area  ``A(N) = N * floor_area_per_object``  (objects never get more densely packed as N grows);
* camera distance ``d(N) = base_camera_distance * sqrt(N / reference_num_objects)``  (cameras move back as the
  scene's extent ``sqrt(A)`` grows);
* focal length ``f(N) = base_focal_length * d(N) / base_camera_distance``  (zoom in by the same factor, so the
  floor footprint of an image, and hence the number of objects per image, stays about constant).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Annotated, Any, Dict, Literal, Optional, Tuple

import tyro

from lift3d.geometry.cameras import Distortion, UnsupportedCameraError

WRITABLE_DISTORTIONS = ("opencv", "opencv_fisheye", "simple_radial", "radial")
"""Lens models the generator renders: those a nerfstudio ``transforms.json`` records (``simple_radial`` and
``radial`` as OPENCV with the other coefficients 0)."""


@dataclass
class PhysicsConfig:
    """Settings of the pybullet drop-and-settle simulation."""

    time_step: float = 1.0 / 240.0
    """Simulation time step in seconds (pybullet's default)."""
    max_seconds: float = 6.0
    """Stop simulating after this much simulated time even if some object still moves."""
    min_seconds: float = 0.5
    """Always simulate at least this long before testing whether the scene has settled."""
    check_every_steps: int = 24
    """Test for rest every this many steps (reading all velocities costs one call per object)."""
    rest_linear_speed: float = 0.01
    """An object is at rest below this linear speed (m/s)."""
    rest_angular_speed: float = 0.1
    """An object is at rest below this angular speed (rad/s)."""
    lateral_friction: float = 0.6
    """Coulomb friction coefficient of objects and floor."""
    rolling_friction: float = 0.002
    """Rolling friction (m) so that spheres and cylinders on their side come to rest."""
    spinning_friction: float = 0.002
    """Spinning (torsional) friction (m)."""
    restitution: float = 0.05
    """Bounciness of objects and floor (0 = no bounce)."""
    linear_damping: float = 0.1
    """pybullet linear velocity damping per second."""
    angular_damping: float = 0.3
    """pybullet angular velocity damping per second."""
    density: float = 400.0
    """Density of every object (kg/m^3); masses follow from the convex-hull volume."""
    spawn_height: float = 0.6
    """Objects spawn, without overlap, with their centres up to this far (m) above their resting height."""
    off_floor_margin: float = 0.15
    """After settling, an object whose centre lies further than this (m) outside the floor region, or below the
    floor, is deleted (the survivors are renumbered 1..N')."""


@dataclass
class KubricConfig:
    """Settings of the ``kubric`` backend (Blender Cycles through kubric; see ``lift3d.generate.kubric_backend``)."""

    samples_per_pixel: int = 64
    """Cycles path-tracing samples per pixel of the RGB image (ids and depth come from a 1-sample pass)."""
    use_denoising: bool = True
    """Run Blender's denoiser (OpenImageDenoise, CPU) on the RGB image; lets ``samples_per_pixel`` stay low."""
    texture_resolution: float = 40.0
    """Vertex-colour samples of an object's solid texture per object size: triangles are subdivided until their
    longest edge is at most ``size / texture_resolution`` (capped by ``max_triangles_per_object``)."""
    max_triangles_per_object: int = 40000
    """Upper bound on the triangles of one subdivided object mesh."""
    room_texels_per_metre: float = 100.0
    """Resolution of the image textures baked for the room's floor, walls and ceiling (capped at 4096 per side)."""
    roughness: float = 0.7
    """Principled BSDF roughness of object surfaces (the room is fully rough)."""
    specular: float = 0.25
    """Principled BSDF 'Specular IOR Level' of object surfaces (0 = purely diffuse, 0.5 = Blender's default)."""
    max_bounces: int = 4
    """Cycles' maximum number of light bounces per path."""
    hdri_strength: float = 1.0
    """Strength of ``hdri_path`` as ambient (world) light; without an HDRI the world is the environment's flat
    ambient colour."""
    physics: Literal["layout", "kubric"] = "layout"
    """``layout``: render the poses settled by ``make_layout`` (pybullet, identical to the fast backend for the same
    seed). ``kubric``: re-run the drop from the same spawn poses with kubric's PyBullet simulator (URDFs of the
    convex hulls); the poses then differ from the fast backend's."""
    views_per_render_call: int = 4
    """Views rendered per Blender call (the progress bar advances after each call; larger is slightly faster)."""
    verbose: bool = False
    """Show Blender's own log output while rendering."""


@dataclass
class VideoConfig:
    """The camera path of ``--trajectory video`` (``lift3d.generate.trajectory``): a robot driving around the
    objects on a closed loop at a fixed height and speed, its camera panning; ``num_clips`` clips of
    ``frames_per_clip`` frames, each starting at a random place of the loop (``docs/sequence-format.md``)."""

    num_clips: int = 4
    """Number of clips (continuous sequences); the scene has ``num_clips * frames_per_clip`` frames (``num_views``
    is ignored)."""
    frames_per_clip: int = 16
    """Frames per clip (T)."""
    fps: float = 10.0
    """Frames per second; consecutive frames are ``1 / fps`` seconds apart."""
    camera_height_m: float = 0.4
    """Height of the camera above the floor (m), a small robot's."""
    speed_m_per_s: float = 0.3
    """Driving speed along the loop (m/s); the camera moves ``speed / fps`` metres per frame."""
    pitch_deg: float = -25.0
    """Camera pitch (degrees, negative = looking down), the same in every frame."""
    horizontal_fov_deg: float = 60.0
    """Horizontal (and, square images, vertical) field of view of the camera (degrees)."""
    path_clearance_m: float = 0.3
    """The loop is the superellipse ``|x|^n + |y|^n = R^n`` with ``R = floor_half_side + path_clearance_m``."""
    path_exponent: float = 4.0
    """Exponent ``n`` of the superellipse (2 = circle; larger = closer to a square around the floor region)."""
    look_inward_deg: float = 85.0
    """The camera's yaw is turned this far from the driving direction towards the inside of the loop."""
    look_around_deg: float = 20.0
    """Amplitude of the camera's sinusoidal panning about that yaw (degrees)."""
    look_around_period_s: float = 4.0
    """Period of the panning (s)."""
    flow_depth_tolerance_relative: float = 0.03
    """Occlusion test of the optical flow: relative depth tolerance (``lift3d.geometry.flow``)."""
    flow_depth_tolerance_m: float = 0.01
    """Occlusion test of the optical flow: absolute depth tolerance (m); the larger of the two is used."""

    def __post_init__(self) -> None:
        if self.num_clips < 1 or self.frames_per_clip < 1:
            raise ValueError(
                f"video.num_clips and video.frames_per_clip must be >= 1, got {self.num_clips}, {self.frames_per_clip}."
            )
        for name in ("fps", "speed_m_per_s", "camera_height_m", "path_clearance_m", "look_around_period_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"video.{name} must be > 0, got {getattr(self, name)}.")
        if not 0.0 < self.horizontal_fov_deg < 170.0:
            raise ValueError(f"video.horizontal_fov_deg must be in (0, 170), got {self.horizontal_fov_deg}.")
        if not -89.0 <= self.pitch_deg <= 89.0:
            raise ValueError(f"video.pitch_deg must be in [-89, 89], got {self.pitch_deg}.")
        if self.path_exponent < 2.0:
            raise ValueError(f"video.path_exponent must be >= 2 (a convex loop), got {self.path_exponent}.")


@dataclass
class LidarConfig:
    """The spinning LiDAR of ``--lidar`` (``lift3d.generate.lidar``), mounted level above the camera; defaults like a
    32-beam sensor."""

    beams: int = 32
    """Number of laser beams (rows of the range image)."""
    vertical_fov_deg: Tuple[float, float] = (-25.0, 15.0)
    """Elevation of the lowest and highest beam (degrees)."""
    columns: int = 900
    """Azimuth steps per revolution (0.4 degree horizontal resolution for 900)."""
    max_range_m: float = 30.0
    """Returns further than this are dropped (m)."""
    mount_offset_m: float = 0.1
    """The LiDAR sits this far (m) straight above the camera, level (its z axis the world's up)."""


@dataclass
class MessyRoomsConfig:
    """A Messy Rooms scene: ``num_objects`` procedural objects dropped on a floor and seen by ``num_views`` cameras."""

    num_objects: Annotated[int, tyro.conf.arg(aliases=("--objects",))] = 10
    """Number of objects dropped into the room (Contrastive Lift uses 25, 50, 100 and 500)."""
    num_views: Annotated[int, tyro.conf.arg(aliases=("--views",))] = 40
    """Number of rendered viewpoints (frames)."""
    resolution: int = 96
    """Width and height of every image in pixels (square images)."""
    environment: Literal["old_room", "large_corridor", "open_floor"] = "old_room"
    """Background environment. The paper projects PolyHaven HDRIs of these names onto a dome; the fast backend uses
    procedural stand-ins (different floor and wall textures and light). ``open_floor`` (fast backend only) is an
    unbounded capture: a paved floor plane 2 km wide under a sky, no walls; sky pixels have depth 0 (unknown)."""
    hdri_path: Optional[Path] = None
    """Equirectangular HDRI for the background and lighting. Used by the kubric backend only; the fast backend
    ignores it (with a warning) and uses its procedural room."""
    backend: Literal["fast", "kubric"] = "fast"
    """Renderer: ``fast`` = open3d ray casting with procedural textures (CPU, seconds); ``kubric`` = Blender path
    tracing with the same layout, physics and cameras (installed separately)."""
    assets: str = "procedural"
    """Object library: ``procedural`` (boxes, solids of revolution, hulls, extrusions, compounds with solid
    textures) or the path of a local Google Scanned Objects folder (one sub-folder per object with
    ``meshes/model.obj`` and ``materials/textures/texture.png``), from which objects are drawn uniformly with the
    layout's seed, rescaled to ``object_size_range`` and rendered with their image textures by both backends (see
    ``lift3d.generate.gso``)."""
    segmenter_noise: Literal["clean", "detic-like", "detic-real", "heavy"] = "detic-like"
    """Noise preset of the simulated 2D segmenter (see ``lift3d.generate.segmenter``)."""
    classes: Literal["binary", "families"] = "binary"
    """Semantic classes (``lift3d.generate.classes``): ``binary`` = ``0 background`` (stuff) and ``1 object``
    (thing), as Messy Rooms; ``families`` = stuff classes ``floor``, ``wall``, ``ceiling`` (closed rooms) or
    ``floor``, ``sky`` (open ones) and one thing class per asset family (procedural: 11 classes such as ``box``,
    ``cup``, ``bottle``, ``toy``; GSO: the category in each object's ``metadata.pbtxt``, else ``object``)."""
    seed: int = 0
    """Seed of every random choice; the same seed gives the same layout, cameras, images and 2D segments."""
    test_fraction: float = 0.2
    """Fraction of frames (the last ones) listed as test frames."""

    # --- scaling constants (Contrastive Lift, Sec. 4) ---
    floor_area_per_object: float = 0.12
    """Floor area per object (m^2): the floor is a square of area ``num_objects * floor_area_per_object``."""
    object_size_range: Tuple[float, float] = (0.07, 0.25)
    """Range of the largest extent of an object (m), sampled uniformly."""
    reference_num_objects: int = 25
    """Number of objects at which cameras sit at ``base_camera_distance`` with ``base_focal_length``."""
    base_camera_distance: float = 2.4
    """Camera distance (m) from the look-at point for ``reference_num_objects`` objects; scales with
    ``sqrt(num_objects / reference_num_objects)``."""
    base_focal_length: float = 4.0
    """Focal length in units of the image width at ``base_camera_distance``; scales with the camera distance so that
    an image covers about the same floor area for every ``num_objects``."""
    camera_distance_jitter: float = 0.12
    """Relative half-width of the radius band of the camera shell: ``d * [1 - jitter, 1 + jitter]``."""
    camera_elevation_deg: Tuple[float, float] = (30.0, 65.0)
    """Elevation range (degrees above the floor) of the dome-shaped camera shell."""
    lookat_margin: float = 0.3
    """Cameras look at a point sampled uniformly in the floor square shrunk by this margin (m) on every side, so that
    the views of a large scene cover all of its floor while an image rarely shows mostly empty floor."""
    lookat_jitter: float = 1.0
    """Scale of the look-at square: half side ``lookat_jitter * max(L - lookat_margin, 0)`` (0 = always the
    centre)."""
    lookat_height: float = 0.05
    """Height (m) of the look-at point above the floor (about the middle of a resting object)."""
    room_margin: float = 0.5
    """Free space (m) between the outermost camera and the room's walls and ceiling."""

    # --- rendering (fast backend) ---
    rgb_supersampling: int = 2
    """Rays per pixel side for the RGB image (anti-aliasing); depth and ground truth use the pixel centre."""
    shadows: bool = True
    """Cast a shadow ray per pixel towards the directional light (objects cast shadows on floor and objects)."""
    distortion: Optional[str] = None
    """Lens distortion of the cameras (fast backend), ``MODEL:c1,c2,...`` with COLMAP's model names and
    coefficient order: ``opencv:k1,k2,p1,p2`` (e.g. ``opencv:-0.25,0.08,0.002,-0.001``), ``opencv_fisheye:k1,k2,k3,k4``,
    ``simple_radial:k`` or ``radial:k1,k2``. Every pixel's ray is cast through the lens model, so the images, depth
    and labels ARE distorted; ``transforms.json`` records ``camera_model`` (OPENCV or OPENCV_FISHEYE) and the
    coefficients. None: ideal pinhole."""

    physics: PhysicsConfig = field(default_factory=PhysicsConfig)
    """Drop-and-settle simulation settings."""
    kubric: KubricConfig = field(default_factory=KubricConfig)
    """Settings of the kubric backend (ignored by the fast backend)."""

    # --- video sequences (docs/sequence-format.md) ---
    trajectory: Literal["dome", "video"] = "dome"
    """Camera placement: ``dome`` = independent views on the dome-shaped shell (the paper's); ``video`` = clips of a
    continuous camera path at a robot's height (``video`` settings) with exact optical flow to the next frame."""
    lidar: bool = False
    """With ``trajectory video``: also cast a spinning LiDAR per frame (``lidar_sensor`` settings; fast backend's
    ray caster on the same layout, also for ``backend kubric``)."""
    video: VideoConfig = field(default_factory=VideoConfig)
    """The camera path of ``trajectory video``."""
    lidar_sensor: LidarConfig = field(default_factory=LidarConfig)
    """The LiDAR of ``--lidar``."""

    def __post_init__(self) -> None:
        if self.num_objects < 1:
            raise ValueError(f"num_objects must be >= 1, got {self.num_objects}.")
        if self.num_views < 1:
            raise ValueError(f"num_views must be >= 1, got {self.num_views}.")
        if self.resolution < 8:
            raise ValueError(f"resolution must be >= 8 pixels, got {self.resolution}.")
        if not 0.0 <= self.test_fraction < 1.0:
            raise ValueError(f"test_fraction must be in [0, 1), got {self.test_fraction}.")
        lo, hi = self.object_size_range
        if not 0.0 < lo <= hi:
            raise ValueError(f"object_size_range must satisfy 0 < min <= max, got {self.object_size_range}.")
        if self.classes not in ("binary", "families"):
            raise ValueError(f"classes must be 'binary' or 'families', got {self.classes!r}.")
        if self.hdri_path is not None:
            self.hdri_path = Path(self.hdri_path)
        if self.lidar and self.trajectory != "video":
            raise ValueError(
                "lidar needs trajectory='video' (the LiDAR rides with the video camera); add --trajectory video."
            )
        if self.distortion is not None:
            if self.backend != "fast":
                raise ValueError(
                    f"distortion {self.distortion!r} is rendered by the fast backend only; use --backend fast."
                )
            self.lens_distortion()  # a clear error now for a bad specification

    def lens_distortion(self) -> Optional[Distortion]:
        """:attr:`distortion` parsed into a :class:`~lift3d.geometry.cameras.Distortion` (None without one)."""
        if self.distortion is None:
            return None
        model, _, coefficients = str(self.distortion).partition(":")
        model = model.strip().lower()
        if model not in WRITABLE_DISTORTIONS:
            raise ValueError(
                f"distortion {self.distortion!r}: the model must be one of {', '.join(WRITABLE_DISTORTIONS)} "
                "(what a nerfstudio transforms.json can record), e.g. opencv:-0.25,0.08,0.002,-0.001."
            )
        try:
            params = tuple(float(c) for c in coefficients.split(",") if c.strip())
        except ValueError:
            raise ValueError(
                f"distortion {self.distortion!r}: the coefficients must be numbers separated by commas, "
                "e.g. opencv:-0.25,0.08,0.002,-0.001."
            ) from None
        try:
            return Distortion(model, params)
        except UnsupportedCameraError as err:
            raise ValueError(f"distortion {self.distortion!r}: {err}") from None

    # Derived quantities (Contrastive Lift, Sec. 4) -----------------------------------------------------------

    @property
    def lookat_half_side(self) -> float:
        """Half side (m) of the square of look-at points, ``lookat_jitter * max(L - lookat_margin, 0)``."""
        return self.lookat_jitter * max(self.floor_half_side - self.lookat_margin, 0.0)

    @property
    def floor_half_side(self) -> float:
        """Half side (m) of the square floor region: ``sqrt(N * floor_area_per_object) / 2``."""
        return 0.5 * (self.num_objects * self.floor_area_per_object) ** 0.5

    @property
    def camera_distance(self) -> float:
        """Camera distance ``d(N) = base_camera_distance * sqrt(N / reference_num_objects)`` (m)."""
        return self.base_camera_distance * (self.num_objects / self.reference_num_objects) ** 0.5

    @property
    def focal_length_px(self) -> float:
        """Focal length in pixels, ``f(N) = base_focal_length * resolution * d(N) / base_camera_distance``."""
        return self.base_focal_length * self.resolution * self.camera_distance / self.base_camera_distance


def config_from_dict(d: Dict[str, Any]) -> MessyRoomsConfig:
    """Build a config from a (JSON) dict of field values; missing fields keep their defaults.

    Keys starting with ``_`` (comments) are ignored; ``physics`` may be a dict of :class:`PhysicsConfig` fields.
    """
    d = {k: v for k, v in d.items() if not k.startswith("_")}
    known = {f.name for f in fields(MessyRoomsConfig)}
    unknown = sorted(set(d) - known)
    if unknown:
        raise ValueError(f"Unknown MessyRoomsConfig fields {unknown}; valid fields are {sorted(known)}.")
    if isinstance(d.get("physics"), dict):
        d["physics"] = PhysicsConfig(**d["physics"])
    if isinstance(d.get("kubric"), dict):
        d["kubric"] = KubricConfig(**d["kubric"])
    if isinstance(d.get("video"), dict):
        d["video"] = VideoConfig(**d["video"])
    if isinstance(d.get("lidar_sensor"), dict):
        d["lidar_sensor"] = LidarConfig(
            **{k: tuple(v) if isinstance(v, list) else v for k, v in d["lidar_sensor"].items()}
        )
    for name in ("object_size_range", "camera_elevation_deg"):
        if name in d:
            d[name] = tuple(d[name])
    return MessyRoomsConfig(**d)


def load_config(path: Path) -> MessyRoomsConfig:
    """Read a scene config JSON (e.g. ``datasets/messy_rooms/configs/old_room_025.json``)."""
    path = Path(path)
    try:
        return config_from_dict(json.loads(path.read_text()))
    except (ValueError, TypeError) as err:
        raise ValueError(f"{path}: {err}") from err


def config_to_dict(cfg: MessyRoomsConfig) -> Dict[str, Any]:
    """JSON-serialisable dict of every :class:`MessyRoomsConfig` field (inverse of :func:`config_from_dict`).

    Fields added by subclasses (e.g. the CLI's output folder) are left out.
    """
    d = {f.name: getattr(cfg, f.name) for f in fields(MessyRoomsConfig)}
    d["physics"] = asdict(cfg.physics)
    d["kubric"] = asdict(cfg.kubric)
    d["video"] = asdict(cfg.video)
    d["lidar_sensor"] = {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(cfg.lidar_sensor).items()}
    d["hdri_path"] = None if cfg.hdri_path is None else str(cfg.hdri_path)
    return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}
