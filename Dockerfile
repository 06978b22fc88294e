# The K-City application image: `kcity ingest run`, `kcity api run` and the one-shot jobs
# of docker-compose.yml (schema migration, broker initialisation).
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Pango/HarfBuzz and fonts (CJK for the Korean reports) for WeasyPrint's PDF reports; openssl and mosquitto (for
# mosquitto_ctrl only, the broker itself runs in its own image) for deploy/mosquitto/init.sh.
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0 fonts-dejavu-core fonts-noto-cjk \
        openssl mosquitto \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --create-home --home-dir /var/lib/kcity kcity

WORKDIR /opt/kcity
COPY pyproject.toml README.md ./
COPY devices devices
COPY ingest ingest
COPY analytics analytics
COPY dashboards dashboards
COPY kcity kcity
RUN pip install .

COPY pilots pilots
COPY deploy/mosquitto deploy/mosquitto

USER kcity
ENV KCITY_DATA_DIR=/var/lib/kcity
EXPOSE 8087 9108
CMD ["kcity", "api", "run"]
