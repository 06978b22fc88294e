"""MQTT → TimescaleDB ingest (DESIGN §5): validate, deduplicate, store, acknowledge after commit.

Layers, each its own module: ``config`` (the frozen ``IngestConfig`` the shell builds),
``tables`` (where rows land), ``registry`` (device cache), ``validate`` (pure: message →
rows or dead letters), ``batch`` and ``batch_writer`` (COPY + ``ON CONFLICT DO NOTHING``),
``consumer`` (paho, manual acks), ``metrics`` (Prometheus), ``service`` (``run``).
"""
