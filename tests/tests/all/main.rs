//! The Weir integration tests, as one test binary: each module is one
//! concern's tests (the file of the same name), and their shared helpers
//! live in the `weir_tests` library (`tests/src/`). One binary links once
//! instead of once per file.
//!
//! Tests run on the harness's threads in one process: a test that needs
//! process-wide state (a global subscriber, environment variables) sets it
//! only for a child process or a scoped guard, never for the process.

mod admin;
mod clickhouse_sink;
mod corrupt_batches;
mod deploy;
mod dynamodb_cdc;
mod dynamodb_credentials;
mod dynamodb_hosts;
mod dynamodb_leases;
mod dynamodb_lineage;
mod dynamodb_roundtrip;
mod dynamodb_sink;
mod dynamodb_streams;
mod engine;
mod examples_sessions_clickstream;
mod hostile_records;
mod hot_reload;
mod iot_telemetry_example;
mod js_plugins;
mod kafka_backpressure;
mod kafka_pipeline;
mod kafka_secure;
mod kafka_sink;
mod kafka_source;
mod kafka_workers;
mod lookup_stores;
mod lookups;
mod metrics;
mod mongodb_sink;
mod plugin_cli;
mod plugin_scaffold;
mod postgres_sink;
mod python_plugins;
mod redis_generic_command;
mod redis_sink;
mod scylla_cluster;
mod scylla_wire;
mod sink_outages;
mod store_tls;
mod telemetry;
mod validate;
mod worlds;
