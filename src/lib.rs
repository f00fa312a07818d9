//! convolog: conversation logs for voice and chat AI agents, from the OpenTelemetry traces
//! they already emit.

pub mod api;
pub mod app;
pub mod clock;
pub mod config;
pub mod contact;
pub mod conventions;
pub mod doctor;
pub mod export_cli;
pub mod hmac;
pub mod http_server;
pub mod memory;
pub mod model;
pub mod pipeline;
pub mod progress;
pub mod query;
pub mod receiver;
pub mod sessionize;
pub mod store;
pub mod telemetry;
pub mod tenants;
pub mod timefmt;
