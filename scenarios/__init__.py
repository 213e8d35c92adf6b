"""The scenario catalogue: one YAML file per scenario, named after its id.

This folder is the top-level `scenarios/` of the design card, where a workshop host finds and copies the
scenarios; pyproject.toml's package-dir ships it as the package `mockbench.catalogue`, which
`mockbench.scenarios.loader.Catalogue` reads through importlib.resources (wheel, sdist, editable install).
"""
