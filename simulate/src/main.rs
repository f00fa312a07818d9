use clap::Parser;
use tracing_subscriber::EnvFilter;

use convolog_simulate::SimulateArgs;

/// Send synthetic Pipecat, LiveKit and GenAI-shaped conversations over OTLP.
#[derive(Parser)]
#[command(version)]
struct Cli {
    #[command(flatten)]
    args: SimulateArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // RUST_LOG overrides; warnings (failed exports) show by default.
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let report = convolog_simulate::run(&cli.args).await?;
    let secs = report.elapsed.as_secs_f64().max(1e-9);
    println!(
        "sent {} conversations, {} spans, {} log records in {secs:.2} s ({:.0} spans/s)",
        report.conversations,
        report.spans,
        report.log_records,
        report.spans as f64 / secs
    );
    Ok(())
}
