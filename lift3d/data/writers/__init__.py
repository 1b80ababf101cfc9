"""Scene writers: :mod:`lift3d.data.writers.messy_rooms` writes the released Messy Rooms layout."""
