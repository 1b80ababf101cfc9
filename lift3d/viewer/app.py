"""The ``lift3d view`` app on viser: a fitted run's cameras and labelled surface points, live renders of the field
from the browser's camera, click-to-select, per-instance hide / show / recolour, re-clustering and export.

All GUI callbacks run on viser's threads; every use of the model goes through one lock.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from lift3d.export.config import ExportConfig
from lift3d.export.palette import instance_colours
from lift3d.export.run import ExportedRun, export_run
from lift3d.viewer.camera import c2w_to_viser, pinhole_from_fov, render_size, viser_to_c2w
from lift3d.viewer.recluster import EmbeddingCache, cache_clustering_embeddings, recluster, save_clusters
from lift3d.viewer.render import (
    COLOUR_BY,
    RENDER_MODES,
    CameraView,
    EmbeddingPCA,
    Pick,
    class_colours,
    pick_ray,
    render_camera,
)


@dataclass
class ViewerConfig:
    """Options of ``lift3d view`` (and ``lift3d fit --view``)."""

    host: str = "127.0.0.1"
    """Address to listen on. The default only accepts this machine; reach a remote one with SSH port forwarding
    (``ssh -L 7007:localhost:7007 server``). ``0.0.0.0`` exposes the viewer to the network (a warning is logged)."""
    port: int = 7007
    """TCP port of the web page."""
    render_height: int = 128
    """Height in pixels of the refined live render once the camera stops (the width follows the window)."""
    preview_height: int = 48
    """Height of the coarse live render drawn while the camera moves."""
    preview_samples: int = 24
    """Samples per ray of the coarse render (the refined one uses the run's ``num_samples_render``)."""
    settle_seconds: float = 0.25
    """The camera counts as stopped after this long without moving; then the refined render is drawn."""
    live_render: str = "rgb"
    """Initial live render mode: off, rgb, depth, semantic, instance or embedding."""
    pixel_stride: int = 2
    """Surface points come from every ``pixel_stride``-th pixel of the training views."""
    thumbnail_height: int = 48
    """Height of the training images drawn in the camera frustums."""
    start_distance: float = 1.4
    """The browser's camera starts on the line from the points' centre to the first training camera, this many
    times that camera's distance away."""
    export_dir: Optional[Path] = None
    """Folder of the export buttons (default RUN/export)."""


@dataclass
class _ClientState:
    version: int = 0
    drawn: int = -1
    refined: int = -1
    changed_at: float = 0.0


@dataclass
class Selection:
    """The selected instance and what the panel shows about it."""

    instance: int
    pick: Optional[Pick] = None
    info: dict = field(default_factory=dict)


def instance_table(opened: ExportedRun, ids: list[int]) -> str:
    """Markdown list of the instances: id, class, point count."""
    pts = opened.points
    counts = np.bincount(pts.instance[pts.instance > 0], minlength=max(ids, default=0) + 1) if pts is not None else []
    rows = ["| id | class | points |", "|---|---|---|"]
    for i in ids:
        rows.append(
            f"| {i} | {opened.class_name(opened.instance_class(i))} | {int(counts[i]) if len(counts) > i else 0} |"
        )
    return "\n".join(rows)


def describe_instance(opened: ExportedRun, instance_id: int) -> dict:
    """Id, class, point count, axis-aligned box and the training views (frame name -> pixels) of one instance."""
    from lift3d.export.boxes import instance_record

    pts = opened.points
    sel = pts.instance == instance_id
    cls = opened.instance_class(instance_id)
    names = np.array([f.name for f in opened.scene.frames])
    rec = instance_record(instance_id, cls, opened.class_name(cls), pts.xyz[sel], list(names[pts.view[sel]]))
    return rec.to_dict()


def box_edges(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """The 12 edges of the axis-aligned box [lo, hi] as segments [12, 2, 3]."""
    c = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])
    pairs = [(0, 1), (2, 3), (4, 5), (6, 7), (0, 2), (1, 3), (4, 6), (5, 7), (0, 4), (1, 5), (2, 6), (3, 7)]
    return np.stack([np.stack([c[a], c[b]]) for a, b in pairs])


def scene_up(opened_scene) -> tuple[float, float, float]:
    """The scene's up direction: the mean of the training cameras' up axes (OpenGL y), snapped to the nearest
    world axis."""
    ups = np.stack([f.camera_to_world[:3, 1] for f in opened_scene.frames])
    m = ups.mean(axis=0)
    axis = int(np.abs(m).argmax())
    up = np.zeros(3)
    up[axis] = np.sign(m[axis]) or 1.0
    return tuple(float(v) for v in up)


def add_training_cameras(server, scene, thumbnail_height: int) -> None:
    """Frustums of the training cameras with their images as thumbnails."""
    from lift3d.data.loading import load_frame

    extent = np.ptp(np.stack([f.camera_to_world[:3, 3] for f in scene.frames]), axis=0).max()
    for idx in scene.train_indices:
        f = scene.frames[idx]
        rgb = load_frame(scene, idx).rgb
        step = max(1, int(round(f.height / thumbnail_height)))
        thumb = (np.clip(rgb[::step, ::step], 0, 1) * 255).astype(np.uint8)
        wxyz, pos = c2w_to_viser(f.camera_to_world)
        fov = 2 * np.arctan(0.5 * f.height / f.fy)
        server.scene.add_camera_frustum(
            f"/cameras/{f.name}",
            fov=float(fov),
            aspect=f.width / f.height,
            scale=float(0.04 * max(extent, 1e-3)),
            image=thumb,
            wxyz=wxyz,
            position=pos,
            thickness=float(0.002 * max(extent, 1e-3)),
        )


class RunViewer:
    """The viewer of a fitted run (``lift3d view RUN``)."""

    def __init__(self, opened: ExportedRun, cfg: Optional[ViewerConfig] = None, server=None, log=print):
        import viser

        self.opened, self.cfg, self.log = opened, cfg or ViewerConfig(), log
        self.lock = threading.RLock()
        t0 = time.perf_counter()
        if self.cfg.host not in ("127.0.0.1", "localhost", "::1"):
            log(
                f"warning: the viewer listens on {self.cfg.host}: anyone who can reach this machine on port "
                f"{self.cfg.port} can see the run and write its clusters.json. Prefer SSH port forwarding."
            )
        self.server = server or viser.ViserServer(host=self.cfg.host, port=self.cfg.port, verbose=False)
        with self.lock:
            self.points = opened.ensure_points(ExportConfig(pixel_stride=self.cfg.pixel_stride), log=lambda *_: None)
            self.cache: EmbeddingCache = cache_clustering_embeddings(opened)
            self.pca = EmbeddingPCA.fit(self.cache.embedding)
        self.hidden: set[int] = set()
        self.colour_override: dict[int, tuple[int, int, int]] = {}
        self.selection: Optional[Selection] = None
        self.clients: dict[int, _ClientState] = {}
        self.last_export: Optional[dict] = None
        scale = float(np.ptp(self.points.xyz, axis=0).max()) if len(self.points) else 1.0
        self.point_size = max(scale / 400.0, 1e-4)
        self.server.scene.set_up_direction(scene_up(opened.scene))
        add_training_cameras(self.server, opened.scene, self.cfg.thumbnail_height)
        self._build_gui()
        self.redraw_points()
        self.server.on_client_connect(self._on_connect)
        for client in self.server.get_clients().values():  # browsers already open (lift3d fit --view)
            self._on_connect(client)
        self.server.scene.on_click()(self._on_click)
        self._stop = threading.Event()
        self._worker = threading.Thread(target=self._render_loop, daemon=True, name="lift3d-viewer-render")
        self._worker.start()
        self.startup_seconds = time.perf_counter() - t0
        log(f"viewer ready in {self.startup_seconds:.1f} s: http://{self._display_host()}:{self.server.get_port()}")

    def _display_host(self) -> str:
        return "localhost" if self.cfg.host in ("127.0.0.1", "::1") else self.cfg.host

    # ------------------------------------------------------------------ GUI
    def _build_gui(self) -> None:
        gui = self.server.gui
        ids = self.opened.instance_ids
        with gui.add_folder("Display"):
            self.colour_by = gui.add_dropdown("Colour points by", COLOUR_BY, initial_value="instance")
            self.live_mode = gui.add_dropdown("Live render", ("off", *RENDER_MODES), initial_value=self.cfg.live_render)
            self.render_height = gui.add_slider("Render height", 32, 1024, 16, self.cfg.render_height)
            self.show_points = gui.add_checkbox("Show points", True)
        self.colour_by.on_update(lambda _: self.redraw_points())
        self.live_mode.on_update(lambda _: self._invalidate())
        self.render_height.on_update(lambda _: self._invalidate())
        self.show_points.on_update(lambda _: self.redraw_points())
        with gui.add_folder("Selection"):
            self.selected_md = gui.add_markdown("Click an object in the view to select it.")
            self.selected_id = gui.add_number("Instance id", 0, min=0, max=max(ids, default=0), step=1)
            self.visible_box = gui.add_checkbox("Visible", True)
            self.colour_box = gui.add_rgb("Colour", (255, 200, 0))
            apply_btn = gui.add_button("Apply visibility / colour")
        self.selected_id.on_update(lambda _: self.select(int(self.selected_id.value)))
        apply_btn.on_click(lambda _: self.apply_instance_style())
        with gui.add_folder("Clustering"):
            info = f"{len(ids)} instances (clusters.json)"
            self.cluster_md = gui.add_markdown(info)
            sizes = list(self.opened.cfg.sweep_sizes) or [10]
            current = self._current_min_cluster_size() or sizes[0]
            self.min_size = gui.add_slider("min_cluster_size", 2, max(max(sizes) * 2, current), 1, current)
            recluster_btn = gui.add_button("Re-cluster")
            save_btn = gui.add_button("Save clusters.json")
        recluster_btn.on_click(lambda _: self.recluster(int(self.min_size.value)))
        save_btn.on_click(lambda _: self.save_clusters())
        with gui.add_folder("Export"):
            self.export_dir = gui.add_text("Folder", str(self.cfg.export_dir or (self.opened.run.root / "export")))
            self.export_format = gui.add_dropdown("Mesh format", ("ply", "obj", "glb"), initial_value="ply")
            sel_btn = gui.add_button("Export selected")
            all_btn = gui.add_button("Export all")
            self.export_md = gui.add_markdown("")
        sel_btn.on_click(lambda _: self.export(selected_only=True))
        all_btn.on_click(lambda _: self.export(selected_only=False))
        with gui.add_folder("Instances"):
            self.instances_md = gui.add_markdown(instance_table(self.opened, ids))

    def _current_min_cluster_size(self) -> Optional[int]:
        import json

        path = self.opened.run.clustering
        if path.exists():
            v = json.loads(path.read_text()).get("min_cluster_size")
            return int(v) if v is not None else None
        return None

    # ------------------------------------------------------------------ points
    def point_colours(self) -> np.ndarray:
        """uint8 [N, 3] colours of the surface points for the chosen colouring (overrides applied)."""
        p, mode = self.points, self.colour_by.value
        if mode == "rgb":
            c = p.rgb.copy()
        elif mode == "semantic":
            c = class_colours(p.semantic)
        elif mode == "embedding":
            c = self.pca.colours(p.embedding)
        else:
            c = instance_colours(p.instance)
            for i, col in self.colour_override.items():
                c[p.instance == i] = col
        return c

    def redraw_points(self) -> None:
        with self.lock:
            p = self.points
            keep = ~np.isin(p.instance, list(self.hidden)) if self.hidden else np.ones(len(p), bool)
            self.server.scene.add_point_cloud(
                "/points",
                p.xyz[keep],
                self.point_colours()[keep],
                point_size=self.point_size,
                visible=bool(self.show_points.value),
            )
            self._draw_selection()
            self._invalidate()

    def _draw_selection(self) -> None:
        sel = self.selection
        if sel is None or sel.instance == 0 or not sel.info.get("point_count"):
            self.server.scene.add_point_cloud("/selection", np.zeros((0, 3)), np.zeros((0, 3), np.uint8), visible=False)
            self.server.scene.add_line_segments("/selection_box", np.zeros((0, 2, 3)), (255, 255, 0), visible=False)
            return
        p = self.points
        xyz = p.xyz[p.instance == sel.instance]
        self.server.scene.add_point_cloud(
            "/selection", xyz, np.array([255, 255, 0], np.uint8), point_size=self.point_size * 1.6
        )
        box = sel.info["aabb"]
        segs = box_edges(np.asarray(box["min"]), np.asarray(box["max"]))
        self.server.scene.add_line_segments("/selection_box", segs, (255, 255, 0), thickness=self.point_size * 0.5)

    # ------------------------------------------------------------------ selection
    def _on_click(self, event) -> None:
        with self.lock:
            pick = pick_ray(self.opened, event.ray_origin, event.ray_direction)
        self.select(pick.instance, pick)

    def select(self, instance_id: int, pick: Optional[Pick] = None) -> Selection:
        """Select an instance (0 clears): highlight its points and box, show its record in the panel."""
        with self.lock:
            info = describe_instance(self.opened, instance_id) if instance_id > 0 else {}
            self.selection = Selection(instance_id, pick, info)
            if instance_id <= 0:
                self.selected_md.content = "Nothing selected (the click hit no object)."
            else:
                views = ", ".join(f"{k} ({v})" for k, v in sorted(info["views"].items())) or "none"
                box = info.get("aabb") or {}
                fmt = lambda v: "(" + ", ".join(f"{x:.3f}" for x in v) + ")"  # noqa: E731
                self.selected_md.content = (
                    f"**instance {instance_id}** — class {info['class_name']} ({info['class_id']})  \n"
                    f"points: {info['point_count']}  \n"
                    f"box: {fmt(box['min']) if box else '-'} to {fmt(box['max']) if box else '-'}  \n"
                    f"seen in: {views}"
                )
                if int(self.selected_id.value) != instance_id:
                    self.selected_id.value = instance_id
                self.visible_box.value = instance_id not in self.hidden
            self._draw_selection()
        return self.selection

    def apply_instance_style(self) -> None:
        """Hide / show and recolour the instance in the id box."""
        i = int(self.selected_id.value)
        if i <= 0:
            return
        if self.visible_box.value:
            self.hidden.discard(i)
        else:
            self.hidden.add(i)
        self.colour_override[i] = tuple(int(c) for c in self.colour_box.value)
        self.redraw_points()

    # ------------------------------------------------------------------ clustering / export
    def recluster(self, min_cluster_size: int) -> None:
        """Cluster the cached embeddings again at ``min_cluster_size`` and relabel everything shown."""
        t0 = time.perf_counter()
        with self.lock:
            self.pending_clusters = recluster(self.opened, self.cache, min_cluster_size)
            self.pending_size = int(min_cluster_size)
            self.opened.relabel(self.pending_clusters)
            ids = self.opened.instance_ids
            self.selected_id.max = max(ids, default=0)
            self.instances_md.content = instance_table(self.opened, ids)
            self.cluster_md.content = (
                f"{len(ids)} instances at min_cluster_size={min_cluster_size} ({time.perf_counter() - t0:.1f} s); "
                "not saved yet"
            )
            self.selection = None
        self.redraw_points()

    def save_clusters(self) -> None:
        with self.lock:
            if getattr(self, "pending_clusters", None) is None:
                self.cluster_md.content = "Nothing to save: re-cluster first."
                return
            save_clusters(self.opened, self.pending_clusters, self.pending_size)
            self.cluster_md.content = f"saved {self.opened.run.clusters} (min_cluster_size={self.pending_size})"
            self.log(self.cluster_md.content)

    def export(self, selected_only: bool) -> Optional[dict]:
        """The export buttons: :func:`lift3d.export.export_run` for the selection or every instance."""
        with self.lock:
            if selected_only and (self.selection is None or self.selection.instance <= 0):
                self.export_md.content = "Select an instance first."
                return None
            ids = [self.selection.instance] if selected_only else None
            out = Path(self.export_dir.value)
            self.export_md.content = "exporting..."
            self.last_export = export_run(self.opened, out, "both", ids, self.export_format.value, log=lambda *_: None)
            self.export_md.content = (
                f"wrote {len(self.last_export['bytes'])} files to {out} in {self.last_export['seconds']} s"
            )
            return self.last_export

    # ------------------------------------------------------------------ live render
    def _on_connect(self, client) -> None:
        self.clients[client.client_id] = _ClientState(changed_at=time.perf_counter())
        f = self.opened.scene.frames[self.opened.scene.train_indices[0]]
        target = self.points.xyz.mean(axis=0) if len(self.points) else np.zeros(3)
        eye = f.camera_to_world[:3, 3]
        # start behind the first training camera (its frustum and thumbnail in view), looking at the points
        client.camera.position = target + self.cfg.start_distance * (eye - target)
        client.camera.look_at = target
        client.camera.fov = float(2 * np.arctan(0.5 * f.height / f.fy))

        @client.camera.on_update
        def _(_camera) -> None:
            st = self.clients.get(client.client_id)
            if st is not None:
                st.version += 1
                st.changed_at = time.perf_counter()

    def _invalidate(self) -> None:
        for st in self.clients.values():
            st.version += 1
            st.changed_at = 0.0

    def client_camera(self, client, height: int) -> CameraView:
        """The client's current camera as a lift3d :class:`CameraView` ``height`` pixels high."""
        cam = client.camera
        w, h = render_size(cam.aspect, height)
        fx, fy, cx, cy = pinhole_from_fov(cam.fov, w, h)
        return CameraView(viser_to_c2w(cam.wxyz, cam.position), fx, fy, cx, cy, w, h)

    def render_for(self, client, coarse: bool) -> np.ndarray:
        """Render the client's view (coarse: preview height and samples) -> uint8 [H, W, 3]."""
        height = self.cfg.preview_height if coarse else int(self.render_height.value)
        with self.lock, torch.no_grad():
            frame = render_camera(
                self.opened,
                self.client_camera(client, height),
                self.live_mode.value,
                self.pca,
                self.cfg.preview_samples if coarse else None,
                hidden=frozenset(self.hidden),
                colour_override=self.colour_override,
            )
        return frame.image

    def _render_loop(self) -> None:
        while not self._stop.is_set():
            did = False
            for cid, client in list(self.server.get_clients().items()):
                st = self.clients.get(cid)
                if st is None or self.live_mode.value == "off":
                    if st is not None and st.drawn != -2 and self.live_mode.value == "off":
                        client.scene.set_background_image(None)
                        st.drawn = -2
                    continue
                version = st.version
                if st.drawn != version:
                    image = self.render_for(client, coarse=True)
                    client.scene.set_background_image(image, format="jpeg")
                    st.drawn, did = version, True
                elif st.refined != version and time.perf_counter() - st.changed_at >= self.cfg.settle_seconds:
                    image = self.render_for(client, coarse=False)
                    client.scene.set_background_image(image, format="jpeg")
                    st.refined, did = version, True
            if not did:
                time.sleep(0.02)

    def close(self) -> None:
        self._stop.set()
        self._worker.join(timeout=5)
        self.server.stop()

    def serve_forever(self) -> None:
        """Block until Ctrl-C."""
        try:
            while True:
                time.sleep(1.0)
        except KeyboardInterrupt:
            self.log("viewer stopped")
        finally:
            self.close()
