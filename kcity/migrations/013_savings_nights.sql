-- Version 13 (issue #23): each luminaire-night's savings accounting, kept so that a window
-- sums kept nights instead of reading their rows (`kcity.savings_nights`,
-- `analytics.night_accounts`). A unit (device, night) holds what the night's rows give:
-- records with a known interval energy, of which burning, actual energy, energy sources, the
-- lit 100 % samples, the day-burning of the daylight before the night, and a sha256 of its
-- rows. Units are valid for rows received before their pilot's `horizon`
-- (savings_night_horizons); rows received since mark their units stale on every read, and
-- the next stored run drops them. `params_key` names the place, interval and method version.
CREATE TABLE IF NOT EXISTS savings_night_horizons (
    pilot_id    text PRIMARY KEY REFERENCES pilots(id) ON DELETE CASCADE,
    params_key  text NOT NULL,
    horizon     timestamptz NOT NULL
);

CREATE TABLE IF NOT EXISTS savings_nights (
    pilot_id           text NOT NULL REFERENCES pilots(id) ON DELETE CASCADE,
    device_id          text NOT NULL,
    night              date NOT NULL,
    records            integer NOT NULL,            -- rows of the unit (its hash covers them)
    valid              double precision NOT NULL,
    burning            double precision NOT NULL,
    actual_wh          double precision NOT NULL,
    sources            double precision[] NOT NULL, -- 4 record counts, `luminaire_nights.SOURCES`
    full_w             double precision[] NOT NULL, -- lit 100 % records' power in the night
    burn_records       integer NOT NULL,            -- day-burning of the day before the night
    burn_power_sum_w   double precision NOT NULL,
    burn_first         double precision NOT NULL,   -- epoch seconds
    burn_last          double precision NOT NULL,
    rows_sha256        bytea NOT NULL,
    PRIMARY KEY (pilot_id, device_id, night)
);
