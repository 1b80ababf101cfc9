"""The COLMAP reader on tiny models written by pycolmap's own writer (binary and text): a 3D point projects to its
recorded 2D observation through lift3d's camera conventions (pose conversion and distortion order checked against
pycolmap's projection and OpenCV's projectPoints), SfM points are exposed, segments are absent, errors name the fix."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pycolmap = pytest.importorskip("pycolmap")
cv2 = pytest.importorskip("cv2")

from lift3d.data.images import write_rgb  # noqa: E402
from lift3d.data.loading import load_frame, load_scene, sfm_points  # noqa: E402
from lift3d.data.readers import find_reader  # noqa: E402
from lift3d.data.scene import MissingSegmentsError, SceneFormatError, require_segments  # noqa: E402
from lift3d.geometry.cameras import Distortion, project  # noqa: E402

WIDTH, HEIGHT = 40, 30


def _rotation(yaw: float, pitch: float) -> np.ndarray:
    cy, sy, cp, sp = np.cos(yaw), np.sin(yaw), np.cos(pitch), np.sin(pitch)
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rx = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
    return rx @ ry


POINTS = np.array([[0.1, 0.2, 0.3], [-0.3, 0.1, -0.2], [0.25, -0.15, 0.1], [0.0, 0.0, 0.0]])
"""World points seen by every camera."""


def _write_model(root: Path, model: str, params: list, text: bool = False, num_images: int = 3) -> Path:
    """``root/sparse/0`` (binary or text) with one camera, ``num_images`` posed images looking at the origin from
    about 3 units away and :data:`POINTS` observed in every image at pycolmap's own projection; ``root/images/``
    holds the images. Returns the model folder."""
    rec = pycolmap.Reconstruction()
    rec.add_camera_with_trivial_rig(
        pycolmap.Camera(model=model, width=WIDTH, height=HEIGHT, params=params, camera_id=1)
    )
    for k in range(num_images):
        rotation = _rotation(0.3 * k - 0.3, 0.1 * k)
        translation = np.array([0.05 * k, -0.02, 3.0])  # world origin 3 units in front (OpenCV +z)
        pose = pycolmap.Rigid3d(np.hstack([rotation, translation[:, None]]))
        image = pycolmap.Image(
            name=f"img_{k:03d}.png", camera_id=1, image_id=k + 1, keypoints=np.zeros((len(POINTS), 2))
        )
        rec.add_image_with_trivial_frame(image, pose)
        write_rgb(root / "images" / image.name, np.full((HEIGHT, WIDTH, 3), 10 * k, np.uint8))
    for j, point in enumerate(POINTS):
        track = pycolmap.Track()
        for k in range(num_images):
            track.add_element(k + 1, j)
        rec.add_point3D(point, track)
    for k in range(num_images):  # the recorded observations: pycolmap's projection of each point
        image = rec.images[k + 1]
        for j, point in enumerate(POINTS):
            image.points2D[j].xy = rec.cameras[1].img_from_cam(image.cam_from_world() * point)
    out = root / "sparse" / "0"
    out.mkdir(parents=True, exist_ok=True)
    (rec.write_text if text else rec.write_binary)(str(out))
    return out


def _observations(model: Path) -> dict:
    rec = pycolmap.Reconstruction(str(model))
    out = {}
    for image in rec.images.values():
        for p2d in image.points2D:
            out[(image.name, int(p2d.point3D_id))] = (np.asarray(p2d.xy), np.asarray(rec.points3D[p2d.point3D_id].xyz))
    return out


def _camera_space_opencv(frame, point: np.ndarray) -> np.ndarray:
    """The point in the frame's camera, OpenCV axes, from lift3d's OpenGL camera-to-world: p = R^T (X - t) in GL
    axes, then (x, -y, -z)."""
    p = frame.camera_to_world[:3, :3].T @ (point - frame.camera_to_world[:3, 3])
    return np.array([p[0], -p[1], -p[2]])


@pytest.mark.parametrize("text", [False, True])
def test_pinhole_model_points_project_to_their_observations(tmp_path, text):
    model = _write_model(tmp_path, "PINHOLE", [30.0, 32.0, 20.0, 15.0], text=text)
    assert find_reader(tmp_path).name == "colmap" and find_reader(model).name == "colmap"
    scene = load_scene(tmp_path)
    assert scene.extras["format"] == "colmap" and not scene.has_segments
    assert [f.name for f in scene.frames] == ["images/img_000.png", "images/img_001.png", "images/img_002.png"]
    by_name = {Path(f.name).name: f for f in scene.frames}
    for (name, _), (xy, point) in _observations(model).items():
        f = by_name[name]
        assert f.distortion is None and (f.fx, f.fy, f.cx, f.cy) == (30.0, 32.0, 20.0, 15.0)
        # lift3d's continuous projection (geometry.cameras): p = R^T (X - t), z = -p_z, (fx px/z + cx, cy - fy py/z)
        p = f.camera_to_world[:3, :3].T @ (point - f.camera_to_world[:3, 3])
        uv = np.array([f.fx * p[0] / -p[2] + f.cx, f.cy - f.fy * p[1] / -p[2]])
        assert np.allclose(uv, xy, atol=1e-9)
        u, v, z, inside = project(point[None], f.camera_to_world, f.camera_intrinsics, f.height, f.width)
        assert inside[0] and (u[0], v[0]) == (int(np.floor(xy[0])), int(np.floor(xy[1])))
    assert np.allclose(load_frame(scene, 1).rgb, 10 / 255.0)


@pytest.mark.parametrize(
    "model, params, expected",
    [
        ("OPENCV", [30, 31, 20, 15, 0.1, -0.05, 0.002, -0.001], Distortion("opencv", (0.1, -0.05, 0.002, -0.001))),
        ("SIMPLE_RADIAL", [30, 20, 15, -0.08], Distortion("simple_radial", (-0.08,))),
        ("RADIAL", [30, 20, 15, -0.08, 0.02], Distortion("radial", (-0.08, 0.02))),
        (
            "FULL_OPENCV",
            [30, 31, 20, 15, 0.1, -0.05, 0.002, -0.001, 0.01, 0.02, -0.01, 0.005],
            Distortion("full_opencv", (0.1, -0.05, 0.002, -0.001, 0.01, 0.02, -0.01, 0.005)),
        ),
    ],
)
def test_distorted_models_project_through_opencv_to_their_observations(tmp_path, model, params, expected):
    """OpenCV's projectPoints with lift3d's pose, intrinsics and Distortion (mapped to OpenCV's coefficient vector
    (k1, k2, p1, p2[, k3, k4, k5, k6])) lands on COLMAP's recorded observation."""
    model_dir = _write_model(tmp_path, model, params)
    scene = load_scene(tmp_path)
    by_name = {Path(f.name).name: f for f in scene.frames}
    for (name, _), (xy, point) in _observations(model_dir).items():
        f = by_name[name]
        assert f.distortion == expected
        c = f.distortion.params + (0.0,) * (4 - len(f.distortion.params))  # radial models: k1 [, k2], no p1, p2
        coeffs = c if f.distortion.model in ("opencv", "full_opencv") else (c[0], c[1] if len(c) > 1 else 0.0, 0, 0)
        k = np.array([[f.fx, 0, f.cx], [0, f.fy, f.cy], [0, 0, 1.0]])
        uv, _ = cv2.projectPoints(_camera_space_opencv(f, point)[None], np.zeros(3), np.zeros(3), k, np.array(coeffs))
        assert np.allclose(uv.reshape(2), xy, atol=1e-6)


def test_fisheye_model_projects_through_opencv_fisheye(tmp_path):
    model_dir = _write_model(tmp_path, "OPENCV_FISHEYE", [30, 31, 20, 15, 0.05, -0.01, 0.002, -0.001])
    scene = load_scene(tmp_path)
    by_name = {Path(f.name).name: f for f in scene.frames}
    for (name, _), (xy, point) in _observations(model_dir).items():
        f = by_name[name]
        assert f.distortion == Distortion("opencv_fisheye", (0.05, -0.01, 0.002, -0.001))
        k = np.array([[f.fx, 0, f.cx], [0, f.fy, f.cy], [0, 0, 1.0]])
        uv, _ = cv2.fisheye.projectPoints(
            _camera_space_opencv(f, point)[None, None], np.zeros(3), np.zeros(3), k, np.array(f.distortion.params)
        )
        assert np.allclose(uv.reshape(2), xy, atol=1e-6)


def test_sfm_points_are_exposed_as_an_n_by_3_array(tmp_path):
    _write_model(tmp_path, "PINHOLE", [30.0, 30.0, 20.0, 15.0])
    scene = load_scene(tmp_path)
    points = sfm_points(scene)
    assert points.shape == (len(POINTS), 3) and points.dtype == np.float64
    assert np.allclose(sorted(map(tuple, points)), sorted(map(tuple, POINTS)))
    assert scene.extras["num_sfm_points"] == len(POINTS)


def test_a_colmap_scene_has_no_segments_and_fit_says_how_to_add_them(tmp_path):
    _write_model(tmp_path, "PINHOLE", [30.0, 30.0, 20.0, 15.0])
    scene = load_scene(tmp_path)
    with pytest.raises(MissingSegmentsError, match="segments predict"):
        require_segments(scene)


def test_unsupported_camera_model_is_refused(tmp_path):
    _write_model(tmp_path, "FOV", [30, 30, 20, 15, 0.9])
    with pytest.raises(SceneFormatError) as err:
        load_scene(tmp_path)
    assert "'FOV'" in str(err.value) and "image_undistorter" in str(err.value) and "img_000.png" in str(err.value)


def test_missing_images_folder_and_missing_image(tmp_path):
    _write_model(tmp_path, "PINHOLE", [30.0, 30.0, 20.0, 15.0], num_images=9)
    (tmp_path / "images/img_004.png").unlink()
    with pytest.raises(SceneFormatError) as err:
        load_scene(tmp_path)
    assert "img_004.png" in str(err.value) and "--skip-bad-frames" in str(err.value)
    with pytest.warns(UserWarning, match="skipped 1"):
        scene = load_scene(tmp_path, skip_bad_frames=True)
    assert len(scene.frames) == 8 and "images/img_004.png" not in [f.name for f in scene.frames]
    assert scene.test_indices == [6]  # img_007 (the 8th image) is the test frame, renumbered after the skip
    for p in (tmp_path / "images").iterdir():
        p.unlink()
    (tmp_path / "images").rmdir()
    with pytest.raises(SceneFormatError, match="no images folder"):
        load_scene(tmp_path)


def test_image_of_another_size_than_its_camera_is_refused(tmp_path):
    _write_model(tmp_path, "PINHOLE", [30.0, 30.0, 20.0, 15.0])
    write_rgb(tmp_path / "images/img_001.png", np.zeros((15, 20, 3), np.uint8))
    with pytest.raises(SceneFormatError, match="img_001.png is 20x15 but the frame is 40x30"):
        load_scene(tmp_path)


def test_damaged_model_is_a_scene_format_error(tmp_path):
    model = _write_model(tmp_path, "PINHOLE", [30.0, 30.0, 20.0, 15.0])
    (model / "images.bin").write_bytes(b"\x01\x02")
    with pytest.raises(SceneFormatError, match="cannot be read"):
        load_scene(tmp_path)


def test_downscale_applies_to_colmap_scenes(tmp_path):
    _write_model(tmp_path, "OPENCV", [30, 31, 20, 15, 0.1, -0.05, 0.002, -0.001])
    f = load_scene(tmp_path, downscale=2).frames[0]
    assert (f.width, f.height, f.fx, f.fy, f.cx, f.cy) == (20, 15, 15.0, 15.5, 10.0, 7.5)
    assert f.distortion == Distortion("opencv", (0.1, -0.05, 0.002, -0.001))


def test_colmap_38_text_model_written_by_hand(tmp_path):
    """The text layout of COLMAP 3.8 (cameras.txt, images.txt, points3D.txt; no rigs or frames), written by hand:
    a camera rotated 30 degrees about y (quaternion w, x, y, z) sees a point at the pixel computed here."""
    half = np.radians(30.0) / 2
    qw, qy = np.cos(half), np.sin(half)
    rotation = np.array([[np.cos(2 * half), 0, np.sin(2 * half)], [0, 1, 0], [-np.sin(2 * half), 0, np.cos(2 * half)]])
    t = np.array([0.1, 0.0, 3.0])
    point = np.array([0.2, -0.1, 0.4])
    p = rotation @ point + t
    fx, fy, cx, cy = 30.0, 32.0, 20.0, 15.0
    xy = (fx * p[0] / p[2] + cx, fy * p[1] / p[2] + cy)
    model = tmp_path / "sparse" / "0"
    model.mkdir(parents=True)
    (model / "cameras.txt").write_text(f"# Camera list\n1 PINHOLE {WIDTH} {HEIGHT} {fx} {fy} {cx} {cy}\n")
    (model / "images.txt").write_text(
        f"# Image list\n1 {qw} 0 {qy} 0 {t[0]} {t[1]} {t[2]} 1 view.png\n{xy[0]} {xy[1]} 1\n"
    )
    (model / "points3D.txt").write_text(f"# 3D point list\n1 {point[0]} {point[1]} {point[2]} 255 0 0 0.1 1 0\n")
    write_rgb(tmp_path / "images/view.png", np.zeros((HEIGHT, WIDTH, 3), np.uint8))
    scene = load_scene(tmp_path)
    f = scene.frames[0]
    q = f.camera_to_world[:3, :3].T @ (point - f.camera_to_world[:3, 3])
    assert np.allclose([f.fx * q[0] / -q[2] + f.cx, f.cy - f.fy * q[1] / -q[2]], xy, atol=1e-9)
    assert np.allclose(f.camera_to_world[:3, 3], -rotation.T @ t)  # the camera centre
    assert np.allclose(sfm_points(scene), point[None])


def test_segments_import_bootstraps_a_colmap_project(tmp_path):
    """`segments import` on a COLMAP project writes its transforms.json first (same frames, poses, intrinsics,
    lens model, split, SfM points), then points it at the imported maps."""
    from lift3d.data.images import write_id_map
    from lift3d.data.segments_import import import_segments

    _write_model(tmp_path, "OPENCV", [30, 31, 20, 15, 0.1, -0.05, 0.002, -0.001], num_images=9)
    before = load_scene(tmp_path)
    ids = np.zeros((HEIGHT, WIDTH), np.int64)
    ids[5:10, 5:10] = 3
    for f in before.frames:
        write_id_map(tmp_path / "segs" / "instance" / f"{Path(f.name).stem}.png", ids)
    import_segments(tmp_path, tmp_path / "segs", "id-maps")
    after = load_scene(tmp_path)
    assert after.extras["format"] == "transforms_json" and after.has_segments
    assert [f.name for f in after.frames] == [f.name for f in before.frames]
    assert after.train_indices == before.train_indices and after.test_indices == before.test_indices
    for a, b in zip(after.frames, before.frames):
        assert np.allclose(a.camera_to_world, b.camera_to_world) and a.distortion == b.distortion
        assert (a.fx, a.fy, a.cx, a.cy, a.width, a.height) == (b.fx, b.fy, b.cx, b.cy, b.width, b.height)
        assert a.image_path == b.image_path
    assert np.array_equal(load_frame(after, 4).instance, ids)
    assert np.allclose(sfm_points(after), sfm_points(before))


def test_segments_predict_on_a_colmap_project_writes_a_copy_with_transforms_json(tmp_path):
    """`segments predict --out` on a COLMAP project: the copy gets a transforms.json (same frames, poses, lens model)
    pointing at the classical segmenter's maps; the project itself is left untouched."""
    from lift3d.segmenters import build_segmenter
    from lift3d.segmenters.predict import predict_scene_segments

    project = tmp_path / "project"
    _write_model(project, "OPENCV", [30, 31, 20, 15, 0.1, -0.05, 0.002, -0.001], num_images=4)
    for k in range(4):  # a bright square on a dark floor: one object per view
        image = np.full((HEIGHT, WIDTH, 3), 20, np.uint8)
        image[4 + k : 12 + k, 6:16] = (200, 60, 40)
        write_rgb(project / "images" / f"img_{k:03d}.png", image)
    before = sorted(p.relative_to(project) for p in project.rglob("*"))
    predict_scene_segments(project, build_segmenter("classical"), out=tmp_path / "seg", progress=False)
    assert sorted(p.relative_to(project) for p in project.rglob("*")) == before  # nothing written into the project
    original, segmented = load_scene(project), load_scene(tmp_path / "seg")
    assert segmented.has_segments and segmented.extras["format"] == "transforms_json"
    assert [f.name for f in segmented.frames] == [f.name for f in original.frames]
    for a, b in zip(segmented.frames, original.frames):
        assert np.allclose(a.camera_to_world, b.camera_to_world) and a.distortion == b.distortion
    for k in range(4):
        inst = load_frame(segmented, k).instance
        square = inst[4 + k : 12 + k, 6:16]
        assert len(np.unique(square)) == 1 and square[0, 0] > 0  # the square is one segment
        assert (inst[0, :] != square[0, 0]).all()  # the floor is not part of it
