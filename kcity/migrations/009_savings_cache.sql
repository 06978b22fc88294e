-- Version 9 (issue #23): what the baseline window says about each luminaire, kept so that a
-- savings window reads only its own nights. A row is valid while its luminaire's records in
-- the baseline span are as many as `records` with the newest arrival `last_received`
-- (readings are only ever inserted, DESIGN §5); `params_key` names the baseline window,
-- place, record interval and method version it was made with.
CREATE TABLE IF NOT EXISTS savings_baseline_cache (
    pilot_id            text NOT NULL REFERENCES pilots(id),
    device_id           text NOT NULL,
    params_key          text NOT NULL,
    records             bigint NOT NULL,
    last_received       timestamptz NOT NULL,
    in_nights           boolean NOT NULL,      -- false: records only outside the night spans
    nights              date[] NOT NULL,
    valid               double precision[] NOT NULL,
    burning             double precision[] NOT NULL,
    actual_wh           double precision[] NOT NULL,
    sources             double precision[] NOT NULL,   -- nights × 4, row-major
    full_power_w        double precision,              -- own baseline median, NULL: too few
    full_power_samples  integer,
    full_power_se_w     double precision,
    rows_sha256         text NOT NULL,
    computed_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (pilot_id, device_id)
);

-- The headline of every stored result as a row (issue #23): panels, the console and the
-- API's summary view read these few columns, never the whole document (a 90-day savings
-- result of 500 luminaires is megabytes). The trigger sits where every writer meets.
CREATE TABLE IF NOT EXISTS analytics_summary (
    result_id            bigint PRIMARY KEY REFERENCES analytics_results(id) ON DELETE CASCADE,
    pilot_id             text NOT NULL,
    analysis             text NOT NULL,
    method               text NOT NULL,
    method_version       text NOT NULL,
    window_from          date NOT NULL,
    window_to            date NOT NULL,
    input_hash           text NOT NULL,
    computed_at          timestamptz NOT NULL,
    headline             jsonb NOT NULL,   -- the result's keys but its tables, + table_rows
    savings_kwh          double precision,
    savings_pct          double precision,
    co2_kg               double precision,
    cost_saved           double precision,
    currency             text,
    completeness_pct     double precision,
    covered_km2          double precision,
    area_coverage_pct    double precision,
    linear_coverage_pct  double precision,
    revisit_mean_s       double precision,
    revisit_p95_s        double precision,
    revisit_max_s        double precision,
    flight_hours         double precision,
    generator_share_pct  double precision
);
CREATE INDEX IF NOT EXISTS analytics_summary_latest
    ON analytics_summary (pilot_id, analysis, computed_at DESC);

CREATE OR REPLACE FUNCTION kcity_summarise_result(rid bigint) RETURNS void LANGUAGE sql AS $$
    INSERT INTO analytics_summary
    SELECT r.id, r.pilot_id, r.analysis, r.method, r.method_version, r.window_from, r.window_to,
           r.input_hash, r.computed_at,
           coalesce((SELECT jsonb_object_agg(key, value) FROM jsonb_each(r.result)
                     WHERE jsonb_typeof(value) <> 'array'), '{}'::jsonb)
           || jsonb_build_object('table_rows',
                coalesce((SELECT jsonb_object_agg(key, jsonb_array_length(value))
                          FROM jsonb_each(r.result) WHERE jsonb_typeof(value) = 'array'),
                         '{}'::jsonb)),
           (r.result->>'savings_kwh')::float8, (r.result->>'savings_pct')::float8,
           (r.result->>'co2_kg')::float8, (r.result->>'cost_saved')::float8,
           r.result->>'currency', (r.result->>'completeness_pct')::float8,
           (r.result->>'covered_km2')::float8, (r.result->>'area_coverage_pct')::float8,
           (r.result->>'linear_coverage_pct')::float8,
           (r.result->'revisit_s'->>'mean')::float8, (r.result->'revisit_s'->>'p95')::float8,
           (r.result->'revisit_s'->>'max')::float8, (r.result->>'flight_hours')::float8,
           (r.result->>'generator_share_pct')::float8
    FROM analytics_results r WHERE r.id = rid
    ON CONFLICT (result_id) DO NOTHING
$$;

-- Each stored savings result's per-luminaire table as rows, for the streetlight dashboard.
CREATE TABLE IF NOT EXISTS savings_luminaires (
    result_id           bigint NOT NULL REFERENCES analytics_results(id) ON DELETE CASCADE,
    device_id           text NOT NULL,
    actual_kwh          double precision,
    baseline_kwh        double precision,
    savings_kwh         double precision,
    savings_pct         double precision,
    nights              integer,
    nights_excluded     integer,
    completeness_pct    double precision,
    full_power_w        double precision,
    full_power_source   text,
    full_power_samples  integer,
    PRIMARY KEY (result_id, device_id)
);

CREATE OR REPLACE FUNCTION kcity_savings_luminaires(rid bigint) RETURNS void LANGUAGE sql AS $$
    INSERT INTO savings_luminaires
    SELECT r.id, l.device_id, l.actual_kwh, l.baseline_kwh, l.savings_kwh, l.savings_pct,
           l.nights, l.nights_excluded, l.completeness_pct, l.full_power_w,
           l.full_power_source, l.full_power_samples
    FROM analytics_results r,
         jsonb_to_recordset(CASE WHEN jsonb_typeof(r.result->'per_luminaire') = 'array'
                                 THEN r.result->'per_luminaire' ELSE '[]' END)
           AS l(device_id text, actual_kwh float8, baseline_kwh float8, savings_kwh float8,
                savings_pct float8, nights integer, nights_excluded integer,
                completeness_pct float8, full_power_w float8, full_power_source text,
                full_power_samples integer)
    WHERE r.id = rid AND r.analysis = 'savings' AND l.device_id IS NOT NULL
    ON CONFLICT (result_id, device_id) DO NOTHING
$$;

CREATE OR REPLACE FUNCTION kcity_result_summary() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM kcity_summarise_result(NEW.id);
    PERFORM kcity_savings_luminaires(NEW.id);
    RETURN NULL;
END $$;
DROP TRIGGER IF EXISTS analytics_results_summary ON analytics_results;
CREATE TRIGGER analytics_results_summary AFTER INSERT ON analytics_results
    FOR EACH ROW EXECUTE FUNCTION kcity_result_summary();

SELECT kcity_summarise_result(id) FROM analytics_results
WHERE id NOT IN (SELECT result_id FROM analytics_summary);
SELECT kcity_savings_luminaires(id) FROM analytics_results
WHERE analysis = 'savings' AND id NOT IN (SELECT result_id FROM savings_luminaires);
