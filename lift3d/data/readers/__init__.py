"""Scene readers behind one registry (:mod:`lift3d.data.readers.registry`).

Built-in readers, asked in this order by :func:`lift3d.data.loading.load_scene` (``reader=NAME`` forces one):

* ``transforms_json``: a nerfstudio ``transforms.json`` with lift3d's segment keys
  (:mod:`lift3d.data.readers.transforms_json`);
* ``messy_rooms_release``: the released Messy Rooms layout (:mod:`lift3d.data.readers.messy_rooms`);
* ``colmap``: a COLMAP sparse model and its images (:mod:`lift3d.data.readers.colmap`);
* ``panoptic_lifting``: Panoptic Lifting's preprocessed ScanNet / Replica / Hypersim scenes
  (:mod:`lift3d.data.readers.panoptic_lifting`).

A new layout is one module here defining ``READER`` and one ``register_reader`` line below. Readers never import
each other; what they share is in :mod:`lift3d.data.readers.common`.
"""

from lift3d.data.readers import colmap, messy_rooms, panoptic_lifting, transforms_json
from lift3d.data.readers.registry import (
    SceneReader,
    find_reader,
    get_reader,
    register_reader,
    registered_readers,
    unregister_reader,
)

__all__ = ["SceneReader", "find_reader", "get_reader", "register_reader", "registered_readers", "unregister_reader"]

register_reader(transforms_json.READER)
register_reader(messy_rooms.READER)
register_reader(colmap.READER)
register_reader(panoptic_lifting.READER)
