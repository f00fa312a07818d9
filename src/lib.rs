//! convolog: conversation logs for voice and chat AI agents, from the OpenTelemetry traces
//! they already emit.

pub mod api;
pub mod app;
pub mod config;
pub mod conventions;
pub mod export_cli;
pub mod model;
pub mod receiver;
pub mod retention;
pub mod sessionize;
pub mod sessionizer;
pub mod store;
pub mod telemetry;
pub mod tenants;
pub mod timefmt;
