"""The model catalog and the media price table a config compiles into: the built-in
entries with the file's ``pricing:`` and ``models:`` on top (``models:`` supersedes
``pricing:`` for a name it lists)."""

from __future__ import annotations

from sluicegate.config.model import MEDIA_PRICE_FIELDS, Config
from sluicegate.media.prices import MediaPrice, MediaPrices
from sluicegate.providers.models import ModelCatalog, Override


def model_catalog(config: Config) -> ModelCatalog:
    """The built-in catalog, then ``pricing:``, then ``models:``."""
    layers = [
        (name, Override(**p.model_dump(exclude=set(MEDIA_PRICE_FIELDS)), whole_price=True))
        for name, p in config.pricing.items()
        if not p.media or p.model_fields_set & {"input", "output"}  # a media price only
    ]
    for name, spec in config.models.items():
        fields = spec.model_dump(exclude={"capabilities"})
        caps = frozenset(spec.capabilities) if spec.capabilities is not None else None
        layers.append((name, Override(**fields, capabilities=caps)))
    return ModelCatalog(layers)


def media_prices(config: Config) -> MediaPrices:
    """The built-in media prices with ``pricing:``'s per-unit ones on top."""
    return MediaPrices(
        {
            name: MediaPrice(**p.model_dump(include=set(MEDIA_PRICE_FIELDS)))
            for name, p in config.pricing.items()
            if p.media
        }
    )
