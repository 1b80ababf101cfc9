"""``lift3d fit --view``: the viewer during a fit, fed by the trainer's step callback; when the fit ends the same
server turns into the run's full viewer (:class:`lift3d.viewer.app.RunViewer`)."""

from __future__ import annotations

import time
from typing import Optional

import numpy as np

from lift3d.data.scene import Scene
from lift3d.engine.trainer import StepInfo
from lift3d.viewer.app import ViewerConfig, add_training_cameras, scene_up
from lift3d.viewer.camera import pinhole_from_fov, render_size, viser_to_c2w
from lift3d.viewer.render import CameraView, LiveModel, render_camera

LIVE_MODES = ("rgb", "depth", "semantic", "embedding")


class FitViewer:
    """A step callback (``Trainer(..., callbacks=[viewer])``) that shows the fit live: the training cameras, a status
    line (step, stage, losses) and the field rendered from each browser's camera at most every ``every_seconds``
    (in the training thread, between steps, so the model is never read while it changes)."""

    def __init__(self, scene: Scene, cfg: Optional[ViewerConfig] = None, every_seconds: float = 2.0, log=print):
        import viser

        self.cfg, self.every, self.log = cfg or ViewerConfig(), every_seconds, log
        if self.cfg.host not in ("127.0.0.1", "localhost", "::1"):
            log(f"warning: the viewer listens on {self.cfg.host}; anyone who can reach port {self.cfg.port} sees it.")
        self.server = viser.ViserServer(host=self.cfg.host, port=self.cfg.port, verbose=False)
        self.server.scene.set_up_direction(scene_up(scene))
        add_training_cameras(self.server, scene, self.cfg.thumbnail_height)
        with self.server.gui.add_folder("Fit"):
            self.status = self.server.gui.add_markdown("waiting for the first step")
            self.mode = self.server.gui.add_dropdown("Live render", LIVE_MODES, initial_value="rgb")
        self.last = 0.0
        self.frames_drawn = 0
        self.steps_shown: list[int] = []
        log(f"live viewer: http://localhost:{self.server.get_port()}")

    def __call__(self, info: StepInfo) -> None:
        now = time.perf_counter()
        if now - self.last < self.every and info.step < info.total:
            return
        self.last = now
        losses = ", ".join(f"{k} {v:.4f}" for k, v in sorted(info.logs.items()) if isinstance(v, float))
        self.status.content = f"step {info.step} / {info.total} ({info.stage})  \n{losses}"
        self.steps_shown.append(info.step)
        live = LiveModel(info.trainer.model)
        for client in self.server.get_clients().values():
            cam = client.camera
            w, h = render_size(cam.aspect, self.cfg.preview_height)
            fx, fy, cx, cy = pinhole_from_fov(cam.fov, w, h)
            view = CameraView(viser_to_c2w(cam.wxyz, cam.position), fx, fy, cx, cy, w, h)
            frame = render_camera(live, view, self.mode.value, num_samples=self.cfg.preview_samples)
            client.scene.set_background_image(np.ascontiguousarray(frame.image), format="jpeg")
            self.frames_drawn += 1

    def finish(self, run, log=print):
        """The fit is over: serve the run's full viewer on the same server (cameras and GUI are rebuilt)."""
        from lift3d.export.run import load_export_inputs
        from lift3d.viewer.app import RunViewer

        self.server.gui.reset()
        self.server.scene.reset()
        return RunViewer(load_export_inputs(run), self.cfg, server=self.server, log=log)
