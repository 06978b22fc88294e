-- Version 11: drone panels over long ranges (dashboards/drone.py) read minutes, not 1 Hz
-- rows (about 60 times fewer). Kept by the same incremental refresh as the other rollups
-- (kcity/rollups.py): a drone's touched local days are rebuilt from the raw rows, so late
-- data updates its minutes and every minute equals a recount.
--
-- One row per device, minute and flight mode ('' where the record had none), so that the
-- track's most frequent mode over any bucket of whole minutes is exact. Averages are sums
-- over the count of the non-NULL values they add up; the track's position and height count
-- only records with a 3-D fix (`gps_fix >= 3`), as the raw track does.
CREATE TABLE IF NOT EXISTS drone_minutely (
    device_id      text NOT NULL,
    minute         timestamptz NOT NULL,
    mode           text NOT NULL,
    records        integer NOT NULL,
    fix_records    integer NOT NULL,          -- gps_fix >= 3
    lat_sum        double precision,          -- over fix_records
    lon_sum        double precision,
    agl_sum        double precision,          -- over agl_records
    agl_records    integer NOT NULL,          -- fix records with agl_m
    battery_w_sum  double precision,          -- battery_v × battery_a
    battery_w_n    integer NOT NULL,
    gen_w_sum      double precision,
    gen_w_n        integer NOT NULL,
    fuel_sum       double precision,
    fuel_n         integer NOT NULL,
    rssi_sum       double precision,
    rssi_n         integer NOT NULL,
    rssi_min       double precision,
    PRIMARY KEY (device_id, minute, mode)
);
CREATE INDEX IF NOT EXISTS drone_minutely_minute ON drone_minutely (minute);

-- Drones rolled up before this table existed are rebuilt whole by the next refresh.
DELETE FROM rollup_devices r USING devices d, pilots p
WHERE d.id = r.device_id AND p.id = d.pilot_id AND p.kind = 'hybrid_drone';
