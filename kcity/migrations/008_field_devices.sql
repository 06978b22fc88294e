-- Version 8: devices as firms run them (issue #20): LoRaWAN identities and locations for
-- bulk onboarding, and downlink commands closed by the device's `command_ack` event.
ALTER TABLE devices
    ADD COLUMN IF NOT EXISTS dev_eui text,                 -- LoRaWAN DevEUI, 16 lower-case hex
    ADD COLUMN IF NOT EXISTS latitude double precision,
    ADD COLUMN IF NOT EXISTS longitude double precision,
    ADD COLUMN IF NOT EXISTS notes text,
    ADD COLUMN IF NOT EXISTS commissioned_on date;         -- also added by migration 003
CREATE UNIQUE INDEX IF NOT EXISTS devices_dev_eui ON devices (dev_eui) WHERE dev_eui IS NOT NULL;

CREATE TABLE IF NOT EXISTS commands (
    id           uuid PRIMARY KEY,
    pilot_id     text NOT NULL REFERENCES pilots(id),
    device_id    text NOT NULL REFERENCES devices(id),
    type         text NOT NULL,                   -- ping, set_level, set_dimming_profile, reboot
    params       jsonb NOT NULL DEFAULT '{}',
    created_by   text NOT NULL,                   -- 'cli:<user>' or 'token:<id>'
    state        text NOT NULL DEFAULT 'queued'
                 CHECK (state IN ('queued', 'sent', 'acked', 'rejected', 'expired')),
    via          text,                            -- mqtt, chirpstack, tts
    reason       text,                            -- the device's reason, or why it failed
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    sent_at      timestamptz,
    closed_at    timestamptz
);
CREATE INDEX IF NOT EXISTS commands_device ON commands (device_id, created_at);

-- A `command_ack` event, however it arrived (MQTT, HTTP, a bridge), closes its command: the
-- trigger sits where every ingest path meets, so none of them needs to know about commands.
CREATE OR REPLACE FUNCTION kcity_close_command() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.type = 'command_ack' THEN
        UPDATE commands
           SET state = CASE WHEN NEW.data->>'status' = 'done' THEN 'acked' ELSE 'rejected' END,
               reason = left(NEW.data->>'reason', 500),
               closed_at = NEW.received_at
         WHERE id::text = NEW.data->>'command_id'
           AND device_id = NEW.device_id
           AND state IN ('queued', 'sent')
           AND expires_at > NEW.received_at;
    END IF;
    RETURN NULL;
END $$;
DROP TRIGGER IF EXISTS events_close_command ON events;
CREATE TRIGGER events_close_command AFTER INSERT ON events
    FOR EACH ROW WHEN (NEW.type = 'command_ack') EXECUTE FUNCTION kcity_close_command();
