-- K-City Pilot Telemetry schema, version 1. Works on TimescaleDB's Apache-2 edition.
CREATE EXTENSION IF NOT EXISTS timescaledb;

-- Registry ---------------------------------------------------------------------------
CREATE TABLE pilots (
    id          text PRIMARY KEY,
    name        text NOT NULL,
    kind        text NOT NULL,
    country     text NOT NULL,
    city        text NOT NULL,
    timezone    text NOT NULL,
    latitude    double precision NOT NULL,
    longitude   double precision NOT NULL,
    definition  jsonb NOT NULL,            -- the whole validated TOML, geometry embedded
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE devices (
    id             text PRIMARY KEY,        -- also the MQTT username
    pilot_id       text NOT NULL REFERENCES pilots(id),
    kind           text NOT NULL,
    password_hash  text NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    revoked_at     timestamptz,
    last_seen      timestamptz
);
CREATE INDEX devices_pilot ON devices (pilot_id);

-- Readings (hypertables keyed by device and time, DESIGN §5) --------------------------
CREATE TABLE streetlight_readings (
    device_id     text NOT NULL,
    ts            timestamptz NOT NULL,
    received_at   timestamptz NOT NULL DEFAULT now(),
    power_w       double precision NOT NULL,
    energy_wh     double precision,
    dim_pct       double precision NOT NULL,
    lamp_on       boolean NOT NULL,
    vehicles      integer,
    voltage_v     double precision,
    current_a     double precision,
    power_factor  double precision,
    temp_c        double precision,
    PRIMARY KEY (device_id, ts)
);
SELECT create_hypertable('streetlight_readings', 'ts', chunk_time_interval => interval '7 days');

CREATE TABLE drone_readings (
    device_id     text NOT NULL,
    ts            timestamptz NOT NULL,
    received_at   timestamptz NOT NULL DEFAULT now(),
    flight_id     text NOT NULL,
    lat           double precision NOT NULL,
    lon           double precision NOT NULL,
    alt_m         double precision,
    agl_m         double precision,
    speed_mps     double precision,
    heading_deg   double precision,
    mode          text,
    camera_on     boolean,
    hfov_deg      double precision,
    gps_fix       smallint,
    battery_v     double precision,
    battery_a     double precision,
    battery_pct   double precision,
    gen_power_w   double precision,
    fuel_l        double precision,
    rssi_dbm      double precision,
    PRIMARY KEY (device_id, ts)
);
SELECT create_hypertable('drone_readings', 'ts', chunk_time_interval => interval '1 day');

-- A generic device may report several metrics at one instant: the metric joins the key.
CREATE TABLE generic_readings (
    device_id     text NOT NULL,
    ts            timestamptz NOT NULL,
    received_at   timestamptz NOT NULL DEFAULT now(),
    metric        text NOT NULL,
    value         double precision NOT NULL,
    unit          text,
    PRIMARY KEY (device_id, ts, metric)
);
SELECT create_hypertable('generic_readings', 'ts', chunk_time_interval => interval '7 days');

CREATE TABLE events (
    device_id     text NOT NULL,
    ts            timestamptz NOT NULL,
    received_at   timestamptz NOT NULL DEFAULT now(),
    type          text NOT NULL,
    data          jsonb NOT NULL DEFAULT '{}',
    PRIMARY KEY (device_id, ts, type)
);
SELECT create_hypertable('events', 'ts', chunk_time_interval => interval '30 days');

-- Device status: the latest retained status / Last Will, and its history.
CREATE TABLE device_status (
    device_id     text PRIMARY KEY,
    state         text NOT NULL,
    payload       jsonb NOT NULL,
    received_at   timestamptz NOT NULL DEFAULT now()
);

-- Sequence tracking: one row per message (device, boot, seq). A conflict is a duplicate
-- message; holes in seq within a boot are lost messages.
CREATE TABLE ingest_messages (
    device_id     text NOT NULL,
    boot          integer NOT NULL,
    seq           bigint NOT NULL,
    channel       text NOT NULL,
    received_at   timestamptz NOT NULL DEFAULT now(),
    sent_at       timestamptz,
    records       integer NOT NULL,
    PRIMARY KEY (device_id, boot, seq, channel)
);
CREATE INDEX ingest_messages_received ON ingest_messages (received_at);

CREATE TABLE dead_letters (
    id            bigserial PRIMARY KEY,
    received_at   timestamptz NOT NULL DEFAULT now(),
    topic         text NOT NULL,
    payload       bytea NOT NULL,
    stage         text NOT NULL,           -- decode, envelope, topic, registry, record, time, size
    reason        text NOT NULL,
    pilot_id      text,
    device_id     text
);
CREATE INDEX dead_letters_received ON dead_letters (received_at);
CREATE INDEX dead_letters_device ON dead_letters (device_id, received_at);

-- Counters snapshotted by each ingest worker, for Grafana.
CREATE TABLE ingest_stats (
    ts                timestamptz NOT NULL,
    worker            text NOT NULL,
    received          bigint NOT NULL,
    stored            bigint NOT NULL,
    duplicates        bigint NOT NULL,
    dead_lettered     bigint NOT NULL,
    seq_gaps          bigint NOT NULL,
    batches           bigint NOT NULL,
    batch_latency_ms  double precision,
    PRIMARY KEY (worker, ts)
);
SELECT create_hypertable('ingest_stats', 'ts', chunk_time_interval => interval '7 days');

-- Analytics results: every result carries method version, parameters and input hash.
CREATE TABLE analytics_results (
    id              bigserial PRIMARY KEY,
    pilot_id        text NOT NULL REFERENCES pilots(id),
    analysis        text NOT NULL,           -- savings, coverage, quality
    method          text NOT NULL,
    method_version  text NOT NULL,
    window_from     date NOT NULL,
    window_to       date NOT NULL,
    parameters      jsonb NOT NULL,
    input_hash      text NOT NULL,
    result          jsonb NOT NULL,
    computed_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX analytics_results_lookup ON analytics_results (pilot_id, analysis, computed_at DESC);

-- Per-day series of the latest analytics, for dashboards (upserted by each run).
CREATE TABLE savings_nightly (
    pilot_id        text NOT NULL REFERENCES pilots(id),
    night           date NOT NULL,
    actual_kwh      double precision NOT NULL,
    baseline_kwh    double precision NOT NULL,
    savings_kwh     double precision NOT NULL,
    luminaires      integer NOT NULL,
    PRIMARY KEY (pilot_id, night)
);

CREATE TABLE coverage_daily (
    pilot_id             text NOT NULL REFERENCES pilots(id),
    day                  date NOT NULL,
    covered_km2          double precision NOT NULL,
    area_coverage_pct    double precision NOT NULL,
    linear_coverage_pct  double precision NOT NULL,
    flight_hours         double precision NOT NULL,
    battery_kwh          double precision NOT NULL,
    generator_kwh        double precision NOT NULL,
    fuel_l               double precision NOT NULL,
    PRIMARY KEY (pilot_id, day)
);

-- API tokens, stored hashed.
CREATE TABLE api_tokens (
    id          bigserial PRIMARY KEY,
    token_hash  text NOT NULL UNIQUE,
    role        text NOT NULL CHECK (role IN ('admin', 'operator', 'evaluator', 'viewer')),
    pilot_id    text REFERENCES pilots(id),
    label       text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);
