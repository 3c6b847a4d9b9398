"""The embedded synthetic pool: a seeded world of rendered shapes and captions."""
