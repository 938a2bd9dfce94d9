"""The domain: models, strategies, links, the tactics review and the figures built on them."""
