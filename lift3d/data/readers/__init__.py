"""Scene readers behind one registry (:mod:`lift3d.data.readers.registry`).

Built-in readers, asked in this order by :func:`lift3d.data.loading.load_scene`:

* ``transforms_json``: lift3d's scene format (:mod:`lift3d.data.readers.transforms_json`);
* ``messy_rooms_release``: the released Messy Rooms layout (:mod:`lift3d.data.readers.messy_rooms`).

A new layout is one module here defining ``READER`` and one ``register_reader`` line below.
"""

from lift3d.data.readers import messy_rooms, transforms_json
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
