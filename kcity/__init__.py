"""The shell that wires the domain packages into one product.

At the top: the wiring (settings, db, schema, registry, provisioning, analyses, simulation,
demo); in rooms of their own: `api/`, `commands/`, `reports/`, `stack/`. It may import every
domain package; none of them imports it.
"""
