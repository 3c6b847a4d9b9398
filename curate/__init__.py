"""Image-text data curation: the logic behind the workflow's rules."""
