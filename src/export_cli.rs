//! `convolog export`: the export of `GET /v1/export`, straight from ClickHouse to a file or
//! standard output, with a progress bar on standard error.

use std::path::Path;

use anyhow::Context;
use tokio::io::{AsyncWrite, AsyncWriteExt, BufWriter};

use crate::api::export::{Encoder, Format};
use crate::progress;
use crate::query::{self, Params, QueryError};
use crate::store::Store;

/// The options of `convolog export`.
#[derive(clap::Args)]
pub struct ExportArgs {
    /// csv, jsonl or json.
    #[arg(long, default_value = "csv")]
    pub format: String,
    /// Start a CSV with a UTF-8 byte order mark (for older spreadsheet programs).
    #[arg(long)]
    pub bom: bool,
    /// File to write; `-` is standard output.
    #[arg(long, short, default_value = "-")]
    pub output: String,
    /// A filter as a query parameter of GET /v1/sessions, e.g. channel=voice, from=24h,
    /// voice_to_voice_p95_ms_min=800. Repeat to combine.
    #[arg(long = "filter", value_name = "NAME=VALUE")]
    pub filters: Vec<String>,
    /// start_time, duration, latency, voice_to_voice_p95, voice_to_voice_p50, llm_ttft_p50, turns.
    #[arg(long)]
    pub sort: Option<String>,
    /// desc (default) or asc.
    #[arg(long)]
    pub order: Option<String>,
}

fn describe(err: QueryError) -> anyhow::Error {
    anyhow::anyhow!("--filter {}: {}", err.name, err.why)
}

/// Writes every matching session; returns how many.
pub async fn run(store: &Store, args: ExportArgs) -> anyhow::Result<u64> {
    let mut pairs = Vec::new();
    for filter in &args.filters {
        let (name, value) = filter
            .split_once('=')
            .with_context(|| format!("--filter {filter:?} is not NAME=VALUE"))?;
        pairs.push((name.trim().to_owned(), value.to_owned()));
    }
    for (name, value) in [("sort", &args.sort), ("order", &args.order)] {
        if let Some(value) = value {
            pairs.push((name.to_owned(), value.clone()));
        }
    }
    let mut p = Params::from_pairs(pairs).map_err(describe)?;
    let now = crate::clock::now_unix_nano() / 1_000_000_000;
    let filter = query::session_filter(&mut p, now).map_err(describe)?;
    let sort = query::sort(&mut p).map_err(describe)?;
    p.finish().map_err(describe)?;
    let format = Format::parse(&args.format, args.bom).map_err(describe)?;

    let total = store.count_sessions(&filter).await?;
    let mut stream = store.stream_sessions(&filter, &sort)?;
    let to_stdout = args.output == "-";
    let mut out: BufWriter<Box<dyn AsyncWrite + Unpin + Send>> = BufWriter::new(if to_stdout {
        Box::new(tokio::io::stdout())
    } else {
        Box::new(
            tokio::fs::File::create(Path::new(&args.output))
                .await
                .with_context(|| format!("creating {}", args.output))?,
        )
    });
    let progress = progress::bar(total, "sessions");
    let mut encoder = Encoder::new(format);
    let mut buffer = Vec::with_capacity(64 * 1024);
    encoder.header(&mut buffer);
    while let Some(row) = stream.next().await? {
        encoder.row(row, &mut buffer)?;
        if buffer.len() >= 64 * 1024 {
            out.write_all(&buffer).await.context("writing the export")?;
            buffer.clear();
        }
        progress.set_position(encoder.rows());
    }
    encoder.footer(&mut buffer);
    out.write_all(&buffer).await.context("writing the export")?;
    out.flush().await.context("writing the export")?;
    progress.finish_and_clear();
    let to = if to_stdout {
        "standard output"
    } else {
        &args.output
    };
    eprintln!("exported {} sessions to {to}", encoder.rows());
    Ok(encoder.rows())
}
