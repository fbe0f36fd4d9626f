-- The TimescaleDB-style table of the IoT example (the `readings_pg` sink):
--   psql "postgresql://postgres@127.0.0.1:15432/postgres" -f examples/iot-telemetry/timescale.sql
--
-- One row per reading, unique on (device_id, time), so a replay upserts
-- the same rows. Where the TimescaleDB extension is available the table
-- becomes a hypertable chunked by day; on plain PostgreSQL it stays a
-- table, which is all the sink needs.
CREATE SCHEMA IF NOT EXISTS iot_telemetry;
CREATE TABLE IF NOT EXISTS iot_telemetry.readings (
    device_id     text             NOT NULL,
    time          timestamptz      NOT NULL,
    reading_date  date             NOT NULL,
    temperature_c double precision NOT NULL,
    humidity      real,
    battery_v     real,
    PRIMARY KEY (device_id, time)
);
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb') THEN
        CREATE EXTENSION IF NOT EXISTS timescaledb;
        PERFORM create_hypertable('iot_telemetry.readings', 'time',
            chunk_time_interval => INTERVAL '1 day', if_not_exists => TRUE);
    END IF;
END
$$;
