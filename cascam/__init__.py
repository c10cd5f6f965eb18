"""CasCAM: Cascading Class Activation Mapping (Choi, Kim & Choi, CMES 2026), reproducible and tested.

Train a classifier, take its class activation map, suppress the most salient region of every image,
train again on the masked images, repeat, and combine the maps.

Example:
    >>> from cascam import CascadeConfig, run_cascade
    >>> cascade = run_cascade(CascadeConfig(K=3, n_images=600))
    >>> maps = cascade.explain(cascade.data.images[:8], cascade.data.labels[:8])   # (8, 64, 64)
"""

from .cascade import Cascade, run_cascade
from .config import CascadeConfig, ConfigError, load_config
from .explainers import CasCAM
from .store import RunStore

__all__ = ["Cascade", "CasCAM", "CascadeConfig", "ConfigError", "RunStore", "load_config", "run_cascade"]
__version__ = "0.1.0"
