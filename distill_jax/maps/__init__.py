"""The maps φ: X_t → X_s that carry a target-domain image into the teacher's source domain.

One module per family, each building the ``config.mapping`` names it serves:

* ``fixed.py``: ``identity``, ``noise``, ``conv`` (and any map added with ``register_map``);
* ``vae.py``: ``vae`` and ``generated``, the learned map φ_vae (garments → digits);
* ``style.py``: ``style``, VGG-19 style transfer, cached on disk by ``cache.py``.

``core.py`` holds the ``Map`` type, ``BuiltMap`` / ``MapContext`` / ``MapFamily`` and the
registry (``vae`` and ``style`` are imported when first looked up). Adding a map:
docs/own_experiment.md, "Maps φ".
"""

from distill_jax.maps import fixed
from distill_jax.maps.cache import CachedMap, cached
from distill_jax.maps.core import (
  BuiltMap,
  Map,
  MapContext,
  MapFamily,
  family_for,
  mapping_names,
  register_family,
)
from distill_jax.maps.fixed import (
  dilated_conv_map,
  get_map,
  identity_map,
  map_names,
  noise_map,
  register_map,
)

register_family(fixed.FAMILY)

__all__ = [
  "BuiltMap",
  "CachedMap",
  "Map",
  "MapContext",
  "MapFamily",
  "cached",
  "dilated_conv_map",
  "family_for",
  "get_map",
  "identity_map",
  "map_names",
  "mapping_names",
  "noise_map",
  "register_family",
  "register_map",
]
