//! convolog: conversation logs for voice and chat AI agents, from the OpenTelemetry traces
//! they already emit.

pub mod conventions;
pub mod model;
pub mod sessionize;
